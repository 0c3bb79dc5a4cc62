"""Prometheus metrics, /healthz and /readyz: in-process units and on a running daemon."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from algoseek_sync.backends.base import AssetOutcome, AssetReport
from algoseek_sync.backends.local import LocalBackend
from algoseek_sync.config import parse_listen
from algoseek_sync.errors import BackendUnavailableError, ConfigError, TemporaryFailure
from algoseek_sync.ingest.prepare import FileResult
from algoseek_sync.service.metrics import HttpServer, Metrics
from algoseek_sync.state.database import Database
from algoseek_sync.state.ledger import Ledger
from algoseek_sync.state.problems import KINDS
from conftest import Sandbox
from helpers_daemon import Daemon, wait_for

NAME = re.compile(r"^algoseek_sync_[a-z0-9_]+$")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == (f"{name}{{{want}}}" if labels else name):
            return float(value)
    return None


def test_hooks_refresh_and_registration_counting(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.on_result(FileResult("1.csv", "bars", "done", rows=10, written=20, seconds=0.2))
    metrics.on_result(FileResult("2.csv", "bars", "quarantined", seconds=0.1, reason="bad"))
    metrics.on_result(FileResult("3.csv", "bars", "failed", seconds=0.1, reason="KeyError: 'x'"))
    metrics.on_problem("bad_rows", 2)
    metrics.on_problem("bad_rows", 1)
    db = Database(tmp_path / "state.db")
    ledger = Ledger(db)
    ledger.record("1.csv", 5, 1, "bars")
    metrics.refresh(ledger, {"bad_rows": 2, "conflicting_rows": 1})
    text = generate_latest(metrics.registry).decode()
    assert sample(text, "algoseek_sync_files_processed_total", kind="bars", outcome="done") == 1
    assert sample(text, "algoseek_sync_files_processed_total", kind="bars", outcome="failed") == 1
    assert sample(text, "algoseek_sync_problems_total", kind="bad_rows") == 3
    assert sample(text, "algoseek_sync_open_problems", kind="bad_rows") == 2
    assert sample(text, "algoseek_sync_open_problems", kind="conflicting_rows") == 1
    for kind in KINDS:  # every kind is a series from the start, so alert rules see zeros
        assert sample(text, "algoseek_sync_problems_total", kind=kind) is not None
        assert sample(text, "algoseek_sync_open_problems", kind=kind) is not None
    assert sample(text, "algoseek_sync_problems_total", kind="duplicate_rows") == 0
    metrics.refresh(ledger, {"conflicting_rows": 1})  # the bad rows were fixed by a re-delivery
    text = generate_latest(metrics.registry).decode()
    assert sample(text, "algoseek_sync_open_problems", kind="bad_rows") == 0
    assert sample(text, "algoseek_sync_problems_total", kind="bad_rows") == 3
    assert sample(text, "algoseek_sync_rows_written_total") == 20
    assert sample(text, "algoseek_sync_processing_duration_seconds_count", kind="bars") == 3
    assert sample(text, "algoseek_sync_queue_depth") == 1
    assert sample(text, "algoseek_sync_last_success_timestamp_seconds")
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            assert NAME.match(line.split()[2]), line

    backend = LocalBackend(db)
    report = AssetReport([AssetOutcome("A", "registered"), AssetOutcome("B", "retry", retry_at=1.0)])
    backend.ensure_assets = lambda assets: report  # type: ignore[method-assign]
    metrics.instrument(backend)
    assert backend.ensure_assets([object(), object()]) is report

    def down(assets: object) -> AssetReport:
        raise BackendUnavailableError("down")

    backend.ensure_assets = down  # type: ignore[method-assign]
    metrics.instrument(backend)
    with pytest.raises(BackendUnavailableError):
        backend.ensure_assets([object()])
    text = generate_latest(metrics.registry).decode()
    assert sample(text, "algoseek_sync_registration_attempts_total", outcome="registered") == 1
    assert sample(text, "algoseek_sync_registration_attempts_total", outcome="unavailable") == 1
    assert sample(text, "algoseek_sync_registration_retries_total") == 2
    db.close()


def test_listen_parsing_and_http_routes() -> None:
    assert parse_listen("127.0.0.1:9108") == ("127.0.0.1", 9108)
    assert parse_listen(":9108") == ("0.0.0.0", 9108)
    assert parse_listen("[::1]:9108") == ("::1", 9108)
    for bad in ("localhost", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000"):
        with pytest.raises(ValueError, match="is not host:port"):
            parse_listen(bad)
    with pytest.raises(ConfigError, match=r"metrics\.listen"):
        HttpServer("localhost", Metrics(), lambda: (True, ""), lambda: (True, ""))
    state = {"ready": False}
    server = HttpServer(
        "127.0.0.1:0",  # the kernel picks a free port and it is ours at once: server.port names it
        Metrics(),
        lambda: (True, "fine"),
        lambda: (state["ready"], "first reconcile not finished"),
    )
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert get(f"{base}/healthz") == (200, "ok: fine\n")
        assert get(f"{base}/readyz")[0] == 503
        state["ready"] = True
        assert get(f"{base}/readyz")[0] == 200
        assert "algoseek_sync_queue_depth" in get(f"{base}/metrics")[1]
        for wrong in (
            "/",
            "/nope",
            "/metrics/",
            "/healthz/x",
        ):  # a mistyped path fails, never passes as /metrics
            status, body = get(f"{base}{wrong}")
            assert (status, "algoseek_sync_" in body) == (404, False), wrong
            assert body.startswith(f"not found: {wrong}")
        with pytest.raises(TemporaryFailure, match=r"cannot listen on metrics\.listen"):
            HttpServer(f"127.0.0.1:{server.port}", Metrics(), lambda: (True, ""), lambda: (True, ""))
    finally:
        server.stop()


def test_daemon_metrics_move_after_a_drop(sandbox: Sandbox, samples: Callable[[Sandbox], None]) -> None:
    daemon = Daemon(sandbox, ALGOSEEK_SYNC_METRICS_LISTEN="127.0.0.1:0").start().wait_ready()
    try:
        base = daemon.metrics_url()
        assert base.startswith("http://127.0.0.1:") and not base.endswith(":0")
        wait_for(lambda: get(f"{base}/readyz")[0] == 200, 30, "/readyz 200")
        assert get(f"{base}/healthz")[0] == 200
        before = get(f"{base}/metrics")[1]
        assert sample(before, "algoseek_sync_observer_info", observer="inotify") == 1
        assert sample(before, "algoseek_sync_reconciles_total", reason="startup") == 1
        samples(sandbox)
        wait_for(lambda: daemon.settled(2), 30, "both files ingested")

        def moved() -> bool:
            text = get(f"{base}/metrics")[1]
            return sample(text, "algoseek_sync_queue_depth") == 0 and bool(
                sample(text, "algoseek_sync_last_success_timestamp_seconds")
            )

        wait_for(moved, 30, "gauges refreshed")
        text = get(f"{base}/metrics")[1]
        assert sample(text, "algoseek_sync_files_discovered_total", kind="bars") == 1
        assert sample(text, "algoseek_sync_files_discovered_total", kind="master") == 1
        assert sample(text, "algoseek_sync_files_processed_total", kind="bars", outcome="done") == 1
        assert sample(text, "algoseek_sync_files_processed_total", kind="master", outcome="done") == 1
        assert sample(text, "algoseek_sync_rows_written_total") == 3342
        assert sample(text, "algoseek_sync_registration_attempts_total", outcome="registered") == 3
        assert sample(text, "algoseek_sync_files_quarantined") == 0
        assert sample(text, "algoseek_sync_files_waiting_master") == 0
        assert sample(text, "algoseek_sync_processing_duration_seconds_count", kind="bars") == 1
    finally:
        assert daemon.stop() == 0


def test_daemon_exits_75_when_the_metrics_port_is_busy(sandbox: Sandbox) -> None:
    """Another process holds the port (an old instance still stopping): exit 75, a restart may succeed."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        daemon = Daemon(sandbox, ALGOSEEK_SYNC_METRICS_LISTEN=f"127.0.0.1:{port}").start()
        assert daemon.proc is not None
        try:
            code = daemon.proc.wait(60)
        finally:
            daemon.kill()
    assert code == 75, daemon.log()
    (failed,) = daemon.events("metrics_listen_failed")
    assert f"127.0.0.1:{port}" in failed["error"] and "Traceback" not in daemon.log()
