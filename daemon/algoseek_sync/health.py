"""``status --health``: is a daemon running on this state directory, and is its worker beating?

Used by the container ``HEALTHCHECK``; it only reads (the lock and the heartbeat row), so it
is safe to run next to the daemon at any rate.
"""

from __future__ import annotations

import sqlite3
import time

from algoseek_sync.config import Settings
from algoseek_sync.db import Database
from algoseek_sync.lock import WorkerLock

HEARTBEAT_MAX_AGE_S = 60.0


def health(settings: Settings, max_age: float = HEARTBEAT_MAX_AGE_S) -> tuple[bool, str]:
    """Is a daemon running on this state directory and beating? (container HEALTHCHECK)."""
    if not settings.db_path.exists():
        return False, f"no daemon running (no state database at {settings.db_path})"
    if not WorkerLock(settings.state.dir).held_elsewhere():
        return False, f"no daemon running on {settings.state.dir}"
    db = Database(settings.db_path, readonly=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'heartbeat'").fetchone()
    except sqlite3.Error as exc:  # a half-initialised database is unhealthy, not a traceback
        return False, f"unhealthy: cannot read the heartbeat ({exc})"
    finally:
        db.close()
    if row is None or row[0] is None:
        return False, "unhealthy: the daemon has not written a heartbeat yet"
    try:
        age = time.time() - float(row[0])
    except ValueError:
        return False, f"unhealthy: heartbeat value {row[0]!r} is not a timestamp"
    if age > max_age:
        return False, f"unhealthy: last heartbeat {age:.0f} s ago (limit {max_age:.0f} s)"
    return True, "healthy"
