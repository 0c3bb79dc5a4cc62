"""The SDK 9.x backend end to end against the SDK's own local data API (SQLite), real SDK, real worker.

Every test runs the product's real code on the real 9.x SDK: the shipped migrations, the markets
asset table, range-complete writes and paged reads. Platform tables are compared with the
embedded store fed the same drop: same rows, same values (floats to 1e-9 relative: the SDK
serialises them as JSON with 10 decimals, which only adjusted values carry that many of).

The fault tests put a fault proxy (:class:`local_platform.FaultProxy`) in front of the same
data API: outages, 429 storms, lost write answers ("outcome unknown") and refused rows.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from click.testing import CliRunner

import algoseek_sync.app as app_module
from algoseek_sync.app import open_app, run_once
from algoseek_sync.backends.base import AssetSpec, BarBatch, BarQuery, FileBars
from algoseek_sync.backends.mainsequence9 import MainSequence9Backend
from algoseek_sync.config import Settings, load_settings
from algoseek_sync.errors import ConfigError
from algoseek_sync.formats.bars import BarFile, parse_bars
from algoseek_sync.formats.datasets import DATASETS
from algoseek_sync.state.database import Database
from algoseek_sync.synthetic.generate import DropSpec, generate_drop
from sdk9.local_platform import FakePlatform, FaultProxy, LocalDataApi

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "algoseek"  # the real vendor samples
MASTER_SAMPLE = SAMPLES / "equity_security_master-sample.csv"
AAPL_SAMPLE = SAMPLES / "standard-adjusted-secid-33449.csv"
AAPL_FIGI = "BBG000B9XRY4"
STANDARD = (
    "SecId,TradeDate,Ticker,Open,High,Low,Close,MarketHoursVolume,"
    "CumulativePriceFactor,CumulativeVolumeFactor,AdjustmentFactor,AdjustmentReason"
)
DAYS = ["20240102", "20240103", "20240104", "20240105", "20240108", "20240109", "20240110", "20240111"]
#: the session's local data API starts inside the first test, and drops take a while on 2 cores
pytestmark = pytest.mark.timeout(900)
COMPARED = ("secid", "tradedate", "ticker", "open", "high", "low", "close", "volume", "cumulativepricefactor")


def make_settings(state: Path, drop: Path | None = None, backend: str = "mainsequence") -> Settings:
    env = {"ALGOSEEK_SYNC_STATE_DIR": str(state), "ALGOSEEK_SYNC_BACKEND": backend}
    if drop is not None:
        env["ALGOSEEK_SYNC_DROP_DIR"] = str(drop)
    settings = load_settings(env=env)
    return settings.replace(
        "mainsequence",
        retry_attempts=6,
        retry_initial_seconds=0.05,
        retry_max_seconds=0.2,
        retry_total_seconds=120.0,
        registration_retry_seconds=300.0,
    )


@pytest.fixture(scope="session")
def migrated(data_api: LocalDataApi, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The session's one migration, with what ``check`` said before and after it."""
    cwd = Path.cwd()
    try:
        os.chdir(data_api.checkout)
        backend = MainSequence9Backend(make_settings(tmp_path_factory.mktemp("migrate-state")), None)
        lines = backend.prerequisites()
        try:
            backend.check(quick=True)
            before = "check passed before any migration"
        except ConfigError as exc:
            before = str(exc)
        done = backend.migrate()
        after = backend.check(quick=True)
        backend.close()
    finally:
        os.chdir(cwd)
    return {"before": before, "migrated": done, "after": after, "lines before": lines}


@pytest.fixture()
def backend(migrated: dict[str, str], in_checkout: Path, tmp_path: Path) -> Iterator[MainSequence9Backend]:
    settings = make_settings(tmp_path / "state")
    settings.state.dir.mkdir(parents=True)
    db = Database(settings.db_path)
    platform = MainSequence9Backend(settings, db)
    yield platform
    platform.close()
    db.close()


def standard_file(secid: int, days: list[str], close: float, factors: list[float] | None = None) -> BarFile:
    lines = [STANDARD]
    for i, day in enumerate(days):
        c = close + i
        cpf = factors[i] if factors else 1.0
        lines.append(f"{secid},{day},AAA,{c - 1},{c + 1},{c - 2},{c},{1000 + i},{cpf},1,,")
    return parse_bars("\n".join(lines).encode())


def write(backend: MainSequence9Backend, routes: dict[int, list[str]], *files: BarFile):
    return backend.write_bars(BarBatch([FileBars(i, f"{i}.csv", f) for i, f in enumerate(files)], routes))


def closes(backend: MainSequence9Backend, uid: str, adjusted: bool = False) -> dict[str, float]:
    frame = backend.read_bars(BarQuery("standard-adjusted", [uid], adjusted=adjusted))
    return dict(zip(frame["time_index"].str[:10], frame["close"].astype(float), strict=True))


# --- migrations and check ------------------------------------------------------------------


def test_check_names_the_migrate_command_until_the_tables_exist(migrated: dict[str, Any]) -> None:
    assert "not migrated" in migrated["before"]
    assert "algoseek-sync migrate" in migrated["before"]
    assert "algoseek_daily_ohlc" in migrated["before"]
    assert "tables finalised" in migrated["migrated"]
    assert migrated["after"].startswith("Main Sequence platform at ")
    assert "SDK 9.x" in migrated["after"]


def test_migrate_command_runs_the_shipped_migrations_again_harmlessly(
    migrated: dict[str, Any], in_checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from algoseek_sync.commands.cli import main

    monkeypatch.setattr(
        "algoseek_sync.backends.open_backend", lambda settings, db: MainSequence9Backend(settings, db)
    )
    env = {"ALGOSEEK_SYNC_STATE_DIR": str(tmp_path / "state"), "ALGOSEEK_SYNC_BACKEND": "mainsequence"}
    result = CliRunner().invoke(main, ["migrate"], env=env)
    assert result.exit_code == 0, result.output
    assert "algoseek tables migrated" in result.output


def test_check_config_checks_each_prerequisite_on_its_own_line(
    migrated: dict[str, Any], in_checkout: Path, tmp_path: Path
) -> None:
    from algoseek_sync.commands.cli import main

    before = {name: (met, detail) for name, met, detail in migrated["lines before"]}
    assert [name for name, (met, _) in before.items() if not met] == ["tables migrated"]
    assert "algoseek-sync migrate" in before["tables migrated"][1]
    (tmp_path / "drop").mkdir()
    env = {
        "ALGOSEEK_SYNC_DROP_DIR": str(tmp_path / "drop"),
        "ALGOSEEK_SYNC_STATE_DIR": str(tmp_path / "state"),
        "ALGOSEEK_SYNC_BACKEND": "mainsequence",
    }
    result = CliRunner().invoke(main, ["check-config"], env=env)
    assert result.exit_code == 0, result.output
    names = ("credentials", "identity", "data API", "tables migrated", "markets tables", "OpenFIGI")
    assert [line.split(":")[0] for line in result.output.splitlines()[: len(names)]] == [
        f"ok      {name}" for name in names
    ]
    elsewhere = CliRunner().invoke(
        main, ["check-config"], env={**env, "ALGOSEEK_SYNC_MAINSEQUENCE_CHECKOUT": str(tmp_path)}
    )
    assert elsewhere.exit_code == 78, elsewhere.output
    assert f"MISSING identity: {tmp_path} is not a Git checkout" in elsewhere.output
    assert "MISSING data API: not checked: needs identity" in elsewhere.output


# --- assets ---------------------------------------------------------------------------------


def test_assets_are_registered_once_and_an_unknown_figi_is_refused_alone(
    backend: MainSequence9Backend, fake_platform: FakePlatform
) -> None:
    known, unknown = "BBG00A9K1J22", "BBG00A9K1J39"
    fake_platform.unknown.add(unknown)
    specs = [
        AssetSpec(known, 1, "figi"),
        AssetSpec(unknown, 2, "figi"),
        AssetSpec("ALGOSEEK-CUSTOM-9001", 3, "custom"),
    ]
    first = {o.unique_identifier: o for o in backend.ensure_assets(specs).outcomes}
    assert first[known].status == "registered", first[known].message
    assert first["ALGOSEEK-CUSTOM-9001"].status == "registered"
    assert first[unknown].status == "refused"
    assert "OpenFIGI does not know FIGI" in first[unknown].message
    again = {o.unique_identifier: o.status for o in backend.ensure_assets(specs).outcomes}
    assert again == {known: "existing", "ALGOSEEK-CUSTOM-9001": "existing", unknown: "refused"}


def test_an_openfigi_429_storm_is_waited_out(
    backend: MainSequence9Backend, fake_platform: FakePlatform
) -> None:
    fake_platform.rate_limited = 3
    report = backend.ensure_assets([AssetSpec("BBG00A9K1J47", 1, "figi")])
    assert [o.status for o in report.outcomes] == ["registered"]
    assert fake_platform.rate_limited == 0


# --- writes that never lose a day ------------------------------------------------------------


def test_a_one_day_correction_and_an_adjusted_rewrite_lose_no_other_day(
    backend: MainSequence9Backend,
) -> None:
    uid, secid = "ALGOSEEK-CUSTOM-9101", 9101
    routes = {secid: [uid]}
    write(backend, routes, standard_file(secid, DAYS[:6], 10.0))
    assert closes(backend, uid) == {f"{d[:4]}-{d[4:6]}-{d[6:]}": 10.0 + i for i, d in enumerate(DAYS[:6])}

    receipt = write(
        backend, routes, standard_file(secid, [DAYS[1]], 100.0), standard_file(secid, [DAYS[4]], 200.0)
    )
    expected = {f"{d[:4]}-{d[4:6]}-{d[6:]}": 10.0 + i for i, d in enumerate(DAYS[:6])}
    expected["2024-01-03"], expected["2024-01-08"] = 100.0, 200.0
    assert closes(backend, uid) == expected  # days 3 to 5 survive the server's range overwrite
    assert receipt.rows_written == 4  # 2 raw + 2 adjusted rows changed

    again = write(
        backend, routes, standard_file(secid, [DAYS[1]], 100.0), standard_file(secid, [DAYS[4]], 200.0)
    )
    assert again.rows_written == 0  # a re-delivery writes nothing and changes nothing
    assert closes(backend, uid) == expected

    # a 2:1 split on the new day: the whole adjusted history is rewritten, the raw one kept
    write(backend, routes, standard_file(secid, [DAYS[6]], 7.0, factors=[2.0]))
    raw = closes(backend, uid)
    assert raw == expected | {"2024-01-10": 7.0}
    adjusted = closes(backend, uid, adjusted=True)
    assert adjusted == pytest.approx(
        {day: close / 2.0 for day, close in expected.items()} | {"2024-01-10": 7.0}
    )


def test_history_reads_are_paged_past_one_page_and_one_identifier_filter(
    backend: MainSequence9Backend,
) -> None:
    """More rows than one read page (10,000) and more assets than one read may filter on (the data
    API refuses more than 100 values): all come back, exact."""
    secids = list(range(20000, 20000 + 150))
    days = [d.strftime("%Y%m%d") for d in pd.bdate_range("2023-01-02", periods=80)]
    routes = {s: [f"ALGOSEEK-CUSTOM-{s}"] for s in secids}
    files = [standard_file(s, days, float(s)) for s in secids]
    write(backend, routes, *files)
    table = backend.history("standard-adjusted", secids, routes)
    assert table.num_rows == len(secids) * len(days)
    last = table.to_pandas().groupby("secid")["close"].max()
    assert last.to_dict() == {s: float(s) + len(days) - 1 for s in secids}


# --- the daemon's worker on a drop -------------------------------------------------------------


def ingest(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    """Run the real worker once over the drop; backend.kind = "mainsequence" gets the 9.x backend."""
    chosen = app_module.open_backend

    def open_backend(s: Settings, db: Database):
        return MainSequence9Backend(s, db) if s.backend.kind == "mainsequence" else chosen(s, db)

    monkeypatch.setattr(app_module, "open_backend", open_backend)
    app = open_app(settings)
    stats = run_once(app)
    assert not stats.error, stats.error
    return app


def rows(frame: pd.DataFrame) -> dict[tuple[str, str], tuple]:
    """(time_index, identifier) → the compared values, numbers as floats."""
    return {
        (r["time_index"], r["unique_identifier"]): tuple(
            float(r[c]) if isinstance(r[c], int | float) and not pd.isna(r[c]) else r[c]
            for c in COMPARED
            if c in frame.columns
        )
        for _, r in frame.iterrows()
    }


def same(platform: dict[tuple[str, str], tuple], local: dict[tuple[str, str], tuple]) -> list[tuple]:
    """Keys whose values differ; numbers equal to 1e-9 relative (the SDK sends floats with 10 decimals)."""

    def equal(a: object, b: object) -> bool:
        if isinstance(a, float) and isinstance(b, float):
            return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
        return a == b or (pd.isna(a) and pd.isna(b))

    assert platform.keys() == local.keys()
    return [k for k in local if not all(equal(a, b) for a, b in zip(platform[k], local[k], strict=True))]


def assert_platform_equals_local(
    drop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, list[str]]:
    """Ingest ``drop`` into the embedded store and the platform; every bar must be equal. (rows, assets)"""
    local = ingest(make_settings(tmp_path / "local", drop, backend="local"), monkeypatch)
    platform = ingest(make_settings(tmp_path / "platform", drop), monkeypatch)
    compared = 0
    try:
        uids = local.backend.read_assets()["unique_identifier"].tolist()
        assert uids
        assert set(uids) <= set(platform.backend.read_assets()["unique_identifier"])  # a shared platform
        for dataset in local.backend.datasets():
            for adjusted in (False, True) if DATASETS[dataset].has_factors else (False,):
                query = BarQuery(dataset, uids, adjusted=adjusted)
                expected = rows(local.backend.read_bars(query))
                assert expected
                assert same(rows(platform.backend.read_bars(query)), expected) == [], (dataset, adjusted)
                compared += len(expected)
    finally:
        local.close()
        platform.close()
    return compared, uids


def test_a_generated_drop_lands_in_the_platform_tables_exactly(
    migrated: dict[str, Any], in_checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "drop"
    generate_drop(drop, DropSpec(secids=25, days=12, schema="standard-adjusted", first_secid=70000, seed=9))
    compared, uids = assert_platform_equals_local(drop, tmp_path, monkeypatch)
    assert len(uids) >= 25
    assert compared >= 2 * 25 * 12  # raw and adjusted rows of every SecId and day


def test_the_real_aapl_file_lands_in_the_platform_tables_exactly(
    migrated: dict[str, Any], in_checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    shutil.copy(MASTER_SAMPLE, drop / "equity_security_master.csv")
    shutil.copy(AAPL_SAMPLE, drop / "33449.csv")
    compared, uids = assert_platform_equals_local(drop, tmp_path, monkeypatch)
    assert AAPL_FIGI in uids
    monkeypatch.setattr(app_module, "open_backend", lambda s, db: MainSequence9Backend(s, db))
    platform = open_app(make_settings(tmp_path / "platform", drop))
    try:
        assets = platform.backend.read_assets().set_index("unique_identifier")
    finally:
        platform.close()
    assert assets.loc[AAPL_FIGI, ["secid", "kind", "ticker", "name"]].tolist() == [
        33449,
        "figi",
        "AAPL",
        "Apple Inc",
    ]
    assert compared >= 2 * len(AAPL_SAMPLE.read_text().splitlines()[1:])


# --- faults (the fault proxy in front of the real data API) --------------------------------------


def test_an_outage_loses_nothing_and_the_same_batch_lands_later(
    backend: MainSequence9Backend, via_proxy: FaultProxy
) -> None:
    from algoseek_sync.errors import BackendUnavailableError

    uid, secid = "ALGOSEEK-CUSTOM-9301", 9301
    write(backend, {secid: [uid]}, standard_file(secid, DAYS[:4], 10.0))
    via_proxy.down = True
    with pytest.raises(BackendUnavailableError):
        write(
            backend,
            {secid: [uid]},
            standard_file(secid, [DAYS[1]], 50.0),
            standard_file(secid, DAYS[4:6], 20.0),
        )
    via_proxy.down = False
    write(
        backend, {secid: [uid]}, standard_file(secid, [DAYS[1]], 50.0), standard_file(secid, DAYS[4:6], 20.0)
    )
    assert closes(backend, uid) == {
        "2024-01-02": 10.0,
        "2024-01-03": 50.0,
        "2024-01-04": 12.0,
        "2024-01-05": 13.0,
        "2024-01-08": 20.0,
        "2024-01-09": 21.0,
    }


def test_a_429_storm_and_lost_write_answers_are_retried_and_lose_nothing(
    backend: MainSequence9Backend, via_proxy: FaultProxy
) -> None:
    uid, secid = "ALGOSEEK-CUSTOM-9302", 9302
    write(backend, {secid: [uid]}, standard_file(secid, DAYS[:5], 10.0))
    via_proxy.rate_limited = 3
    via_proxy.lose_write_answers = 1  # the write lands, its answer is lost: "outcome unknown"
    write(backend, {secid: [uid]}, standard_file(secid, [DAYS[2]], 70.0))
    assert via_proxy.lose_write_answers == 0 and via_proxy.rate_limited == 0
    assert closes(backend, uid) == {
        "2024-01-02": 10.0,
        "2024-01-03": 11.0,
        "2024-01-04": 70.0,
        "2024-01-05": 13.0,
        "2024-01-08": 14.0,
    }


def test_rows_the_data_api_refuses_hold_only_their_own_asset(
    backend: MainSequence9Backend, via_proxy: FaultProxy
) -> None:
    good, bad = "ALGOSEEK-CUSTOM-9401", "ALGOSEEK-CUSTOM-9402"
    via_proxy.refuse_rows_of = {bad}
    receipt = write(
        backend,
        {9401: [good], 9402: [bad]},
        standard_file(9401, DAYS[:3], 10.0),
        standard_file(9402, DAYS[:3], 30.0),
    )
    assert set(receipt.rejected_assets) == {bad}
    assert "400" in receipt.rejected_assets[bad]
    assert closes(backend, good) == {"2024-01-02": 10.0, "2024-01-03": 11.0, "2024-01-04": 12.0}
    assert closes(backend, bad) == {}
