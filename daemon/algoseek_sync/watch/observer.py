"""The watchdog observer's lifecycle: start (with the inotify → polling fallback), liveness, restart, stop.

Why a class of its own: the service restarts a dead observer and reads its choice for
status lines, without knowing how observers are built or how overflows are detected.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
from collections.abc import Callable
from pathlib import Path

import structlog
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from algoseek_sync.watch.events import EventLoss, Hint, HintHandler
from algoseek_sync.watch.mounts import ObserverChoice, choose_observer

log = structlog.get_logger("algoseek_sync.observer")

_INOTIFY_LIMITS = (errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOMEM)


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
