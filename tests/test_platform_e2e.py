"""The daemon's CLI on the Main Sequence backend: real SDK, local platform server, same drop as local."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from conftest import AAPL_FIGI, AAPL_SAMPLE, MASTER_SAMPLE, Sandbox
from helpers_daemon import FAST_CONFIG, Daemon
from platform_server import PlatformServer

MSFT_FIGI = "BBG000BPH459"
HEADER = AAPL_SAMPLE.read_text().splitlines()[0]
TOKEN = "e2e-secret-token-do-not-log"
COMPARED = ("open", "high", "low", "close", "volume", "secid", "ticker", "tradedate", "cumulativepricefactor")
FAST_RETRIES = (
    "[mainsequence]\nretry_attempts = 2\nretry_initial_seconds = 0.05\nretry_max_seconds = 0.1\n"
    "retry_total_seconds = 1.0\n"
)


@pytest.fixture
def server() -> Iterator[PlatformServer]:
    """A fake platform of this test's own: fresh state, its own port."""
    platform = PlatformServer().start()
    yield platform
    platform.stop()


def platform_env(server: PlatformServer) -> dict[str, str]:
    return {
        "ALGOSEEK_SYNC_BACKEND": "mainsequence",
        "MAINSEQUENCE_ENDPOINT": server.url,
        "MAINSEQUENCE_ACCESS_TOKEN": TOKEN,
        "MAIN_SEQUENCE_PROJECT_ID": "1",
    }


def deliver(box: Sandbox, msft_days: list[str]) -> None:
    box.put("equity_security_master.csv", MASTER_SAMPLE)
    lines = AAPL_SAMPLE.read_text().splitlines()
    box.put("33449.csv", "\n".join([lines[0], *lines[-40:]]) + "\n")
    rows = [f"39827,{d},MSFT,370,375,369,{370 + i}.5,{1000 + i},1,1,," for i, d in enumerate(msft_days)]
    box.put("39827.csv.gz", __import__("gzip").compress(("\n".join([HEADER, *rows]) + "\n").encode()))


def _num(value: object) -> object:
    """Numbers compared to 9 significant digits: the SDK serialises floats with 10 decimals."""
    return float(f"{value:.9g}") if isinstance(value, int | float) else value


def local_rows(box: Sandbox, *, adjusted: bool = False) -> dict[tuple[str, str], tuple]:
    """Every (time_index, FIGI) row of the embedded store, as the `bars` command shows it."""
    out = {}
    for secid in ("33449", "39827"):
        args = ["bars", "--secid", secid, "--format", "json", *(["--adjusted"] if adjusted else [])]
        for row in json.loads(box.cli(*args).out):
            row["tradedate"] = int(row["tradedate"].replace("-", ""))  # the platform keeps YYYYMMDD
            out[(row["time_index"], row["unique_identifier"])] = tuple(_num(row[c]) for c in COMPARED)
    return out


def platform_rows(
    server: PlatformServer, table: str = "algoseek_daily_ohlc_standard_adj"
) -> dict[tuple[str, str], tuple]:
    out = {}
    for row in server.state.table_rows(table):
        when = pd.Timestamp(row["time_index"]).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
        key = (when, row["unique_identifier"])
        out[key] = tuple(_num(row[c]) for c in COMPARED)
    return out


def test_platform_tables_equal_the_embedded_store_and_updates_are_affected_only(
    tmp_path: Path, server: PlatformServer
) -> None:
    local = Sandbox(tmp_path, tmp_path / "drop", tmp_path / "state-local")
    remote = Sandbox(tmp_path, tmp_path / "drop", tmp_path / "state-platform")
    deliver(local, ["20240102", "20240103"])
    local.cli("run", "--once")
    result = remote.cli("run", "--once", **platform_env(server))
    assert TOKEN not in result.err
    assert platform_rows(server) == local_rows(local)
    assert len(platform_rows(server)) == 42
    adjusted = platform_rows(server, "algoseek_daily_ohlc_standard_adj_adjusted")
    assert adjusted == local_rows(local, adjusted=True) and len(adjusted) == 42
    master = server.state.table_rows("algoseek_security_master")
    assert sorted(r["unique_identifier"] for r in master) == sorted([AAPL_FIGI, MSFT_FIGI, "BBG000BVPV84"])

    deliver(local, ["20240102", "20240103", "20240104"])
    server.state.clear_log()
    remote.cli("run", "--once", **platform_env(server))
    local.cli("run", "--once")
    inserts = server.state.requests("insert_data_into_table")
    assert [(i["uids"], i["rows"]) for i in inserts] == [([MSFT_FIGI], 1), ([MSFT_FIGI], 1)]  # raw, adjusted
    assert not server.state.requests("register_asset_from_figi")
    assert platform_rows(server) == local_rows(local)

    bars = remote.cli("bars", "--figi", MSFT_FIGI, "--format", "csv", **platform_env(server)).csv()
    assert [r["close"] for r in bars] == ["370.5", "371.5", "372.5"]
    status = remote.cli("status", **platform_env(server)).out
    assert "mainsequence" in status and TOKEN not in status


def test_outage_keeps_files_queued_and_the_backlog_drains(tmp_path: Path, server: PlatformServer) -> None:
    box = Sandbox(tmp_path, tmp_path / "drop", tmp_path / "state")
    deliver(box, ["20240102"])
    env = platform_env(server) | {"ALGOSEEK_SYNC_CONFIG": str(write_fast_retry_config(tmp_path))}
    box.cli("run", "--once", **env)
    box.put(
        "39827.csv",
        f"{HEADER}\n39827,20240102,MSFT,370,375,369,370.5,1000,1,1,,\n"
        "39827,20240103,MSFT,371,376,370,371.5,1001,1,1,,\n",
    )
    server.state.clear_log()
    server.fault("/orm/api", status=503, count=10_000)
    result = box.cli("run", "--once", check=False, **env)
    assert result.code == 69
    outage_requests = len(server.state.log)
    assert 0 < outage_requests <= 20
    status = box.cli("status", "--json", **env).out
    assert '"deferred"' in status and "39827.csv" in status
    server.clear_faults()
    box.cli("run", "--once", **env)  # a new run tries the deferred files now, whatever their backoff
    closes = [r["close"] for r in box.cli("bars", "--figi", MSFT_FIGI, "--format", "csv", **env).csv()]
    assert closes == ["370.5", "371.5"]


def write_fast_retry_config(tmp_path: Path) -> Path:
    path = tmp_path / "fast.toml"
    path.write_text(FAST_RETRIES)
    return path


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError as err:
        return 0, str(err)


def test_readyz_and_health_notice_a_platform_outage_by_a_live_check(
    tmp_path: Path, server: PlatformServer
) -> None:
    box = Sandbox(tmp_path, tmp_path / "drop", tmp_path / "state")
    deliver(box, ["20240102"])
    # metrics on a port the kernel picks (the daemon logs it); the platform's outage on its own address
    daemon = Daemon(box, **platform_env(server), ALGOSEEK_SYNC_METRICS_LISTEN="127.0.0.1:0")
    config = box.root / "fast.toml"  # the daemon's config: its quick polling, short health bounds and retries
    config.write_text(
        FAST_CONFIG + "[health]\nbackend_check_seconds = 0.5\nbackend_seconds = 2.0\n" + FAST_RETRIES
    )
    same = {**platform_env(server), "ALGOSEEK_SYNC_CONFIG": str(config)}  # the daemon's health bounds
    verdicts: list[str] = []

    def wait(cond: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()[-3000:]
            assert time.monotonic() < deadline, f"timed out waiting for {what} ({verdicts[-2:]})"
            time.sleep(0.2)

    daemon.start()
    try:
        base = daemon.metrics_url()
        ready = f"{base}/readyz"
        wait(lambda: _get(ready)[0] == 200, "ready")
        server.take_down()
        wait(lambda: _get(ready)[0] == 503 and "backend unreachable" in _get(ready)[1], "/readyz to notice")

        def health_says(state: str) -> Callable[[], bool]:
            def says() -> bool:
                verdicts.append(box.cli("status", "--health", check=False, **same).out)
                return verdicts[-1].split(":")[0].strip() == state

            return says

        wait(health_says("degraded"), "status --health to say degraded")
        health = box.cli("status", "--health", check=False, **same)
        assert (
            health.code == 1
            and "backend unreachable for" in health.out
            and "connection refused" in health.out
        )
        assert _get(f"{base}/healthz")[0] == 200  # alive: an outage is no reason to restart
        server.bring_up()
        wait(lambda: _get(ready)[0] == 200, "ready again")
        # status --health reads the facts the daemon last wrote to its state database: it may lag /readyz
        wait(health_says("healthy"), "status --health to say healthy again")
        assert box.cli("status", "--health", **same).out.strip() == "healthy"  # and exit code 0
    finally:
        code = daemon.stop(timeout=20)
    assert code == 0


def test_an_asset_the_platform_refuses_holds_only_its_own_bars(
    tmp_path: Path, server: PlatformServer
) -> None:
    box = Sandbox(tmp_path, tmp_path / "drop", tmp_path / "state")
    deliver(box, ["20240102", "20240103"])
    server.state.refused_uids.add(MSFT_FIGI)
    result = box.cli("run", "--once", **platform_env(server))
    assert "done 2, unchanged 0, waiting 1" in result.err.splitlines()[-1]  # the master and AAPL's bars
    status = json.loads(box.cli("status", "--json", **platform_env(server)).out)
    refused = [p for p in status["problems"]["recent"] if p["kind"] == "asset_refused"]
    assert [(p["path"], p["unique_identifier"]) for p in refused] == [
        ("equity_security_master.csv", MSFT_FIGI)
    ]
    assert "400" in refused[0]["detail"]
    assert [(w["path"], "not registered" in w["last_error"]) for w in status["waiting_master"]] == [
        ("39827.csv.gz", True)
    ]
    assert [(r["unique_identifier"], r["state"]) for r in status["registrations"]] == [(MSFT_FIGI, "refused")]
    assert {key[1] for key in platform_rows(server)} == {AAPL_FIGI}  # AAPL's bars went through
