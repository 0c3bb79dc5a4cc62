"""What can go wrong, as the user sees it: exceptions that carry a one-line message (never a
traceback), the exit codes, and :class:`Problem`, the record of a fault that was contained.

The exit codes are the README's table (section "Operations guide"), in one place. ``Problem``
lives here, on the ground floor, so that pure parsing (``formats/``) can report problems without
importing the state database that stores them (``state/problems.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

EX_OK = 0
EX_PROBLEMS = 1  # some files of this run ended quarantined or skipped (or: unhealthy)
EX_USAGE = 2  # a bad argument, an unknown SecId / file / ticker
EX_UNAVAILABLE = 69  # the backend or the state database is unavailable: work stays queued
EX_SOFTWARE = 70  # an internal failure (a thread died, cycles failed): the supervisor restarts us
EX_TEMPFAIL = 75  # try again later: another daemon holds the state directory, a port is busy
EX_CONFIG = 78  # configuration error: systemd does not restart on it


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


class UnknownIdentifierError(UserInputError, LookupError):
    """A FIGI, custom id, ticker or SecId no applied security master ever listed (or not on that date)."""


class AmbiguousQueryError(UserInputError):
    """A read that matches several datasets or SecIds: the message says which, and how to choose."""


class TemporaryFailure(AlgoseekSyncError):
    """Something outside us is busy (a port, the state directory's lock): a restart later may work (75)."""


@dataclass(frozen=True)
class Problem:
    """One contained fault: what (``kind``, one of ``state.problems.KINDS``), where, and what was done."""

    kind: str
    detail: str
    action: str
    path: str | None = None
    secid: int | None = None
    unique_identifier: str | None = None
    line: int | None = None
