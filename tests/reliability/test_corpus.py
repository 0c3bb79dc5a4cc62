"""Hostile and broken input corpus: one drop per case, the real CLI (`run --once`) on it.

Every drop also holds the real samples (the master and AAPL as ``33449.csv``); each case
checks that the run exits 0, that the entry under test is accepted exactly or refused
(quarantined / skipped / parked) with a clear reason in ``status --json``, and that the
good files were ingested all the same.
"""

from __future__ import annotations

import gzip
import os
import stat
import subprocess
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
    deliver_samples,
    msft_lines,
    msft_text,
    open_app_for,
    query,
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


def run_once(box: Sandbox, timeout: float = 90, **env: str) -> None:
    result = box.cli("run", "--once", timeout=timeout, **env)
    assert result.code == 0


def assert_msft_exact(box: Sandbox, rows: int) -> None:
    """The MSFT variant was stored row for row with the source values."""
    stored = query(
        box,
        "SELECT tradedate, open, high, low, close, volume, unique_identifier FROM bars"
        " WHERE secid = ? ORDER BY time_index",
        (MSFT_SECID,),
    )
    source = [line.split(",") for line in msft_lines(rows)[1:]]
    assert len(stored) == rows
    for got, src in zip(stored, source, strict=True):
        assert got[0] == src[1]
        assert tuple(float(x) for x in got[1:6]) == tuple(float(x) for x in src[3:8])
        assert got[6] == MSFT_FIGI


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
    run_once(box)
    assert_refused(box, MSFT + ".gz", "quarantined", "gzip")
    assert store_rows(box, MSFT_SECID) == 0


def test_refuses_gzip_bomb_above_configured_cap(box: Sandbox) -> None:
    env = write_config(box, "[limits]\nmax_decompressed_bytes = 1000000\n")
    header = msft_lines(0)[0].encode() + b"\n"
    box.put(MSFT + ".gz", gzip.compress(header + b"0" * 50_000_000, compresslevel=9))
    assert (box.drop / (MSFT + ".gz")).stat().st_size < 200_000
    code, peak, err = cli_peak_rss(box, "run", "--once", **env)
    assert code == 0, err
    assert peak < 400e6, f"peak RSS {peak / 1e6:.0f} MB while refusing a gzip bomb"
    assert_refused(box, MSFT + ".gz", "quarantined", "max_decompressed_bytes")


def test_refuses_gzip_that_is_not_gzip(box: Sandbox) -> None:
    box.put(MSFT + ".gz", msft_text())
    run_once(box)
    assert_refused(box, MSFT + ".gz", "quarantined", "gzip")


def test_refuses_empty_file(box: Sandbox) -> None:
    box.put(MSFT, b"")
    run_once(box)
    assert_refused(box, MSFT, "quarantined", "empty")


def test_refuses_whitespace_only_file(box: Sandbox) -> None:
    box.put(MSFT, b"\n\r\n  \n")
    run_once(box)
    assert_refused(box, MSFT, "quarantined", "empty")


def test_refuses_wrong_delimiter(box: Sandbox) -> None:
    box.put(MSFT, msft_text().replace(",", ";"))
    run_once(box)
    assert_refused(box, MSFT, "quarantined", "unknown schema")


def test_refuses_non_utf8_bytes_in_rows(box: Sandbox) -> None:
    text = msft_text().encode().replace(b",MSFT,", b",MSFT\xe9\xff,", 1)
    box.put(MSFT, text)
    run_once(box)
    assert_refused(box, MSFT, "quarantined", "UTF-8")
    assert store_rows(box, MSFT_SECID) == 0


def test_refuses_non_utf8_header(box: Sandbox) -> None:
    box.put(MSFT, b"SecId,Trade\xe9Date" + msft_text().encode()[len("SecId,TradeDate") :])
    run_once(box)
    assert_refused(box, MSFT, "quarantined", "UTF-8")


def test_refuses_binary_junk(box: Sandbox) -> None:
    box.put(MSFT, os.urandom(64 * 1024))
    run_once(box)
    assert_refused(box, MSFT, "quarantined")


def test_refuses_single_100mb_line_without_newline(box: Sandbox) -> None:
    path = box.drop / MSFT
    with open(path, "wb") as fh:
        chunk = b"A" * (1 << 20)
        for _ in range(100):
            fh.write(chunk)
    code, peak, err = cli_peak_rss(box, "run", "--once")
    assert code == 0, err
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
    run_once(box, **env)
    assert_refused(box, MSFT, "quarantined", "max_line_bytes")
    assert store_rows(box, MSFT_SECID) == 0


# ----------------------------------------------------------------------------- refused: content


def test_refuses_unknown_schema(box: Sandbox) -> None:
    box.put(MSFT, "Symbol,Date,Px\nMSFT,20200101,1.0\n")
    run_once(box)
    assert_refused(box, MSFT, "quarantined", "unknown schema")


def test_refuses_missing_required_column(box: Sandbox) -> None:
    rows = [line.split(",") for line in msft_lines()]
    drop = rows[0].index("MarketHoursVolume")
    box.put(MSFT, "\n".join(",".join(c for i, c in enumerate(r) if i != drop) for r in rows) + "\n")
    run_once(box)
    assert_refused(box, MSFT, "quarantined", "missing required column", "MarketHoursVolume")


def test_refuses_unknown_extra_column(box: Sandbox) -> None:
    lines = msft_lines()
    box.put(MSFT, "\n".join([lines[0] + ",Surprise", *(line + ",1" for line in lines[1:])]) + "\n")
    run_once(box)
    assert_refused(box, MSFT, "quarantined", "Surprise")


@pytest.mark.parametrize("bad", ["20070230", "2007-01-03", "2007013"])
def test_refuses_unparsable_date(box: Sandbox, bad: str) -> None:
    lines = msft_lines()
    lines[7] = lines[7].replace(lines[7].split(",")[1], bad, 1)
    box.put(MSFT, "\n".join(lines) + "\n")
    run_once(box)
    entry = assert_refused(box, MSFT, "quarantined", "TradeDate", bad)
    assert "line 8" in entry["last_error"]
    assert store_rows(box, MSFT_SECID) == 0


def test_refuses_non_numeric_price(box: Sandbox) -> None:
    lines = msft_lines()
    fields = lines[12].split(",")
    fields[3] = "12.5O"  # Open, with a letter O
    lines[12] = ",".join(fields)
    box.put(MSFT, "\n".join(lines) + "\n")
    run_once(box)
    assert_refused(box, MSFT, "quarantined", "12.5O")
    assert store_rows(box, MSFT_SECID) == 0


def test_refuses_duplicated_trade_date_with_different_values(box: Sandbox) -> None:
    lines = msft_lines()
    fields = lines[30].split(",")
    fields[6] = str(float(fields[6]) + 1)
    box.put(MSFT, "\n".join([*lines, ",".join(fields)]) + "\n")
    run_once(box)
    assert_refused(box, MSFT, "quarantined", "duplicate TradeDate", lines[30].split(",")[1])
    assert store_rows(box, MSFT_SECID) == 0


def test_refuses_blank_secid(box: Sandbox) -> None:
    lines = msft_lines()
    lines[5] = "," + lines[5].split(",", 1)[1]
    box.put(MSFT, "\n".join(lines) + "\n")
    run_once(box)
    assert_refused(box, MSFT, "quarantined", "SecId")


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
    run_once(box)
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
    began = time.monotonic()
    run_once(box, timeout=60)
    assert time.monotonic() - began < 60
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
    path = box.put(MSFT, msft_text())
    path.chmod(0)
    try:
        result = cli_unprivileged(box, "run", "--once")
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {exc}")
    assert result.returncode == 0, result.stderr
    entry = assert_refused(box, MSFT, "quarantined", "permission denied")
    assert "reprocess" in entry["last_error"]
    assert store_rows(box, MSFT_SECID) == 0


def test_file_deleted_between_event_and_read(box: Sandbox) -> None:
    path = box.put(MSFT, msft_text())
    app = open_app_for(box)
    try:
        from algoseek_sync.scan import reconcile

        reconcile(app.settings.drop.dir, app.ledger, app.settings.drop.master_glob)
    finally:
        app.close()
    assert versions(box, MSFT) == [("pending", None)]
    path.unlink()
    run_once(box)
    assert_refused(box, MSFT, "skipped", "vanished")


def test_file_truncated_after_being_queued(box: Sandbox) -> None:
    path = box.put(MSFT, msft_text())
    app = open_app_for(box)
    try:
        from algoseek_sync.scan import reconcile

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
    assert_refused(box, MSFT, "quarantined")
    assert store_rows(box, MSFT_SECID) == 0


def test_sparse_2gb_file_is_not_read(box: Sandbox) -> None:
    path = box.drop / MSFT
    with open(path, "wb") as fh:
        fh.truncate(2 * 1024**3)
    code, peak, err = cli_peak_rss(box, "run", "--once")
    assert code == 0, err
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
    run_once(box)
    assert_refused(box, "notes.csv", "skipped", "neither")


# ----------------------------------------------------------------------------- refused: masters


def _master_lines() -> list[str]:
    return MASTER_SAMPLE.read_text().splitlines()


def test_refuses_master_with_duplicate_secid_keeping_the_applied_one(box: Sandbox) -> None:
    run_once(box)
    lines = _master_lines()
    aapl = next(line for line in lines if line.startswith("33449,"))
    box.put("later/equity_security_master.csv", "\n".join([*lines, aapl]) + "\n")
    run_once(box)
    assert_refused(box, "later/equity_security_master.csv", "quarantined", "33449", "more than once")
    assert query(box, "SELECT count(*) FROM assets")[0][0] == 3


def test_refuses_master_with_all_figis_blank(box: Sandbox) -> None:
    run_once(box)
    lines = _master_lines()
    blanked = [lines[0]] + [line.rsplit(",", 1)[0] + "," for line in lines[1:]]
    box.put("later/equity_security_master.csv", "\n".join(blanked) + "\n")
    box.put(MSFT, msft_text())
    run_once(box)
    assert_refused(box, "later/equity_security_master.csv", "quarantined", "FIGI", "blank")
    assert_msft_exact(box, 200)  # still routed by the applied master


def test_broken_newest_master_does_not_discard_valid_older_one(box: Sandbox) -> None:
    lines = _master_lines()
    aapl = next(line for line in lines if line.startswith("33449,"))
    later = box.put("later/equity_security_master.csv", "\n".join([*lines, aapl]) + "\n")
    past = time.time() - 3600
    os.utime(box.drop / "equity_security_master.csv", (past, past))
    os.utime(later, None)
    run_once(box)
    assert store_rows(box, 33449) == AAPL_ROWS


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
