"""The Main Sequence platform backend for SDK 9.x. Importing this package does not import the SDK."""

from algoseek_sync.backends.mainsequence9.backend import MainSequence9Backend

__all__ = ["MainSequence9Backend"]
