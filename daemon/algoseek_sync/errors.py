"""Exceptions that carry a one-line, user-facing message (never a traceback)."""

from __future__ import annotations

EX_CONFIG = 78  # sysexits.h: configuration error; systemd does not restart on it


class AlgoseekSyncError(Exception):
    """Base class: ``str(exc)`` is a complete one-line message for the user."""


class ConfigError(AlgoseekSyncError):
    """A configuration key is missing, unknown or has a bad value (exit 78)."""


class BadFileError(AlgoseekSyncError):
    """A vendor file cannot be ingested; the file is quarantined with this reason."""


class FileGoneError(AlgoseekSyncError):
    """The file vanished or changed between being queued and being read."""


class BackendUnavailableError(AlgoseekSyncError):
    """The backend cannot take writes right now; the work stays queued and is retried."""


class BackendRejectedError(AlgoseekSyncError):
    """The backend answered but refused a write for a reason retrying will not fix."""


class UserInputError(AlgoseekSyncError):
    """A CLI argument names something that does not exist (unknown SecId, file, ticker)."""
