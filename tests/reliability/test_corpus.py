"""Hostile and broken input corpus: one drop per case, the real CLI (`run --once`) on it.

Every drop also holds the real samples (the master and AAPL as ``33449.csv``); each case
checks the run's exit code (0, or 1 when a file of the run ended quarantined or skipped),
that the entry under test is accepted exactly, accepted with its bad rows skipped and
reported in ``status --json`` ``problems``, or refused as a whole (quarantined / skipped /
parked) with a clear reason, and that the good files were ingested all the same.

The row policy (formats/bars.py): only file-level problems refuse a file; a row that cannot
be read is skipped, an unknown column is kept in ``extra``, a conflicting row keeps the last.
"""

from __future__ import annotations

import gzip
import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_helpers import (
    AAPL_ROWS,
    MSFT_FIGI,
    MSFT_SECID,
    assert_good_ingested,
    assert_refused,
    cli_peak_rss,
    cli_unprivileged,
    dac_drop_refusal,
    deliver_samples,
    msft_lines,
    msft_text,
    open_app_for,
    problems_of,
    query,
    read_uid,
    run_cli,
    status,
    store_rows,
    versions,
    write_config,
)

from conftest import AAPL_SAMPLE, MASTER_SAMPLE, Sandbox

MSFT = f"{MSFT_SECID}.csv"


@pytest.fixture
def box(sandbox: Sandbox) -> Sandbox:
    deliver_samples(sandbox)
    return sandbox


def run_once(box: Sandbox, code: int = 0, timeout: float = 90, **env: str) -> None:
    """``run --once``: exit 0, or ``code`` = 1 when a file of this run ended quarantined or skipped;
    a run that hangs fails naming the command and the drop's entries."""
    result = run_cli(box, "run", "--once", timeout=timeout, **env)
    summary = [line for line in result.stderr.splitlines() if line.startswith("processed ")]
    assert result.returncode == code, (
        f"exit {result.returncode}, expected {code}: {summary or result.stderr[-3000:]}"
    )


def assert_msft_exact(box: Sandbox, rows: int | list[str]) -> None:
    """The MSFT variant was stored row for row with the source values (``rows``: the first n
    source rows, or the source lines expected), and is read under MSFT's FIGI."""
    lines = msft_lines(rows)[1:] if isinstance(rows, int) else rows
    source = [line.split(",") for line in lines]
    stored = read_uid(box, MSFT_FIGI)
    assert store_rows(box, MSFT_SECID) == len(stored) == len(source)
    assert set(stored["unique_identifier"]) <= {MSFT_FIGI} and set(stored["secid"]) <= {MSFT_SECID}
    got = stored[["tradedate", "ticker", "open", "high", "low", "close", "volume"]].itertuples(index=False)
    for row, src in zip(got, source, strict=True):
        assert (row.tradedate, row.ticker) == (int(src[1]), src[2])
        assert (row.open, row.high, row.low, row.close) == tuple(float(x) for x in src[3:7])
        assert row.volume == int(src[7])


def only_problem(box: Sandbox, rel: str, kind: str) -> dict:
    """The one problem of ``kind`` that ``status --json`` lists for ``rel``; the file itself ended done."""
    data = status(box)
    assert versions(box, rel)[-1][0] == "done", versions(box, rel)
    found = problems_of(data, rel, kind)
    assert len(found) == 1, json.dumps(data["problems"], indent=1)
    assert data["problems"]["counts"].get(kind, 0) >= 1
    return found[0]


# ----------------------------------------------------------------------------- accepted


def test_accepts_utf8_bom(box: Sandbox) -> None:
    box.put(MSFT, b"\xef\xbb\xbf" + msft_text().encode())
    run_once(box)
    assert versions(box, MSFT)[-1][0] == "done"
    assert_msft_exact(box, 200)
    assert_good_ingested(box)


def test_accepts_crlf_line_ends(box: Sandbox) -> None:
    box.put(MSFT, msft_text(newline="\r\n"))
    run_once(box)
    assert_msft_exact(box, 200)
    assert_good_ingested(box)


def test_accepts_bom_and_crlf_inside_gzip(box: Sandbox) -> None:
    box.put(MSFT + ".gz", gzip.compress(b"\xef\xbb\xbf" + msft_text(newline="\r\n").encode()))
    run_once(box)
    assert versions(box, MSFT + ".gz")[-1][0] == "done"
    assert_msft_exact(box, 200)


def test_accepts_path_with_spaces_and_non_ascii(box: Sandbox) -> None:
    rel = f"us equity daily/données Ω 株/{MSFT}"
    box.put(rel, msft_text())
    run_once(box)
    assert versions(box, rel)[-1][0] == "done"
    assert_msft_exact(box, 200)
    assert_good_ingested(box)


def test_accepts_header_only_file_as_done_with_nothing_written(box: Sandbox) -> None:
    box.put(MSFT, msft_lines(0)[0] + "\n")
    run_once(box)
    assert versions(box, MSFT)[-1][0] == "done"
    assert store_rows(box, MSFT_SECID) == 0
    assert_good_ingested(box)


def test_accepts_missing_final_newline(box: Sandbox) -> None:
    box.put(MSFT, msft_text().rstrip("\n"))
    run_once(box)
    assert_msft_exact(box, 200)


def test_accepts_columns_in_another_order(box: Sandbox) -> None:
    header, *rows = (line.split(",") for line in msft_lines())
    order = list(reversed(range(len(header))))
    text = "\n".join(",".join(r[i] for i in order) for r in [header, *rows]) + "\n"
    box.put(MSFT, text)
    run_once(box)
    assert_msft_exact(box, 200)


# ----------------------------------------------------------------------------- refused: bytes


def test_refuses_truncated_gzip(box: Sandbox) -> None:
    blob = gzip.compress(msft_text().encode())
    box.put(MSFT + ".gz", blob[: len(blob) // 2])
    run_once(box, code=1)
    assert_refused(box, MSFT + ".gz", "quarantined", "gzip")
    assert store_rows(box, MSFT_SECID) == 0


def test_refuses_gzip_bomb_above_configured_cap(box: Sandbox) -> None:
    env = write_config(box, "[limits]\nmax_decompressed_bytes = 1000000\n")
    header = msft_lines(0)[0].encode() + b"\n"
    box.put(MSFT + ".gz", gzip.compress(header + b"0" * 50_000_000, compresslevel=9))
    code, peak, err = cli_peak_rss(box, "run", "--once", **env)
    assert code == 1, err
    assert peak < 400e6, f"peak RSS {peak / 1e6:.0f} MB while refusing a gzip bomb"
    assert_refused(box, MSFT + ".gz", "quarantined", "max_decompressed_bytes")


def test_refuses_gzip_that_is_not_gzip(box: Sandbox) -> None:
    box.put(MSFT + ".gz", msft_text())
    run_once(box, code=1)
    assert_refused(box, MSFT + ".gz", "quarantined", "gzip")


def test_refuses_empty_file(box: Sandbox) -> None:
    box.put(MSFT, b"")
    run_once(box, code=1)
    assert_refused(box, MSFT, "quarantined", "empty")


def test_refuses_whitespace_only_file(box: Sandbox) -> None:
    box.put(MSFT, b"\n\r\n  \n")
    run_once(box, code=1)
    assert_refused(box, MSFT, "quarantined", "empty")


def test_refuses_wrong_delimiter(box: Sandbox) -> None:
    box.put(MSFT, msft_text().replace(",", ";"))
    run_once(box, code=1)
    assert_refused(box, MSFT, "quarantined", "unknown schema")


def test_refuses_non_utf8_bytes_in_rows(box: Sandbox) -> None:
    text = msft_text().encode().replace(b",MSFT,", b",MSFT\xe9\xff,", 1)
    box.put(MSFT, text)
    run_once(box, code=1)
    assert_refused(box, MSFT, "quarantined", "UTF-8")
    assert store_rows(box, MSFT_SECID) == 0


def test_refuses_non_utf8_header(box: Sandbox) -> None:
    box.put(MSFT, b"SecId,Trade\xe9Date" + msft_text().encode()[len("SecId,TradeDate") :])
    run_once(box, code=1)
    assert_refused(box, MSFT, "quarantined", "UTF-8")


def test_refuses_binary_junk(box: Sandbox) -> None:
    box.put(MSFT, os.urandom(64 * 1024))
    run_once(box, code=1)
    assert_refused(box, MSFT, "quarantined")


def test_refuses_single_100mb_line_without_newline(box: Sandbox) -> None:
    path = box.drop / MSFT
    with open(path, "wb") as fh:
        chunk = b"A" * (1 << 20)
        for _ in range(100):
            fh.write(chunk)
    code, peak, err = cli_peak_rss(box, "run", "--once")
    assert code == 1, err
    assert peak < 800e6, f"peak RSS {peak / 1e6:.0f} MB for a 100 MB line"
    assert_refused(box, MSFT, "quarantined", "max_line_bytes")


@pytest.mark.parametrize(
    "padding",
    [200_000, 10_000],  # above Arrow's 64 KiB block, and between the configured limit and 64 KiB
    ids=["above-64k", "between-limit-and-64k"],
)
def test_refuses_data_line_longer_than_configured_limit(box: Sandbox, padding: int) -> None:
    env = write_config(box, "[limits]\nmax_line_bytes = 4096\n")
    lines = msft_lines(50)
    lines[20] = lines[20].replace(",MSFT,", ",MSFT" + "X" * padding + ",", 1)
    box.put(MSFT, "\n".join(lines) + "\n")
    run_once(box, code=1, **env)
    assert_refused(box, MSFT, "quarantined", "max_line_bytes")
    assert store_rows(box, MSFT_SECID) == 0


# ----------------------------------------------------------------------------- refused: content


def test_refuses_unknown_schema(box: Sandbox) -> None:
    box.put(MSFT, "Symbol,Date,Px\nMSFT,20200101,1.0\n")
    run_once(box, code=1)
    assert_refused(box, MSFT, "quarantined", "unknown schema")


def test_refuses_missing_required_column(box: Sandbox) -> None:
    rows = [line.split(",") for line in msft_lines()]
    drop = rows[0].index("MarketHoursVolume")
    box.put(MSFT, "\n".join(",".join(c for i, c in enumerate(r) if i != drop) for r in rows) + "\n")
    run_once(box, code=1)
    assert_refused(box, MSFT, "quarantined", "missing required column", "MarketHoursVolume")


def test_accepts_unknown_extra_column_keeping_its_values(box: Sandbox) -> None:
    header, *rows = msft_lines()
    box.put(MSFT, "\n".join([header + ",Surprise", *(f"{row},{i}" for i, row in enumerate(rows))]) + "\n")
    run_once(box)
    assert_msft_exact(box, 200)
    extra = read_uid(box, MSFT_FIGI)["extra"].tolist()
    assert [json.loads(e) for e in extra] == [{"Surprise": str(i)} for i in range(200)]
    note = only_problem(box, MSFT, "extra_columns")
    assert "Surprise" in note["detail"]
    assert_good_ingested(box)


@pytest.mark.parametrize("bad", ["20070230", "2007-01-03", "2007013"])
def test_skips_a_row_with_an_unparsable_date(box: Sandbox, bad: str) -> None:
    lines = msft_lines()
    lines[7] = lines[7].replace(lines[7].split(",")[1], bad, 1)
    box.put(MSFT, "\n".join(lines) + "\n")
    run_once(box)
    assert_msft_exact(box, lines[1:7] + lines[8:])
    note = only_problem(box, MSFT, "bad_rows")
    assert note["line"] == 8 and "TradeDate" in note["detail"] and "line(s) 8" in note["detail"], note
    assert note["detail"].startswith("1 row(s) skipped"), note
    assert_good_ingested(box)


def test_skips_a_row_with_a_non_numeric_price(box: Sandbox) -> None:
    lines = msft_lines()
    fields = lines[12].split(",")
    fields[3] = "12.5O"  # Open, with a letter O
    lines[12] = ",".join(fields)
    box.put(MSFT, "\n".join(lines) + "\n")
    run_once(box)
    assert_msft_exact(box, lines[1:12] + lines[13:])
    note = only_problem(box, MSFT, "bad_rows")
    assert note["line"] == 13 and "Open '12.5O' is not a number: line(s) 13" in note["detail"], note
    assert_good_ingested(box)


def test_keeps_the_last_of_two_different_rows_for_one_trade_date(box: Sandbox) -> None:
    lines = msft_lines()
    fields = lines[30].split(",")
    fields[6] = str(float(fields[6]) + 1)
    corrected = ",".join(fields)
    box.put(MSFT, "\n".join([*lines, corrected]) + "\n")
    run_once(box)
    assert_msft_exact(box, [*lines[1:30], corrected, *lines[31:]])
    note = only_problem(box, MSFT, "conflicting_rows")
    day = fields[1]
    assert f"SecId {MSFT_SECID} TradeDate {day}: line 31 and line 202 differ" in note["detail"], note
    assert "kept line 202" in note["action"] and note["secid"] == MSFT_SECID
    assert_good_ingested(box)


def test_drops_an_exact_duplicate_row(box: Sandbox) -> None:
    lines = msft_lines()
    box.put(MSFT, "\n".join([*lines, lines[30]]) + "\n")
    run_once(box)
    assert_msft_exact(box, 200)
    note = only_problem(box, MSFT, "duplicate_rows")
    assert "1 exact duplicate row(s)" in note["detail"], note
    assert_good_ingested(box)


def test_skips_a_row_with_a_blank_secid(box: Sandbox) -> None:
    lines = msft_lines()
    lines[5] = "," + lines[5].split(",", 1)[1]
    box.put(MSFT, "\n".join(lines) + "\n")
    run_once(box)
    assert_msft_exact(box, lines[1:5] + lines[6:])
    note = only_problem(box, MSFT, "bad_rows")
    assert note["line"] == 6 and "blank SecId: line(s) 6" in note["detail"], note
    assert_good_ingested(box)


def test_refuses_a_file_without_one_readable_row(box: Sandbox) -> None:
    lines = msft_lines(3)
    box.put(MSFT, "\n".join([lines[0], *("," + line.split(",", 1)[1] for line in lines[1:])]) + "\n")
    run_once(box, code=1)
    assert_refused(box, MSFT, "quarantined", "no readable row", "blank SecId")
    assert store_rows(box, MSFT_SECID) == 0


def test_refuses_a_duplicated_column_name(box: Sandbox) -> None:
    lines = msft_lines()
    box.put(MSFT, "\n".join([lines[0] + ",Close", *(line + ",1" for line in lines[1:])]) + "\n")
    run_once(box, code=1)
    assert_refused(box, MSFT, "quarantined", "duplicate column", "Close")
    assert store_rows(box, MSFT_SECID) == 0


def test_parks_secid_missing_from_master(box: Sandbox) -> None:
    text = AAPL_SAMPLE.read_text().replace("\n33449,", "\n99999,")
    box.put("99999.csv", text)
    run_once(box)
    assert_refused(box, "99999.csv", "waiting_master", "99999", "not in the current security master")
    assert store_rows(box, 99999) == 0


# ----------------------------------------------------------------------------- refused: the filesystem


def test_never_follows_symlink_out_of_the_drop(box: Sandbox) -> None:
    outside = box.root / "outside"
    outside.mkdir()
    (outside / MSFT).write_text(msft_text())
    (box.drop / MSFT).symlink_to(outside / MSFT)
    run_once(box, code=1)
    assert_refused(box, MSFT, "skipped", "symbolic link")
    assert store_rows(box, MSFT_SECID) == 0


def test_never_follows_symlinked_directory_out_of_the_drop(box: Sandbox) -> None:
    outside = box.root / "outside"
    outside.mkdir()
    (outside / MSFT).write_text(msft_text())
    (box.drop / "linked").symlink_to(outside, target_is_directory=True)
    run_once(box)
    assert not query(box, "SELECT path FROM files WHERE path LIKE 'linked%'")
    assert store_rows(box, MSFT_SECID) == 0
    assert_good_ingested(box)


def _char_device(path: Path) -> None:
    """A character device (the null device's numbers) named like a bar file; needs CAP_MKNOD."""
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))


@pytest.mark.parametrize("make", [os.mkfifo, _char_device], ids=["fifo", "char-device"])
def test_never_opens_a_fifo_or_device_named_csv(box: Sandbox, make: Callable[[Path], None]) -> None:
    make(box.drop / MSFT)
    run_once(box, code=1, timeout=60)  # a run that blocks opening it fails, naming the entry
    assert_refused(box, MSFT, "skipped", "not a regular file")


def test_walks_into_a_directory_named_csv_gz(box: Sandbox) -> None:
    odd = box.drop / "12345.csv.gz"
    odd.mkdir()
    (odd / MSFT).write_text(msft_text())
    run_once(box)
    paths = {r[0] for r in query(box, "SELECT path FROM files")}
    assert "12345.csv.gz" not in paths  # a directory is walked, never read as a file
    assert f"12345.csv.gz/{MSFT}" in paths
    assert_msft_exact(box, 200)
    assert_good_ingested(box)


def test_refuses_unreadable_file(box: Sandbox) -> None:
    """chmod 000 as root means nothing: run the CLI with CAP_DAC_* dropped from the bounding set."""
    refusal = dac_drop_refusal()
    if refusal:
        pytest.skip(f"cannot run the CLI without CAP_DAC_OVERRIDE: {refusal}")
    path = box.put(MSFT, msft_text())
    path.chmod(0)
    result = cli_unprivileged(box, "run", "--once")
    assert result.returncode == 1, result.stderr
    entry = assert_refused(box, MSFT, "quarantined", "permission denied")
    assert "reprocess" in entry["last_error"]
    assert store_rows(box, MSFT_SECID) == 0


def test_file_deleted_between_event_and_read(box: Sandbox) -> None:
    path = box.put(MSFT, msft_text())
    app = open_app_for(box)
    try:
        from algoseek_sync.watch.scan import reconcile

        reconcile(app.settings.drop.dir, app.ledger, app.settings.drop.master_glob)
    finally:
        app.close()
    assert versions(box, MSFT) == [("pending", None)]
    path.unlink()
    run_once(box, code=1)
    assert_refused(box, MSFT, "skipped", "vanished")


def test_file_truncated_after_being_queued(box: Sandbox) -> None:
    path = box.put(MSFT, msft_text())
    app = open_app_for(box)
    try:
        from algoseek_sync.watch.scan import reconcile

        reconcile(app.settings.drop.dir, app.ledger, app.settings.drop.master_glob)
        data = path.read_bytes()
        cut = data.index(b"\n", len(data) // 2) - 7  # mid-line
        with open(path, "r+b") as fh:
            fh.truncate(cut)
        stats = app.worker.cycle()  # the queued version, read after the truncation
    finally:
        app.close()
    outcomes = {r.path: r.outcome for r in stats.results}
    assert outcomes[MSFT] == "superseded"
    run_once(box)  # records the truncated bytes as a new version and reads it
    history = versions(box, MSFT)
    assert history[0][0] == "superseded" and "changed after it was queued" in history[0][1]
    # the truncated version is what the drop holds now: its whole rows are taken, the cut one reported
    whole = data[:cut].decode().split("\n")[1:-1]
    assert_msft_exact(box, whole)
    note = only_problem(box, MSFT, "bad_rows")
    assert note["line"] == len(whole) + 2 and "expected 12" in note["detail"], note
    assert_good_ingested(box)


def test_sparse_2gb_file_is_not_read(box: Sandbox) -> None:
    path = box.drop / MSFT
    with open(path, "wb") as fh:
        fh.truncate(2 * 1024**3)
    code, peak, err = cli_peak_rss(box, "run", "--once")
    assert code == 1, err
    assert peak < 400e6, f"peak RSS {peak / 1e6:.0f} MB"
    assert_refused(box, MSFT, "quarantined", "max_file_bytes")


def test_upload_temp_names_are_never_read(box: Sandbox) -> None:
    for name in (f"{MSFT}.part", f".{MSFT}", f"{MSFT}.filepart", f"{MSFT}.tmp"):
        box.put(name, msft_text())
    run_once(box)
    assert not query(box, "SELECT path FROM files WHERE path LIKE '%39827%'")
    assert store_rows(box, MSFT_SECID) == 0
    assert_good_ingested(box)


def test_unrelated_csv_name_is_skipped(box: Sandbox) -> None:
    box.put("notes.csv", "a,b\n1,2\n")
    run_once(box, code=1)
    assert_refused(box, "notes.csv", "skipped", "neither")


# ----------------------------------------------------------------------------- refused: masters


def _master_lines() -> list[str]:
    return MASTER_SAMPLE.read_text().splitlines()


def test_master_with_a_duplicated_secid_still_applies(box: Sandbox) -> None:
    run_once(box)
    lines = _master_lines()
    aapl = next(line for line in lines if line.startswith("33449,"))
    later = "later/equity_security_master.csv"
    box.put(later, "\n".join([*lines, aapl]) + "\n")
    run_once(box)
    assert versions(box, later)[-1][0] == "done"
    assert versions(box, "equity_security_master.csv")[-1][0] == "done"
    note = only_problem(box, later, "master_duplicate")
    assert "1 exact duplicate row(s)" in note["detail"] and note["action"] == "merged", note
    assert query(box, "SELECT count(*) FROM assets")[0][0] == 3
    assert_good_ingested(box)


def test_master_with_two_different_rows_for_a_secid_keeps_the_last(box: Sandbox) -> None:
    lines = _master_lines()
    at = next(i for i, line in enumerate(lines) if line.startswith("39827,"))
    renamed = lines[at].replace(",MSFT,", ",MSFTX,", 1)
    box.put("equity_security_master.csv", "\n".join([*lines, renamed]) + "\n")
    box.put(MSFT, msft_text())
    run_once(box)
    note = only_problem(box, "equity_security_master.csv", "master_duplicate")
    assert note["secid"] == MSFT_SECID and f"kept line {len(lines) + 1}" in note["action"], note
    assert query(box, "SELECT ticker FROM tickers WHERE secid = ?", (MSFT_SECID,)) == [("MSFTX",)]
    assert_msft_exact(box, 200)
    assert_good_ingested(box)


def test_refuses_master_with_all_figis_blank(box: Sandbox) -> None:
    run_once(box)
    lines = _master_lines()
    blanked = [lines[0]] + [line.rsplit(",", 1)[0] + "," for line in lines[1:]]
    box.put("later/equity_security_master.csv", "\n".join(blanked) + "\n")
    box.put(MSFT, msft_text())
    run_once(box, code=1)
    assert_refused(box, "later/equity_security_master.csv", "quarantined", "FIGI", "blank")
    assert_msft_exact(box, 200)  # still routed by the applied master


def test_broken_newest_master_does_not_discard_valid_older_one(box: Sandbox) -> None:
    lines = _master_lines()
    blanked = [lines[0]] + [line.rsplit(",", 1)[0] + "," for line in lines[1:]]
    later = box.put("later/equity_security_master.csv", "\n".join(blanked) + "\n")
    past = time.time() - 3600
    os.utime(box.drop / "equity_security_master.csv", (past, past))
    os.utime(later, None)
    run_once(box, code=1)
    assert versions(box, "later/equity_security_master.csv")[-1][0] == "quarantined"
    assert versions(box, "equity_security_master.csv")[-1][0] == "done"
    assert store_rows(box, 33449) == AAPL_ROWS
    assert_good_ingested(box)


# ----------------------------------------------------------------------------- the daemon


def test_daemon_survives_the_whole_corpus_at_once(box: Sandbox) -> None:
    """All hostile entries in one drop under `algoseek-sync run`: it keeps running, good files land."""
    from helpers_daemon import Daemon, wait_for

    blob = gzip.compress(msft_text().encode())
    box.put("a/39827.csv.gz", blob[: len(blob) // 2])
    box.put("b/39827.csv", b"")
    box.put("c/39827.csv", msft_text().replace(",", ";"))
    box.put("d/39827.csv", os.urandom(4096))
    box.put("e/39827.csv", "Symbol,Date\nX,1\n")
    os.mkfifo(box.drop / "f.csv")
    (box.drop / "g.csv").symlink_to(MASTER_SAMPLE)
    (box.drop / "h.csv.gz").mkdir()
    box.put("i/39827.csv", msft_text())
    daemon = Daemon(box, stability="0.3").start()
    try:
        daemon.wait_ready()
        wait_for(lambda: daemon.settled(10), 60, "the corpus to be processed")
        box.put("late/39827.csv", msft_text(150))  # it still ingests after all that
        wait_for(lambda: daemon.settled(11), 60, "the late file")
        assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()
        data = status(box)
        quarantined = {e["path"] for e in data["quarantined"]}
        assert {"a/39827.csv.gz", "b/39827.csv", "c/39827.csv", "d/39827.csv", "e/39827.csv"} <= quarantined
        skipped = {e["path"] for e in data["skipped"]}
        assert {"f.csv", "g.csv"} <= skipped
        assert_good_ingested(box, data)
        assert versions(box, "late/39827.csv")[-1][0] == "done"
    finally:
        assert daemon.stop() == 0


def test_fifo_does_not_block_the_daemon_event_path(box: Sandbox) -> None:
    """A FIFO created while the daemon watches (inotify open/close events) never blocks it."""
    from helpers_daemon import Daemon, wait_for

    daemon = Daemon(box, stability="0.3").start()
    try:
        daemon.wait_ready()
        wait_for(lambda: daemon.settled(2), 60, "the samples")
        os.mkfifo(box.drop / "later.csv")
        box.put(MSFT, msft_text())
        wait_for(
            lambda: versions(box, MSFT) and versions(box, MSFT)[-1][0] == "done", 30, "MSFT after a FIFO"
        )
        assert daemon.proc is not None and daemon.proc.poll() is None
    finally:
        assert daemon.stop() == 0
