"""Filesystem events → hints → stability gate → ledger versions.

Events are only hints: the handler pushes (kind, path) into a bounded queue and never
reads a file or touches the ledger. :class:`Intake` (one thread, its own database
connection) stats the hinted paths, lets the :class:`~algoseek_sync.stability.StabilityGate`
decide when a file is complete, and records it; periodic stat-only reconciles catch
whatever the events missed (network mounts, dropped or overflowed events).
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import stat as stat_mod
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog
from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from algoseek_sync.formats.names import classify, is_temporary
from algoseek_sync.ledger import Ledger
from algoseek_sync.scan import Entry, reconcile, record_entry
from algoseek_sync.stability import Ready, StabilityGate

log = structlog.get_logger("algoseek_sync.watcher")

HintKind = Literal["created", "modified", "closed", "moved", "deleted"]

#: File system types on which inotify sees no changes made elsewhere (network, FUSE, VM shares).
NETWORK_FS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "sshfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "davfs",
        "vboxsf",
        "vmhgfs",
        "virtiofs",
        "ncpfs",
        "beegfs",
        "fuse",
    }
)
_INOTIFY_LIMITS = (errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOMEM)


@dataclass(frozen=True)
class Hint:
    """ "Something happened to ``path``" (absolute); only a reason to look, never the truth."""

    kind: HintKind
    path: str


# -- observer choice -------------------------------------------------------------------


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mount_fstype(path: Path, mountinfo: str | None = None) -> str | None:
    """File system type of the mount holding ``path`` (longest mount point prefix), None if unknown."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    target = os.path.realpath(path)
    best, fstype = "", None
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        point = _unescape(fields[4])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, right.split()[0]
    return fstype


def is_network_fs(fstype: str | None) -> bool:
    return bool(fstype) and (
        fstype in NETWORK_FS or fstype.startswith("fuse.") or fstype.startswith("fuseblk")
    )


@dataclass(frozen=True)
class ObserverChoice:
    kind: Literal["inotify", "polling"]
    reason: str


def choose_observer(setting: str, drop: Path, mountinfo: str | None = None) -> ObserverChoice:
    """What ``watch.observer`` means for this drop directory, with the reason (logged at start)."""
    if setting == "polling":
        return ObserverChoice("polling", "watch.observer = polling")
    if setting == "inotify":
        return ObserverChoice("inotify", "watch.observer = inotify")
    fstype = mount_fstype(drop, mountinfo)
    if is_network_fs(fstype):
        return ObserverChoice(
            "polling", f"drop dir is on a {fstype} mount: inotify sees no remote writes there"
        )
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return ObserverChoice("polling", "inotify is Linux-only")
    return ObserverChoice("inotify", f"drop dir is on a local {fstype or 'unknown'} file system")


# -- the event handler -------------------------------------------------------------------


class EventLoss:
    """Raised when file events were lost (our queue full, inotify overflow); remembers when.

    The time matters: a queued "being written" hint for a file last written before a loss may
    have had its close event dropped, so it must not wait for a close that never comes.
    """

    def __init__(self) -> None:
        self._flag = threading.Event()
        self.last_ns = 0  # wall clock of the latest loss

    def set(self) -> None:
        self.last_ns = time.time_ns()
        self._flag.set()

    def is_set(self) -> bool:
        return self._flag.is_set()

    def clear(self) -> None:
        self._flag.clear()


class HintHandler(FileSystemEventHandler):
    """Pushes hints into a bounded queue; when it is full, drops them and raises ``overflow``."""

    def __init__(self, hints: queue.Queue[Hint], overflow: EventLoss) -> None:
        self.hints = hints
        self.overflow = overflow
        self.dropped = 0

    def _push(self, kind: HintKind, path: str | bytes) -> None:
        path = os.fsdecode(path)
        if is_temporary(path.replace(os.sep, "/").rsplit("/", 1)[-1]):
            return
        try:
            self.hints.put_nowait(Hint(kind, path))
        except queue.Full:
            self.dropped += 1
            self.overflow.set()

    def dispatch(self, event: FileSystemEvent) -> None:
        """Only file events matter; opened/closed-no-write (our own reads) are ignored."""
        if event.is_directory:
            return
        if isinstance(event, FileMovedEvent):
            if event.src_path:
                self._push("deleted", event.src_path)
            if event.dest_path:
                self._push("moved", event.dest_path)
        elif isinstance(event, FileClosedEvent):
            self._push("closed", event.src_path)
        elif isinstance(event, FileModifiedEvent):
            self._push("modified", event.src_path)
        elif isinstance(event, FileCreatedEvent):
            self._push("created", event.src_path)
        elif isinstance(event, FileDeletedEvent):
            self._push("deleted", event.src_path)


class _OverflowLog(logging.Handler):
    """watchdog reports an inotify queue overflow (IN_Q_OVERFLOW) only as a warning log line."""

    def __init__(self, flag: EventLoss) -> None:
        super().__init__(logging.WARNING)
        self.flag = flag

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.flag.set()


class Watcher:
    """Owns the watchdog observer: start with fallback, liveness, restart, stop."""

    def __init__(
        self,
        drop: Path,
        setting: str,
        poll_interval: float,
        hints: queue.Queue[Hint],
        overflow: EventLoss,
        *,
        mountinfo: str | None = None,
        inotify_factory: Callable[[], BaseObserver] | None = None,
    ) -> None:
        self.drop = drop
        self.setting = setting
        self.poll_interval = poll_interval
        self.handler = HintHandler(hints, overflow)
        self.choice = choose_observer(setting, drop, mountinfo)
        self.observer: BaseObserver | None = None
        self._inotify_factory = inotify_factory
        self._log_handler = _OverflowLog(overflow)
        self.restarts = 0

    def _make(self, kind: str) -> BaseObserver:
        if kind == "polling":
            return PollingObserver(timeout=self.poll_interval)
        if self._inotify_factory is not None:
            return self._inotify_factory()
        from watchdog.observers.inotify import InotifyObserver

        return InotifyObserver()

    def _start(self, kind: str) -> BaseObserver:
        observer = self._make(kind)
        observer.schedule(self.handler, os.path.realpath(self.drop), recursive=True)
        try:
            observer.start()
        except BaseException:
            observer.unschedule_all()
            raise
        return observer

    def start(self) -> ObserverChoice:
        """Start the chosen observer; ``auto`` falls back to polling when inotify limits are exhausted."""
        wd_log = logging.getLogger("watchdog.observers")
        if self._log_handler not in wd_log.handlers:
            wd_log.addHandler(self._log_handler)
            if wd_log.getEffectiveLevel() > logging.WARNING:
                wd_log.setLevel(logging.WARNING)
        try:
            self.observer = self._start(self.choice.kind)
        except OSError as exc:
            if self.choice.kind != "inotify" or self.setting != "auto" or exc.errno not in _INOTIFY_LIMITS:
                raise
            self.choice = ObserverChoice(
                "polling", f"inotify unavailable ({exc.strerror or exc}); polling instead"
            )
            self.observer = self._start("polling")
        log.info(
            "observer_started",
            observer=self.choice.kind,
            reason=self.choice.reason,
            drop=str(self.drop),
            poll_interval_s=self.poll_interval if self.choice.kind == "polling" else None,
        )
        return self.choice

    def alive(self) -> bool:
        """The dispatcher thread and every emitter thread are running."""
        obs = self.observer
        return bool(obs and obs.is_alive() and obs.emitters and all(e.is_alive() for e in obs.emitters))

    def restart(self) -> None:
        self.restarts += 1
        self.stop()
        self.observer = self._start(self.choice.kind)
        log.warning("observer_restarted", observer=self.choice.kind, restarts=self.restarts)

    def stop(self, timeout: float = 2.0) -> None:
        obs, self.observer = self.observer, None
        if obs is None:
            return
        try:
            obs.stop()
            obs.join(timeout)
        except Exception as exc:  # a dead observer may fail to stop; it is being replaced anyway
            log.debug("observer_stop_failed", error=str(exc))

    def close(self) -> None:
        self.stop()
        logging.getLogger("watchdog.observers").removeHandler(self._log_handler)


# -- intake: hints + reconcile → gate → ledger --------------------------------------------


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

    def reconcile(self, now: float) -> tuple[int, int]:
        """Stat-only walk: unknown regular files go through the gate; links/FIFOs are recorded as skipped."""
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
        seen, recorded = reconcile(self.root, self.ledger, self.globs, accept=accept)
        log.info(
            "reconciled",
            entries=seen,
            recorded=recorded,
            candidates=len(gate),
            duration_s=round(time.monotonic() - started, 3),
        )
        return seen, recorded
