"""Is the daemon healthy? One verdict for ``status --health``, ``/healthz``, ``/readyz`` and systemd.

Health is about work moving, not only threads being alive. The daemon writes facts to
the state database's ``meta`` table (heartbeat, failed cycles, since when the backend is
unreachable); the ledger knows what is processing and what waits. :func:`assess` turns
facts into a verdict with the bounds of ``[health]`` (see the example configuration):

* **unhealthy** (the watchdog stops being fed, ``/healthz`` says 503): no heartbeat for
  ``heartbeat_seconds`` (a long backend call announces how long it may take), a file
  ``processing`` for longer than ``processing_seconds``, ``failed_cycles`` worker cycles
  failed in a row;
* **degraded** (``/readyz`` says 503, ``status --health`` exits 1): the oldest due file
  has not moved for ``stalled_seconds``, or the backend has been unreachable for
  ``backend_seconds`` (a live check, repeated every ``backend_check_seconds``).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass, field
from typing import Literal

from algoseek_sync.config import HealthConfig, Settings
from algoseek_sync.state.database import Database
from algoseek_sync.state.ledger import Ledger
from algoseek_sync.state.lock import WorkerLock

State = Literal["healthy", "degraded", "unhealthy", "stopped"]


@dataclass
class Facts:
    """What the daemon and the ledger say right now (ages in seconds)."""

    heartbeat_age: float | None = None  # None: no heartbeat written yet
    busy_for: float = 0.0  # a long operation announced it may take this much longer
    processing_age: float = 0.0
    processing_path: str = ""
    stalled_age: float = 0.0
    stalled_path: str = ""
    failed_cycles: int = 0
    last_error: str = ""
    backend_down_for: float = 0.0
    backend_error: str = ""
    pid: int | None = None


@dataclass
class Health:
    state: State
    reasons: list[str] = field(default_factory=list)
    facts: Facts | None = None

    @property
    def healthy(self) -> bool:
        return self.state == "healthy"

    def message(self) -> str:
        return self.state if not self.reasons else f"{self.state}: {'; '.join(self.reasons)}"

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "reasons": self.reasons,
            "facts": asdict(self.facts) if self.facts else None,
        }


def assess(facts: Facts, bounds: HealthConfig) -> Health:
    """The verdict for ``facts`` (pure)."""
    bad: list[str] = []
    if facts.heartbeat_age is None:
        bad.append("the daemon has not written a heartbeat yet")
    elif facts.heartbeat_age > max(bounds.heartbeat_seconds, facts.busy_for):
        bad.append(
            f"worker made no progress for {facts.heartbeat_age:.0f} s (limit {bounds.heartbeat_seconds:.0f} s)"
        )
    if facts.processing_age > bounds.processing_seconds:
        bad.append(
            f"{facts.processing_path} has been processing for {facts.processing_age:.0f} s"
            f" (limit {bounds.processing_seconds:.0f} s)"
        )
    if facts.failed_cycles >= bounds.failed_cycles:
        bad.append(f"the last {facts.failed_cycles} worker cycles failed: {facts.last_error}")
    if bad:
        return Health("unhealthy", bad, facts)
    slow: list[str] = []
    if facts.stalled_age > bounds.stalled_seconds:
        slow.append(
            f"{facts.stalled_path} is due and has not moved for {facts.stalled_age:.0f} s"
            f" (limit {bounds.stalled_seconds:.0f} s)"
        )
    if facts.backend_down_for > bounds.backend_seconds:
        slow.append(f"backend unreachable for {facts.backend_down_for:.0f} s: {facts.backend_error}")
    return Health("degraded" if slow else "healthy", slow, facts)


def read_facts(db: Database, now: float | None = None) -> Facts:
    """Facts from the state database (the daemon's ``meta`` rows and the ledger)."""
    now = time.time() if now is None else now
    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
    facts = Facts()

    def number(key: str) -> float | None:
        try:
            return float(meta[key])
        except (KeyError, TypeError, ValueError):
            return None

    beat = number("heartbeat")
    facts.heartbeat_age = max(0.0, now - beat) if beat else None
    facts.busy_for = max(0.0, (number("busy_until") or 0.0) - (beat or now)) if beat else 0.0
    facts.failed_cycles = int(number("failed_cycles") or 0)
    facts.last_error = str(meta.get("last_error") or "")
    down_since = number("backend_down_since")
    facts.backend_down_for = max(0.0, now - down_since) if down_since else 0.0
    facts.backend_error = str(meta.get("backend_error") or "")
    pid = number("pid")
    facts.pid = int(pid) if pid else None
    ledger = Ledger(db, clock=lambda: now)
    facts.processing_age, facts.processing_path = ledger.processing_age()
    facts.stalled_age, facts.stalled_path = ledger.stalled_age()
    return facts


def health(settings: Settings) -> Health:
    """``status --health``: is a daemon running on this state directory, and is its work moving?"""
    if not settings.db_path.exists():
        return Health("stopped", [f"no daemon running (no state database at {settings.db_path})"])
    if not WorkerLock(settings.state.dir).held_elsewhere():
        return Health("stopped", [f"no daemon running on {settings.state.dir}"])
    db = Database(settings.db_path, readonly=True)
    try:
        facts = read_facts(db)
    except sqlite3.Error as exc:  # a half-initialised database is unhealthy, not a traceback
        return Health("unhealthy", [f"cannot read the state database ({exc})"])
    finally:
        db.close()
    return assess(facts, settings.health)
