"""Generated drops through `run --once`: every schema, aggregation and compression, read back exactly."""

from __future__ import annotations

import csv
import gzip
import io
import sqlite3

import pytest

from algoseek_sync.formats.bars import close_time_index
from algoseek_sync.synthetic.generate import DropSpec, bar_rows, generate_drop, trade_dates
from conftest import Sandbox
from helpers_daemon import stored_count, stored_tables

DATASET_OF = {"primary": "primary", "primary-adjusted": "primary-adjusted", "standard": "standard-adjusted"}


def source_rows(spec: DropSpec, secid: int) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(bar_rows(spec, secid))))


@pytest.mark.parametrize(
    ("schema", "aggregation", "compression"),
    [
        ("primary-adjusted", "secid", "gz"),
        ("primary", "tradedate", "none"),
        ("standard", "tradedate", "gz"),
        ("standard", "secid", "none"),
    ],
)
def test_generated_drop_round_trips_exactly(
    sandbox: Sandbox, schema: str, aggregation: str, compression: str
) -> None:
    spec = DropSpec(
        secids=40,
        days=6,
        schema=schema,
        aggregation=aggregation,
        compression=compression,  # type: ignore[arg-type]
        multi_figi_fraction=0.25,
        blank_figi_fraction=0.05,
        ticker_change_fraction=0.1,
        bucket_dirs=aggregation == "secid",
    )
    manifest = generate_drop(sandbox.drop, spec)
    sandbox.cli("run", "--once")
    db = sqlite3.connect(sandbox.state / "state.db")
    assert db.execute("SELECT count(*) FROM files WHERE state != 'done'").fetchone() == (0,)
    open_col, close_col, vol_col = (
        ("Open", "Close", "MarketHoursVolume")
        if schema == "standard"
        else ("OpenPrice", "ClosePrice", "ListedTotalVolume")
    )
    # stored once per SecId, in the dataset the header names, every value as delivered
    dataset = DATASET_OF[schema]
    assert stored_count(sandbox.state / "state.db") == len(manifest.secids) * spec.days
    (stored,) = stored_tables(sandbox.state / "state.db").items()
    assert stored[0] == dataset
    table = stored[1]
    columns = (table[c].to_pylist() for c in ("secid", "tradedate", "close", "volume"))
    got_rows = list(zip(*columns, strict=True))
    expected_rows = [
        (secid, int(r["TradeDate"]), float(r[close_col]), int(r[vol_col]))
        for secid in manifest.secids
        for r in source_rows(spec, secid)
    ]
    assert got_rows == expected_rows
    # routed at read time: a day's cross-section has a row per identifier (FIGIs, or a custom id)
    fanned = sum(max(1, len(manifest.figis[s])) for s in manifest.secids)
    first_day = trade_dates(spec)[0]
    iso = f"{first_day[:4]}-{first_day[4:6]}-{first_day[6:]}"
    day = sandbox.cli("bars", "--date", iso, "--format", "csv").csv()
    assert len(day) == fanned and {r["tradedate"] for r in day} == {iso}
    multi = next(s for s in manifest.secids if len(manifest.figis[s]) > 1)
    blank = next(s for s in manifest.secids if not manifest.figis[s])
    for secid in (multi, blank):
        expected = source_rows(spec, secid)
        uids = manifest.figis[secid] or [f"algoseek-secid-{secid}"]
        for uid in uids:
            got = sandbox.cli("bars", "--figi", uid, "--format", "csv").csv()
            routed = {(r["dataset"], r["unique_identifier"], r["secid"]) for r in got}
            assert routed == {(dataset, uid, str(secid))}
            assert [r["time_index"] for r in got] == [close_time_index(r["TradeDate"]) for r in expected]
            assert [r["tradedate"].replace("-", "") for r in got] == [r["TradeDate"] for r in expected]
            assert [float(r["open"]) for r in got] == [float(r[open_col]) for r in expected]
            assert [float(r["close"]) for r in got] == [float(r[close_col]) for r in expected]
            assert [r["volume"] for r in got] == [r[vol_col] for r in expected]  # integers, as delivered
            assert [r["ticker"] for r in got] == [r["Ticker"] for r in expected]
            if schema.startswith("primary"):
                assert [r["closetime"] for r in got] == [r["CloseTime"] for r in expected]


def test_ticker_change_resolves_by_date(sandbox: Sandbox) -> None:
    spec = DropSpec(secids=20, days=10, ticker_change_fraction=0.2)
    manifest = generate_drop(sandbox.drop, spec)
    sandbox.cli("run", "--once")
    secid, spans = next((s, t) for s, t in manifest.tickers.items() if len(t) > 1)
    (old, _, old_end), (new, new_start, _) = spans[0], spans[-1]
    iso = f"{new_start[:4]}-{new_start[4:6]}-{new_start[6:]}"
    before = f"{old_end[:4]}-{old_end[4:6]}-{old_end[6:]}"
    assert {r["secid"] for r in sandbox.cli("bars", "--ticker", new, "--format", "csv").csv()} == {str(secid)}
    assert {
        r["secid"] for r in sandbox.cli("bars", "--ticker", old, "--on", before, "--format", "csv").csv()
    } == {str(secid)}
    assert sandbox.cli("bars", "--ticker", old, "--on", iso, check=False).code == 2


def test_one_new_day_touches_only_that_secid(sandbox: Sandbox) -> None:
    spec = DropSpec(secids=30, days=5)
    manifest = generate_drop(sandbox.drop, spec)
    sandbox.cli("run", "--once")
    db = sqlite3.connect(sandbox.state / "state.db")

    def closes() -> dict[tuple[int, int], float]:
        (table,) = stored_tables(sandbox.state / "state.db").values()
        columns = (table[c].to_pylist() for c in ("secid", "tradedate", "close"))
        return {(secid, day): close for secid, day, close in zip(*columns, strict=True)}

    before = closes()
    secid = manifest.secids[3]
    path = next(p for p in manifest.bar_paths if p.name.startswith(str(secid)))
    new_day = trade_dates(spec, extra=1)[-1]
    text = gzip.decompress(path.read_bytes()).decode() + bar_rows(spec, secid, [new_day]).split("\n", 1)[1]
    path.write_bytes(gzip.compress(text.encode()))
    sandbox.cli("run", "--once")
    after = closes()
    assert set(after) - set(before) == {(secid, int(new_day))}
    assert {k: after[k] for k in before} == before
    iso = f"{new_day[:4]}-{new_day[4:6]}-{new_day[6:]}"
    day = sandbox.cli("bars", "--date", iso, "--format", "csv").csv()
    uids = manifest.figis[secid] or [f"algoseek-secid-{secid}"]
    # every identifier of the SecId sees the new day
    assert sorted(r["unique_identifier"] for r in day) == sorted(uids)
    assert {r["secid"] for r in day} == {str(secid)}
    processed = db.execute("SELECT path FROM files WHERE kind = 'bars' ORDER BY id DESC LIMIT 1").fetchone()[
        0
    ]
    assert processed.endswith(f"{secid}.csv.gz")
