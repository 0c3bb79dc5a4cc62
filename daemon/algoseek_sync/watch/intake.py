"""Hints and reconciles → stability gate → ledger versions.

Events are only hints (see :mod:`algoseek_sync.watch.events`). :class:`Intake` (one thread, its
own database connection) stats the hinted paths, lets the
:class:`~algoseek_sync.watch.stability.StabilityGate` decide when a file is complete, and records
it; periodic stat-only reconciles catch whatever the events missed (network mounts, dropped
or overflowed events).
"""

from __future__ import annotations

import os
import queue
import stat as stat_mod
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from algoseek_sync.formats.names import classify, is_temporary
from algoseek_sync.state.ledger import Ledger
from algoseek_sync.state.problems import Problems
from algoseek_sync.watch.events import EventLoss, Hint
from algoseek_sync.watch.scan import Entry, Reconciled, reconcile, record_entry
from algoseek_sync.watch.stability import Ready, StabilityGate

log = structlog.get_logger("algoseek_sync.intake")


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return None


class Intake:
    """Turns hints and reconcile entries into ledger versions through the stability gate.

    Runs on one thread with its own :class:`Ledger` (database connection).
    ``require_close`` is True with inotify: a file seen being written must be seen closed.
    """

    def __init__(
        self,
        root: Path,
        ledger: Ledger,
        master_globs: list[str],
        gate: StabilityGate,
        hints: queue.Queue[Hint],
        *,
        require_close: bool,
        overflow: EventLoss | None = None,
        reconcile_every: float = 300.0,
        min_gap: float = 1.0,
        on_recorded: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self.root = root
        self.prefix = os.path.realpath(root).rstrip(os.sep) + os.sep
        self.ledger = ledger
        self.globs = master_globs
        self.gate = gate
        self.hints = hints
        self.require_close = require_close
        self.on_recorded = on_recorded
        self.rescan = threading.Event()  # set when the gate was full: reconcile once it has room
        self.overflow = overflow or EventLoss()  # events were dropped: reconcile now
        self.reconcile_every = reconcile_every
        self.min_gap = min_gap  # between reconciles triggered by lost events (bursts keep overflowing)
        self.reconciles = 0
        self._requests: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._next_reconcile = 0.0
        self._last_reconcile = -1e9

    def request(self, reason: str) -> None:
        """Ask for a reconcile on the next step (thread-safe); events may have been missed."""
        self._requests.put(reason)

    def _reconcile_reason(self, now: float) -> str:
        reason = ""
        if now >= self._next_reconcile:
            reason = "startup" if not self.reconciles else "interval"
        while not self._requests.empty():
            reason = reason or self._requests.get_nowait()
            self.gate.events_lost()
        if now - self._last_reconcile < self.min_gap:
            return reason
        if self.overflow.is_set():
            self.overflow.clear()
            self.gate.events_lost()
            reason = reason or "events_lost"
        if not reason and self.rescan.is_set() and len(self.gate) < self.gate.capacity // 2:
            reason = "gate_full"
        return reason

    def step(self, wait: float) -> tuple[str, int]:
        """One loop turn: reconcile if due, apply hints, admit stable files. Returns (reconcile reason, new)."""
        now = time.monotonic()
        reason = self._reconcile_reason(now)
        if reason:
            self.reconcile(now)
            self._last_reconcile, self._next_reconcile = now, now + self.reconcile_every
        self.drain(wait=wait)
        return reason, self.check(time.monotonic())

    def _rel(self, path: str) -> str | None:
        real = (
            path
            if path.startswith(self.prefix)
            else os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
        )
        if not real.startswith(self.prefix):
            return None
        rel = real[len(self.prefix) :].replace(os.sep, "/")
        return None if not rel or is_temporary(rel) else rel

    def drain(self, limit: int = 5000, wait: float = 0.0) -> int:
        """Apply up to ``limit`` queued hints (waiting up to ``wait`` s for the first one).

        Hints are stamped after the wait, so the stability window never starts early.
        """
        count = 0
        try:
            hint = self.hints.get(timeout=wait) if wait > 0 else self.hints.get_nowait()
        except queue.Empty:
            return 0
        now = time.monotonic()
        while True:
            self._apply(hint, now)
            count += 1
            if count >= limit:
                break
            try:
                hint = self.hints.get_nowait()
            except queue.Empty:
                break
        return count

    def _apply(self, hint: Hint, now: float) -> None:
        rel = self._rel(hint.path)
        if rel is None:
            return
        if hint.kind == "deleted":
            self.gate.forget(rel)
            return
        st = _lstat(os.path.join(self.root, rel))
        if st is None or stat_mod.S_ISDIR(st.st_mode):
            self.gate.forget(rel)
            return
        key = (st.st_size, st.st_mtime_ns)
        if rel not in self.gate and hint.kind != "modified" and self.ledger.is_known(rel, *key):
            return
        writing = self.require_close and (
            hint.kind == "modified" or (hint.kind == "created" and not st.st_size)
        )
        lost = writing and st.st_mtime_ns <= self.overflow.last_ns  # its close may be among the lost
        closed = hint.kind in ("closed", "moved")
        if not self.gate.feed(rel, key, now, closed=closed, writing=writing and not lost, lost=lost):
            self.rescan.set()

    def check(self, now: float) -> int:
        """Stat the candidates whose next look is due, then record those that are ready."""
        for rel in self.gate.checks(now):
            st = _lstat(os.path.join(self.root, rel))
            self.gate.feed(rel, (st.st_size, st.st_mtime_ns) if st else None, now)
        return self.admit(now)

    def admit(self, now: float) -> int:
        """Record every ready candidate whose stat still matches (one transaction); return how many were new."""
        ready_now = self.gate.due()
        if not ready_now:
            return 0
        with self.ledger.db.transaction():
            return sum(self._admit(ready, now) for ready in ready_now)

    def _admit(self, ready: Ready, now: float) -> int:
        st = _lstat(os.path.join(self.root, ready.path))
        if st is None or (st.st_size, st.st_mtime_ns) != (ready.size, ready.mtime_ns):
            self.gate.feed(
                ready.path, (st.st_size, st.st_mtime_ns) if st else None, now
            )  # changed: wait again
            return 0
        if ready.forced:
            log.warning(
                "close_event_missing",
                path=ready.path,
                detail="writes were seen but no close (events lost, or the writer keeps it open);"
                " taking it after a longer quiet window",
            )
        regular, link = stat_mod.S_ISREG(st.st_mode), stat_mod.S_ISLNK(st.st_mode)
        if not record_entry(
            self.ledger, Entry(ready.path, st.st_size, st.st_mtime_ns, regular, link), self.globs
        ):
            return 0
        self.on_recorded(classify(ready.path, self.globs).kind)
        return 1

    def reconcile(self, now: float) -> Reconciled:
        """Stat-only walk: unknown regular files go through the gate; links/FIFOs are recorded as skipped.

        Directories that cannot be listed become the ``drop`` problems shown by ``status``.
        """
        self.rescan.clear()
        gate = self.gate

        def accept(entry: Entry) -> bool:
            if not entry.regular:
                return True
            if entry.path not in gate and not gate.feed(entry.path, (entry.size, entry.mtime_ns), now):
                self.rescan.set()
            return False

        started = time.monotonic()
        self.reconciles += 1
        result = reconcile(self.root, self.ledger, self.globs, accept=accept)
        Problems(self.ledger.db).replace("drop", result.problems)
        for problem in result.problems:
            log.warning("unreadable", path=problem.path, detail=problem.detail)
        log.info(
            "reconciled",
            entries=result.seen,
            recorded=result.recorded,
            candidates=len(gate),
            unreadable=len(result.problems) or None,
            duration_s=round(time.monotonic() - started, 3),
        )
        return result
