"""Deliveries as vendors really send them: each odd row, conflict or file stops only itself.

Each test drops real-looking files, runs the CLI as a subprocess, and reads back what a
user would read: ``bars``, ``status --json`` (its problems section) and the exit code.
"""

from __future__ import annotations

import json

from conftest import AAPL_FIGI, AAPL_SAMPLE, MASTER_SAMPLE, Sandbox
from conftest import STANDARD_HEADER as STANDARD

MSFT_FIGI, AMZN_FIGI = "BBG000BPH459", "BBG000BVPV84"


def status(box: Sandbox) -> dict:
    return json.loads(box.cli("status", "--json").out)


def problems(box: Sandbox, kind: str) -> list[dict]:
    return [p for p in status(box)["problems"]["recent"] if p["kind"] == kind]


def bars(box: Sandbox, *args: str) -> list[dict[str, str]]:
    return box.cli("bars", *args, "--format", "csv").csv()


def master(rows: list[str]) -> str:
    header = MASTER_SAMPLE.read_text().splitlines()[0]
    return "\n".join([header, *rows]) + "\n"


def sample_row(secid: str) -> str:
    return next(line for line in MASTER_SAMPLE.read_text().splitlines() if line.startswith(f"{secid},"))


def with_figis(row: str, figis: str) -> str:
    return row.rsplit(",", 1)[0] + "," + figis


def day(secid: int, date: str, close: float, ticker: str = "T") -> str:
    return f"{secid},{date},{ticker},{close},{close + 1},{close - 1},{close},100,1,1,,"


def test_figi_under_two_secids_in_a_first_master_applies_and_is_reported(sandbox: Sandbox) -> None:
    # AAPL's FIGI listed under MSFT's SecId too (a re-issued SecId): the master still applies
    msft = with_figis(sample_row("39827"), f"{MSFT_FIGI};{AAPL_FIGI}")
    sandbox.put("equity_security_master.csv", master([sample_row("33127"), sample_row("33449"), msft]))
    sandbox.put("33449.csv", AAPL_SAMPLE)
    sandbox.put("39827.csv", f"{STANDARD}\n{day(39827, '20240102', 370.0)}\n")
    result = sandbox.cli("run", "--once")
    assert "done 3" in result.err.splitlines()[-1]
    assert status(sandbox)["files"]["master"] == {"done": 1}
    # the rule: the SecId that lists it as its current (last) FIGI wins: MSFT's SecId 39827 here
    conflict = problems(sandbox, "figi_conflict")
    assert len(conflict) == 1 and "33449" in conflict[0]["detail"] and "39827" in conflict[0]["detail"]
    assert "kept on SecId 39827" in conflict[0]["action"]
    assert [r["secid"] for r in bars(sandbox, "--figi", AAPL_FIGI)] == ["39827"]
    # SecId 33449 lost its only FIGI: its bars go to its custom asset, nothing is dropped
    assert len(bars(sandbox, "--figi", "algoseek-secid-33449")) == 3342


def test_a_conflicting_newer_master_does_not_move_routing(sandbox: Sandbox) -> None:
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    sandbox.put("33449.csv", AAPL_SAMPLE)
    sandbox.cli("run", "--once")
    msft = with_figis(sample_row("39827"), f"{MSFT_FIGI};{AAPL_FIGI}")
    sandbox.put("later/equity_security_master.csv", master([sample_row("33127"), sample_row("33449"), msft]))
    sandbox.put("39827.csv", f"{STANDARD}\n{day(39827, '20240102', 370.0)}\n")
    assert sandbox.cli("run", "--once").code == 0
    # AAPL's FIGI was routed to 33449 before: it stays there, and the conflict is named
    assert {r["secid"] for r in bars(sandbox, "--figi", AAPL_FIGI)} == {"33449"}
    assert [r["close"] for r in bars(sandbox, "--figi", MSFT_FIGI)] == ["370.0"]
    conflict = problems(sandbox, "figi_conflict")
    assert len(conflict) == 1 and "already routed" in conflict[0]["action"]


def test_master_with_a_duplicate_row_and_a_row_without_secid_applies(sandbox: Sandbox) -> None:
    rows = [sample_row("33127"), sample_row("33449"), sample_row("33449"), sample_row("39827")]
    blank = "," + sample_row("39827").split(",", 1)[1]
    sandbox.put("equity_security_master.csv", master([*rows, blank]))
    sandbox.put("33449.csv", AAPL_SAMPLE)
    assert sandbox.cli("run", "--once").code == 0
    assert len(bars(sandbox, "--figi", AAPL_FIGI)) == 3342
    kinds = {p["kind"]: p for p in status(sandbox)["problems"]["recent"]}
    assert kinds["master_duplicate"]["action"] == "merged"
    assert kinds["master_row_skipped"]["line"] == 6 and "no SecId" in kinds["master_row_skipped"]["detail"]


def test_bar_file_with_an_extra_column_and_a_repeated_day_keeps_its_good_rows(sandbox: Sandbox) -> None:
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    lines = AAPL_SAMPLE.read_text().splitlines()
    rows = [f"{line},x{i}" for i, line in enumerate(lines[1:])]
    correction = rows[-1].replace(",273.25,", ",274.00,")  # the last day again, corrected, appended
    sandbox.put("33449.csv", "\n".join([f"{lines[0]},VendorNote", *rows, correction]) + "\n")
    assert sandbox.cli("run", "--once").code == 0
    stored = bars(sandbox, "--figi", AAPL_FIGI)
    assert len(stored) == 3342
    assert stored[-1]["close"] == "274.0"  # the last row of a repeated day wins
    assert json.loads(stored[0]["extra"]) == {"VendorNote": "x0"}
    extra = problems(sandbox, "extra_columns")
    assert extra[0]["path"] == "33449.csv" and "VendorNote" in extra[0]["detail"]
    conflict = problems(sandbox, "conflicting_rows")
    assert len(conflict) == 1 and "273.25" in conflict[0]["detail"] and "274.0" in conflict[0]["detail"]


def test_tradedate_file_listing_a_secid_twice_identically_is_stored(sandbox: Sandbox) -> None:
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    row = day(33449, "20240102", 185.0, "AAPL")
    sandbox.put("20240102.csv", f"{STANDARD}\n{row}\n{day(39827, '20240102', 370.0, 'MSFT')}\n{row}\n")
    assert sandbox.cli("run", "--once").code == 0
    assert [r["secid"] for r in bars(sandbox, "--date", "2024-01-02")] == ["33449", "39827"]
    assert problems(sandbox, "duplicate_rows")[0]["line"] == 2  # the same as line 4


def test_secid_file_holding_another_secids_rows_stores_them_under_the_rows_secid(sandbox: Sandbox) -> None:
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    sandbox.put(
        "33449.csv", f"{STANDARD}\n{day(33449, '20240102', 185.0)}\n{day(39827, '20240102', 370.0)}\n"
    )
    assert sandbox.cli("run", "--once").code == 0
    assert [r["close"] for r in bars(sandbox, "--figi", MSFT_FIGI)] == ["370.0"]
    foreign = problems(sandbox, "foreign_secid")
    assert foreign[0]["path"] == "33449.csv" and "SecId 39827 (1 row(s))" in foreign[0]["detail"]


def test_one_bad_row_skips_only_itself_and_a_redelivery_clears_the_problem(sandbox: Sandbox) -> None:
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    good = [day(33449, f"202401{d:02d}", 185.0 + d) for d in range(2, 6)]
    broken = [*good[:2], good[2].replace(",189.0,190.0,", ",n/a,190.0,", 1), *good[3:]]
    sandbox.put("33449.csv", "\n".join([STANDARD, *broken]) + "\n")
    assert sandbox.cli("run", "--once").code == 0
    assert [r["tradedate"] for r in bars(sandbox, "--figi", AAPL_FIGI)] == [
        "2024-01-02",
        "2024-01-03",
        "2024-01-05",
    ]
    bad = problems(sandbox, "bad_rows")
    assert bad[0]["line"] == 4 and "'n/a' is not a number" in bad[0]["detail"]
    sandbox.put("33449.csv", "\n".join([STANDARD, *good]) + "\n")
    sandbox.cli("run", "--once")
    assert len(bars(sandbox, "--figi", AAPL_FIGI)) == 4
    assert problems(sandbox, "bad_rows") == []  # fixed by the re-delivery: no longer listed
