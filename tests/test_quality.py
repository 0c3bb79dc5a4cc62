"""Data-quality checks: units on small frames and the real AAPL sample, then end to end via the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from algoseek_sync.config import parse_expected_by
from algoseek_sync.formats.bars import parse_bars
from algoseek_sync.quality.calendar import Sessions, build, due_time
from algoseek_sync.quality.checks import Finding, Params, check
from conftest import AAPL_SAMPLE, MASTER_SAMPLE, Sandbox, planted_drop
from conftest import STANDARD_HEADER as STANDARD


@pytest.fixture(scope="module")
def xnys() -> Sessions:
    return build("XNYS")


def bars(*rows: str) -> pa.Table:
    return parse_bars("\n".join([STANDARD, *rows]).encode()).table


def row(
    day: str,
    close: float = 10.0,
    *,
    o: float | None = None,
    h: float | None = None,
    lo: float | None = None,
    v: int = 100,
    event: str = ",",
) -> str:
    o = close if o is None else o
    h = max(o, close) + 0.5 if h is None else h
    lo = min(o, close) - 0.5 if lo is None else lo
    return f"1,{day},T,{o},{h},{lo},{close},{v},1,1,{event}"


def kinds(found: list[Finding]) -> list[tuple[str, int | None, int | None]]:
    return sorted((f.kind, f.start, f.end) for f in found)


def test_the_real_aapl_sample_has_no_missing_session_and_an_explained_split(xnys: Sessions) -> None:
    table = parse_bars(AAPL_SAMPLE.read_bytes()).table
    found = check(table, xnys, {33449: [(19801212, 29991231)]})
    by_kind = {f.kind for f in found}
    assert "missing_session" not in by_kind and "non_session_row" not in by_kind  # 2020-04-10 is a holiday
    assert "unexplained_jump" not in by_kind  # the 2014-06-09 7:1 split carries its event row
    opens = [f for f in found if f.kind == "open_outside_range"]
    assert 20191220 in {f.start for f in opens} and all(f.severity == "info" for f in opens)


def test_the_same_split_without_its_event_row_is_an_unexplained_jump(xnys: Sessions) -> None:
    text = AAPL_SAMPLE.read_text().replace(",0.142857142857143,BonusSame", ",,")
    found = check(parse_bars(text.encode()).table, xnys, {})
    jumps = [f for f in found if f.kind == "unexplained_jump"]
    assert [(f.start, round(float(f.observed["move"]), 3)) for f in jumps] == [(20140609, -0.855)]


def test_gaps_are_sessions_within_the_listing_period(xnys: Sessions) -> None:
    # 2024-07-03 is an early close (a session), 07-04 a holiday, the weekend is no session
    table = bars(row("20240701"), row("20240702"), row("20240708"), row("20240710"))
    assert kinds(check(table, xnys, {})) == [
        ("missing_session", 20240703, 20240705),
        ("missing_session", 20240709, 20240709),
    ]
    # delisted between the two listing periods: that stretch is not missing
    listed = {1: [(20240101, 20240702), (20240708, 29991231)]}
    assert kinds(check(table, xnys, listed)) == [("missing_session", 20240709, 20240709)]


def test_rows_on_weekends_and_holidays(xnys: Sessions) -> None:
    table = bars(row("20240703"), row("20240704"), row("20240705"), row("20240706"))
    assert kinds(check(table, xnys, {})) == [
        ("non_session_row", 20240704, 20240704),
        ("non_session_row", 20240706, 20240706),
    ]


def test_impossible_bars_are_errors_and_a_wild_open_is_info(xnys: Sessions) -> None:
    table = bars(
        row("20240102", h=9.0, lo=11.0),
        row("20240103", close=12.0, o=10.0, h=11.0, lo=9.0),
        row("20240104", close=-1.0, o=1.0, h=1.0, lo=-2.0),
        row("20240105", v=-5),
        "1,20240108,T,,,,,500,1,1,,",
        row("20240109", o=20.0, h=11.0, lo=9.0),
    )
    found = check(table, xnys, {}, has_events=False)  # the odd prices would be jumps too
    assert {(f.kind, f.start, f.severity) for f in found} == {
        ("high_below_low", 20240102, "error"),
        ("close_outside_range", 20240103, "error"),
        ("non_positive_price", 20240104, "error"),
        ("negative_volume", 20240105, "error"),
        ("missing_price_with_volume", 20240108, "error"),
        ("open_outside_range", 20240109, "info"),
    }


def test_stale_prices_need_n_sessions_of_the_same_close_and_no_volume(xnys: Sessions) -> None:
    days = ["20240102", "20240103", "20240104", "20240105", "20240108", "20240109", "20240110"]
    five = bars(row(days[0], 10.0), *(row(d, 11.0, v=0) for d in days[1:6]), row(days[6], 11.5))
    assert kinds(check(five, xnys, {})) == [("stale_price", 20240103, 20240109)]
    four = bars(
        row(days[0], 10.0), *(row(d, 11.0, v=0) for d in days[1:5]), row(days[5], 11.0), row(days[6], 11.5)
    )
    assert kinds(check(four, xnys, {})) == []
    assert kinds(check(four, xnys, {}, Params(stale_sessions=4))) == [("stale_price", 20240103, 20240108)]


def test_jumps_beyond_the_threshold_without_an_event(xnys: Sessions) -> None:
    table = bars(row("20240102", 10.0), row("20240103", 14.5), row("20240104", 7.0, event="0.5,Cons"))
    found = check(table, xnys, {})
    assert kinds(found) == [("unexplained_jump", 20240103, 20240103)]
    assert found[0].observed == {"previous_close": 10.0, "close": 14.5, "move": 0.45}
    assert check(table, xnys, {}, has_events=False) == []  # a dataset without events: not judged


def test_late_delivery_is_due_at_the_configured_local_time(xnys: Sessions) -> None:
    expected_by = parse_expected_by("20:00 America/New_York")
    assert expected_by is not None
    due = due_time(20240702, expected_by)
    assert due == 1719964800.0  # 2024-07-03 00:00 UTC = 20:00 New York (EDT)
    assert xnys.last_completed(due) == 20240702
    assert xnys.close_of(20240703) == 1720026000.0  # the early close, 13:00 New York (17:00 UTC)


# -- end to end -------------------------------------------------------------------------------------


def quality(box: Sandbox, *args: str) -> list[dict]:
    return json.loads(box.cli("quality", "--format", "json", *args).out)


def found_set(rows: list[dict]) -> set[tuple]:
    """Findings (or the planted list, which has the same keys) as (kind, SecId, first day, last day)."""
    return {(r["kind"], r["secid"], r["start_date"], r["end_date"]) for r in rows}


def test_a_generated_drop_lists_exactly_the_planted_problems_and_a_redelivery_resolves_one(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    planted = planted_drop(sandbox, tmp_path / "planted.json", "--secids", "40", "--days", "60")
    rows = quality(sandbox)
    assert found_set(rows) == found_set(planted)
    assert all(r["unique_identifier"] and r["severity"] for r in rows)
    gap = next(p for p in planted if p["kind"] == "missing_session")
    status = json.loads(sandbox.cli("status", "--json").out)
    assert status["quality"]["open"]["missing_session"] == 1
    assert "data quality:" in sandbox.cli("status").out

    # the vendor re-delivers the SecId's file with the missing day: the finding is resolved
    sandbox.cli("generate", str(tmp_path / "fresh"), "--secids", "40", "--days", "60")
    name = f"{gap['secid']}.csv.gz"
    (sandbox.drop / name).write_bytes((tmp_path / "fresh" / name).read_bytes())
    sandbox.cli("run", "--once")
    assert gap["kind"] not in {r["kind"] for r in quality(sandbox)}
    resolved = [r for r in quality(sandbox, "--resolved", "--kind", "missing_session")]
    assert len(resolved) == 1 and resolved[0]["resolved_at"] is not None
    assert [r["kind"] for r in quality(sandbox, "--secid", str(gap["secid"]), "--resolved")] == [
        "missing_session"
    ]


def test_a_missing_tradedate_file_and_its_late_redelivery(sandbox: Sandbox, tmp_path: Path) -> None:
    planted_file = tmp_path / "planted.json"
    options = ["--secids", "12", "--days", "15", "--aggregation", "tradedate"]
    planted = planted_drop(sandbox, planted_file, *options)
    assert found_set(quality(sandbox)) == found_set(planted)
    name = next(p["how"] for p in planted if p["how"].endswith(" not delivered")).split()[0]
    day = f"{name[:4]}-{name[4:6]}-{name[6:8]}"
    assert sorted(p["secid"] for p in planted if p["how"] == f"{name} not delivered") == list(
        range(10000, 10012)
    )
    assert all(p["start_date"] == day for p in planted if p["how"] == f"{name} not delivered")
    sandbox.cli("generate", str(tmp_path / "fresh"), *options)
    (sandbox.drop / name).write_bytes((tmp_path / "fresh" / name).read_bytes())
    sandbox.cli("run", "--once")
    assert found_set(quality(sandbox)) == found_set([p for p in planted if name not in p["how"]])


def test_a_tradedate_file_compared_with_its_datasets_universe(sandbox: Sandbox) -> None:
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    # the 9th: AAPL, MSFT and AMZN; the 13th: AAPL and MSFT only, and SecId 555 (not in the master)
    amzn = "33127,20200409,AMZN,2040,2050,2030,2042.5,100,1,1,,"
    rows = [
        "33449,{day},AAPL,268,274,265,273.25,100,1,1,,",
        "39827,{day},MSFT,170,172,169,171,100,1,1,,",
    ]
    sandbox.put("20200409.csv", "\n".join([STANDARD, *(r.format(day=20200409) for r in rows), amzn]) + "\n")
    lines = [STANDARD, *(r.format(day=20200413) for r in rows), "555,20200413,X,1,1,1,1,1,1,1,,"]
    sandbox.put("20200413.csv", "\n".join(lines) + "\n")
    sandbox.cli("run", "--once")
    found = found_set(quality(sandbox, "--since", "2020-04-13"))
    assert ("not_delivered", 33127, "2020-04-13", "2020-04-13") in found
    assert not any(k == "not_delivered" and s in (33449, 39827) for k, s, *_ in found)


def test_a_secid_that_comes_in_another_dataset_only_is_not_missing_from_this_one(sandbox: Sandbox) -> None:
    """AMZN comes in the standard-adjusted files only: a primary tradedate file without it lacks nothing."""
    from conftest import PRIMARY_HEADER

    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    sandbox.put("std/20200409.csv", f"{STANDARD}\n33127,20200409,AMZN,2040,2050,2030,2042.5,100,1,1,,\n")
    primary = "33449,{day},AAPL,Apple Inc,NASDAQ,US0378331005,268,10,09:30:00,274,10:00:00,265,11:00:00,"
    primary += "273.25,20,16:00:00,100,5,120,6,30,2,40,3,270.1,270.2"
    days = (20200409, 20200413)
    for day in days:
        sandbox.put(f"pri/{day}.csv", f"{PRIMARY_HEADER}\n{primary.format(day=day)}\n")
    sandbox.cli("run", "--once")
    status = json.loads(sandbox.cli("status", "--json").out)
    assert status["files"]["bars"] == {"done": 3} and set(status["datasets"]) == {
        "primary",
        "standard-adjusted",
    }
    assert quality(sandbox, "--kind", "not_delivered") == []
    # the standard-adjusted file of the 13th without AMZN: missing from that dataset
    sandbox.put("std/20200413.csv", f"{STANDARD}\n33449,20200413,AAPL,268,274,265,273.25,100,1,1,,\n")
    sandbox.cli("run", "--once")
    assert found_set(quality(sandbox, "--kind", "not_delivered")) == {
        ("not_delivered", 33127, "2020-04-13", "2020-04-13")
    }


def test_late_delivery_on_the_daemons_clock(tmp_path: Path) -> None:
    from algoseek_sync.app import open_app
    from algoseek_sync.config import load_settings

    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "equity_security_master.csv").write_bytes(MASTER_SAMPLE.read_bytes())
    (drop / "33449.csv").write_bytes(AAPL_SAMPLE.read_bytes())  # last day 2020-04-13
    settings = load_settings(
        env={"ALGOSEEK_SYNC_DROP_DIR": str(drop), "ALGOSEEK_SYNC_STATE_DIR": str(tmp_path / "s")}
    )
    settings = settings.replace("quality", expected_by="20:00 America/New_York")
    app = open_app(settings)
    from algoseek_sync.app import run_once

    run_once(app)
    by_due = due_time(20200414, parse_expected_by("20:00 America/New_York"))  # type: ignore[arg-type]
    app.quality.clock = lambda: by_due - 60  # the 14th's delivery is not due yet
    assert app.quality.tick() is False
    app.quality.clock = lambda: by_due + 60
    assert app.quality.tick() is True
    late = app.quality.findings.query(
        __import__("algoseek_sync.quality.findings", fromlist=["Filter"]).Filter(kind="late_delivery")
    )
    assert [(r["start_date"], r["severity"]) for r in late] == [(20200414, "error")]
    app.close()
