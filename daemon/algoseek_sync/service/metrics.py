"""Prometheus metrics and the /metrics, /healthz, /readyz HTTP listener (any other path: 404).

A dedicated :class:`CollectorRegistry` (not the process-global one) so tests and embedders
can hold several instances. Counters move from the worker's hooks (one
:class:`~algoseek_sync.ingest.worker.FileResult` per file) and the intake; gauges are refreshed
from the ledger, which is the truth even across restarts.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from algoseek_sync.backends.base import Backend
from algoseek_sync.config import parse_listen
from algoseek_sync.errors import ConfigError, TemporaryFailure
from algoseek_sync.ingest.prepare import FileResult
from algoseek_sync.quality.kinds import SEVERITY
from algoseek_sync.state.ledger import FileState, Ledger
from algoseek_sync.state.problems import KINDS

log = structlog.get_logger("algoseek_sync.metrics")

Check = Callable[[], tuple[bool, str]]
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    """Every ``algoseek_sync_*`` metric of the daemon, in its own registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.discovered = Counter(
            "algoseek_sync_files_discovered", "File versions recorded in the ledger.", ["kind"], registry=r
        )
        self.processed = Counter(
            "algoseek_sync_files_processed",
            "File versions the worker finished, by outcome.",
            ["kind", "outcome"],
            registry=r,
        )
        self.rows_written = Counter(
            "algoseek_sync_rows_written", "Bar rows written to the store.", registry=r
        )
        self.duration = Histogram(
            "algoseek_sync_processing_duration_seconds",
            "Time to process one file version.",
            ["kind"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.registration_attempts = Counter(
            "algoseek_sync_registration_attempts",
            "Asset get-or-register attempts, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.registration_retries = Counter(
            "algoseek_sync_registration_retries",
            "Asset registrations that must be tried again later.",
            registry=r,
        )
        self.events_dropped = Counter(
            "algoseek_sync_events_dropped",
            "File events dropped because the event queue was full.",
            registry=r,
        )
        self.reconciles = Counter(
            "algoseek_sync_reconciles", "Stat-only scans of the drop directory.", ["reason"], registry=r
        )
        self.observer_restarts = Counter(
            "algoseek_sync_observer_restarts", "Observer threads restarted.", registry=r
        )
        self.queue_depth = Gauge(
            "algoseek_sync_queue_depth", "File versions pending or processing.", registry=r
        )
        self.oldest_pending = Gauge(
            "algoseek_sync_oldest_pending_age_seconds", "Age of the oldest pending file version.", registry=r
        )
        self.last_success = Gauge(
            "algoseek_sync_last_success_timestamp_seconds",
            "When a file version was last ingested (Unix time).",
            registry=r,
        )
        self.waiting_master = Gauge(
            "algoseek_sync_files_waiting_master",
            "File versions parked until a security master maps their SecIds.",
            registry=r,
        )
        self.quarantined = Gauge(
            "algoseek_sync_files_quarantined",
            "Files whose newest version was quarantined (bad content).",
            registry=r,
        )
        self.candidates = Gauge(
            "algoseek_sync_stability_candidates",
            "Files waiting in the stability gate (written, not yet stable).",
            registry=r,
        )
        self.observer = Gauge(
            "algoseek_sync_observer_info",
            "The file event observer in use (value 1).",
            ["observer"],
            registry=r,
        )
        self.heartbeat_age = Gauge(
            "algoseek_sync_worker_heartbeat_age_seconds",
            "Seconds since the worker loop last made progress.",
            registry=r,
        )
        self.problems = Counter(
            "algoseek_sync_problems",
            "Contained problems recorded (bad rows, conflicts, unreadable paths, failures), by kind.",
            ["kind"],
            registry=r,
        )
        self.open_problems = Gauge(
            "algoseek_sync_open_problems",
            "Problems listed by `status` now (fixed ones disappear), by kind.",
            ["kind"],
            registry=r,
        )
        self.findings = Gauge(
            "algoseek_sync_quality_findings",
            "Open data-quality findings (algoseek-sync quality), by kind and severity.",
            ["kind", "severity"],
            registry=r,
        )
        self.delivery_late = Gauge(
            "algoseek_sync_delivery_late",
            "1 while the last completed session's delivery is late (quality.expected_by), else 0.",
            registry=r,
        )
        self.last_delivered = Gauge(
            "algoseek_sync_last_delivered_session_timestamp_seconds",
            "Close (Unix time) of the newest trading session delivered.",
            registry=r,
        )
        for kind, severity in SEVERITY.items():
            self.findings.labels(kind, severity).set(0)
        for kind in KINDS:  # every series exists from the start, so alert rules see zeros
            self.problems.labels(kind)
            self.open_problems.labels(kind).set(0)
        self._last_success = 0.0

    def on_result(self, result: FileResult) -> None:
        """Worker hook: one finished file version."""
        self.processed.labels(result.kind, result.outcome).inc()
        if result.written:
            self.rows_written.inc(result.written)
        if result.outcome not in ("deferred", "skipped"):
            self.duration.labels(result.kind).observe(max(0.0, result.seconds))
        if result.outcome in ("done", "unchanged"):
            self._success(time.time())

    def _success(self, when: float) -> None:
        if when > self._last_success:
            self._last_success = when
            self.last_success.set(when)

    def on_problem(self, kind: str, count: int) -> None:
        """Problems hook: ``count`` problems of ``kind`` were recorded."""
        self.problems.labels(kind).inc(count)

    def refresh(self, ledger: Ledger, problems: dict[str, int]) -> None:
        """Gauges from the ledger and the problems table (cheap indexed queries; every few seconds)."""
        self.queue_depth.set(ledger.depth())
        self.oldest_pending.set(ledger.oldest_pending_age())
        last = ledger.last_success()
        if last:
            self._success(last)
        self.waiting_master.set(ledger.newest_in(FileState.WAITING_MASTER))
        self.quarantined.set(ledger.newest_in(FileState.QUARANTINED))
        for kind in set(KINDS) | set(problems):
            self.open_problems.labels(kind).set(problems.get(kind, 0))

    def refresh_quality(
        self, findings: dict[tuple[str, str], int], late: bool | None, last_close: float | None
    ) -> None:
        """Gauges of the data-quality checks (every few seconds; the late check itself once a minute)."""
        for kind, severity in set(SEVERITY.items()) | set(findings):
            self.findings.labels(kind, severity).set(findings.get((kind, severity), 0))
        self.delivery_late.set(1 if late else 0)
        if last_close:
            self.last_delivered.set(last_close)

    def instrument(self, backend: Backend) -> None:
        """Count registration outcomes by wrapping this backend instance's ``ensure_assets``."""
        inner = backend.ensure_assets

        def ensure_assets(assets: Any) -> Any:
            try:
                report = inner(assets)
            except Exception:
                if assets:
                    self.registration_attempts.labels("unavailable").inc(len(assets))
                    self.registration_retries.inc(len(assets))
                raise
            for outcome in report.outcomes:
                self.registration_attempts.labels(outcome.status).inc()
            self.registration_retries.inc(report.count("retry"))
            return report

        backend.ensure_assets = ensure_assets  # type: ignore[method-assign]


# -- the HTTP listener ----------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr: scrapes every few seconds would drown the JSON log."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server6(WSGIServer):
    address_family = socket.AF_INET6


def _text(start_response: Callable[..., Any], status: str, line: str) -> list[bytes]:
    """A one-line plain-text answer."""
    body = f"{line}\n".encode()
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    return [body]


class HttpServer:
    """/metrics (Prometheus text), /healthz and /readyz (200 or 503 with a one-line reason); 404 elsewhere,
    so a mistyped scrape or probe path fails visibly instead of passing on the metrics page."""

    def __init__(self, listen: str, metrics: Metrics, healthy: Check, ready: Check) -> None:
        try:
            host, port = parse_listen(listen)
        except ValueError as exc:
            raise ConfigError(f"configuration error: 'metrics.listen': {exc}") from None
        self._routes: dict[str, Check] = {"/healthz": healthy, "/readyz": ready}
        self._metrics_app = make_wsgi_app(metrics.registry)
        try:
            self.server = make_server(
                host,
                port,
                self._app,
                server_class=_Server6 if ":" in host else WSGIServer,
                handler_class=_QuietHandler,
            )
        except OSError as exc:  # busy (an old process still holds it) or refused: a restart may succeed
            raise TemporaryFailure(
                f"cannot listen on metrics.listen {listen!r}: {exc.strerror or exc}"
            ) from None
        self.port = self.server.server_port
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.5}, name="metrics-http", daemon=True
        )

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return self._metrics_app(environ, start_response)
        check = self._routes.get(path)
        if check is None:
            return _text(
                start_response, "404 Not Found", f"not found: {path} (try /metrics, /healthz, /readyz)"
            )
        try:
            ok, reason = check()
        except Exception as exc:  # a failing check is a 503, not a crashed listener
            ok, reason = False, f"check failed: {exc}"
        return _text(
            start_response,
            "200 OK" if ok else "503 Service Unavailable",
            f"{'ok' if ok else 'unavailable'}: {reason}",
        )

    def start(self) -> None:
        self._thread.start()
        log.info("metrics_listening", address=f"{self.server.server_address[0]}:{self.port}")

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
