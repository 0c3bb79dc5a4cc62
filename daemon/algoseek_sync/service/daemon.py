"""``algoseek-sync run``: the long-running service (lock, threads, signals, sd_notify, health).

Three threads, each with its own database connection:

* **intake** (events → stability gate → ledger, plus periodic stat-only reconciles);
* **worker** (``Worker.cycle``, the same code as ``run --once``), woken by the intake;
* **main** (this one): signals, observer supervision, sd_notify, metrics gauges.

The ledger is the truth: a crash, a dropped event or a full queue costs a reconcile,
never a file.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

import numpy as np
import structlog

from algoseek_sync.app import App, open_app
from algoseek_sync.backends import open_backend
from algoseek_sync.backends.base import Backend
from algoseek_sync.config import Settings
from algoseek_sync.errors import EX_SOFTWARE, EX_TEMPFAIL, TemporaryFailure
from algoseek_sync.ingest.prepare import FileResult
from algoseek_sync.quality.monitor import Quality
from algoseek_sync.service.health import Facts, Health, assess
from algoseek_sync.service.metrics import HttpServer, Metrics
from algoseek_sync.service.notify import Notifier
from algoseek_sync.state.database import Database
from algoseek_sync.state.ledger import Ledger
from algoseek_sync.state.lock import WorkerLock
from algoseek_sync.state.securities import Securities
from algoseek_sync.watch.events import EventLoss, Hint
from algoseek_sync.watch.intake import Intake
from algoseek_sync.watch.observer import Watcher
from algoseek_sync.watch.stability import StabilityGate

log = structlog.get_logger("algoseek_sync.service")

STOP_BUDGET_S = 8.5  # SIGTERM → exit within 10 s, with margin
MAX_RESTARTS = 3  # observer restarts allowed per RESTART_WINDOW_S
RESTART_WINDOW_S = 60.0
FACTS_EVERY_S = 1.0  # health facts and the meta rows behind `status --health`
LATE_CHECK_S = 60.0  # the late-delivery check runs on the daemon's clock
CLOSE_TIMEOUT_S = 600.0  # a writer seen writing that never closes is taken after 10 min of quiet


def serve(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; return the process exit code."""
    lock = WorkerLock(settings.state.dir)
    if not lock.acquire():
        log.error(
            "already_running",
            state_dir=str(settings.state.dir),
            detail="another algoseek-sync daemon holds the worker lock",
        )
        return EX_TEMPFAIL
    try:
        return Service(settings).run()
    finally:
        lock.release()


class Service:
    """One daemon instance; ``run`` blocks until stopped."""

    def __init__(self, settings: Settings, notifier: Notifier | None = None) -> None:
        self.settings = settings
        watch = settings.watch
        self.notifier = notifier or Notifier()
        self.metrics = Metrics()
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.wake = threading.Event()
        self.hints: queue.Queue[Hint] = queue.Queue(maxsize=watch.event_queue_size)
        self.overflow = EventLoss()
        self.requests: queue.SimpleQueue[str] = queue.SimpleQueue()  # reconcile reasons from other threads
        self.tick = max(0.05, min(0.2, watch.poll_interval_seconds, watch.stability_seconds / 2 or 0.2))
        self._beat = (time.monotonic(), time.time())
        self._busy_until = 0.0  # monotonic: a long backend call said it may take until then
        self._restarts: list[float] = []
        self._verdict = Health("unhealthy", ["starting"])
        self._backend: tuple[float, str] = (0.0, "")  # (unreachable since, wall clock; why)
        self._backend_checked = False
        self._last_error = ""
        self._signal = ""
        self.exit_code = 0

    # -- liveness ----------------------------------------------------------------------------
    def beat(self) -> None:
        self._beat = (time.monotonic(), time.time())

    def keepalive(self, seconds: float) -> None:
        """The worker is inside a long operation: alive, and its next sign comes within ``seconds``."""
        self.beat()
        self._busy_until = self._beat[0] + seconds

    def heartbeat_age(self) -> float:
        return time.monotonic() - self._beat[0]

    def facts(self, ledger: Ledger) -> Facts:
        beat = self._beat[0]
        processing_age, processing_path = ledger.processing_age()
        stalled_age, stalled_path = ledger.stalled_age()
        down_since, why = self._backend
        return Facts(
            heartbeat_age=time.monotonic() - beat,
            busy_for=max(0.0, self._busy_until - beat),
            processing_age=processing_age,
            processing_path=processing_path,
            stalled_age=stalled_age,
            stalled_path=stalled_path,
            failed_cycles=self.app.worker.failed_cycles,
            last_error=self._last_error,
            backend_down_for=time.time() - down_since if down_since else 0.0,
            backend_error=why,
            pid=os.getpid(),
        )

    def healthy(self) -> tuple[bool, str]:
        """Liveness (``/healthz``, the systemd watchdog): threads alive and work not stuck."""
        if not (self._intake_thread.is_alive() and self._worker_thread.is_alive()):
            return False, "a daemon thread died"
        if not self.watcher.alive():
            return False, "the file observer is not running"
        verdict = self._verdict
        if verdict.state == "unhealthy":
            return False, verdict.message()
        return True, f"worker heartbeat {self.heartbeat_age():.1f} s ago"

    def is_ready(self) -> tuple[bool, str]:
        """Readiness (``/readyz``): the first reconcile is done, the backend answers, work moves."""
        if not self.ready.is_set():
            return False, "first reconcile not finished"
        if not self._backend_checked:
            return False, "backend not checked yet"
        alive, reason = self.healthy()
        if not alive:
            return False, reason
        verdict = self._verdict
        if verdict.state != "healthy":
            return False, verdict.message()
        if self._backend[0]:
            return False, f"backend unreachable: {self._backend[1]}"
        return True, self._backend[1] or "ready"

    # -- lifecycle -----------------------------------------------------------------------------
    def run(self) -> int:
        previous = self._install_signals()
        try:
            app = open_app(self.settings)
            try:
                return self._run(app)
            finally:
                app.close()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _run(self, app: App) -> int:
        settings, watch = self.settings, self.settings.watch
        app.quality.validate()
        recovered = app.ledger.recover()
        log.info(
            "daemon_starting",
            pid=os.getpid(),
            drop=str(settings.drop.dir),
            state=str(settings.state.dir),
            backend=settings.backend.kind,
            recovered=recovered,
        )
        app.worker.hooks.append(self.metrics.on_result)
        app.worker.hooks.append(self._on_result)
        app.backend.keepalive = self.keepalive
        app.problems.on_record = self.metrics.on_problem
        self.metrics.instrument(app.backend)
        self.app = app
        self.watcher = Watcher(
            settings.drop.dir, watch.observer, watch.poll_interval_seconds, self.hints, self.overflow
        )
        try:
            choice = self.watcher.start()
        except OSError as exc:
            log.error("observer_failed", observer=self.watcher.choice.kind, error=str(exc))
            return EX_SOFTWARE
        self.metrics.observer.labels(choice.kind).set(1)
        polling = choice.kind == "polling"
        self.gate = StabilityGate(
            watch.stability_seconds,
            confirmations=2 if polling else 1,
            interval=watch.poll_interval_seconds if polling else self.tick,
            close_timeout=CLOSE_TIMEOUT_S,
            capacity=watch.event_queue_size,
        )
        main_db = Database(settings.db_path)
        http: HttpServer | None = None
        try:
            self._set_meta(main_db, pid=os.getpid())
            if settings.metrics.listen:
                try:
                    http = HttpServer(settings.metrics.listen, self.metrics, self.healthy, self.is_ready)
                except TemporaryFailure as exc:
                    log.error(
                        "metrics_listen_failed", error=str(exc), detail="exit 75: a restart may find it free"
                    )
                    return EX_TEMPFAIL
            self._intake_thread = threading.Thread(
                target=self._intake_loop, args=(not polling,), name="intake", daemon=True
            )
            self._worker_thread = threading.Thread(target=self._worker_loop, name="worker", daemon=True)
            try:
                self._intake_thread.start()
                self._worker_thread.start()
                if http:
                    http.start()
                probe = threading.Thread(
                    target=self._probe_backend,
                    args=(open_backend(settings, main_db),),
                    name="probe",
                    daemon=True,
                )
                probe.start()
                self._supervise(main_db)
            finally:
                self._shutdown(http)
        finally:
            self.watcher.close()
            main_db.close()
        log.info("daemon_stopped", exit_code=self.exit_code, signal=self._signal or None)
        return self.exit_code

    def _install_signals(self) -> dict[int, Callable[..., object] | int | None]:
        previous: dict[int, Callable[..., object] | int | None] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """First signal: stop gracefully. Second: exit at once (the ledger recovers on the next start)."""
        if self.stopping.is_set():
            os.write(2, f"algoseek-sync: second {signal.Signals(signum).name}, exiting now\n".encode())
            os._exit(128 + signum)
        self._signal = signal.Signals(signum).name
        self.stopping.set()

    def _shutdown(self, http: HttpServer | None) -> None:
        self.stopping.set()
        started = time.monotonic()
        self.notifier.stopping()
        log.info("daemon_stopping", signal=self._signal or None)
        self.watcher.close()
        self.wake.set()
        self._intake_thread.join(2.0)
        self._worker_thread.join(max(0.1, STOP_BUDGET_S - (time.monotonic() - started)))
        if http:
            http.stop()
        if self._worker_thread.is_alive():
            log.warning(
                "worker_abandoned",
                detail="the current batch did not finish in time; its transaction "
                "is rolled back and the files stay queued for the next start",
            )
            sys.stderr.flush()
            os._exit(self.exit_code)
        self.notifier.close()

    # -- main thread: supervision -------------------------------------------------------------
    def _supervise(self, db: Database) -> None:
        ledger = Ledger(db)
        quality = Quality(db, self.settings.quality, Securities(db), self.app.backend)
        interval = self.notifier.watchdog_interval()
        next_ping = next_status = next_refresh = next_facts = next_late = 0.0
        late: tuple[bool | None, float | None] = (None, None)
        announced = False
        status = ""
        while not self.stopping.wait(self.tick):
            now = time.monotonic()
            if not self._threads_ok() or not self._observer_ok():
                return
            self.metrics.heartbeat_age.set(self.heartbeat_age())
            if now >= next_facts:
                next_facts = now + FACTS_EVERY_S
                self._assess(db, ledger)
            if self.ready.is_set() and not announced:
                announced = True
                self.notifier.ready(self._status_text(ledger))
                log.info("daemon_ready", observer=self.watcher.choice.kind)
            if self.ready.is_set() and now >= next_late:
                next_late = now + LATE_CHECK_S
                late = self._late(quality, late)
            if now >= next_refresh:
                next_refresh = now + 2.0
                self.metrics.refresh(ledger, self.app.problems.counts())
                self.metrics.candidates.set(len(self.gate))
                self.metrics.refresh_quality(quality.findings.counts(), *late)
            if announced and now >= next_status:
                next_status = now + 2.0
                text = self._status_text(ledger)
                if text != status:
                    status = text
                    self.notifier.status(text)
            if interval and now >= next_ping and self.healthy()[0]:
                next_ping = now + interval
                self.notifier.watchdog()

    def _assess(self, db: Database, ledger: Ledger) -> None:
        """Refresh the verdict and the meta rows other processes read (``status --health``)."""
        facts = self.facts(ledger)
        verdict = assess(facts, self.settings.health)
        if verdict.state != self._verdict.state:
            level = "info" if verdict.state == "healthy" else "warning"
            getattr(log, level)("health_changed", state=verdict.state, reasons=verdict.reasons or None)
        self._verdict = verdict
        with contextlib.suppress(sqlite3.OperationalError):
            self._set_meta(
                db,
                heartbeat=self._beat[1],
                busy_until=self._beat[1] + facts.busy_for,
                failed_cycles=facts.failed_cycles,
                last_error=facts.last_error,
                backend_down_since=self._backend[0],
                backend_error=self._backend[1] if self._backend[0] else "",
            )

    @staticmethod
    def _late(quality: Quality, was: tuple[bool | None, float | None]) -> tuple[bool | None, float | None]:
        """The late-delivery check on the daemon's clock, and the newest delivered session's close.

        Contained: a failure (no calendar, say) is logged and the gauges keep their values.
        """
        try:
            late = quality.tick()
            last = quality.last_delivered() if quality.config.enabled else None
            close = (
                quality.sessions.close_of(last)
                if last and quality.sessions.is_session(np.array([last]))[0]
                else None
            )
        except Exception as exc:
            log.warning("late_check_failed", error=f"{type(exc).__name__}: {exc}")
            return was
        if late and not was[0]:
            log.warning("delivery_late", last_delivered=last)
        return late, close

    def _status_text(self, ledger: Ledger) -> str:
        last = self.app.worker.last_file or "none yet"
        state = "" if self._verdict.healthy else f"{self._verdict.message()}; "
        return (
            f"{state}watching ({self.watcher.choice.kind}); queue {ledger.depth()}; waiting for stability"
            f" {len(self.gate)}; last file {last}"
        )

    def _probe_backend(self, backend: Backend) -> None:
        """A live check of the backend every ``health.backend_check_seconds``, off the main thread."""
        every = self.settings.health.backend_check_seconds
        while not self.stopping.is_set():
            try:
                described = backend.check(quick=True)
            except (
                Exception
            ) as exc:  # unreachable: recorded for /readyz and status --health, work stays queued
                since = self._backend[0] or time.time()
                if not self._backend[0]:
                    log.warning("backend_unreachable", error=str(exc))
                self._backend = (since, str(exc))
            else:
                if self._backend[0]:
                    log.info("backend_reachable", after_s=round(time.time() - self._backend[0], 1))
                self._backend = (0.0, described)
            self._backend_checked = True
            self.stopping.wait(every)
        backend.close()

    def _threads_ok(self) -> bool:
        for thread in (self._intake_thread, self._worker_thread):
            if not thread.is_alive():
                log.error("thread_died", thread=thread.name)
                self.exit_code = EX_SOFTWARE
                return False
        return True

    def _observer_ok(self) -> bool:
        """A dead observer is restarted (and a reconcile catches up); one that keeps dying ends the daemon."""
        if self.watcher.alive():
            return True
        now = time.monotonic()
        self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(self._restarts) > MAX_RESTARTS:
            log.error("observer_keeps_dying", restarts=len(self._restarts), window_s=RESTART_WINDOW_S)
            self.exit_code = EX_SOFTWARE
            return False
        log.error("observer_died", observer=self.watcher.choice.kind)
        try:
            self.watcher.restart()
        except OSError as exc:
            log.error("observer_restart_failed", error=str(exc))
            return True  # counted: the next tick tries again or gives up
        self.metrics.observer_restarts.inc()
        self.requests.put("observer_restart")
        return True

    # -- intake thread -------------------------------------------------------------------------
    def _intake_loop(self, require_close: bool) -> None:
        settings, watch = self.settings, self.settings.watch
        db = Database(settings.db_path)
        try:
            self.intake = Intake(
                settings.drop.dir,
                Ledger(db),
                settings.drop.master_glob,
                self.gate,
                self.hints,
                require_close=require_close,
                overflow=self.overflow,
                reconcile_every=watch.reconcile_interval_seconds,
                min_gap=max(1.0, watch.stability_seconds),
                on_recorded=lambda kind: self.metrics.discovered.labels(kind).inc(),
            )
            self._intake(self.intake, db)
        except Exception:
            log.exception("intake_failed")
            raise
        finally:
            db.close()

    def _intake(self, intake: Intake, db: Database) -> None:
        dropped_seen = lost = 0
        while not self.stopping.is_set():
            while not self.requests.empty():
                intake.request(self.requests.get_nowait())
            try:
                reason, recorded = intake.step(self.tick)
            except sqlite3.OperationalError as exc:  # busy or I/O trouble: the ledger stays the truth, retry
                log.warning("intake_database_error", error=str(exc))
                self.stopping.wait(1.0)
                continue
            except Exception as exc:  # contained: the periodic reconcile finds whatever this step missed
                log.exception("intake_step_failed", error=f"{type(exc).__name__}: {exc}")
                intake.request("intake_error")
                self.stopping.wait(1.0)
                continue
            dropped = self.watcher.handler.dropped
            if dropped > dropped_seen:
                self.metrics.events_dropped.inc(dropped - dropped_seen)
                lost, dropped_seen = lost + dropped - dropped_seen, dropped
            if reason:
                self.metrics.reconciles.labels(reason).inc()
            if reason == "events_lost":
                log.warning(
                    "events_lost",
                    dropped=lost,
                    detail="event queue full or inotify queue overflow: reconciled from the directory",
                )
                lost = 0
            if reason and not self.ready.is_set():
                self._set_meta(db, ready=time.time())
                self.ready.set()
            if recorded:
                self.wake.set()

    @staticmethod
    def _set_meta(db: Database, **values: float | int) -> None:
        with db.transaction() as conn:
            for key, value in values.items():
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))

    # -- worker thread ---------------------------------------------------------------------------
    def _on_result(self, result: FileResult) -> None:
        self.beat()

    def _should_stop(self) -> bool:
        self.beat()
        return self.stopping.is_set()

    def _worker_loop(self) -> None:
        poll = self.settings.watch.poll_interval_seconds
        worker = self.app.worker
        while not self.stopping.is_set():
            self.beat()
            self.wake.clear()
            stats = worker.cycle(self._should_stop)  # contains its own failures (see Worker.cycle)
            self._last_error = stats.error or (self._last_error if worker.failed_cycles else "")
            self.beat()
            if not stats.files and not stats.error and self.app.backend.upkeep(limit=1):
                continue  # idle: one unit of upkeep (about a second), then look for work again
            self.wake.wait(poll if not stats.error else max(poll, min(30.0, 2.0**worker.failed_cycles)))
