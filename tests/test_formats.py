"""Pure parsing: FIGI check digits, names, master explosion, ticker history, bar schemas."""

from __future__ import annotations

import pytest

from algoseek_sync.errors import BadFileError
from algoseek_sync.formats.bars import OUTPUT_COLUMNS, close_time_index, detect_schema, fan_out, parse_bars
from algoseek_sync.formats.figi import custom_identifier, figi_check_digit, figi_problem, is_valid_figi
from algoseek_sync.formats.master import parse_master, resolve_ticker, split_tokens
from algoseek_sync.formats.names import classify, is_temporary
from conftest import AAPL_SAMPLE, MASTER_SAMPLE

GLOBS = ["*security_master*.csv", "*security_master*.csv.gz"]
REAL_FIGIS = ["BBG000BVPV84", "BBG000B9XRY4", "BBG000BPH459", "BBG000BSWKH7", "BBG000DWG505"]
STANDARD_HEADER = "SecId,TradeDate,Ticker,Open,High,Low,Close,MarketHoursVolume"
PRIMARY_HEADER = (
    "SecId,TradeDate,Ticker,Name,PrimaryExchange,ISIN,OpenPrice,OpenSize,OpenTime,HighPrice,HighTime,LowPrice,"
    "LowTime,ClosePrice,CloseSize,CloseTime,ListedMarketHoursVolume,ListedMarketHoursTrades,ListedTotalVolume,"
    "ListedTotalTrades,FinraMarketHoursVolume,FinraMarketHoursTrades,FinraTotalVolume,FinraTotalTrades,"
    "MarketVWAP,DailyVWAP"
)


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
    ],
)
def test_temporary_names_are_never_read(path: str, temporary: bool) -> None:
    assert is_temporary(path) is temporary


def test_split_tokens_drops_empties_and_repeats_keeping_order() -> None:
    assert split_tokens(";BBG000BVPV84;;BBG000B9XRY4;BBG000BVPV84;") == ["BBG000BVPV84", "BBG000B9XRY4"]
    assert split_tokens("") == []


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
    )
    assert not master.issues


def _master(rows: list[str]) -> bytes:
    header = MASTER_SAMPLE.read_text().splitlines()[0]
    return ("\n".join([header, *rows]) + "\n").encode()


def _row(secid: int, figi: str, tickers: str = "ABC", spans: str = "20070103:29991231") -> str:
    return f"{secid},{tickers},{spans},Name {secid},{spans},,,L,Equity Shares,,,NYSE,{spans},,,,,{figi}"


def test_master_multi_figi_invalid_and_blank() -> None:
    master = parse_master(
        _master(
            [
                _row(1, "BBG000BVPV84;;BBG000B9XRY4;BBG000BVPV84"),
                _row(2, "BBG000BPH450"),  # bad check digit only -> custom
                _row(3, ""),
                _row(4, "BBG000BSWKH7;NOTAFIGI"),
            ]
        )
    )
    routes = master.uids_by_secid()
    assert routes[1] == ["BBG000BVPV84", "BBG000B9XRY4"]
    assert routes[2] == ["algoseek-secid-2"] and routes[3] == ["algoseek-secid-3"]
    assert routes[4] == ["BBG000BSWKH7"]
    latest = master.assets.set_index("unique_identifier")["latest_figi"]
    assert latest["BBG000BVPV84"] == "BBG000B9XRY4"
    assert {(i.secid, i.token) for i in master.issues} == {(2, "BBG000BPH450"), (4, "NOTAFIGI")}


@pytest.mark.parametrize(
    ("rows", "fragment"),
    [
        ([_row(1, "BBG000BVPV84"), _row(1, "BBG000B9XRY4")], "SecId 1 more than once"),
        ([_row(1, ""), _row(2, "")], "blank on every row"),
        ([_row(1, "BBG000BVPV84").replace("1,", "x,", 1)], "non-integer SecId"),
    ],
)
def test_bad_masters_are_refused(rows: list[str], fragment: str) -> None:
    with pytest.raises(BadFileError, match=fragment):
        parse_master(_master(rows))


def test_master_missing_column_is_refused() -> None:
    with pytest.raises(BadFileError, match="missing required column"):
        parse_master(b"SecId,Tickers\n1,ABC\n")


def test_ticker_history_resolution_is_dated_and_case_sensitive() -> None:
    master = parse_master(
        _master(
            [
                _row(1, "BBG000BVPV84", "OLD;NEW", "20070103:20150630;20150701:29991231"),
                _row(2, "BBG000B9XRY4", "OLD", "20160101:20991231"),
                _row(3, "BBG000BPH459", "CpN", "20070103:29991231"),
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


def test_time_index_is_1600_new_york_in_utc_across_dst() -> None:
    assert close_time_index("20240102") == "2024-01-02T21:00:00Z"
    assert close_time_index("20240702") == "2024-07-02T20:00:00Z"


def test_schema_detection_by_header_names() -> None:
    assert detect_schema(STANDARD_HEADER.split(",")) == "standard"
    assert detect_schema(PRIMARY_HEADER.split(",")) == "primary"
    with pytest.raises(BadFileError, match="unknown schema"):
        detect_schema(["SecId;TradeDate;Open"])
    with pytest.raises(BadFileError, match=r"missing required column.*MarketHoursVolume"):
        detect_schema(STANDARD_HEADER.split(",")[:-1])
    with pytest.raises(BadFileError, match=r"unknown column.*Bogus"):
        detect_schema([*STANDARD_HEADER.split(","), "Bogus"])


def test_standard_sample_parses_exactly() -> None:
    bars = parse_bars(AAPL_SAMPLE.read_bytes())
    assert bars.schema == "standard" and bars.secids == [33449] and bars.table.num_rows == 3342
    split = next(r for r in bars.table.to_pylist() if r["tradedate"] == "20140609")
    assert split["open"] == 92.69 and split["close"] == 93.70 and split["volume"] == 72888472
    assert split["adjustmentreason"] == "BonusSame" and split["adjustmentfactor"] == 0.142857142857143
    assert split["time_index"] == "2014-06-09T20:00:00Z"


def test_primary_columns_map_by_name_in_any_order() -> None:
    cols = PRIMARY_HEADER.split(",")
    values = dict(
        zip(
            cols,
            [
                "7",
                "20240102",
                "ABC",
                "Abc Inc",
                "NYSE",
                "US0000000001",
                "10.5",
                "100",
                "09:30:00.123",
                "11",
                "10:00:00",
                "10",
                "11:00:00",
                "10.75",
                "200",
                "16:00:00",
                "1000",
                "10",
                "1500",
                "15",
                "300",
                "3",
                "400",
                "4",
                "10.6",
                "10.61",
            ],
            strict=True,
        )
    )
    shuffled = list(reversed(cols))
    data = (",".join(shuffled) + "\n" + ",".join(values[c] for c in shuffled) + "\n").encode()
    row = parse_bars(data).table.to_pylist()[0]
    assert (row["open"], row["high"], row["low"], row["close"], row["volume"]) == (10.5, 11, 10, 10.75, 1500)
    assert row["vwap"] == 10.6 and row["closetime"] == "16:00:00" and row["listedtotaltrades"] == 15
    assert row["time_index"] == "2024-01-02T21:00:00Z"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("1,2024010,A,1,1,1,1,1", "unparsable TradeDate '2024010' on line 2"),
        ("1,20240231,A,1,1,1,1,1", "unparsable TradeDate '20240231'"),
        ("1,20240102,A,abc,1,1,1,1", "invalid value 'abc'"),
        ("1,20240102,A,1,1,1,1,1\n1,20240102,A,2,1,1,1,1", "duplicate TradeDate 20240102 for SecId 1"),
        (",20240102,A,1,1,1,1,1", "blank SecId on line 2"),
        ("1,20240102,A,1,1,1,1", "Expected 8 columns"),
    ],
)
def test_bad_bar_rows_are_refused_with_a_reason(body: str, fragment: str) -> None:
    with pytest.raises(BadFileError, match=fragment):
        parse_bars(f"{STANDARD_HEADER}\n{body}\n".encode())


def test_bom_crlf_and_header_only_are_accepted() -> None:
    data = b"\xef\xbb\xbf" + f"{STANDARD_HEADER}\r\n1,20240102,A,1,2,0.5,1.5,100\r\n".encode()
    assert parse_bars(data).table.to_pylist()[0]["close"] == 1.5
    assert parse_bars(f"{STANDARD_HEADER}\n".encode()).table.num_rows == 0


def test_non_utf8_and_long_lines_are_refused() -> None:
    with pytest.raises(BadFileError, match="UTF"):
        parse_bars(f"{STANDARD_HEADER}\n1,20240102,A\xff,1,1,1,1,1\n".encode("latin-1"))
    with pytest.raises(BadFileError, match="max_line_bytes"):
        parse_bars(f"{STANDARD_HEADER}\n".encode() + b"9" * 300_000 + b"\n", max_line_bytes=65536)


def test_fan_out_copies_rows_to_every_figi_and_drops_unmapped() -> None:
    data = f"{STANDARD_HEADER}\n1,20240102,A,1,2,0.5,1.5,100\n2,20240102,B,3,4,2,3.5,200\n".encode()
    table = fan_out([parse_bars(data).table], {1: ["F1", "F2"]})
    assert table.column_names == OUTPUT_COLUMNS
    assert [(r["unique_identifier"], r["secid"]) for r in table.to_pylist()] == [("F1", 1), ("F2", 1)]
