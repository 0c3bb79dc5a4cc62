"""The Main Sequence platform backend. Importing this package does not import the SDK."""

from algoseek_sync.backends.mainsequence.backend import MainSequenceBackend

__all__ = ["MainSequenceBackend"]
