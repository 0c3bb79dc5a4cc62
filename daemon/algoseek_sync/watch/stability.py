"""The stability gate: a path becomes a ledger version only once it stopped changing.

Pure (no I/O, the caller passes ``stat`` results and the clock), so the rules are unit
tested without a filesystem:

* a file is ready when its (size, mtime) was *observed* unchanged for ``stability_seconds``
  and by at least ``confirmations`` later looks (2 with a polling observer: "unchanged
  across two polls");
* when the writer was seen writing (an inotify ``modified`` event) it must also have been
  seen closing the file: SFTP uploads pause for seconds between bursts, so a quiet file is
  not proof; ``close_timeout`` bounds the wait for a writer that never closes;
* when events were lost (queue full, inotify overflow) a close may never come: such files
  need ``lost_window`` (3 × the stability window) of quiet instead, longer than SFTP pauses;
* the gate is bounded (``capacity``): when full, ``feed`` refuses new paths and the caller
  schedules a reconcile later (the ledger is the truth, not this memory).
"""

from __future__ import annotations

from dataclasses import dataclass

Stat = tuple[int, int]  # (size, mtime_ns)


@dataclass(frozen=True)
class Ready:
    """A path whose current (size, mtime) may be recorded as a version."""

    path: str
    size: int
    mtime_ns: int
    forced: bool = False  # True when released by ``close_timeout`` without a close event


class _Candidate:
    __slots__ = ("hold", "last_seen", "needs_close", "next_check", "seen", "since", "stat")

    def __init__(self, stat: Stat, now: float) -> None:
        self.stat = stat
        self.since = now
        self.last_seen = now
        self.seen = 1
        self.needs_close = False
        self.hold = 0.0  # a longer quiet window, after events (maybe the close) were lost
        self.next_check = now


class StabilityGate:
    """Tracks candidate paths until they are stable; see the module docstring for the rules."""

    def __init__(
        self,
        stability_seconds: float,
        *,
        confirmations: int = 1,
        interval: float = 1.0,
        close_timeout: float = 60.0,
        capacity: int = 10_000,
    ) -> None:
        self.stability = max(0.0, stability_seconds)
        self.confirmations = max(1, confirmations)
        self.interval = interval
        self.close_timeout = max(close_timeout, self.stability)
        self.lost_window = max(3 * self.stability, 1.0)
        self.capacity = capacity
        self._items: dict[str, _Candidate] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, path: object) -> bool:
        return path in self._items

    @property
    def full(self) -> bool:
        return len(self._items) >= self.capacity

    def feed(
        self,
        path: str,
        stat: Stat | None,
        now: float,
        *,
        closed: bool = False,
        writing: bool = False,
        lost: bool = False,
    ) -> bool:
        """One observation of ``path``; ``stat`` None means it is gone. False when the gate is full.

        ``writing``: an event showed a writer at work (a close is then required);
        ``closed``: the writer closed it (or it was renamed into place);
        ``lost``: a writer was seen, but its close may be among lost events (long quiet instead).
        """
        if stat is None:
            self._items.pop(path, None)
            return True
        cand = self._items.get(path)
        if cand is None:
            if self.full:
                return False
            cand = self._items[path] = _Candidate(stat, now)
        elif cand.stat != stat:
            cand.stat, cand.since, cand.seen = stat, now, 1
        else:
            cand.seen += 1
        cand.last_seen = max(cand.last_seen, now)
        if writing:
            cand.needs_close = True
        if lost:
            cand.needs_close = False
            cand.hold = self.lost_window
        if closed:
            cand.needs_close = False
            cand.hold = 0.0
        wait = self._wait(cand)
        cand.next_check = max(now + self.interval, cand.since + wait)
        return True

    def _wait(self, cand: _Candidate) -> float:
        return self.close_timeout if cand.needs_close else max(self.stability, cand.hold)

    def events_lost(self) -> None:
        """Events were dropped: a pending close may never arrive, so wait for a long quiet instead."""
        for cand in self._items.values():
            if cand.needs_close:
                cand.needs_close = False
                cand.hold = self.lost_window
                cand.next_check = cand.since + self.lost_window

    def forget(self, path: str) -> None:
        self._items.pop(path, None)

    def checks(self, now: float) -> list[str]:
        """Paths to ``stat`` again now (their next observation can change the verdict)."""
        return [p for p, c in self._items.items() if c.next_check <= now]

    def due(self) -> list[Ready]:
        """Remove and return the paths that are ready, by the observations fed so far."""
        out: list[Ready] = []
        for path, cand in list(self._items.items()):
            if cand.seen > self.confirmations and cand.last_seen - cand.since >= self._wait(cand):
                out.append(Ready(path, *cand.stat, forced=cand.needs_close or cand.hold > 0))
        for ready in out:
            del self._items[ready.path]
        return out
