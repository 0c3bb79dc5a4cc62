"""watchdog events → hints in a bounded queue, and the record of events that were lost.

Events are only hints: the handler pushes (kind, path) and never reads a file or touches
the ledger, so a burst of events costs a queue slot each and nothing more.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Literal

from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from algoseek_sync.formats.names import is_temporary

HintKind = Literal["created", "modified", "closed", "moved", "deleted"]


@dataclass(frozen=True)
class Hint:
    """ "Something happened to ``path``" (absolute); only a reason to look, never the truth."""

    kind: HintKind
    path: str


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
