"""``algoseek-sync run`` as a real subprocess: ingest, read while running, stop, crash, restart."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from algoseek_sync.synthetic.generate import DropSpec, generate_drop, write_master
from conftest import AAPL_FIGI, AAPL_SAMPLE, MASTER_SAMPLE, Sandbox
from helpers_daemon import Daemon, query, stored_bars, stored_count, wait_for

#: `bars` columns of the standard-adjusted dataset (the AAPL sample's), ``extra`` follows
STANDARD_COLUMNS = (
    "dataset,time_index,tradedate,unique_identifier,secid,ticker,open,high,low,close,volume,"
    "cumulativepricefactor,cumulativevolumefactor,adjustmentfactor,adjustmentreason"
)


def test_run_ingests_serves_reads_and_stops_cleanly(
    sandbox: Sandbox, samples: Callable[[Sandbox], None]
) -> None:
    daemon = Daemon(sandbox).start().wait_ready()
    try:
        assert '"observer": "inotify"' in daemon.log()
        samples(sandbox)
        wait_for(lambda: daemon.settled(2), what="both files ingested")
        rows = sandbox.cli("bars", "--figi", AAPL_FIGI, "--format", "csv").csv()
        assert len(rows) == 3342
        assert ",".join(rows[0]) == f"{STANDARD_COLUMNS},extra"
        assert {(r["dataset"], r["unique_identifier"], r["secid"]) for r in rows} == {
            ("standard-adjusted", AAPL_FIGI, "33449")
        }
        assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["tradedate"]) for r in rows)
        second = sandbox.cli("run", check=False, timeout=60)
        assert second.code == 75 and "already_running" in second.err
        meta = dict(query(daemon.db, "SELECT key, value FROM meta"))
        assert {"heartbeat", "ready", "pid"} <= set(meta)
        assert int(meta["pid"]) == daemon.proc.pid  # type: ignore[union-attr]
    finally:
        code = daemon.stop(timeout=10)
    assert code == 0, daemon.log()
    assert '"daemon_stopped"' in daemon.log()

    # delivered while stopped: found by the startup reconcile; unchanged files are not read again
    sandbox.put("33449.csv", AAPL_SAMPLE.read_bytes() + b"")  # re-delivered: new mtime, same bytes
    daemon = Daemon(sandbox).start().wait_ready()
    try:
        wait_for(lambda: daemon.settled(3), what="the re-delivery ingested")
        assert sorted(query(daemon.db, "SELECT path, state FROM files")) == [
            ("33449.csv", "done"),
            ("33449.csv", "done"),
            ("equity_security_master.csv", "done"),
        ]
    finally:
        assert daemon.stop(timeout=10) == 0


def test_polling_observer_and_rename_into_place(sandbox: Sandbox) -> None:
    daemon = Daemon(sandbox, observer="polling").start().wait_ready()
    try:
        assert '"observer": "polling"' in daemon.log()
        sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
        temp = sandbox.put("33449.csv.filepart", AAPL_SAMPLE)
        temp.rename(sandbox.drop / "33449.csv")
        wait_for(lambda: daemon.settled(2), what="both files ingested")
        assert sorted(r[0] for r in query(daemon.db, "SELECT path FROM files")) == [
            "33449.csv",
            "equity_security_master.csv",
        ]
        assert stored_count(daemon.db) == stored_count(daemon.db, secid=33449) == 3342
    finally:
        assert daemon.stop(timeout=10) == 0


class Readers:
    """``status --json`` and ``bars --secid`` in a loop on a thread, as an operator would while the daemon
    writes; every failure (an exit code, a short read, an exception) is kept for the main thread, since
    an assertion or exception inside a thread only ends that thread."""

    def __init__(self, box: Sandbox, secid: int, rows: int) -> None:
        self.box, self.secid, self.rows = box, secid, rows
        self.rounds = 0
        self.failures: list[str] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="readers", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:  # one round at least, however soon the stop comes
                status = self.box.cli("status", "--json", check=False, timeout=60)
                if status.code != 0 or "files" not in json.loads(status.out):
                    self.failures.append(f"status --json exited {status.code}: {status.err.strip()[-300:]}")
                bars = self.box.cli(
                    "bars", "--secid", str(self.secid), "--format", "csv", check=False, timeout=60
                )
                if bars.code != 0 or len(bars.csv()) != self.rows:
                    self.failures.append(
                        f"bars --secid {self.secid} exited {bars.code} with {len(bars.csv())} of {self.rows}"
                        f" rows: {bars.err.strip()[-300:]}"
                    )
                self.rounds += 1
                if self._stop.is_set():
                    return
        except BaseException as exc:
            self.error = exc

    def finish(self) -> None:
        """Stop after the round in progress; fail here with what went wrong on the thread."""
        self._stop.set()
        self._thread.join(300)
        assert not self._thread.is_alive(), "a reader is still running 300 s after the stop"
        if self.error is not None:
            raise self.error
        assert self.rounds >= 1 and not self.failures, self.failures


def test_crash_and_sigterm_mid_ingest_then_restart_equals_a_clean_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    staged = tmp_path / "staged"
    drop = generate_drop(staged, DropSpec(secids=300, days=8))
    total = len(drop.bar_paths) + 1
    half = len(drop.bar_paths) // 2
    clean = Sandbox(tmp_path / "clean", sandbox.drop, tmp_path / "clean" / "state")
    (tmp_path / "clean").mkdir()

    def deliver(paths: list[Path]) -> None:
        for path in paths:
            path.rename(sandbox.drop / path.relative_to(staged))

    # half the drop first: the second half arrives only after the kill, so work is left whatever the kill hits
    deliver([drop.master_path, *drop.bar_paths[:half]])
    daemon = Daemon(sandbox).start()
    readers: Readers | None = None
    try:
        wait_for(lambda: stored_count(daemon.db) > 0, timeout=60, what="a first bar batch committed")
        secid = query(daemon.db, "SELECT min(secid) FROM bar_chunks")[0][0]
        readers = Readers(sandbox, secid, stored_count(daemon.db, secid))  # bars known stored: readable now
        daemon.signal(signal.SIGKILL)
        daemon.proc.wait(10)  # type: ignore[union-attr]
        killed_at = daemon.states()
        deliver(drop.bar_paths[half:])

        # restart, then SIGTERM while it catches up: the batch finishes (or rolls back), exit 0 within 10 s
        daemon = Daemon(sandbox).start()
        resumed = killed_at.get("done", 0) + 1
        wait_for(lambda: daemon.states().get("done", 0) >= resumed, timeout=60, what="ingest to resume")
        daemon.signal(signal.SIGTERM)
        assert daemon.proc.wait(10) == 0, daemon.log()  # type: ignore[union-attr]
    finally:
        daemon.kill()
        if readers is not None:
            readers.finish()
    if killed_at.get("processing"):  # the kill landed inside a batch: it must have been put back
        assert re.search(r'"recovered": [1-9]', daemon.log()), "the killed batch was not put back"

    daemon = Daemon(sandbox).start().wait_ready()
    try:
        wait_for(lambda: daemon.settled(total), timeout=60, what="the rest ingested after the restarts")
    finally:
        assert daemon.stop(timeout=10) == 0
    per_path = query(daemon.db, "SELECT path, count(*), max(state) FROM files GROUP BY path")
    assert len(per_path) == total and all(n == 1 and s == "done" for _, n, s in per_path), killed_at

    clean.cli("run", "--once")
    stored = stored_bars(daemon.db)
    assert stored == stored_bars(clean.state / "state.db")
    assert len(stored) == stored_count(daemon.db) > 0


def test_second_signal_exits_at_once_and_nothing_is_lost(sandbox: Sandbox) -> None:
    """SIGTERM twice while a large master is being applied: exit now (128+15), resume on restart."""
    spec = DropSpec(secids=8000, days=1)
    daemon = Daemon(sandbox).start().wait_ready()
    try:
        write_master(sandbox.drop, spec)
        wait_for(lambda: daemon.states().get("processing", 0) == 1, timeout=60, what="the master claimed")
        daemon.signal(signal.SIGTERM)
        time.sleep(0.05)
        daemon.signal(signal.SIGTERM)
        code = daemon.proc.wait(60)  # type: ignore[union-attr]
    finally:
        daemon.kill()
    assert code == 128 + signal.SIGTERM, daemon.log()
    assert "second SIGTERM, exiting now" in daemon.log()
    # "at once": it left the master's transaction unfinished (no wall-clock bound on a shared machine)
    assert daemon.states().get("done", 0) == 0
    sandbox.cli("run", "--once")
    assert dict(query(daemon.db, "SELECT state, count(*) FROM files GROUP BY state")) == {"done": 1}
    assert query(daemon.db, "SELECT count(DISTINCT secid) FROM secid_assets")[0][0] == 8000
