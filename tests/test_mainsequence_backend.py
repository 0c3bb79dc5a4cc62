"""The Main Sequence backend against the real SDK (3.19 to 3.21) and the local fake platform.

The SDK reads its endpoint once, at its import (which happens inside the backend), so one fake
platform listens at one address for the whole session and its URL is put in the environment
first. Each test gets that platform with fresh state and a backend of its own, so every test
passes alone and in any order. The import itself is checked in a fresh subprocess, where it is
the first one whatever ran before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

import algoseek_sync
from algoseek_sync.backends.base import AssetSpec, BarBatch, BarQuery, FileBars, MasterUpdate
from algoseek_sync.backends.mainsequence import MainSequenceBackend, env
from algoseek_sync.config import Settings, load_settings
from algoseek_sync.errors import BackendUnavailableError, ConfigError
from algoseek_sync.formats.bars import BarFile, parse_bars
from platform_server import PlatformServer

TOKEN = "sekrit-access-token-0123456789"
FIGI_A, FIGI_B, FIGI_C, FIGI_D = "BBG000BVPV84", "BBG000B9XRY4", "BBG000BPH459", "BBG000BSWKH7"
ATTEMPTS = 3
#: an answer this slow is given up at this read timeout, with a wide margin on both sides
SLOW_READ_TIMEOUT, SLOW_ANSWER = 2.0, 20.0
#: the SDK's heavy modules (and the SDK): absent until the backend first talks to the platform
SDK_MODULES = ("grpc", "mainsequence", "opentelemetry", "pydantic")


def make_settings(state_dir: Path, **overrides: object) -> Settings:
    """Quick retries, bounded by ``ATTEMPTS`` alone: the time budget is far out of reach, even on a
    loaded machine, so every test knows how many attempts a failing call makes."""
    settings = load_settings(
        env={"ALGOSEEK_SYNC_STATE_DIR": str(state_dir), "ALGOSEEK_SYNC_BACKEND": "mainsequence"}
    )
    values = dict(
        retry_attempts=ATTEMPTS,
        retry_initial_seconds=0.05,
        retry_max_seconds=0.2,
        retry_total_seconds=60.0,
        registration_retry_seconds=300.0,
        query_batch_size=2,
    )
    values.update(overrides)
    return settings.replace("mainsequence", **values)


STANDARD = (
    "SecId,TradeDate,Ticker,Open,High,Low,Close,MarketHoursVolume,"
    "CumulativePriceFactor,CumulativeVolumeFactor,AdjustmentFactor,AdjustmentReason"
)
PRIMARY = "SecId,TradeDate,Ticker,OpenPrice,HighPrice,LowPrice,ClosePrice,CloseTime,ListedTotalVolume"


def bar_file(secid: int, days: list[str], close: float = 10.0, factors: list[float] | None = None) -> BarFile:
    """A parsed standard-adjusted file: one row per day, closes close, close+1, …"""
    lines = [STANDARD]
    for i, day in enumerate(days):
        cpf = factors[i] if factors else 1.0
        c = close + i
        lines.append(f"{secid},{day.replace('-', '')},AAA,{c - 1},{c + 1},{c - 2},{c},1000,{cpf},1,,")
    return parse_bars("\n".join(lines).encode())


def primary_file(secid: int, days: list[str], close: float = 10.0) -> BarFile:
    lines = [PRIMARY] + [
        f"{secid},{day.replace('-', '')},AAA,{close - 1},{close + 1},{close - 2},{close + i},16:00:00,1000"
        for i, day in enumerate(days)
    ]
    return parse_bars("\n".join(lines).encode())


def batch(routes: dict[int, list[str]], *files: BarFile) -> BarBatch:
    return BarBatch([FileBars(i, f"{i}.csv", f) for i, f in enumerate(files)], routes)


def closes(backend, uids: list[str], dataset: str = "standard-adjusted", **kw: object) -> list[float]:
    return backend.read_bars(BarQuery(dataset, uids, **kw))["close"].tolist()  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def platform_server() -> Iterator[PlatformServer]:
    """The session's one fake platform, its address in the SDK's variables before any import."""
    server = PlatformServer().start()
    keys = (env.ENDPOINT, env.ACCESS_TOKEN, env.PROJECT_ID, env.REFRESH_TOKEN, "TDAG_ROOT_PATH")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({env.ENDPOINT: server.url, env.ACCESS_TOKEN: TOKEN, env.PROJECT_ID: "1"})
    os.environ.pop(env.REFRESH_TOKEN, None)
    yield server
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture()
def platform(platform_server: PlatformServer) -> PlatformServer:
    """The fake platform with fresh state (no assets, tables, rows, log or faults), up."""
    platform_server.reset()
    return platform_server


@pytest.fixture()
def backend(platform: PlatformServer, tmp_path: Path) -> Iterator[MainSequenceBackend]:
    """A backend of this test's own (its nodes and project belong to this state of the platform),
    its project resolved as at daemon start; the request log starts after that."""
    built = MainSequenceBackend(make_settings(tmp_path / "backend-state"), None)
    built.check()
    platform.state.clear_log()
    yield built
    built.close()


# --- configuration, no SDK needed -----------------------------------------------------------


def test_env_file_fills_only_unset_variables(tmp_path: Path) -> None:
    path = tmp_path / "ms.env"
    path.write_text(
        "# comment\nMAINSEQUENCE_ENDPOINT='https://example.test/'\nexport MAIN_SEQUENCE_PROJECT_ID=7\n"
        'MAINSEQUENCE_ACCESS_TOKEN="from-file"\n\nnot a line\n'
    )
    environ = {"MAINSEQUENCE_ACCESS_TOKEN": "already"}
    added = env.load_env_file(str(path), environ)
    assert sorted(added) == ["MAINSEQUENCE_ENDPOINT", "MAIN_SEQUENCE_PROJECT_ID"]
    assert environ == {
        "MAINSEQUENCE_ACCESS_TOKEN": "already",
        "MAINSEQUENCE_ENDPOINT": "https://example.test/",
        "MAIN_SEQUENCE_PROJECT_ID": "7",
    }
    assert env.require_variables(environ) == "https://example.test"
    with pytest.raises(ConfigError, match="cannot read"):
        env.load_env_file(str(tmp_path / "missing.env"), {})


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({}, "MAINSEQUENCE_ENDPOINT"),
        ({"MAINSEQUENCE_ENDPOINT": "http://x"}, "MAINSEQUENCE_ACCESS_TOKEN"),
        (
            {"MAINSEQUENCE_ENDPOINT": "http://x", "MAINSEQUENCE_REFRESH_TOKEN": "r"},
            "MAIN_SEQUENCE_PROJECT_ID",
        ),
    ],
)
def test_missing_variable_is_named(environ: dict[str, str], missing: str) -> None:
    with pytest.raises(ConfigError, match=missing):
        env.require_variables(environ)


def test_redact_masks_tokens() -> None:
    environ = {env.ACCESS_TOKEN: TOKEN}
    text = f"401 GET http://x: Authorization: Bearer {TOKEN} {{'refresh': 'abc.def'}} {TOKEN}"
    masked = env.redact(text, environ)
    assert TOKEN not in masked and "abc.def" not in masked


def test_server_runs_as_subprocess() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "platform_server.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        url = proc.stdout.readline().split()[-1]
        with urllib.request.urlopen(f"{url}/orm/api/ts_manager/api/constants", timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"{url}/_control/log", timeout=5) as r:
            assert b"constants" in r.read()
        reset = urllib.request.Request(f"{url}/_control/reset", data=b"{}", method="POST")
        with urllib.request.urlopen(reset, timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(f"{url}/_control/log", timeout=5) as r:
            assert b"constants" not in r.read()
    finally:
        proc.terminate()
        proc.wait(timeout=5)


# --- import containment -----------------------------------------------------------------------


#: run in a fresh interpreter: import the package, then every other module of the daemon, then
#: build the backend and make its first platform call, recording the SDK's modules at each step
#: and the process state the SDK import must leave as it found it
CONTAINMENT = """
import importlib, json, logging, os, pkgutil, sys
from pathlib import Path

sdk_modules, state_dir = json.loads(sys.argv[1]), Path(sys.argv[2])


def loaded():
    return sorted(m for m in sdk_modules if m in sys.modules)


steps = {}
from algoseek_sync.backends.mainsequence import MainSequenceBackend

steps["package imported"] = loaded()
import algoseek_sync

for info in pkgutil.walk_packages(algoseek_sync.__path__, "algoseek_sync."):
    if info.name == "algoseek_sync.backends.mainsequence.nodes":  # imports the SDK, loaded after it
        continue
    if info.name.startswith("algoseek_sync.backends.mainsequence9."):  # the 9.x line: tests/sdk9 runs it
        continue
    importlib.import_module(info.name)
steps["every other module imported"] = loaded()

import structlog
from algoseek_sync.config import load_settings

structlog.configure(processors=[structlog.processors.JSONRenderer()], cache_logger_on_first_use=False)
root = logging.getLogger()
root.addHandler(logging.NullHandler())


def process_state():
    return [structlog.get_config(), list(root.handlers), root.level, sys.excepthook, os.environ.get("HOME")]


settings = load_settings(
    env={"ALGOSEEK_SYNC_STATE_DIR": str(state_dir), "ALGOSEEK_SYNC_BACKEND": "mainsequence"}
)
before = process_state()
steps["before the backend is built"] = loaded()
description = MainSequenceBackend(settings, None).check()
steps["after its first platform call"] = loaded()
after = process_state()
names = ["structlog config", "root handlers", "root level", "excepthook", "HOME"]
print(json.dumps({
    "steps": steps,
    "changed": [n for n, a, b in zip(names, before, after) if a != b],
    "sdk handlers": [repr(h) for h in logging.getLogger("mainsequence").handlers],
    "tdag under state": (state_dir / "mainsequence" / "tdag").is_dir(),
    "description": description,
}))
"""


def test_sdk_is_imported_only_by_the_backend_and_contained(platform: PlatformServer, tmp_path: Path) -> None:
    """Nothing imports the SDK (or its heavy modules) but the backend, and only when it first talks to
    the platform; that import leaves the process's logging, structlog, excepthook and HOME alone."""
    daemon_dir = str(Path(algoseek_sync.__file__).resolve().parents[1])
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MAINSEQUENCE", "MAIN_SEQUENCE"))}
    environ |= {"PYTHONPATH": daemon_dir, env.ENDPOINT: platform.url, env.ACCESS_TOKEN: TOKEN}
    environ |= {env.PROJECT_ID: "1"}
    args = [json.dumps(SDK_MODULES), str(tmp_path / "state")]
    proc = subprocess.run(
        [sys.executable, "-c", CONTAINMENT, *args], env=environ, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["steps"] == {
        "package imported": [],
        "every other module imported": [],
        "before the backend is built": [],
        "after its first platform call": sorted(SDK_MODULES),
    }
    assert report["changed"] == [] and report["sdk handlers"] == []
    assert report["tdag under state"]
    assert TOKEN not in report["description"] and "project 1" in report["description"]
    assert platform.state.requests("/pods/projects/1/")  # the check really asked this platform


# --- assets ------------------------------------------------------------------------------------


def test_ensure_assets_existing_new_custom_refused(backend, platform: PlatformServer) -> None:
    platform.state.add_asset(FIGI_A, figi=FIGI_A)
    platform.state.invalid_figis.add("BBG00000BAD1")
    specs = [
        AssetSpec(FIGI_A, 1, "figi"),
        AssetSpec(FIGI_B, 2, "figi"),
        AssetSpec("BBG00000BAD1", 3, "figi"),
        AssetSpec("algoseek-secid-123", 123, "custom", ticker="ZZZ", name="Zed Corp"),
    ]
    report = backend.ensure_assets(specs)
    status = {o.unique_identifier: o for o in report.outcomes}
    assert status[FIGI_A].status == "existing"
    assert status[FIGI_B].status == "registered"
    assert status["algoseek-secid-123"].status == "registered"
    assert status["BBG00000BAD1"].status == "refused"
    assert "400" in status["BBG00000BAD1"].message and "OpenFIGI" in status["BBG00000BAD1"].message
    assert report.ready() == {FIGI_A, FIGI_B, "algoseek-secid-123"}
    assert platform.state.assets["algoseek-secid-123"]["current_snapshot"]["ticker"] == "ZZZ"
    queries = platform.state.requests("/assets/asset/query/")
    assert len(queries) == 2  # 4 identifiers in batches of query_batch_size=2
    assert len(platform.state.requests("register_asset_from_figi")) == 2  # the refusal is not retried


def test_rate_limit_honours_retry_after(backend, platform: PlatformServer) -> None:
    platform.fault("register_asset_from_figi", status=429, retry_after=0.6, count=1)
    report = backend.ensure_assets([AssetSpec(FIGI_C, 4, "figi")])
    assert report.outcomes[0].status == "registered"
    calls = platform.state.requests("register_asset_from_figi")
    assert [c["status"] for c in calls] == [429, 201]
    assert calls[1]["t"] - calls[0]["t"] >= 0.6


def test_server_error_burst_is_bounded(backend, platform: PlatformServer) -> None:
    platform.fault("register_asset_from_figi", status=503, count=100)
    platform.fault("batch_get_or_register_custom_assets", status=503, count=100)
    specs = [AssetSpec("BBG000DWG505", 5, "figi"), AssetSpec("BBG001S5N8V8", 6, "figi")]
    specs.append(AssetSpec("algoseek-secid-7", 7, "custom"))
    started = time.time()
    report = backend.ensure_assets(specs)
    assert [o.status for o in report.outcomes] == ["retry", "retry", "retry"]
    assert all(o.retry_at and o.retry_at >= started + 299 for o in report.outcomes)
    assert len(platform.state.requests("register_asset_from_figi")) == ATTEMPTS
    assert platform.state.requests("batch_get_or_register") == []  # not attempted once failing


def test_dropped_and_slow_answers_are_retried(backend, platform: PlatformServer) -> None:
    """A connection closed without an answer, and an answer slower than the read timeout, are
    given up and the request is sent again."""
    platform.state.add_asset(FIGI_A, figi=FIGI_A)
    counters = backend.sdk.counters
    platform.fault("/assets/asset/query/", drop=True, count=1)
    assert backend.ensure_assets([AssetSpec(FIGI_A, 1, "figi")]).outcomes[0].status == "existing"
    assert [q["status"] for q in platform.state.requests("/assets/asset/query/")] == ["dropped", 200]

    platform.state.clear_log()
    backend.read_timeout = SLOW_READ_TIMEOUT
    failures = counters.snapshot()[1]
    platform.fault("/assets/asset/query/", delay=SLOW_ANSWER, status=0, count=1)
    assert backend.ensure_assets([AssetSpec(FIGI_A, 1, "figi")]).outcomes[0].status == "existing"
    queries = platform.state.requests("/assets/asset/query/")
    # not an exact count: on a loaded machine a normal answer may miss the read timeout as well
    assert queries[0]["delayed"] and "delayed" not in queries[-1] and queries[-1]["status"] == 200
    assert counters.snapshot()[1] > failures  # the slow answer was given up, never waited for


def test_outage_raises_unavailable_within_bounds(backend, platform: PlatformServer) -> None:
    """Connections refused: each call gives up after its attempts; the same address answers again after."""
    platform.state.add_asset(FIGI_A, figi=FIGI_A)
    counters = backend.sdk.counters
    platform.take_down()
    try:
        before = counters.snapshot()[0]
        with pytest.raises(BackendUnavailableError) as err:
            backend.ensure_assets([AssetSpec(FIGI_A, 1, "figi")])
        with pytest.raises(BackendUnavailableError):
            backend.write_bars(batch({1: [FIGI_A]}, bar_file(1, ["2024-03-01"])))
        requests_made = counters.snapshot()[0] - before
    finally:
        platform.bring_up()
    assert requests_made == 2 * ATTEMPTS
    assert TOKEN not in str(err.value) and "unreachable" in str(err.value)
    assert "connection refused" in str(err.value)
    assert backend.ensure_assets([AssetSpec(FIGI_A, 1, "figi")]).outcomes[0].status == "existing"


# --- DataNodes -----------------------------------------------------------------------------------


def test_master_and_bars_round_trip(backend, platform: PlatformServer) -> None:
    platform.state.add_asset(FIGI_A, figi=FIGI_A, ticker="AAA", name="Alpha")
    platform.state.add_asset(FIGI_B, figi=FIGI_B, ticker="BBB", name="Beta")
    snapshot = pd.DataFrame(
        {
            "unique_identifier": [FIGI_A, FIGI_B],
            "secid": [1, 2],
            "kind": ["figi", "figi"],
            "latest_figi": [FIGI_A, FIGI_B],
            "tickers": ["AAA", "BBB"],
        }
    )
    backend.write_master(MasterUpdate(snapshot=snapshot))
    master_rows = platform.state.table_rows("algoseek_security_master")
    assert sorted(r["unique_identifier"] for r in master_rows) == sorted([FIGI_A, FIGI_B])
    assert {r["time_index"] for r in master_rows} == {"1970-01-01T00:01:00.000000Z"}

    receipt = backend.write_bars(
        batch(
            {1: [FIGI_A], 2: [FIGI_B]},
            primary_file(1, ["2024-01-02", "2024-01-03"]),
            primary_file(2, ["2024-01-02"], 50.0),
        )
    )
    assert receipt.rows_written == 3 and not receipt.rejected_assets
    back = backend.read_bars(BarQuery("primary", [FIGI_A, FIGI_B]))
    assert list(back["time_index"]) == [
        "2024-01-02T21:00:00Z",
        "2024-01-02T21:00:00Z",
        "2024-01-03T21:00:00Z",
    ]
    assert list(back["close"]) == [50.0, 10.0, 11.0]  # sorted by time, then identifier
    assert list(back["tradedate"]) == [20240102, 20240102, 20240103] and str(back["volume"].dtype) == "Int64"
    assert closes(backend, [FIGI_A], "primary", start="2024-01-03", end="2024-01-03") == [11.0]
    assert list(backend.read_day("primary", "2024-01-02")["unique_identifier"]) == [FIGI_B, FIGI_A]

    tables = {t["identifier"]: t for t in platform.state.tables.values()}
    assert set(tables) >= {"algoseek_security_master", "algoseek_daily_ohlc"}
    assert (
        tables["algoseek_daily_ohlc"]["description"]
        and tables["algoseek_daily_ohlc"]["data_frequency_id"] == "1d"
    )
    stc = platform.state.stcs[tables["algoseek_daily_ohlc"]["id"]]
    described = {c["column_name"]: c["description"] for c in stc["columns_metadata"]}
    assert "ListedTotalVolume" in described["volume"] and "extra" in described
    assert all(described.values())
    bars_update = next(
        u
        for u in platform.state.updates.values()
        if u["data_node_storage"] == tables["algoseek_daily_ohlc"]["id"]
    )
    master_update = next(
        u
        for u in platform.state.updates.values()
        if u["data_node_storage"] == tables["algoseek_security_master"]["id"]
    )
    assert platform.state.dependencies[bars_update["id"]] == {master_update["id"]}

    assets = backend.read_assets()
    assert assets.set_index("unique_identifier").loc[FIGI_A, ["secid", "kind", "ticker"]].tolist() == [
        1,
        "figi",
        "AAA",
    ]


def test_each_dataset_has_its_own_table(backend, platform: PlatformServer) -> None:
    backend.write_bars(
        batch({5: [FIGI_C]}, primary_file(5, ["2024-05-01"], 40.0), bar_file(5, ["2024-05-01"], 41.0))
    )
    assert closes(backend, [FIGI_C], "primary") == [40.0]
    assert closes(backend, [FIGI_C], "standard-adjusted") == [41.0]
    identifiers = {t["identifier"] for t in platform.state.tables.values()}
    assert {
        "algoseek_daily_ohlc",
        "algoseek_daily_ohlc_standard_adj",
        "algoseek_daily_ohlc_standard_adj_adjusted",
    } <= identifiers
    stc = next(
        platform.state.stcs[t["id"]]
        for t in platform.state.tables.values()
        if t["identifier"] == "algoseek_daily_ohlc_standard_adj"
    )
    assert (
        "MarketHoursVolume" in {c["column_name"]: c["description"] for c in stc["columns_metadata"]}["volume"]
    )
    # a re-delivery of one dataset never touches the other's rows
    backend.write_bars(batch({5: [FIGI_C]}, bar_file(5, ["2024-05-01"], 99.0)))
    assert closes(backend, [FIGI_C], "primary") == [40.0]


def test_incremental_cycle_sends_only_affected_assets(backend, platform: PlatformServer) -> None:
    backend.write_bars(
        batch({1: [FIGI_A], 2: [FIGI_B]}, primary_file(1, ["2024-02-01"]), primary_file(2, ["2024-02-01"]))
    )
    platform.state.clear_log()
    assert backend.write_bars(batch({1: [FIGI_A]}, primary_file(1, ["2024-02-02"]))).rows_written == 1
    inserts = platform.state.requests("insert_data_into_table")
    assert [(i["uids"], i["rows"]) for i in inserts] == [([FIGI_A], 1)]
    reads = platform.state.requests("get_data_between_dates_from_remote")
    # the asset filter: unique_identifier_list up to SDK 3.19, dimension_filters from 3.20
    asked = [r["json"].get("dimension_filters", {}).get("unique_identifier") for r in reads]
    asked = [a or r["json"].get("unique_identifier_list") for a, r in zip(asked, reads, strict=True)]
    assert all(a == [FIGI_A] for a in asked)


def test_rerun_writes_nothing_new(backend, platform: PlatformServer) -> None:
    files = batch({2: [FIGI_B]}, primary_file(2, ["2024-02-05", "2024-02-06"]))
    assert backend.write_bars(files).rows_written == 2
    writes = platform.state.row_writes
    platform.state.clear_log()
    assert backend.write_bars(files).rows_written == 0
    assert platform.state.row_writes == writes
    assert platform.state.requests("insert_data_into_table") == []
    assert platform.state.requests("set_start_of_execution") == []


def test_history_rewrite_overwrites_changed_rows(backend, platform: PlatformServer) -> None:
    days = ["2024-02-07", "2024-02-08", "2024-02-09"]
    backend.write_bars(batch({4: [FIGI_C]}, primary_file(4, days, close=20.0)))
    platform.state.clear_log()
    rewritten = primary_file(4, days, close=20.0)
    table = rewritten.table
    new_close = pd.Series([10.0, 11.0, 22.0])
    table = table.set_column(table.column_names.index("close"), "close", pa.array(new_close))
    assert backend.write_bars(batch({4: [FIGI_C]}, BarFile(rewritten.dataset, table))).rows_written == 2
    assert closes(backend, [FIGI_C], "primary", start=days[0], end=days[-1]) == [10.0, 11.0, 22.0]
    assert [i["rows"] for i in platform.state.requests("insert_data_into_table")] == [2]


def test_copy_history_to_new_figi(backend, platform: PlatformServer) -> None:
    backend.write_bars(batch({9: [FIGI_D]}, primary_file(9, ["2024-02-12", "2024-02-13"], close=30.0)))
    assert backend.copy_history({9: (FIGI_D, ["BBG00NEWFIG1"])}).rows_written == 2
    source = backend.read_bars(BarQuery("primary", [FIGI_D])).drop(columns="unique_identifier")
    target = backend.read_bars(BarQuery("primary", ["BBG00NEWFIG1"])).drop(columns="unique_identifier")
    pd.testing.assert_frame_equal(source, target)
    assert backend.copy_history({9: (FIGI_D, ["BBG00NEWFIG1"])}).rows_written == 0


def test_write_failure_during_run_is_unavailable(backend, platform: PlatformServer) -> None:
    platform.fault("insert_data_into_table", status=503, count=100)
    counters = backend.sdk.counters
    before = counters.snapshot()[0]
    with pytest.raises(BackendUnavailableError, match="primary bars"):
        backend.write_bars(batch({1: [FIGI_A]}, primary_file(1, ["2024-04-01"])))
    assert 1 <= len(platform.state.requests("insert_data_into_table")) <= ATTEMPTS
    assert counters.snapshot()[0] - before < 25 * ATTEMPTS
    platform.clear_faults()
    assert backend.write_bars(batch({1: [FIGI_A]}, primary_file(1, ["2024-04-01"]))).rows_written == 1


def test_a_refused_asset_holds_only_its_own_bars(backend, platform: PlatformServer) -> None:
    refused = "BBG000BSWKH7"
    platform.state.refused_uids.add(refused)
    receipt = backend.write_bars(
        batch(
            {11: [FIGI_A, refused], 12: [FIGI_B]},
            primary_file(11, ["2024-06-03"]),
            primary_file(12, ["2024-06-03"]),
        )
    )
    assert list(receipt.rejected_assets) == [refused] and "400" in receipt.rejected_assets[refused]
    assert receipt.rows_written == 2
    assert closes(backend, [FIGI_A, FIGI_B], "primary", start="2024-06-03") == [10.0, 10.0]
    assert closes(backend, [refused], "primary", start="2024-06-03") == []


def test_a_bug_is_not_reported_as_a_refusal(backend, platform: PlatformServer, monkeypatch) -> None:
    from algoseek_sync.backends.mainsequence import frames

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug of ours")

    monkeypatch.setattr(frames, "changed_rows", broken)
    with pytest.raises(KeyError, match="a bug of ours"):
        backend.write_bars(batch({1: [FIGI_A]}, primary_file(1, ["2024-07-01"])))


def test_long_calls_keep_the_heartbeat_fresh(backend, platform: PlatformServer) -> None:
    platform.state.add_asset(FIGI_A, figi=FIGI_A)
    promises: list[float] = []
    backend.keepalive = promises.append
    platform.fault("/assets/asset/query/", status=503, count=ATTEMPTS - 1)
    assert backend.ensure_assets([AssetSpec(FIGI_A, 1, "figi")]).outcomes[0].status == "existing"
    # one promise before each attempt and one before each backoff wait, each covering a request
    assert len(promises) >= 2 * ATTEMPTS - 1
    assert min(promises) >= backend.connect_timeout + backend.read_timeout


def test_adjusted_table_rewrites_a_secid_only_when_its_latest_factor_changes(
    platform: PlatformServer, tmp_path: Path
) -> None:
    from algoseek_sync.state.database import Database

    db = Database(tmp_path / "state.db")
    writer = MainSequenceBackend(make_settings(tmp_path), db)
    routes = {21: [FIGI_A], 22: [FIGI_B]}
    days = ["2024-08-01", "2024-08-02"]
    writer.write_bars(
        batch(routes, bar_file(21, days, 10.0, [2.0, 2.0]), bar_file(22, days, 50.0, [1.0, 1.0]))
    )
    assert closes(writer, [FIGI_A], adjusted=True, start="2024-08-01") == [10.0, 11.0]
    platform.state.clear_log()
    # an append without a new event adds one adjusted row, for that SecId only
    writer.write_bars(batch(routes, bar_file(21, ["2024-08-05"], 12.0, [2.0])))
    adjusted_inserts = [
        i for i in platform.state.requests("insert_data_into_table") if i["rows"] and i["uids"] == [FIGI_A]
    ]
    assert [i["rows"] for i in adjusted_inserts] == [1, 1]  # raw + adjusted
    # a tradedate delivery with a 2:1 event on SecId 21: its whole adjusted history is rewritten
    platform.state.clear_log()
    writer.write_bars(
        batch(routes, bar_file(21, ["2024-08-06"], 6.5, [4.0]), bar_file(22, ["2024-08-06"], 53.0, [1.0]))
    )
    assert closes(writer, [FIGI_A], adjusted=True, start="2024-08-01") == [5.0, 5.5, 6.0, 6.5]
    assert closes(writer, [FIGI_A], start="2024-08-01") == [10.0, 11.0, 12.0, 6.5]
    assert closes(writer, [FIGI_B], adjusted=True, start="2024-08-01") == [50.0, 51.0, 53.0]
    inserted = {
        tuple(i["uids"]): i["rows"] for i in platform.state.requests("insert_data_into_table") if i["rows"]
    }
    assert inserted[(FIGI_B,)] == 1  # SecId 22's adjusted history was not rewritten
    writer.close()
    db.close()
