"""End to end on the embedded store: drop files, `run --once` as a subprocess, read back with `bars`."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from conftest import AAPL_FIGI, AAPL_SAMPLE, MASTER_SAMPLE, Sandbox

NEW_FIGI = "BBG000BSWKH7"  # a valid FIGI we attach to SecId 33449 in a later master


def master_with(figi_for_aapl: str, extra_rows: list[str] | None = None) -> str:
    lines = MASTER_SAMPLE.read_text().splitlines()
    out = [
        line if not line.startswith("33449,") else line.rsplit(",", 1)[0] + "," + figi_for_aapl
        for line in lines
    ]
    return "\n".join(out + (extra_rows or [])) + "\n"


def status(box: Sandbox) -> dict:
    return json.loads(box.cli("status", "--json").out)


def bars_csv(box: Sandbox, *args: str) -> list[dict[str, str]]:
    return box.cli("bars", *args, "--format", "csv").csv()


def test_real_samples_end_to_end(sandbox: Sandbox, samples) -> None:
    samples(sandbox)
    sandbox.cli("run", "--once")
    rows = bars_csv(sandbox, "--figi", AAPL_FIGI)
    assert len(rows) == 3342
    split = next(r for r in rows if r["tradedate"] == "2014-06-09")
    assert split["time_index"] == "2014-06-09T20:00:00Z"
    assert (split["open"], split["high"], split["low"], split["close"], split["volume"]) == (
        "92.69",
        "93.87",
        "91.75",
        "93.7",
        "72888472",
    )
    assert (
        split["secid"] == "33449" and split["ticker"] == "AAPL" and split["adjustmentreason"] == "BonusSame"
    )
    first = rows[0]
    assert first["time_index"] == "2007-01-03T21:00:00Z" and first["close"] == "83.76"
    by_ticker = bars_csv(sandbox, "--ticker", "AAPL", "--start", "2020-04-09", "--end", "2020-04-13")
    assert [r["tradedate"] for r in by_ticker] == ["2020-04-09", "2020-04-13"]  # 2020-04-10 was a holiday
    data = status(sandbox)
    assert data["files"] == {"master": {"done": 1}, "bars": {"done": 1}}
    assert data["assets"] == {"figi": 3} and data["last_success"]
    assert data["problems"]["counts"] == {}  # a clean delivery: nothing contained, the quality step ran
    assert data["quality"]["open"]["close_outside_range"] == 38
    js = json.loads(sandbox.cli("bars", "--secid", "33449", "--start", "2020-04-13", "--format", "json").out)
    assert js == [{**js[0], "close": 273.25, "unique_identifier": AAPL_FIGI}]


def test_gzip_sub_folders_and_vendor_files_untouched(sandbox: Sandbox) -> None:
    sandbox.put("master/equity_security_master.csv.gz", gzip.compress(MASTER_SAMPLE.read_bytes()))
    sandbox.put("33/33449.csv.gz", gzip.compress(AAPL_SAMPLE.read_bytes()))
    before = {
        p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sandbox.drop.rglob("*")
        if p.is_file()
    }
    sandbox.cli("run", "--once")
    after = {
        p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sandbox.drop.rglob("*")
        if p.is_file()
    }
    assert before == after
    assert len(bars_csv(sandbox, "--secid", "33449")) == 3342


def test_redelivery_same_bytes_is_a_noop_and_changed_bytes_rewrite_history(sandbox: Sandbox, samples) -> None:
    samples(sandbox)
    sandbox.cli("run", "--once")
    path = sandbox.drop / "33449.csv"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    sandbox.cli("run", "--once")
    versions = (
        sqlite3.connect(sandbox.state / "state.db")
        .execute("SELECT state, last_error, rows FROM files WHERE path = '33449.csv' ORDER BY id")
        .fetchall()
    )
    assert versions[1][0] == "done" and "same content" in versions[1][1]
    text = AAPL_SAMPLE.read_text().replace(
        "33449,20070103,AAPL,86.28,86.58,81.90,83.76", "33449,20070103,AAPL,86.28,86.58,81.90,99.99"
    )
    path.write_text(text + "33449,20200414,AAPL,270.00,280.00,269.00,279.50,1000,1,1,,\n")
    sandbox.cli("run", "--once")
    rows = bars_csv(sandbox, "--figi", AAPL_FIGI)
    assert len(rows) == 3343
    assert rows[0]["close"] == "99.99" and rows[-1]["close"] == "279.5"
    assert rows[-1]["time_index"] == "2020-04-14T20:00:00Z"


def test_unknown_secid_is_parked_then_released_by_a_master(sandbox: Sandbox, samples) -> None:
    samples(sandbox)
    stranger = (
        "SecId,TradeDate,Ticker,Open,High,Low,Close,MarketHoursVolume\n777,20240102,NEWCO,1,2,0.5,1.5,10\n"
    )
    sandbox.put("777.csv", stranger)
    sandbox.cli("run", "--once")
    data = status(sandbox)
    parked = data["waiting_master"]
    assert [p["path"] for p in parked] == ["777.csv"]
    assert "SecId(s) 777 not in the current security master" in parked[0]["last_error"]
    assert "777.csv" in sandbox.cli("status").out
    assert sandbox.cli("bars", "--secid", "777", check=False).code == 2
    row = (
        "777,NEWCO,20240101:29991231,NewCo,20240101:29991231,,,L,Equity Shares,,,NYSE,20240101:29991231,,,,,"
    )
    sandbox.put("equity_security_master.csv", master_with(AAPL_FIGI, [row]))
    sandbox.cli("run", "--once")
    rows = bars_csv(sandbox, "--ticker", "NEWCO")
    assert [(r["unique_identifier"], r["close"]) for r in rows] == [("algoseek-secid-777", "1.5")]
    assert status(sandbox)["waiting_master"] == []


def test_new_figi_on_existing_secid_gets_full_history(sandbox: Sandbox, samples) -> None:
    samples(sandbox)
    sandbox.cli("run", "--once")
    sandbox.put("equity_security_master.csv", master_with(f"{AAPL_FIGI};{NEW_FIGI}"))
    sandbox.cli("run", "--once")
    old = bars_csv(sandbox, "--figi", AAPL_FIGI)
    new = bars_csv(sandbox, "--figi", NEW_FIGI)
    assert len(new) == 3342
    assert [{**r, "unique_identifier": ""} for r in old] == [{**r, "unique_identifier": ""} for r in new]
    db = sqlite3.connect(sandbox.state / "state.db")
    history = db.execute(
        "SELECT unique_identifier, is_latest, added_master FROM secid_assets WHERE secid = 33449 ORDER BY added_master"
    ).fetchall()
    assert history == [(AAPL_FIGI, 0, 1), (NEW_FIGI, 1, 2)]


def test_bad_files_are_quarantined_and_good_files_still_go_through(sandbox: Sandbox, samples) -> None:
    samples(sandbox)
    sandbox.cli("run", "--once")
    before = bars_csv(sandbox, "--figi", AAPL_FIGI)
    good = AAPL_SAMPLE.read_text().splitlines()
    header = good[0]
    bad = {
        "1001.csv.gz": gzip.compress(AAPL_SAMPLE.read_bytes())[:5000],
        "1002.csv": b"",
        "1003.csv": (header.replace("Close", "Klose") + "\n" + good[1] + "\n").encode(),
        "1004.csv": (header + "\n" + good[1].replace("AAPL", "A\xe9PL") + "\n").encode("latin-1"),
        "1005.csv": (header + "\n" + good[1] + "\n" + good[1] + "\n").encode(),
        "1006.csv.gz": b"this is not gzip",
        "33449.csv": (header + "\n" + good[1].replace("86.28", "eighty") + "\n").encode(),
    }
    for name, data in bad.items():
        sandbox.put(name, data)
    sandbox.put("39827.csv", header + "\n39827,20240102,MSFT,370,375,369,374.5,1000,1,1,,\n")
    result = sandbox.cli("run", "--once", check=False)
    assert result.code == 1, result.err  # files of this run were quarantined
    assert "quarantined 6" in result.err.splitlines()[-1]
    quarantined = {q["path"]: q["last_error"] for q in status(sandbox)["quarantined"]}
    assert set(quarantined) == set(bad) - {"1005.csv"}
    assert "truncated gzip" in quarantined["1001.csv.gz"]
    assert "empty" in quarantined["1002.csv"]
    assert "missing required column(s) Close" in quarantined["1003.csv"]
    assert "UTF" in quarantined["1004.csv"]
    assert "gzip" in quarantined["1006.csv.gz"]
    assert "no readable row" in quarantined["33449.csv"] and "eighty" in quarantined["33449.csv"]
    # an exact duplicate row is dropped, not the file (1005.csv repeats a row of the sample)
    problems = status(sandbox)["problems"]["recent"]
    assert [(p["kind"], p["path"]) for p in problems if p["kind"] == "duplicate_rows"] == [
        ("duplicate_rows", "1005.csv")
    ]
    assert bars_csv(sandbox, "--figi", AAPL_FIGI) == before
    assert [r["close"] for r in bars_csv(sandbox, "--secid", "39827")] == ["374.5"]
    sandbox.put("1003.csv", header + "\n" + good[1].replace("33449", "33127") + "\n")
    sandbox.cli("run", "--once")
    assert "1003.csv" not in {q["path"] for q in status(sandbox)["quarantined"]}
    assert len(bars_csv(sandbox, "--secid", "33127")) == 1


def test_crash_inside_the_transaction_leaves_nothing(sandbox: Sandbox, samples, monkeypatch) -> None:
    from algoseek_sync.app import open_app, run_once
    from algoseek_sync.config import load_settings
    from algoseek_sync.state.ledger import Ledger

    samples(sandbox)
    settings = load_settings(env=sandbox.env())
    real = Ledger.finish

    def crash(self: Ledger, marks) -> None:  # type: ignore[no-untyped-def]
        marks = list(marks)
        if any((m.rows or 0) > 100 for m in marks):
            raise KeyboardInterrupt("simulated crash between the bars and the ledger mark")
        real(self, marks)

    monkeypatch.setattr(Ledger, "finish", crash)
    app = open_app(settings)
    with pytest.raises(KeyboardInterrupt):
        run_once(app)
    app.close()
    db = sqlite3.connect(sandbox.state / "state.db")
    assert db.execute("SELECT count(*) FROM bar_chunks").fetchone() == (0,)
    assert db.execute("SELECT state FROM files WHERE path = '33449.csv'").fetchone() == ("pending",)
    monkeypatch.setattr(Ledger, "finish", real)
    sandbox.cli("run", "--once")
    assert len(bars_csv(sandbox, "--figi", AAPL_FIGI)) == 3342


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"ALGOSEEK_SYNC_BACKEND": "postgres"}, "backend.kind"),
        ({"ALGOSEEK_SYNC_STABILITY_SECONDS": "soon"}, "ALGOSEEK_SYNC_STABILITY_SECONDS"),
        ({"ALGOSEEK_SYNC_DROP_DIR": "/nonexistent/drop"}, "drop.dir"),
    ],
)
def test_configuration_errors_exit_78_with_one_line(
    sandbox: Sandbox, env: dict[str, str], fragment: str
) -> None:
    result = sandbox.cli("run", "--once", check=False, **env)
    assert result.code == 78
    assert fragment in result.err and "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_unknown_names_are_clear_user_errors(sandbox: Sandbox, samples) -> None:
    samples(sandbox)
    sandbox.cli("run", "--once")
    for args, fragment in [
        (["--ticker", "aapl"], "case-sensitive"),
        (["--figi", "BBG000000000"], "unknown FIGI"),
        (["--secid", "1"], "unknown SecId"),
    ]:
        result = sandbox.cli("bars", *args, check=False)
        assert result.code == 2 and fragment in result.err and "Traceback" not in result.err


def test_status_before_any_run_is_a_clear_error(sandbox: Sandbox) -> None:
    result = sandbox.cli("status", check=False)
    assert result.code == 78 and "run `algoseek-sync run` first" in result.err


def test_a_run_that_only_stores_bars_imports_only_what_it_needs(sandbox: Sandbox, samples) -> None:
    """Issue 12: pandas, pydantic, rich and the platform SDK have no business in a `run --once`
    that writes one re-delivered file to the embedded store (each costs a tenth of a second or more)."""
    samples(sandbox)
    sandbox.cli("run", "--once")
    text = AAPL_SAMPLE.read_text()
    (sandbox.drop / "33449.csv").write_text(
        text + text.splitlines()[-1].replace("20200413", "20200414") + "\n"
    )
    heavy = ("pandas", "pydantic", "rich", "mainsequence", "exchange_calendars")
    code = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: print(json.dumps([m for m in {heavy!r} if m in sys.modules])))\n"
        "sys.argv = ['algoseek-sync', 'run', '--once']\n"
        "from algoseek_sync.commands.cli import main\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=sandbox.env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "done 1" in proc.stderr, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    rows = bars_csv(sandbox, "--secid", "33449", "--start", "2020-04-13")
    assert [r["tradedate"] for r in rows] == ["2020-04-13", "2020-04-14"]
