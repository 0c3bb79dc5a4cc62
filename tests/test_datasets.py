"""Datasets as a key, adjusted series, stable columns and the upgrade from layout 1, via the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import AAPL_FIGI, AAPL_SAMPLE, MASTER_SAMPLE, Sandbox

REPO = Path(__file__).resolve().parents[1]
LAYOUT1 = REPO / "tests" / "data" / "layout1" / "state.db"
PRIMARY = (
    "SecId,TradeDate,Ticker,Name,PrimaryExchange,ISIN,OpenPrice,OpenSize,OpenTime,HighPrice,HighTime,LowPrice,"
    "LowTime,ClosePrice,CloseSize,CloseTime,ListedMarketHoursVolume,ListedMarketHoursTrades,ListedTotalVolume,"
    "ListedTotalTrades,FinraMarketHoursVolume,FinraMarketHoursTrades,FinraTotalVolume,FinraTotalTrades,"
    "MarketVWAP,DailyVWAP"
)
STANDARD = AAPL_SAMPLE.read_text().splitlines()[0]


def primary_row(secid: int, day: str, close: float) -> str:
    return (
        f"{secid},{day},AAPL,Apple Inc,NASDAQ,US0378331005,{close},100,09:30:00.5,{close + 1},10:00:00,"
        f"{close - 1},11:00:00,{close},200,16:00:00,1000,10,1500,15,400,4,500,5,{close},{close}"
    )


def csv_rows(box: Sandbox, *args: str) -> list[dict[str, str]]:
    return box.cli("bars", *args, "--format", "csv").csv()


def test_two_datasets_for_the_same_secid_stay_apart(sandbox: Sandbox) -> None:
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    sandbox.put("standard/33449.csv", AAPL_SAMPLE)
    sandbox.put("primary/33449.csv", "\n".join([PRIMARY, primary_row(33449, "20200413", 270.0)]) + "\n")
    sandbox.cli("run", "--once")
    ambiguous = sandbox.cli("bars", "--figi", AAPL_FIGI, check=False)
    assert (
        ambiguous.code == 2 and "primary, standard-adjusted" in ambiguous.err and "--dataset" in ambiguous.err
    )
    primary = csv_rows(sandbox, "--figi", AAPL_FIGI, "--dataset", "primary")
    standard = csv_rows(
        sandbox, "--figi", AAPL_FIGI, "--dataset", "standard-adjusted", "--start", "2020-04-13"
    )
    assert [(r["dataset"], r["close"], r["volume"]) for r in primary] == [("primary", "270.0", "1500")]
    assert [(r["dataset"], r["close"], r["volume"]) for r in standard] == [
        ("standard-adjusted", "273.25", "31681726")
    ]
    datasets = json.loads(sandbox.cli("status", "--json").out)["datasets"]
    assert datasets["primary"]["rows"] == 1 and datasets["standard-adjusted"]["rows"] == 3342
    # a re-delivery of one dataset never touches the other's rows
    sandbox.put("standard/33449.csv", AAPL_SAMPLE.read_text().replace(",273.25,", ",999.0,"))
    sandbox.cli("run", "--once")
    assert csv_rows(sandbox, "--figi", AAPL_FIGI, "--dataset", "primary") == primary
    assert (
        csv_rows(sandbox, "--figi", AAPL_FIGI, "--dataset", "standard-adjusted", "--start", "2020-04-13")[0][
            "close"
        ]
        == "999.0"
    )


def test_adjusted_series_of_the_real_aapl_sample(sandbox: Sandbox, samples) -> None:
    samples(sandbox)
    sandbox.cli("run", "--once")
    raw = {
        r["tradedate"]: r
        for r in json.loads(sandbox.cli("bars", "--figi", AAPL_FIGI, "--format", "json").out)
    }
    adjusted = {
        r["tradedate"]: r
        for r in json.loads(sandbox.cli("bars", "--figi", AAPL_FIGI, "--adjusted", "--format", "json").out)
    }
    last = raw["2020-04-13"]
    # before and at the split, a CashDiv day, the last day
    for day in ("2014-06-06", "2014-06-09", "2019-08-09", "2020-04-13"):
        row = raw[day]
        price_ratio = row["cumulativepricefactor"] / last["cumulativepricefactor"]
        volume_ratio = last["cumulativevolumefactor"] / row["cumulativevolumefactor"]
        for column in ("open", "high", "low", "close"):
            assert adjusted[day][column] == row[column] * price_ratio
        assert adjusted[day]["volume"] == row["volume"] * volume_ratio
    assert adjusted["2020-04-13"]["close"] == raw["2020-04-13"]["close"]
    assert raw["2019-08-09"]["adjustmentreason"] == "CashDiv"
    move = adjusted["2014-06-09"]["close"] / adjusted["2014-06-06"]["close"] - 1
    assert 0.015 < move < 0.017  # about +1.6 %, where the raw close fell by 85 %
    no_factors = sandbox.cli("bars", "--figi", AAPL_FIGI, "--adjusted", "--dataset", "primary", check=False)
    assert no_factors.code == 2


def test_a_new_event_in_a_tradedate_file_rewrites_that_secids_adjusted_history_only(sandbox: Sandbox) -> None:
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    days = ["20240102", "20240103"]
    rows = [f"{s},{d},T,10,11,9,10,100,1,1,," for d in days for s in (33449, 39827)]
    sandbox.put("20240102.csv", "\n".join([STANDARD, rows[0], rows[1]]) + "\n")
    sandbox.put("20240103.csv", "\n".join([STANDARD, rows[2], rows[3]]) + "\n")
    sandbox.cli("run", "--once")
    before_msft = csv_rows(sandbox, "--secid", "39827", "--adjusted")
    # a 2:1 event for AAPL on the 4th, delivered in the day's tradedate file
    sandbox.put(
        "20240104.csv",
        "\n".join(
            [
                STANDARD,
                "33449,20240104,T,5,6,4,5,200,2,2,0.5,Subdiv",
                "39827,20240104,T,10,11,9,10,100,1,1,,",
            ]
        )
        + "\n",
    )
    sandbox.cli("run", "--once")
    assert [r["close"] for r in csv_rows(sandbox, "--secid", "33449", "--adjusted")] == ["5.0", "5.0", "5.0"]
    assert [r["volume"] for r in csv_rows(sandbox, "--secid", "33449", "--adjusted")] == [
        "200.0",
        "200.0",
        "200.0",
    ]
    assert csv_rows(sandbox, "--secid", "39827", "--adjusted")[:2] == before_msft


def test_columns_and_types_are_the_same_for_every_range(sandbox: Sandbox, samples) -> None:
    samples(sandbox)
    sandbox.cli("run", "--once")
    quiet = sandbox.cli(
        "bars", "--figi", AAPL_FIGI, "--start", "2020-04-09", "--end", "2020-04-13", "--format", "csv"
    )
    split = sandbox.cli(
        "bars", "--figi", AAPL_FIGI, "--start", "2014-06-09", "--end", "2014-06-09", "--format", "csv"
    )
    assert quiet.out.splitlines()[0] == split.out.splitlines()[0]
    assert quiet.out.splitlines()[0].startswith(
        "dataset,time_index,tradedate,unique_identifier,secid,ticker,open"
    )
    row = json.loads(
        sandbox.cli("bars", "--figi", AAPL_FIGI, "--start", "2020-04-13", "--format", "json").out
    )[0]
    assert isinstance(row["volume"], int) and row["tradedate"] == "2020-04-13"
    assert isinstance(row["close"], float) and row["adjustmentfactor"] is None
    table = sandbox.cli("bars", "--figi", AAPL_FIGI, "--start", "2020-04-13").out.splitlines()
    assert table[0].startswith("trade date") and table[1].startswith("2020-04-13")
    day = sandbox.cli("bars", "--date", "2020-04-13", "--format", "csv").csv()
    assert [(r["unique_identifier"], r["close"]) for r in day] == [(AAPL_FIGI, "273.25")]


def test_a_layout1_state_database_is_upgraded_in_place(sandbox: Sandbox) -> None:
    sandbox.state.mkdir()
    shutil.copyfile(LAYOUT1, sandbox.state / "state.db")
    refused = sandbox.cli("status", check=False)
    assert refused.code == 78 and "layout version 1" in refused.err and "run --once" in refused.err
    sandbox.cli("run", "--once")  # the daemon (or any writing command) upgrades it
    aapl = csv_rows(sandbox, "--secid", "33449", "--dataset", "standard-adjusted")
    assert len(aapl) == 128  # 64 days, once per FIGI of the SecId, from one stored copy
    assert {r["unique_identifier"] for r in aapl} == {AAPL_FIGI, "BBG000BSWKH7"}
    split = next(r for r in aapl if r["tradedate"] == "2014-06-09" and r["unique_identifier"] == AAPL_FIGI)
    assert (split["open"], split["close"], split["volume"], split["adjustmentreason"]) == (
        "92.69",
        "93.7",
        "72888472",
        "BonusSame",
    )
    msft = csv_rows(sandbox, "--secid", "39827", "--dataset", "primary")
    assert [(r["tradedate"], r["close"], r["opentime"], r["lowtime"]) for r in msft] == [
        ("2024-01-02", "372.25", "09:30:00.123", "11:00:00.500"),
        ("2024-01-03", "373.25", "09:30:00.123", "11:00:00.500"),
        ("2024-01-04", "374.25", "09:30:00.123", "11:00:00.500"),
    ]
    status = json.loads(sandbox.cli("status", "--json").out)
    assert status["files"]["bars"] == {"done": 2} and status["datasets"]["standard-adjusted"]["rows"] == 64
