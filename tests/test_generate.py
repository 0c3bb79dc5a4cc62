"""The drop generator must produce valid, deterministic, vendor-shaped files (tests and benchmarks rely on it)."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from algoseek_sync.commands import cli
from algoseek_sync.formats.bars import parse_bars
from algoseek_sync.synthetic.generate import (
    BAR_COLUMNS,
    MASTER_COLUMNS,
    DropSpec,
    bar_rows,
    generate_drop,
    make_figi,
    master_csv,
    trade_dates,
    write_bars,
)
from conftest import AAPL_SAMPLE, MASTER_SAMPLE

REAL_FIGIS = ["BBG000BVPV84", "BBG000B9XRY4", "BBG000BPH459", "BBG000BSWKH7", "BBG000DWG505"]
CONSONANTS_DIGITS = set("0123456789BCDFGHJKLMNPQRSTVWXYZ")


def check_digit(first11: str) -> int:
    """Independent FIGI check digit (spec in docs/algoseek-formats.md), not the generator's own."""
    total = 0
    for pos, char in enumerate(first11):
        value = int(char) if char.isdigit() else ord(char) - 55
        if pos % 2:
            value *= 2
        total += sum(int(d) for d in str(value))
    return (10 - total % 10) % 10


def is_valid_figi(figi: str) -> bool:
    return (
        len(figi) == 12
        and figi[2] == "G"
        and set(figi[3:11]) <= CONSONANTS_DIGITS
        and figi[11] == str(check_digit(figi[:11]))
    )


def read_csv(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return list(csv.DictReader(io.StringIO(raw.decode())))


def header_of(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return next(csv.reader(fh))


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("figi", REAL_FIGIS)
def test_check_digit_matches_real_figis(figi: str) -> None:
    assert check_digit(figi[:11]) == int(figi[11])


def test_make_figi_valid_and_unique() -> None:
    edges = [31**k + d for k in range(1, 8) for d in (-1, 0)] + [31**8 - 1]  # where base-31 digits carry
    figis = [make_figi(n) for n in [*range(0, 200_000, 97), *edges]]
    assert all(is_valid_figi(f) and f.startswith("BBG") for f in figis)
    assert len(set(figis)) == len(figis)
    with pytest.raises(ValueError):
        make_figi(-1)


def test_master_columns_match_real_sample(tmp_path: Path) -> None:
    real = header_of(MASTER_SAMPLE)
    assert list(MASTER_COLUMNS) == real
    manifest = generate_drop(tmp_path, DropSpec(secids=50, days=5))
    assert header_of(manifest.master_path) == real


def test_master_content_and_fractions(tmp_path: Path) -> None:
    spec = DropSpec(secids=1000, days=3)  # two days are enough for a ticker change
    manifest = generate_drop(tmp_path, spec)
    rows = read_csv(manifest.master_path)
    assert [int(r["SecId"]) for r in rows] == manifest.secids == list(range(10000, 11000))
    all_figis = [f for figis in manifest.figis.values() for f in figis]
    assert all(is_valid_figi(f) for f in all_figis)
    assert len(set(all_figis)) == len(all_figis)
    counts = [len(f) for f in manifest.figis.values()]
    assert abs(sum(c == 0 for c in counts) / 1000 - spec.blank_figi_fraction) < 0.01
    assert abs(sum(c >= 2 for c in counts) / 1000 - spec.multi_figi_fraction) < 0.03
    assert set(counts) == {0, 1, 2, 3}
    changed = [s for s, t in manifest.tickers.items() if len(t) == 2]
    assert abs(len(changed) / 1000 - spec.ticker_change_fraction) < 0.02
    all_tickers = [t for hist in manifest.tickers.values() for t, _, _ in hist]
    assert len(set(all_tickers)) == len(all_tickers)
    assert all(t.isupper() and t.isalpha() for t in all_tickers)
    for row in rows:
        secid = int(row["SecId"])
        assert (row["FIGI"].split(";") if row["FIGI"] else []) == manifest.figis[secid]
        tickers = row["Tickers"].split(";")
        ranges = row["TickersStartToEndDate"].split(";")
        assert len(tickers) == len(ranges) == len(row["Name"].split(";"))
        assert ranges[-1].endswith(":29991231")
        assert [(t, *r.split(":")) for t, r in zip(tickers, ranges, strict=True)] == [
            tuple(x) for x in manifest.tickers[secid]
        ]
        assert len(row["ISIN"]) == 12 and row["ISIN"].startswith("US")
    # Some names and sectors contain commas: the CSV must quote them and still round-trip.
    assert any("," in r["Name"] or "," in r["Sector"] for r in rows)


@pytest.mark.parametrize("schema", ["primary", "primary-adjusted", "standard-adjusted"])
@pytest.mark.parametrize("aggregation", ["secid", "tradedate"])
def test_headers_exact_and_gz_decompresses(tmp_path: Path, schema: str, aggregation: str) -> None:
    spec = DropSpec(secids=20, days=6, schema=schema, aggregation=aggregation)  # type: ignore[arg-type]
    manifest = generate_drop(tmp_path, spec)
    expected = {
        "primary": "SecId,TradeDate,Ticker,Name,PrimaryExchange,ISIN,OpenPrice,OpenSize,OpenTime,HighPrice,"
        "HighTime,LowPrice,LowTime,ClosePrice,CloseSize,CloseTime,ListedMarketHoursVolume,"
        "ListedMarketHoursTrades,ListedTotalVolume,ListedTotalTrades,FinraMarketHoursVolume,"
        "FinraMarketHoursTrades,FinraTotalVolume,FinraTotalTrades,MarketVWAP,DailyVWAP",
        "primary-adjusted": "SecId,TradeDate,Ticker,Name,PrimaryExchange,ISIN,OpenPrice,OpenSize,OpenTime,"
        "HighPrice,HighTime,LowPrice,LowTime,ClosePrice,CloseSize,CloseTime,ListedMarketHoursVolume,"
        "ListedMarketHoursTrades,ListedTotalVolume,ListedTotalTrades,FinraMarketHoursVolume,"
        "FinraMarketHoursTrades,FinraTotalVolume,FinraTotalTrades,CumulativePriceFactor,"
        "CumulativeVolumeFactor,AdjustmentFactor,AdjustmentReason,MarketVWAP,DailyVWAP",
        "standard-adjusted": "SecId,TradeDate,Ticker,Open,High,Low,Close,MarketHoursVolume,CumulativePriceFactor,"
        "CumulativeVolumeFactor,AdjustmentFactor,AdjustmentReason",
    }[schema]
    assert ",".join(BAR_COLUMNS[schema]) == expected
    n_files = 20 if aggregation == "secid" else 6
    assert len(manifest.bar_paths) == n_files
    total = 0
    for path in manifest.bar_paths:
        assert path.name.endswith(".csv.gz")
        text = gzip.decompress(path.read_bytes()).decode()
        assert text.splitlines()[0] == expected
        rows = list(csv.reader(io.StringIO(text)))[1:]
        assert all(len(r) == len(BAR_COLUMNS[schema]) for r in rows)
        total += len(rows)
        parsed = parse_bars(text.encode())  # the daemon reads every row, with nothing to report
        assert parsed.dataset.name == schema  # generate --schema takes the dataset names
        assert parsed.table.num_rows == len(rows) and parsed.notes == () and parsed.extra_columns == ()
    assert total == manifest.rows == 120


def test_standard_header_matches_real_sample() -> None:
    assert header_of(AAPL_SAMPLE) == list(BAR_COLUMNS["standard-adjusted"])


def test_workers_give_the_same_bytes(tmp_path: Path) -> None:
    for aggregation in ("secid", "tradedate"):
        spec = DropSpec(secids=30, days=8, aggregation=aggregation)  # type: ignore[arg-type]
        a = write_bars(tmp_path / f"{aggregation}1", spec)
        b = write_bars(tmp_path / f"{aggregation}2", spec, workers=2)
        assert [p.name for p in a] == [p.name for p in b]
        assert digest(tmp_path / f"{aggregation}1") == digest(tmp_path / f"{aggregation}2")


def test_values_stable_when_drop_grows() -> None:
    """A SecId's day does not depend on how many days/SecIds were asked for (re-delivery scenarios)."""
    small, big = DropSpec(secids=10, days=10), DropSpec(secids=50, days=10)
    assert bar_rows(small, 10003) == bar_rows(big, 10003)
    dates = trade_dates(small, extra=1)
    full = bar_rows(small, 10003, dates).splitlines()
    assert full[:-1] == bar_rows(small, 10003).splitlines()
    one_new_day = bar_rows(small, 10003, [dates[-1]]).splitlines()
    assert one_new_day == [full[0], full[-1]]
    assert dates[-1] not in trade_dates(small)


def test_bucket_dirs_and_plain_csv(tmp_path: Path) -> None:
    spec = DropSpec(secids=5, days=3, bucket_dirs=True, compression="none")
    manifest = generate_drop(tmp_path, spec)
    assert [p.relative_to(tmp_path).as_posix() for p in manifest.bar_paths] == [
        f"10/{s}.csv" for s in range(10000, 10005)
    ]
    assert read_csv(manifest.bar_paths[0])[0]["SecId"] == "10000"


def test_calendar_skips_weekends_and_holidays() -> None:
    dates = trade_dates(DropSpec(days=60, start="20240102"))
    assert "20240115" not in dates  # MLK day
    assert "20240219" not in dates  # Presidents' Day
    assert "20240329" not in dates  # Good Friday
    assert "20240106" not in dates  # Saturday
    assert dates[0] == "20240102" and dates == sorted(dates)


def test_tradedate_files_hold_every_secid_sorted(tmp_path: Path) -> None:
    spec = DropSpec(secids=60, days=7, aggregation="tradedate")
    manifest = generate_drop(tmp_path, spec)
    assert [p.name for p in manifest.bar_paths] == [f"{d}.csv.gz" for d in manifest.trade_dates]
    for path, day in zip(manifest.bar_paths, manifest.trade_dates, strict=True):
        rows = read_csv(path)
        assert [int(r["SecId"]) for r in rows] == manifest.secids
        assert {r["TradeDate"] for r in rows} == {day}


def test_secid_and_tradedate_carry_the_same_rows(tmp_path: Path) -> None:
    by_secid = generate_drop(tmp_path / "s", DropSpec(secids=15, days=5))
    by_day = generate_drop(tmp_path / "d", DropSpec(secids=15, days=5, aggregation="tradedate"))
    a = sorted(tuple(r.values()) for p in by_secid.bar_paths for r in read_csv(p))
    b = sorted(tuple(r.values()) for p in by_day.bar_paths for r in read_csv(p))
    assert a == b


def test_ticker_column_follows_ticker_changes(tmp_path: Path) -> None:
    spec = DropSpec(secids=200, days=15, ticker_change_fraction=0.1)
    manifest = generate_drop(tmp_path, spec)
    changed = [s for s, hist in manifest.tickers.items() if len(hist) == 2]
    assert len(changed) == 20
    for secid in changed:
        (old, _, old_end), (new, new_start, _) = manifest.tickers[secid]
        rows = read_csv(tmp_path / f"{secid}.csv.gz")
        assert {r["Ticker"] for r in rows} == {old, new}
        for r in rows:
            assert r["Ticker"] == (old if r["TradeDate"] <= old_end else new)
            assert (r["TradeDate"] >= new_start) == (r["Ticker"] == new)
    unchanged = next(s for s, hist in manifest.tickers.items() if len(hist) == 1)
    assert {r["Ticker"] for r in read_csv(tmp_path / f"{unchanged}.csv.gz")} == {
        manifest.tickers[unchanged][0][0]
    }


def test_bar_values_are_plausible(tmp_path: Path) -> None:
    spec = DropSpec(secids=300, days=40)
    manifest = generate_drop(tmp_path, spec)
    rows = [r for p in manifest.bar_paths for r in read_csv(p)]
    assert len(rows) == manifest.rows == 12_000
    ok = 0
    for r in rows:
        o, h, lo, c = (float(r[k]) for k in ("OpenPrice", "HighPrice", "LowPrice", "ClosePrice"))
        assert all(len(r[k].split(".")[1]) == 2 for k in ("OpenPrice", "HighPrice", "LowPrice", "ClosePrice"))
        assert h >= c >= lo > 0
        ok += lo <= o <= h
        assert int(r["ListedTotalVolume"]) >= int(r["ListedMarketHoursVolume"]) > 0
        assert r["OpenTime"].startswith("09:30:0") and r["CloseTime"] == "16:00:00"
        assert "09:30:00" <= r["HighTime"] < "16:00:01" and len(r["HighTime"]) == 12
        if r["AdjustmentReason"]:
            assert r["AdjustmentReason"] in {"CashDiv", "BonusSame", "Subdiv"}
            assert 0 < float(r["AdjustmentFactor"]) < 1
        else:
            assert r["AdjustmentFactor"] == ""
    assert ok / len(rows) > 0.99  # "mostly": a few Open-outside-range rows like real AAPL 20191220
    events = [r for r in rows if r["AdjustmentReason"]]
    assert 0 < len(events) < len(rows) * 0.02
    assert sum(r["CumulativePriceFactor"] == "1" for r in rows) > len(rows) * 0.8


def test_master_csv_helper_matches_file(tmp_path: Path) -> None:
    spec = DropSpec(secids=10, days=3)
    text, universe = master_csv(spec)
    assert generate_drop(tmp_path, spec).master_path.read_text() == text
    assert [i.secid for i in universe.infos] == list(range(10000, 10010))


def test_unknown_dates_and_secids_are_refused(tmp_path: Path) -> None:
    spec = DropSpec(secids=3, days=3)
    with pytest.raises(ValueError):
        write_bars(tmp_path, spec, dates=["20240106"])  # a Saturday
    with pytest.raises(KeyError):
        write_bars(tmp_path, spec, secids=[1])


def test_cli_prints_summary(tmp_path: Path) -> None:
    argv = [
        "--secids",
        "7",
        "--days",
        "4",
        "--seed",
        "1",
        "--aggregation",
        "tradedate",
        "--compression",
        "none",
    ]
    written = {}
    for schema in ("standard-adjusted", "standard"):  # the old name of the dataset is still accepted
        out = tmp_path / schema
        result = CliRunner().invoke(cli.main, ["generate", str(out), "--schema", schema, *argv])
        assert result.exit_code == 0, result.output
        assert result.output == f"wrote 4 bar file(s), 28 row(s) and a master to {out}\n"
        assert sorted(p.name for p in out.iterdir())[-1] == "equity_security_master.csv"
        written[schema] = {p.name: p.read_bytes() for p in out.iterdir()}
    assert written["standard"] == written["standard-adjusted"]
    assert DropSpec(schema="standard").schema == "standard-adjusted"  # type: ignore[arg-type]
    refused = CliRunner().invoke(cli.main, ["generate", str(tmp_path / "x"), "--schema", "nope"])
    assert refused.exit_code == 2 and "'primary', 'primary-adjusted', 'standard-adjusted'" in refused.output


#: Small drops that take every branch of the generator between them: each schema, both aggregations,
#: both compressions, bucket directories; seed 52 holds a cash dividend, a 2:1 and a 3:1 split in
#: 40 x 12 days; 5 % of Opens outside [Low, High] in one of them (as real files have), none in the rest.
BRANCHES = {
    "primary-adjusted-secid-gz": DropSpec(secids=40, days=12, seed=52, open_quirks=0.0),
    "primary-tradedate-csv": DropSpec(
        secids=40,
        days=12,
        seed=52,
        schema="primary",
        aggregation="tradedate",
        compression="none",
        open_quirks=0.0,
    ),
    "standard-secid-csv-buckets": DropSpec(
        secids=40,
        days=12,
        seed=52,
        schema="standard-adjusted",
        compression="none",
        bucket_dirs=True,
        open_quirks=0.0,
    ),
    "standard-tradedate-gz-quirks": DropSpec(
        secids=40, days=12, seed=52, schema="standard-adjusted", aggregation="tradedate", open_quirks=0.05
    ),
}


@pytest.mark.parametrize("spec", BRANCHES.values(), ids=BRANCHES.keys())
def test_drop_reads_back_through_the_products_parsers(tmp_path: Path, spec: DropSpec) -> None:
    """What the daemon will see: names it classifies, a master and bar files its parsers read with
    nothing to report, headers as the dataset defines them, values that obey the OHLC invariants."""
    from algoseek_sync.config import load_settings
    from algoseek_sync.formats.datasets import DATASETS
    from algoseek_sync.formats.master import parse_master
    from algoseek_sync.formats.names import classify

    manifest = generate_drop(tmp_path, spec)
    globs = load_settings(env={"ALGOSEEK_SYNC_DROP_DIR": str(tmp_path)}).drop.master_glob
    assert classify(manifest.master_path.name, globs).kind == "master"
    master = parse_master(manifest.master_path.read_bytes())
    assert master.issues == [] and master.invalid_figis == 0 and master.secid_count == spec.secids
    routed = master.uids_by_secid()
    assert {s: routed[s] for s, figis in manifest.figis.items() if figis} == {
        s: figis for s, figis in manifest.figis.items() if figis
    }
    assert all(len(routed[s]) == 1 for s, figis in manifest.figis.items() if not figis)  # a custom id

    dataset = DATASETS[spec.schema]
    by_secid = spec.aggregation == "secid"
    days = [int(d) for d in manifest.trade_dates]
    keys, across = (manifest.secids, days) if by_secid else (days, manifest.secids)
    key_column, across_column = ("secid", "tradedate") if by_secid else ("tradedate", "secid")
    suffix = ".csv.gz" if spec.compression == "gz" else ".csv"
    assert sorted(p.name for p in manifest.bar_paths) == sorted(f"{k}{suffix}" for k in keys)
    rows, reasons, open_outside = 0, set(), 0
    for path in manifest.bar_paths:
        rel = path.relative_to(tmp_path).as_posix()
        name = classify(rel, globs)
        assert (name.kind, name.aggregation) == ("bars", spec.aggregation), rel
        assert rel == (f"{name.key[:2]}/{path.name}" if spec.bucket_dirs else path.name)
        data = path.read_bytes()
        assert (data[:2] == b"\x1f\x8b") == (spec.compression == "gz"), rel  # the gzip magic, or not
        text = gzip.decompress(data) if spec.compression == "gz" else data
        assert text.split(b"\n", 1)[0].decode().split(",") == [c.source for c in dataset.columns]
        parsed = parse_bars(text)
        assert parsed.dataset is dataset and parsed.notes == () and parsed.extra_columns == (), parsed.notes
        table = parsed.table.to_pydict()
        assert set(table[key_column]) == {int(name.key)}, rel  # the name says what the file holds
        assert table[across_column] == across, rel  # every day of a SecId, or every SecId of a day
        for o, h, lo, c, v in zip(
            *(table[k] for k in ("open", "high", "low", "close", "volume")), strict=True
        ):
            assert 0 < lo <= c <= h and v >= 0, (rel, o, h, lo, c, v)
            assert o >= lo, (rel, o, lo)
            open_outside += o > h
        reasons |= set(table.get("adjustmentreason", []))
        rows += parsed.table.num_rows
    assert rows == spec.secids * spec.days
    if dataset.has_factors:
        assert reasons == {None, "CashDiv", "BonusSame", "Subdiv"}, reasons
    if spec.open_quirks:
        assert 0 < open_outside < rows * spec.open_quirks * 3
    else:
        assert open_outside == 0


@pytest.mark.parametrize("spec", BRANCHES.values(), ids=BRANCHES.keys())
def test_same_seed_same_bytes_other_seed_other_values(tmp_path: Path, spec: DropSpec) -> None:
    generate_drop(tmp_path / "a", spec)
    generate_drop(tmp_path / "b", spec)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    generate_drop(tmp_path / "c", dataclasses.replace(spec, seed=spec.seed + 1))
    files = {p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()}
    assert files == {p.relative_to(tmp_path / "c") for p in (tmp_path / "c").rglob("*") if p.is_file()}
    same = [
        rel for rel in files if (tmp_path / "a" / rel).read_bytes() == (tmp_path / "c" / rel).read_bytes()
    ]
    assert same == []  # every file changes with the seed, not just some


def _day_file(path: Path, day: int, closes: dict[int, float], events: dict[int, str]) -> Path:
    header = "SecId,TradeDate,ClosePrice,AdjustmentFactor,AdjustmentReason"
    lines = [f"{s},{day},{c},{events.get(s, '')},{'Split' if s in events else ''}" for s, c in closes.items()]
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def test_a_planted_missing_day_file_also_expects_the_jumps_its_event_rows_explained(tmp_path: Path) -> None:
    """SecId 1 splits 3:1 on the removed day (its event row goes with the file), SecId 2 has an
    event but no big move, SecId 3 has events on both days and moves 50 % on the next one (its
    own event row explains it): only SecId 1's jump is expected."""
    from algoseek_sync.synthetic.plant import _lost_events

    before = _day_file(tmp_path / "20240130.csv", 20240130, {1: 120.0, 2: 50.0, 3: 10.0}, {})
    victim = _day_file(
        tmp_path / "20240131.csv", 20240131, {1: 40.0, 2: 49.0, 3: 10.0}, {1: "3", 2: "0.99", 3: "1"}
    )
    after = _day_file(tmp_path / "20240201.csv", 20240201, {1: 41.0, 2: 49.5, 3: 15.0}, {3: "0.66"})
    (planted,) = _lost_events(before, victim, after, "ClosePrice")
    assert (planted.kind, planted.secid, planted.start, planted.end) == (
        "unexplained_jump",
        1,
        20240201,
        20240201,
    )
