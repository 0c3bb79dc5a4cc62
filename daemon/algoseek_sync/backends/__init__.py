"""Stores the worker writes to: one interface (:mod:`.base`), two implementations."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from algoseek_sync.backends.base import Backend
    from algoseek_sync.config import Settings
    from algoseek_sync.state.database import Database


def open_backend(settings: Settings, db: Database) -> Backend:
    """The configured backend; the platform SDK is imported only when it is chosen."""
    if settings.backend.kind == "mainsequence":
        from algoseek_sync.backends.mainsequence import MainSequenceBackend

        return MainSequenceBackend(settings, db)
    from algoseek_sync.backends.local import LocalBackend

    return LocalBackend(db)
