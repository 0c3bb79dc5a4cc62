"""Pure parsing: FIGI check digits, names, datasets, the bar and master row policies, adjustment."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pytest

from algoseek_sync.errors import BadFileError, Problem
from algoseek_sync.formats.adjust import backward_adjusted, latest_factors
from algoseek_sync.formats.bars import (
    BarFile,
    canonical_time,
    close_time_index,
    detect,
    foreign_rows,
    last_wins,
    parse_bars,
    trade_dates_valid,
)
from algoseek_sync.formats.datasets import DATASETS, EXTRA, recognise
from algoseek_sync.formats.figi import custom_identifier, figi_check_digit, figi_problem, is_valid_figi
from algoseek_sync.formats.master import parse_master, split_tokens
from algoseek_sync.formats.names import classify, is_temporary
from algoseek_sync.formats.read import decompress
from algoseek_sync.formats.tickers import resolve_ticker
from conftest import AAPL_SAMPLE, MASTER_SAMPLE, PRIMARY_HEADER, STANDARD_HEADER

GLOBS = ["*security_master*.csv", "*security_master*.csv.gz"]
REAL_FIGIS = ["BBG000BVPV84", "BBG000B9XRY4", "BBG000BPH459", "BBG000BSWKH7", "BBG000DWG505"]
FIGI_A, FIGI_B, FIGI_C = "BBG000BVPV84", "BBG000B9XRY4", "BBG000BPH459"
FACTORS = "CumulativePriceFactor,CumulativeVolumeFactor,AdjustmentFactor,AdjustmentReason"


# -- FIGIs and file names ----------------------------------------------------------------------


@pytest.mark.parametrize("figi", REAL_FIGIS)
def test_real_figis_pass_the_check_digit(figi: str) -> None:
    assert figi_check_digit(figi[:11]) == int(figi[11])
    assert is_valid_figi(figi)


@pytest.mark.parametrize(
    ("token", "fragment"),
    [
        ("BBG000BVPV85", "check digit"),
        ("BBG000BVPV8", "length"),
        ("BBG000BVPVA4", "bad characters"),
        ("BBG00OBVPV84", "bad characters"),
        ("bbg000bvpv84", "bad characters"),
    ],
)
def test_invalid_figis_are_explained(token: str, fragment: str) -> None:
    problem = figi_problem(token)
    assert problem is not None and fragment in problem


def test_custom_identifier_is_documented_form() -> None:
    assert custom_identifier(123) == "algoseek-secid-123"


@pytest.mark.parametrize(
    ("path", "kind", "aggregation", "key"),
    [
        ("equity_security_master.csv", "master", "", ""),
        ("sub/equity_security_master_20240102.csv.gz", "master", "", ""),
        ("18679.csv", "bars", "secid", "18679"),
        ("18/18679.csv.gz", "bars", "secid", "18679"),
        ("us-equity-daily-ohlc-primary-secid-20220101-20220630/18679.csv", "bars", "secid", "18679"),
        ("20240102.csv.gz", "bars", "tradedate", "20240102"),
        ("20241340.csv", "bars", "secid", "20241340"),
        ("ticker_to_secid_lookup.csv", "other", "", ""),
        ("notes.txt", "other", "", ""),
    ],
)
def test_classify_by_name(path: str, kind: str, aggregation: str, key: str) -> None:
    name = classify(path, GLOBS)
    assert (name.kind, name.aggregation, name.key) == (kind, aggregation, key)


@pytest.mark.parametrize(
    ("path", "temporary"),
    [
        (".18679.csv", True),
        ("18679.csv.part", True),
        ("18679.csv.filepart", True),
        ("18679.csv.tmp", True),
        (".incoming/18679.csv", True),
        ("18679.csv", False),
        ("a.b/18679.csv.gz", False),
        ("2024/.staging/18679.csv", True),
        ("2024/18679.CSV.PART", True),
        ("2024/x.part/18679.csv", False),
    ],
)
def test_temporary_names_are_never_read(path: str, temporary: bool) -> None:
    assert is_temporary(path) is temporary


def test_time_index_is_1600_new_york_in_utc_across_dst() -> None:
    assert close_time_index("20240102") == "2024-01-02T21:00:00Z"
    assert close_time_index(20240702) == "2024-07-02T20:00:00Z"


# -- dataset recognition -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name"),
    [
        (PRIMARY_HEADER, "primary"),
        (f"{PRIMARY_HEADER},{FACTORS}", "primary-adjusted"),
        (STANDARD_HEADER, "standard-adjusted"),
        ("SecId,TradeDate,Ticker,Open,High,Low,Close,MarketHoursVolume", "standard-adjusted"),
    ],
)
def test_datasets_are_recognised_from_headers(header: str, name: str) -> None:
    columns = header.split(",")
    dataset, extras = detect(columns)
    assert dataset is DATASETS[name] and recognise(columns) is DATASETS[name]
    assert extras == []
    assert dataset.has_factors is (name != "primary")
    assert dataset.names[-1] == EXTRA


def test_reversed_header_is_recognised_with_extras_named_in_order() -> None:
    columns = [*reversed(PRIMARY_HEADER.split(",")), "Zeta", "Alpha"]
    dataset, extras = detect(columns)
    assert dataset.name == "primary" and extras == ["Zeta", "Alpha"]


@pytest.mark.parametrize(
    ("header", "pattern"),
    [
        (["SecId;TradeDate;Open"], "unknown schema"),
        (["SecId", "TradeDate", "Ticker", "Price"], "unknown schema"),
        (
            STANDARD_HEADER.split(",")[:7],
            r"missing required column\(s\) MarketHoursVolume for the standard-adjusted",
        ),
        (
            [c for c in PRIMARY_HEADER.split(",") if c != "CloseTime"],
            r"missing required column\(s\) CloseTime for the primary dataset",
        ),
        (
            [*PRIMARY_HEADER.split(","), "CumulativePriceFactor"],
            r"missing required column\(s\) CumulativeVolumeFactor for the primary-adjusted",
        ),
        ([*STANDARD_HEADER.split(","), "Close"], r"duplicate column\(s\) Close in header"),
    ],
)
def test_bad_headers_are_refused(header: list[str], pattern: str) -> None:
    assert_refused = pytest.raises(BadFileError, match=pattern)
    with assert_refused:
        detect(header)
    with pytest.raises(BadFileError, match=pattern):
        parse_bars((",".join(header) + "\n1,20240102,A,1,1,1,1,1\n").encode())


# -- the bar row policy ---------------------------------------------------------------------------


def _std(*rows: str, header: str = STANDARD_HEADER) -> BarFile:
    return parse_bars(("\n".join([header, *rows]) + "\n").encode())


def _row(secid: object = 1, date: object = 20240102, close: object = "1.5", volume: object = "100") -> str:
    return f"{secid},{date},A,1,2,0.5,{close},{volume},1,1,,"


def _keys(bars: BarFile) -> list[tuple[int, int]]:
    return list(zip(bars.table["secid"].to_pylist(), bars.table["tradedate"].to_pylist(), strict=True))


def _only(notes: tuple[Problem, ...], kind: str) -> Problem:
    found = [n for n in notes if n.kind == kind]
    assert len(found) == 1, notes
    return found[0]


def test_bar_types_are_the_documented_ones() -> None:
    bars = _std(_row())
    schema = bars.table.schema
    assert schema.field("secid").type == pa.int64()
    assert schema.field("tradedate").type == pa.int32()
    assert schema.field("volume").type == pa.int64()
    for name in ("open", "high", "low", "close", "cumulativepricefactor", "adjustmentfactor"):
        assert schema.field(name).type == pa.float64()
    assert schema.field("ticker").type == pa.string() and schema.field(EXTRA).type == pa.string()
    assert bars.table.column_names == DATASETS["standard-adjusted"].names
    primary = parse_bars(_primary_file(_prow())).table.schema
    for name in ("opensize", "closesize", "volume", "listedtotaltrades", "finratotalvolume"):
        assert primary.field(name).type == pa.int64()
    for name in ("open", "vwap", "dailyvwap"):
        assert primary.field(name).type == pa.float64()
    for name in ("opentime", "closetime"):
        assert primary.field(name).type == pa.string()


def test_unknown_extra_column_is_kept_as_json() -> None:
    bars = _std(
        _row(date=20240102) + ",x1,", _row(date=20240103) + ",,7", header=f"{STANDARD_HEADER},Bogus,Other"
    )
    assert bars.extra_columns == ("Bogus", "Other")
    assert bars.table.num_rows == 2 and bars.table["close"].to_pylist() == [1.5, 1.5]
    assert [json.loads(e) for e in bars.table[EXTRA].to_pylist()] == [{"Bogus": "x1"}, {"Other": "7"}]
    note = _only(bars.notes, "extra_columns")
    assert "Bogus, Other" in note.detail and len(bars.notes) == 1


def test_blank_secid_row_is_skipped_with_its_line() -> None:
    bars = _std(_row(date=20240102), _row(secid="", date=20240103), _row(date=20240104))
    assert _keys(bars) == [(1, 20240102), (1, 20240104)]
    note = _only(bars.notes, "bad_rows")
    assert note.line == 3 and "blank SecId: line(s) 3" in note.detail and len(bars.notes) == 1


def test_trade_dates_that_are_no_date_are_skipped() -> None:
    bars = _std(
        _row(date=20240102), _row(date=20241399), _row(date="abc"), _row(date=20240230), _row(date=20240104)
    )
    assert _keys(bars) == [(1, 20240102), (1, 20240104)]
    note = _only(bars.notes, "bad_rows")
    assert note.line == 3 and note.detail.startswith("3 row(s) skipped")
    assert "TradeDate is not a date: line(s) 3, 5" in note.detail
    assert "TradeDate 'abc' is not a date: line(s) 4" in note.detail


def test_a_non_number_in_a_price_column_skips_only_its_row() -> None:
    bars = _std(
        "1,20240102,A,1.25,2.5,0.75,1.5,100,1,1,,",
        "1,20240103,A,x,2,0.5,1.5,100,1,1,,",
        "1,20240104,A,3.125,4,3,3.5,12345678901,0.5,2,0.25,CashDiv",
    )
    assert _keys(bars) == [(1, 20240102), (1, 20240104)]
    rows = bars.table.to_pylist()
    assert (rows[0]["open"], rows[0]["high"], rows[0]["low"], rows[0]["close"]) == (1.25, 2.5, 0.75, 1.5)
    assert rows[1]["open"] == 3.125 and rows[1]["volume"] == 12345678901
    assert (rows[1]["cumulativepricefactor"], rows[1]["adjustmentfactor"]) == (0.5, 0.25)
    assert rows[1]["adjustmentreason"] == "CashDiv" and rows[0]["adjustmentfactor"] is None
    assert rows[0][EXTRA] is None and rows[1][EXTRA] is None
    assert bars.table.schema == parse_bars(f"{STANDARD_HEADER}\n{_row()}\n".encode()).table.schema
    note = _only(bars.notes, "bad_rows")
    assert note.line == 3 and "Open 'x' is not a number: line(s) 3" in note.detail and len(bars.notes) == 1


def test_a_row_with_the_wrong_field_count_is_skipped() -> None:
    bars = _std(_row(date=20240102), "1,20240103,A,1,2,0.5,1.5,100,1,1", _row(date=20240104) + ",extra")
    assert _keys(bars) == [(1, 20240102)]
    note = _only(bars.notes, "bad_rows")
    assert note.line == 3 and note.detail.startswith("2 row(s) skipped")
    assert "10 fields, expected 12: line(s) 3" in note.detail
    assert "13 fields, expected 12: line(s) 4" in note.detail


def test_exact_duplicate_rows_are_dropped() -> None:
    bars = _std(_row(date=20240102), _row(date=20240103), _row(date=20240102))
    assert sorted(_keys(bars)) == [(1, 20240102), (1, 20240103)]
    note = _only(bars.notes, "duplicate_rows")
    assert note.line == 2 and "1 exact duplicate row(s), line(s) 2" in note.detail and len(bars.notes) == 1


def test_conflicting_rows_keep_the_last_one_and_name_both() -> None:
    bars = _std(_row(close="1.5", volume="100"), _row(date=20240103), _row(close="1.7", volume="200"))
    rows = {r["tradedate"]: r for r in bars.table.to_pylist()}
    assert bars.table.num_rows == 2 and (rows[20240102]["close"], rows[20240102]["volume"]) == (1.7, 200)
    note = _only(bars.notes, "conflicting_rows")
    assert (note.secid, note.line) == (1, 2) and len(bars.notes) == 1
    assert "SecId 1 TradeDate 20240102: line 2 and line 4 differ" in note.detail
    assert "Close 1.5 → 1.7" in note.detail and "MarketHoursVolume 100 → 200" in note.detail
    assert "kept line 4" in note.action


def test_tradedate_file_with_one_secid_twice_identically_keeps_one_row() -> None:
    prow = _prow(secid=7)
    bars = parse_bars(_primary_file(prow, _prow(secid=8), prow))
    assert sorted(_keys(bars)) == [(7, 20240102), (8, 20240102)]
    assert [n.kind for n in bars.notes] == ["duplicate_rows"]


def test_fractional_integer_is_rounded_and_its_text_kept() -> None:
    bars = _std(_row(date=20240102, volume="100.6"), _row(date=20240103, volume="10.4"), _row(date=20240104))
    assert bars.table["volume"].type == pa.int64()
    assert bars.table["volume"].to_pylist() == [101, 10, 100]
    assert [json.loads(e) if e else None for e in bars.table[EXTRA].to_pylist()] == [
        {"MarketHoursVolume": "100.6"},
        {"MarketHoursVolume": "10.4"},
        None,
    ]
    note = _only(bars.notes, "extra_columns")
    assert "MarketHoursVolume on 2 row(s)" in note.detail and len(bars.notes) == 1


def test_a_file_of_bad_rows_only_is_refused() -> None:
    with pytest.raises(BadFileError, match=r"no readable row \(3 skipped; line 2: blank SecId\)"):
        _std(_row(secid=""), _row(date="20241301"), "1,20240102,A")


def test_text_that_looks_like_a_null_marker_is_kept() -> None:
    """Only an empty cell is empty: 'NA' is a real ticker (Nano Labs, NASDAQ) and must not become null."""
    bars = _std(
        "1,20240102,NA,1,2,0.5,1.5,100,1,1,,",
        "2,20240102,NULL,1,2,0.5,1.5,100,1,1,,",
        "3,20240102,,1,2,0.5,1.5,100,1,1,,",
    )
    assert bars.table["ticker"].to_pylist() == ["NA", "NULL", None]


def test_header_only_file_has_no_rows_and_one_empty_file_note() -> None:
    bars = _std()
    assert bars.table.num_rows == 0 and bars.secids == []
    assert [(n.kind, n.detail) for n in bars.notes] == [("empty_file", "a header and no rows")]
    assert bars.table.column_names == DATASETS["standard-adjusted"].names


def test_crlf_line_ends_are_accepted() -> None:
    data = f"{STANDARD_HEADER}\r\n1,20240102,A,1,2,0.5,1.5,100,1,1,,\r\n".encode()
    row = parse_bars(data).table.to_pylist()[0]
    assert row["close"] == 1.5 and row["adjustmentreason"] is None


def test_non_utf8_and_long_lines_are_refused() -> None:
    with pytest.raises(BadFileError, match="UTF"):
        parse_bars(f"{STANDARD_HEADER}\n1,20240102,A\xff,1,1,1,1,1,1,1,,\n".encode("latin-1"))
    with pytest.raises(BadFileError, match="max_line_bytes"):
        parse_bars(f"{STANDARD_HEADER}\n".encode() + b"9" * 300_000 + b"\n", max_line_bytes=65536)
    with pytest.raises(BadFileError, match=r"line 2 is 101 bytes, longer than limits.max_line_bytes \(100\)"):
        parse_bars(f"{STANDARD_HEADER[:90]}\n".encode() + b"9" * 101 + b"\n", max_line_bytes=100)


def test_skipped_row_line_numbers_count_blank_lines() -> None:
    """A note's line is the file line (header = 1); a blank line before a bad row must not shift it."""
    bars = _std(_row(date=20240102), "", _row(date=20240103), _row(secid="", date=20240104))
    assert _keys(bars) == [(1, 20240102), (1, 20240103)]
    note = _only(bars.notes, "bad_rows")
    assert note.line == 5, note.detail


# -- times of day ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("9:30:00", "09:30:00"),
        ("09:30:00.7", "09:30:00.700"),
        ("09:30:00.000", "09:30:00"),
        ("09:30:00.123", "09:30:00.123"),
        ("16:00:00.000001", "16:00:00.000001"),
        ("16:00:00.120000", "16:00:00.120"),
        (" 16:00:00 ", "16:00:00"),
        ("24:00:00", None),
        ("09:60:00", None),
        ("09:30", None),
        ("noon", None),
    ],
)
def test_canonical_time(text: str, canonical: str | None) -> None:
    assert canonical_time(text) == canonical


def _prow(
    secid: int = 7,
    date: int = 20240102,
    opentime: str = "09:30:00.123",
    hightime: str = "10:00:00",
    lowtime: str = "11:00:00",
    closetime: str = "16:00:00",
) -> str:
    return (
        f"{secid},{date},ABC,Abc Inc,NYSE,US0000000001,10.5,100,{opentime},11,{hightime},10,{lowtime},10.75,200,"
        f"{closetime},1000,10,1500,15,300,3,400,4,10.6,10.61"
    )


def _primary_file(*rows: str) -> bytes:
    return ("\n".join([PRIMARY_HEADER, *rows]) + "\n").encode()


def test_time_columns_are_canonicalised() -> None:
    bars = parse_bars(_primary_file(_prow(opentime="9:30:00", hightime="09:30:00.7", lowtime="09:30:00.000")))
    row = bars.table.to_pylist()[0]
    assert (row["opentime"], row["hightime"], row["lowtime"], row["closetime"]) == (
        "09:30:00",
        "09:30:00.700",
        "09:30:00",
        "16:00:00",
    )
    assert row[EXTRA] is None and bars.notes == ()


def test_time_fixes_land_on_their_own_row_and_column() -> None:
    bars = parse_bars(
        _primary_file(
            _prow(date=20240102),
            _prow(date=20240103, lowtime="14:20:43.000"),
            _prow(date=20240104, opentime="25:00:00", closetime="9:30:00"),
            _prow(date=20240105, hightime="10:00:00.5"),
        )
    )
    got = [(r["opentime"], r["hightime"], r["lowtime"], r["closetime"]) for r in bars.table.to_pylist()]
    plain = _prow(date=20240102)
    first = parse_bars(_primary_file(plain)).table.to_pylist()[0]
    base = (first["opentime"], first["hightime"], first["lowtime"], first["closetime"])
    assert got == [
        base,
        (base[0], base[1], "14:20:43", base[3]),
        (None, base[1], base[2], "09:30:00"),
        (base[0], "10:00:00.500", base[2], base[3]),
    ]
    extras = [r[EXTRA] for r in bars.table.to_pylist()]
    assert extras[:2] == [None, None] and extras[3] is None
    assert json.loads(extras[2]) == {"OpenTime": "25:00:00"}
    assert _only(bars.notes, "bad_rows").detail == "1 time value(s) that are no time of day"


def test_trade_date_check_agrees_with_the_calendar() -> None:
    rng = np.random.default_rng(7)
    edges = [0, -1, 18991231, 19000101, 19000229, 20000229, 20230229, 20240229, 21000229, 29991231, 30000101]
    values = np.concatenate(
        [rng.integers(18_990_000, 30_000_000, 50_000), np.arange(20231201, 20240401), edges]
    )

    def real_day(value: int) -> bool:
        try:
            return 19000101 <= value <= 29991231 and bool(
                dt.date(value // 10000, value // 100 % 100, value % 100)
            )
        except ValueError:
            return False

    assert trade_dates_valid(values).tolist() == [real_day(int(v)) for v in values]


def test_a_time_that_is_no_time_is_null_with_its_text_in_extra() -> None:
    bars = parse_bars(_primary_file(_prow(date=20240102, closetime="25:00:00"), _prow(date=20240103)))
    rows = bars.table.to_pylist()
    assert rows[0]["closetime"] is None and json.loads(rows[0][EXTRA]) == {"CloseTime": "25:00:00"}
    assert rows[1]["closetime"] == "16:00:00" and rows[1][EXTRA] is None
    assert rows[0]["close"] == 10.75 and rows[0]["volume"] == 1500
    note = _only(bars.notes, "bad_rows")
    assert note.detail == "1 time value(s) that are no time of day"
    # the bad time is not a fractional integer: no "rounded" note may claim it is
    assert [n.kind for n in bars.notes] == ["bad_rows"], bars.notes


def test_primary_file_with_a_bad_number_keeps_its_time_columns() -> None:
    """A bad or fractional number sends the file down the value-by-value path; its time columns are
    still times there, not numbers, so the other rows stay and the fractional volume is rounded."""
    rows = [_prow(date=20240102), _prow(date=20240103), _prow(date=20240104)]
    rows[1] = rows[1].replace(",1500,", ",1500.6,")
    rows[2] = rows[2].replace(",10.75,", ",abc,")
    bars = parse_bars(_primary_file(*rows))
    assert _keys(bars) == [(7, 20240102), (7, 20240103)]
    table = bars.table.to_pylist()
    assert [r["volume"] for r in table] == [1500, 1501]
    assert [r["opentime"] for r in table] == ["09:30:00.123", "09:30:00.123"]
    assert [r["closetime"] for r in table] == ["16:00:00", "16:00:00"]
    assert [json.loads(r[EXTRA]) if r[EXTRA] else None for r in table] == [
        None,
        {"ListedTotalVolume": "1500.6"},
    ]
    note = _only(bars.notes, "bad_rows")
    assert note.line == 4 and "ClosePrice 'abc' is not a number: line(s) 4" in note.detail


def test_primary_columns_map_by_name_in_any_order() -> None:
    cols = PRIMARY_HEADER.split(",")
    values = dict(zip(cols, _prow().split(","), strict=True))
    shuffled = list(reversed(cols))
    data = (",".join(shuffled) + "\n" + ",".join(values[c] for c in shuffled) + "\n").encode()
    bars = parse_bars(data)
    assert bars.dataset.name == "primary" and bars.notes == ()
    row = bars.table.to_pylist()[0]
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == (10.5, 11, 10, 10.75, 1500)
    assert row["vwap"] == 10.6 and row["closetime"] == "16:00:00" and row["listedtotaltrades"] == 15
    assert (row["secid"], row["tradedate"], row["isin"], row["opentime"]) == (
        7,
        20240102,
        "US0000000001",
        "09:30:00.123",
    )


# -- the real sample -------------------------------------------------------------------------------


def test_standard_sample_parses_exactly() -> None:
    bars = parse_bars(AAPL_SAMPLE.read_bytes())
    assert bars.dataset.name == "standard-adjusted" and bars.secids == [33449]
    assert bars.table.num_rows == 3342 and bars.notes == () and bars.extra_columns == ()
    dates = bars.table["tradedate"].to_pylist()
    assert (dates[0], dates[-1]) == (20070103, 20200413) and dates == sorted(set(dates))
    rows = {r["tradedate"]: r for r in bars.table.to_pylist()}
    split = rows[20140609]
    assert (split["open"], split["high"], split["low"], split["close"]) == (92.69, 93.87, 91.75, 93.70)
    assert split["volume"] == 72888472 and split["ticker"] == "AAPL"
    assert split["adjustmentreason"] == "BonusSame" and split["adjustmentfactor"] == 0.142857142857143
    reasons = bars.table["adjustmentreason"].to_pylist()
    assert reasons.count("CashDiv") == 31 and reasons.count("BonusSame") == 1 and reasons.count(None) == 3310
    assert bars.table["adjustmentfactor"].null_count == 3310


# -- foreign rows and last_wins ---------------------------------------------------------------------


def test_foreign_rows_name_the_other_secid() -> None:
    bars = _std(_row(secid=1, date=20240102), _row(secid=2, date=20240102), _row(secid=1, date=20240103))
    note = foreign_rows(bars, 1)
    assert note is not None and note.kind == "foreign_secid" and note.secid == 2
    assert note.detail == "file named for SecId 1 holds rows of SecId 2 (1 row(s))"
    assert foreign_rows(_std(_row(secid=1)), 1) is None
    both = foreign_rows(bars, 3)
    assert both is not None and "SecId 1 (2 row(s)), SecId 2 (1 row(s))" in both.detail


def test_last_wins_takes_the_later_table_and_sorts() -> None:
    first = _std(_row(secid=2, date=20240102, close="2"), _row(secid=1, date=20240103, close="3")).table
    second = _std(_row(secid=1, date=20240103, close="4"), _row(secid=1, date=20240102, close="5")).table
    table = last_wins([first, second])
    assert table is not None
    assert [(r["secid"], r["tradedate"], r["close"]) for r in table.to_pylist()] == [
        (1, 20240102, 5.0),
        (1, 20240103, 4.0),
        (2, 20240102, 2.0),
    ]
    again = last_wins([second, first])
    assert again is not None and again["close"].to_pylist() == [5.0, 3.0, 2.0]
    assert last_wins([]) is None and last_wins([_std().table]) is None


# -- the security master -------------------------------------------------------------------------


def test_split_tokens_drops_empties_and_repeats_keeping_order() -> None:
    assert split_tokens(";BBG000BVPV84;;BBG000B9XRY4;BBG000BVPV84;") == ["BBG000BVPV84", "BBG000B9XRY4"]
    assert split_tokens("") == []
    assert split_tokens(None) == []


def test_master_sample_explodes_one_row_per_figi() -> None:
    master = parse_master(MASTER_SAMPLE.read_bytes())
    assert master.uids_by_secid() == {
        33127: ["BBG000BVPV84"],
        33449: ["BBG000B9XRY4"],
        39827: ["BBG000BPH459"],
    }
    row = master.assets.set_index("unique_identifier").loc["BBG000B9XRY4"]
    assert (
        row["name"] == "Apple Computer Inc.;Apple Inc"
        and row["sic"] == "3571"
        and row["latest_figi"] == "BBG000B9XRY4"
        and row["kind"] == "figi"
    )
    assert not master.issues and master.secid_count == 3 and master.invalid_figis == 0


def _master(rows: list[str], extra_columns: str = "") -> bytes:
    header = MASTER_SAMPLE.read_text().splitlines()[0] + extra_columns
    return ("\n".join([header, *rows]) + "\n").encode()


def _mrow(
    secid: object,
    figi: str,
    tickers: str = "ABC",
    spans: str = "20070103:29991231",
    status: str = "L",
) -> str:
    return (
        f"{secid},{tickers},{spans},Name {secid},{spans},,,{status},Equity Shares,,,NYSE,{spans},,,,,{figi}"
    )


def _unique(master) -> None:  # type: ignore[no-untyped-def]
    uids = master.assets["unique_identifier"]
    assert uids.is_unique, list(uids)


def test_master_multi_figi_invalid_and_blank() -> None:
    master = parse_master(
        _master(
            [
                _mrow(1, "BBG000BVPV84;;BBG000B9XRY4;BBG000BVPV84"),
                _mrow(2, "BBG000BPH450"),  # bad check digit only -> custom
                _mrow(3, ""),
                _mrow(4, "BBG000BSWKH7;NOTAFIGI"),
            ]
        )
    )
    routes = master.uids_by_secid()
    assert routes[1] == ["BBG000BVPV84", "BBG000B9XRY4"]
    assert routes[2] == ["algoseek-secid-2"] and routes[3] == ["algoseek-secid-3"]
    assert routes[4] == ["BBG000BSWKH7"]
    latest = master.assets.set_index("unique_identifier")["latest_figi"]
    assert latest["BBG000BVPV84"] == "BBG000B9XRY4"
    kinds = master.assets.set_index("unique_identifier")["kind"]
    assert kinds["algoseek-secid-2"] == "custom" and kinds["BBG000BSWKH7"] == "figi"
    assert {(i.kind, i.secid, i.detail.split(":")[0]) for i in master.issues} == {
        ("master_figi", 2, "BBG000BPH450"),
        ("master_figi", 4, "NOTAFIGI"),
    }
    assert master.invalid_figis == 2 and master.secid_count == 4
    _unique(master)


def test_master_rows_without_a_usable_secid_are_skipped() -> None:
    master = parse_master(
        _master(
            [
                _mrow(1, FIGI_A),
                _mrow("", FIGI_B),
                _mrow("x7", FIGI_C),
                _mrow(" 2 ", FIGI_B),
                _mrow("-3", FIGI_C),
            ]
        )
    )
    assert master.uids_by_secid() == {1: [FIGI_A], 2: [FIGI_B]}
    skipped = [(i.line, i.detail) for i in master.issues if i.kind == "master_row_skipped"]
    assert skipped == [
        (3, "line 3: no SecId"),
        (4, "line 4: SecId 'x7' is not an integer"),
        (6, "line 6: SecId '-3' is not an integer"),
    ]
    assert len(master.issues) == 3


def test_master_exact_duplicate_rows_are_merged() -> None:
    master = parse_master(_master([_mrow(1, FIGI_A), _mrow(2, FIGI_B), _mrow(1, FIGI_A)]))
    assert master.uids_by_secid() == {1: [FIGI_A], 2: [FIGI_B]}
    assert [(i.kind, i.action, i.line) for i in master.issues] == [("master_duplicate", "merged", 4)]
    _unique(master)


def test_master_two_different_rows_for_one_secid_keep_the_last() -> None:
    master = parse_master(_master([_mrow(1, FIGI_A, tickers="OLD"), _mrow(2, FIGI_C), _mrow(1, FIGI_B)]))
    assert master.uids_by_secid() == {1: [FIGI_B], 2: [FIGI_C]}
    (issue,) = master.issues
    assert (issue.kind, issue.secid, issue.line) == ("master_duplicate", 1, 2)
    assert issue.detail == "SecId 1 listed on line 2 and line 4 with different values"
    assert issue.action == "kept line 4 (the last one)"
    assert master.secid_count == 2


@pytest.mark.parametrize(
    ("rows", "routed", "winner", "loser_uids", "why"),
    [
        # SecId 1 lists it last, SecId 2 does not: 1 wins although 2 is higher; 2 keeps its other FIGI
        (
            [_mrow(1, f"{FIGI_C};{FIGI_A}"), _mrow(2, f"{FIGI_A};{FIGI_B}")],
            None,
            1,
            [FIGI_B],
            "conflict rule",
        ),
        # both list it last: the listed SecId beats the higher delisted one; the loser gets its custom id
        (
            [_mrow(1, FIGI_A, status="L"), _mrow(2, FIGI_A, status="D")],
            None,
            1,
            ["algoseek-secid-2"],
            "conflict rule",
        ),
        # neither lists it last, both listed: the higher SecId wins
        (
            [_mrow(1, f"{FIGI_A};{FIGI_B}"), _mrow(2, f"{FIGI_A};{FIGI_C}")],
            None,
            2,
            [FIGI_B],
            "conflict rule",
        ),
        # last token beats ListStatus
        ([_mrow(1, FIGI_A, status="D"), _mrow(2, f"{FIGI_A};{FIGI_B}")], None, 1, [FIGI_B], "conflict rule"),
        # everything equal: the higher SecId
        ([_mrow(1, FIGI_A), _mrow(2, FIGI_A)], None, 2, ["algoseek-secid-1"], "conflict rule"),
        # routed already: kept even though the rule picks the other
        ([_mrow(1, FIGI_A), _mrow(2, FIGI_A)], {FIGI_A: 1}, 1, ["algoseek-secid-2"], "already routed to it"),
        (
            [_mrow(1, f"{FIGI_A};{FIGI_B}"), _mrow(2, f"{FIGI_C};{FIGI_A}")],
            {FIGI_A: 1},
            1,
            [FIGI_C],
            "already routed to it",
        ),
        # routed to a SecId that does not claim it: the rule decides
        ([_mrow(1, FIGI_A), _mrow(2, FIGI_A)], {FIGI_A: 99}, 2, ["algoseek-secid-1"], "conflict rule"),
    ],
)
def test_figi_conflict_rule(
    rows: list[str], routed: dict[str, int] | None, winner: int, loser_uids: list[str], why: str
) -> None:
    master = parse_master(_master(rows), routed=routed)
    loser = 3 - winner
    routes = master.uids_by_secid()
    assert FIGI_A in routes[winner] and routes[loser] == loser_uids
    conflicts = [i for i in master.issues if i.kind == "figi_conflict"]
    assert len(conflicts) == 1
    note = conflicts[0]
    assert note.detail == f"{FIGI_A} listed under SecIds 1, 2"
    assert (note.secid, note.unique_identifier) == (winner, FIGI_A)
    assert note.action == f"kept on SecId {winner} ({why}); removed from SecId {loser}"
    assets = master.assets.set_index("unique_identifier")
    assert assets.loc[FIGI_A, "secid"] == winner
    if loser_uids[0].startswith("algoseek-secid-"):
        assert (assets.loc[loser_uids[0], "kind"], assets.loc[loser_uids[0], "latest_figi"]) == ("custom", "")
    else:
        assert assets.loc[loser_uids[0], "latest_figi"] == loser_uids[0]
    _unique(master)


def test_figi_conflict_among_three_secids_leaves_identifiers_unique() -> None:
    master = parse_master(
        _master([_mrow(5, FIGI_A), _mrow(6, f"{FIGI_A};{FIGI_B}"), _mrow(7, f"{FIGI_B};{FIGI_A}")])
    )
    assert master.uids_by_secid() == {5: ["algoseek-secid-5"], 6: [FIGI_B], 7: [FIGI_A]}
    details = {i.detail for i in master.issues if i.kind == "figi_conflict"}
    assert details == {f"{FIGI_A} listed under SecIds 5, 6, 7", f"{FIGI_B} listed under SecIds 6, 7"}
    _unique(master)


def test_master_extra_columns_are_kept_and_noted() -> None:
    master = parse_master(_master([_mrow(1, FIGI_A) + ",v1,", _mrow(2, FIGI_B) + ",,w2"], ",Bonus,Other"))
    assets = master.assets.set_index("unique_identifier")
    assert (assets.loc[FIGI_A, "bonus"], assets.loc[FIGI_B, "other"]) == ("v1", "w2")
    (issue,) = master.issues
    assert issue.kind == "extra_columns" and "Bonus, Other" in issue.detail


def test_master_with_blank_figi_everywhere_is_refused() -> None:
    with pytest.raises(BadFileError, match="blank on every row"):
        parse_master(_master([_mrow(1, ""), _mrow(2, " ")]))


def test_master_missing_column_is_refused() -> None:
    with pytest.raises(BadFileError, match=r"missing required column\(s\) TickersStartToEndDate, FIGI"):
        parse_master(b"SecId,Tickers\n1,ABC\n")


def test_master_skipped_row_line_numbers_count_blank_lines() -> None:
    """As for bars: the reported line is the file line, blank lines included."""
    master = parse_master(_master([_mrow(1, FIGI_A), "", _mrow("x", FIGI_B)]))
    (issue,) = master.issues
    assert issue.line == 4 and issue.detail == "line 4: SecId 'x' is not an integer"


def test_ticker_history_resolution_is_dated_and_case_sensitive() -> None:
    master = parse_master(
        _master(
            [
                _mrow(1, "BBG000BVPV84", "OLD;NEW", "20070103:20150630;20150701:29991231"),
                _mrow(2, "BBG000B9XRY4", "OLD", "20160101:20991231"),
                _mrow(3, "BBG000BPH459", "CpN", "20070103:29991231"),
            ]
        )
    )
    spans = master.tickers
    assert resolve_ticker(spans, "OLD", "2010-01-01") == [1]
    assert resolve_ticker(spans, "OLD", "2017-01-01") == [2]
    assert resolve_ticker(spans, "OLD", None) == [2]
    assert resolve_ticker(spans, "NEW", None) == [1]
    assert resolve_ticker(spans, "CPN", None) == []
    assert resolve_ticker(spans, "CpN", None) == [3]


# -- backward adjustment on the real sample ------------------------------------------------------------


def test_backward_adjustment_of_the_aapl_sample() -> None:
    table = parse_bars(AAPL_SAMPLE.read_bytes()).table
    latest = latest_factors(table)
    assert latest == {33449: (20200413, (8.0641405312554326, 6.9999999999999938))}
    cpf_last, cvf_last = latest[33449][1]
    adjusted = backward_adjusted(table, {s: f for s, (_, f) in latest.items()})
    assert adjusted.num_rows == 3342 and adjusted["volume"].type == pa.float64()
    raw = {r["tradedate"]: r for r in table.to_pylist()}
    adj = {r["tradedate"]: r for r in adjusted.to_pylist()}
    for day in (20140606, 20140609, 20190809, 20200413):
        r = raw[day]
        for price in ("open", "high", "low", "close"):
            assert adj[day][price] == pytest.approx(
                r[price] * r["cumulativepricefactor"] / cpf_last, rel=1e-13
            )
        assert adj[day]["volume"] == pytest.approx(
            r["volume"] * cvf_last / r["cumulativevolumefactor"], rel=1e-13
        )
    assert raw[20190809]["adjustmentreason"] == "CashDiv"
    assert round(adj[20140606]["close"], 6) == 83.755049
    assert round(adj[20140609]["close"], 6) == 85.095244
    assert round(adj[20190809]["close"], 6) == 199.913914
    assert round(adj[20140606]["volume"]) == 85000748  # 12142964 × 7
    assert adj[20140609]["volume"] == 72888472.0
    # the last day is its own reference: adjusted == raw
    assert (adj[20200413]["close"], adj[20200413]["open"], adj[20200413]["volume"]) == (
        273.25,
        268.19,
        31681726.0,
    )
    # across the 7:1 split the adjusted close moves like the market did (+1.6 %), not -86 %
    move = adj[20140609]["close"] / adj[20140606]["close"] - 1
    assert move == pytest.approx(0.016001, abs=1e-6)
    raw_move = raw[20140609]["close"] / raw[20140606]["close"] - 1
    assert raw_move == pytest.approx(-0.8549, abs=1e-4)


def test_backward_adjustment_without_factors_stays_empty() -> None:
    table = _std(
        "1,20240102,A,1,2,0.5,1.5,100,,,,",
        "1,20240103,A,1,2,0.5,2,100,2,4,,",
    ).table
    adjusted = backward_adjusted(table, {1: (2.0, 4.0)})
    assert adjusted["close"].to_pylist() == [None, 2.0] and adjusted["volume"].to_pylist() == [None, 100.0]
    unknown = backward_adjusted(table, {})
    assert unknown["close"].null_count == 2
    empty = backward_adjusted(_std().table, {})
    assert empty.num_rows == 0 and empty["volume"].type == pa.float64()


# -- gzip ------------------------------------------------------------------------------------


def test_gzip_members_and_zero_padding_are_read_whole() -> None:
    blob = gzip.compress(b"SecId,TradeDate\n") + gzip.compress(b"1,20240102\n") + b"\0" * 512
    assert decompress("f.csv.gz", blob, 1000) == b"SecId,TradeDate\n1,20240102\n"


def test_gzip_cap_is_exact() -> None:
    blob = gzip.compress(b"x" * 1000)
    assert len(decompress("f.csv.gz", blob, 1000)) == 1000
    with pytest.raises(BadFileError, match="max_decompressed_bytes"):
        decompress("f.csv.gz", blob, 999)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda b: b[: len(b) // 2], "truncated gzip"),
        (lambda b: b[:-8] + bytes([b[-8] ^ 0xFF]) + b[-7:], "corrupt gzip"),  # the CRC-32
        (lambda b: b + b"trailing text", "corrupt gzip"),
        (lambda b: b"not gzip at all", "corrupt gzip"),
    ],
)
def test_damaged_gzip_is_named(damage: Callable[[bytes], bytes], words: str) -> None:
    with pytest.raises(BadFileError, match=words):
        decompress("f.csv.gz", damage(gzip.compress(b"SecId,TradeDate\n1,20240102\n" * 100)), 1 << 20)
