"""`reprocess`: re-apply chosen versions without double writes, alone or through a running daemon."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from algoseek_sync.app import open_app, run_once
from algoseek_sync.commands.reprocess import Selection, relative_path, reprocess
from algoseek_sync.config import Settings, load_settings
from algoseek_sync.errors import UserInputError
from algoseek_sync.service.health import health
from algoseek_sync.state.lock import WorkerLock
from algoseek_sync.synthetic.generate import DropSpec, generate_drop
from conftest import AAPL_SAMPLE, MASTER_SAMPLE
from helpers_daemon import stored_bars, stored_tables

REPO = Path(__file__).resolve().parents[1]
SPEC = DropSpec(secids=6, days=5, seed=7)
FIRST = SPEC.first_secid


def env_for(drop: Path, state: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALGOSEEK_SYNC_", "MAINSEQUENCE"))}
    env.update(
        PYTHONPATH=str(REPO / "daemon"),
        ALGOSEEK_SYNC_DROP_DIR=str(drop),
        ALGOSEEK_SYNC_STATE_DIR=str(state),
        ALGOSEEK_SYNC_LOG_FORMAT="json",
        **extra,
    )
    return env


def settings_for(drop: Path, state: Path) -> Settings:
    return load_settings(env=env_for(drop, state))


def ingest(settings: Settings) -> None:
    """What `run --once` does, in-process (faster than a subprocess)."""
    lock = WorkerLock(settings.state.dir)
    assert lock.acquire()
    app = open_app(settings)
    try:
        run_once(app)
    finally:
        app.close()
        lock.release()


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "algoseek_sync", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def query(settings: Settings, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(settings.db_path) as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]


def bars(settings: Settings) -> list[tuple]:
    """Every stored bar (dataset, secid, tradedate, …), decoded from the store's chunks."""
    return stored_bars(settings.db_path)


def delete_secid(settings: Settings, secid: int) -> int:
    """Lose a SecId's bars behind the daemon's back (its chunks); returns the rows they held."""
    with sqlite3.connect(settings.db_path) as conn:
        deleted = conn.execute("DELETE FROM bar_chunks WHERE secid = ? RETURNING rows", (secid,)).fetchall()
    return sum(rows for (rows,) in deleted)


@pytest.fixture
def generated(tmp_path: Path) -> Settings:
    """A small generated drop (master + 6 SecId files), ingested once."""
    drop = tmp_path / "drop"
    generate_drop(drop, SPEC)
    settings = settings_for(drop, tmp_path / "state")
    ingest(settings)
    return settings


@pytest.fixture
def real(tmp_path: Path) -> Settings:
    """The real master sample and AAPL bars (as 33449.csv), ingested once; originals never touched."""
    drop = tmp_path / "drop"
    drop.mkdir()
    shutil.copyfile(MASTER_SAMPLE, drop / "equity_security_master-sample.csv")
    shutil.copyfile(AAPL_SAMPLE, drop / "33449.csv")
    settings = settings_for(drop, tmp_path / "state")
    ingest(settings)
    return settings


def test_all_equals_a_single_clean_run(generated: Settings, tmp_path: Path, capsys) -> None:
    before, files_before = bars(generated), query(generated, "SELECT count(*) FROM files")
    assert reprocess(generated, Selection(everything=True), progress=False) == 0
    assert f"reprocessed {SPEC.secids + 1} of {SPEC.secids + 1}" in capsys.readouterr().out
    clean = settings_for(generated.drop.dir, tmp_path / "clean-state")
    ingest(clean)
    after = bars(generated)
    assert len(after) == len(before) == len(bars(clean)) > 0
    assert after == before == bars(clean)
    assert query(generated, "SELECT count(*) FROM files") == files_before  # no new versions
    assert query(generated, "SELECT DISTINCT state, force FROM files") == [("done", 0)]


def test_secid_reapplies_unchanged_newest_file(real: Settings) -> None:
    before = bars(real)
    assert delete_secid(real, 33449) == len(before) > 3000
    master_done = query(real, "SELECT done_at FROM files WHERE kind = 'master'")
    assert reprocess(real, Selection(secids=(33449,)), progress=False) == 0
    assert bars(real) == before
    assert query(real, "SELECT done_at FROM files WHERE kind = 'master'") == master_done  # master left alone


def test_file_relative_or_absolute(generated: Settings) -> None:
    before = bars(generated)
    name = f"{FIRST + 1}.csv.gz"
    for given in (name, str(generated.drop.dir / name)):
        assert delete_secid(generated, FIRST + 1) > 0
        assert reprocess(generated, Selection(files=(given,)), progress=False) == 0
        assert bars(generated) == before


def test_file_relative_to_the_current_directory(generated: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A path as typed in a shell (relative to where one stands) that lies inside the drop is accepted."""
    before = bars(generated)
    name = f"{FIRST + 2}.csv.gz"
    monkeypatch.chdir(generated.drop.dir.parent)
    assert delete_secid(generated, FIRST + 2) > 0
    assert reprocess(generated, Selection(files=(f"{generated.drop.dir.name}/{name}",)), progress=False) == 0
    assert bars(generated) == before


def test_relative_path_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drop = tmp_path / "drop"
    (drop / "2024").mkdir(parents=True)
    (tmp_path / "link").symlink_to(drop)
    assert relative_path(drop, "33449.csv") == "33449.csv"  # relative to the drop
    assert relative_path(drop, "2024/./20240102.csv") == "2024/20240102.csv"
    assert relative_path(drop, str(drop / "2024" / "20240102.csv")) == "2024/20240102.csv"  # absolute
    assert relative_path(tmp_path / "link", str(drop / "33449.csv")) == "33449.csv"  # through a link
    monkeypatch.chdir(tmp_path)
    assert relative_path(drop, "drop/2024/20240102.csv") == "2024/20240102.csv"  # relative to the cwd
    monkeypatch.chdir(drop / "2024")
    assert relative_path(drop, "20240102.csv") == "2024/20240102.csv"
    assert relative_path(drop, "../33449.csv") == "33449.csv"
    for outside in (str(tmp_path / "elsewhere.csv"), "../../elsewhere.csv", str(drop)):
        with pytest.raises(UserInputError, match="not inside the drop directory"):
            relative_path(drop, outside)


def test_a_reprocessed_file_that_ends_quarantined_exits_1(generated: Settings, capsys) -> None:
    path = generated.drop.dir / f"{FIRST}.csv.gz"
    path.write_bytes(gzip.compress(b"SecId;TradeDate;Open\n1;20240102;1.5\n"))
    capsys.readouterr()
    assert reprocess(generated, Selection(files=(path.name,)), progress=False) == 1
    captured = capsys.readouterr()
    assert "reprocessed 1 of 1 file version(s) (quarantined 1)" in captured.out
    assert f"quarantined: {path.name}: " in captured.err and "unknown schema" in captured.err


def test_since_selects_by_mtime(tmp_path: Path, capsys) -> None:
    drop = tmp_path / "drop"
    manifest = generate_drop(drop, SPEC)
    old = dt.datetime(2024, 1, 2, tzinfo=dt.UTC).timestamp()
    new = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC).timestamp()
    for path in [manifest.master_path, *manifest.bar_paths]:
        os.utime(path, (old, old))
    recent = manifest.bar_paths[:2]
    for path in recent:
        os.utime(path, (new, new))
    settings = settings_for(drop, tmp_path / "state")
    ingest(settings)
    capsys.readouterr()
    assert reprocess(settings, Selection(since=dt.date(2024, 6, 1)), progress=False) == 0
    assert "reprocessed 2 of 2 file version(s) (done 2)" in capsys.readouterr().out
    assert reprocess(settings, Selection(since=dt.date(2024, 6, 2)), progress=False) == 0
    assert "nothing to reprocess" in capsys.readouterr().out


def test_changed_file_is_reread(generated: Settings) -> None:
    """--secid re-reads the drop: a file rewritten since ingestion is applied in its new form."""
    path = generated.drop.dir / f"{FIRST}.csv.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    header, first = lines[0].split(","), lines[1].split(",")
    first[header.index("ClosePrice")] = "123.45"
    lines[1] = ",".join(first)
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert reprocess(generated, Selection(secids=(FIRST,)), progress=False) == 0
    states = query(generated, "SELECT state FROM files WHERE path = ? ORDER BY id", (path.name,))
    assert states == [("done",), ("done",)]
    (table,) = stored_tables(generated.db_path).values()
    day = table.filter((pc.field("secid") == FIRST) & (pc.field("tradedate") == int(first[1])))
    assert day["close"].to_pylist() == [123.45]


def test_progress_bar(generated: Settings, capsys) -> None:
    assert reprocess(generated, Selection(everything=True), progress=True) == 0
    err = capsys.readouterr().err
    assert "100%" in err and f"{SPEC.secids + 1}/{SPEC.secids + 1}" in err and "rows=" in err


def test_unknown_secid_or_file_exits_2_and_touches_nothing(generated: Settings) -> None:
    env = env_for(generated.drop.dir, generated.state.dir)
    snapshot = query(generated, "SELECT * FROM files ORDER BY id"), bars(generated)
    outside = generated.drop.dir.parent / "elsewhere.csv"
    cases = [
        (["--secid", "999999"], "unknown SecId 999999"),
        (["--file", "nope/123.csv"], "unknown file nope/123.csv"),
        (["--file", str(outside)], "not inside the drop directory"),
        (["--secid", str(FIRST), "--secid", "999999"], "unknown SecId 999999"),
    ]
    for args, message in cases:
        proc = cli(env, "reprocess", *args)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr
    proc = cli(env, "reprocess", "--secid", "1", "--all")
    assert proc.returncode == 2 and "exactly one of" in proc.stderr
    assert (query(generated, "SELECT * FROM files ORDER BY id"), bars(generated)) == snapshot


def test_no_state_database_is_a_clean_error(tmp_path: Path) -> None:
    (tmp_path / "drop").mkdir()
    proc = cli(env_for(tmp_path / "drop", tmp_path / "state"), "reprocess", "--all")
    assert proc.returncode == 2 and "no state database" in proc.stderr
    assert not (tmp_path / "state" / "state.db").exists()


# -- with a running daemon -----------------------------------------------------------------


def start_daemon(env: dict[str, str], state: Path) -> subprocess.Popen[bytes]:
    """The real daemon (`algoseek-sync run`), once it holds the worker lock; its log goes next to the state."""
    env = {**env, "ALGOSEEK_SYNC_STABILITY_SECONDS": "0.2", "ALGOSEEK_SYNC_OBSERVER": "polling"}
    log = state.parent / f"daemon-{time.monotonic_ns()}.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "algoseek_sync", "run"], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    deadline = time.monotonic() + 60
    while not WorkerLock(state).held_elsewhere():
        assert proc.poll() is None, f"daemon exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"daemon did not take the worker lock:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)
    return proc


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM; the daemon promises a clean exit (0) within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("the daemon did not exit within 30 s of SIGTERM") from None
    assert code == 0, f"the daemon exited {code} on SIGTERM"


def test_with_running_daemon_wait_returns_after_it_processed(generated: Settings) -> None:
    env = env_for(generated.drop.dir, generated.state.dir)
    before = bars(generated)
    daemon = start_daemon(env, generated.state.dir)
    try:
        assert delete_secid(generated, FIRST + 3) > 0
        proc = cli(env, "reprocess", "--secid", str(FIRST + 3), "--wait", timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert "reprocessed 1 of 1 file version(s) (done 1)" in proc.stdout
        assert bars(generated) == before  # the daemon, not the command, wrote them back
        assert '"mode": "daemon"' in proc.stderr
        proc = cli(env, "reprocess", "--file", f"{FIRST}.csv.gz")  # without --wait: queued, returns
        assert proc.returncode == 0 and "queued 1 file version(s)" in proc.stdout
        assert daemon.poll() is None
    finally:
        stop_daemon(daemon)


# -- status --health -----------------------------------------------------------------------


def beat(settings: Settings, when: float) -> None:
    with sqlite3.connect(settings.db_path) as conn:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('heartbeat', ?)", (str(when),))


def test_health(generated: Settings) -> None:
    stopped = health(generated)
    assert (stopped.state, stopped.healthy) == ("stopped", False)
    assert stopped.message() == f"stopped: no daemon running on {generated.state.dir}"
    holder = WorkerLock(generated.state.dir)  # flock conflicts between descriptors, even in one process
    assert holder.acquire()
    try:
        verdict = health(generated)
        assert verdict.state == "unhealthy" and "not written a heartbeat yet" in verdict.message()
        beat(generated, time.time() - 5)
        verdict = health(generated)
        assert (verdict.state, verdict.message()) == ("healthy", "healthy") and verdict.healthy
        beat(generated, time.time() - 300)  # [health] heartbeat_seconds defaults to 60
        verdict = health(generated)
        assert verdict.state == "unhealthy" and not verdict.healthy
        assert "worker made no progress for 300 s (limit 60 s)" in verdict.message()
    finally:
        holder.release()


def test_status_health_cli(generated: Settings, tmp_path: Path) -> None:
    env = env_for(generated.drop.dir, generated.state.dir)
    proc = cli(env, "status", "--health")
    assert proc.returncode == 1
    assert proc.stdout.strip() == f"stopped: no daemon running on {generated.state.dir}"
    proc = cli(env_for(generated.drop.dir, tmp_path / "nowhere"), "status", "--health")
    assert proc.returncode == 1 and proc.stdout.startswith("stopped: no daemon running (no state database")
    daemon = start_daemon(env, generated.state.dir)
    try:
        deadline = time.monotonic() + 60
        while (proc := cli(env, "status", "--health")).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.returncode == 0 and proc.stdout.strip() == "healthy", proc.stdout
        proc = cli(env, "status", "--health", "--json")
        verdict = json.loads(proc.stdout)
        assert proc.returncode == 0 and (verdict["state"], verdict["reasons"]) == ("healthy", [])
        assert verdict["facts"]["pid"] == daemon.pid and verdict["facts"]["failed_cycles"] == 0
    finally:
        stop_daemon(daemon)
