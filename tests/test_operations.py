"""What operators and supervisors read: exit codes, summaries, health verdicts, check-config.

Every test starts the CLI as a subprocess, as cron, systemd or a container runtime would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import AAPL_SAMPLE, MASTER_SAMPLE, Sandbox

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@contextlib.contextmanager
def lock_held(sandbox: Sandbox) -> Iterator[subprocess.Popen]:
    """Another process holding the state directory's worker lock, as a running daemon does."""
    sandbox.state.mkdir(parents=True, exist_ok=True)
    code = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(sandbox.state / 'worker.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def set_meta(box: Sandbox, **values: object) -> None:
    db = sqlite3.connect(box.state / "state.db")
    with db:
        for key, value in values.items():
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))
    db.close()


def health(box: Sandbox) -> tuple[int, dict]:
    result = box.cli("status", "--health", "--json", check=False)
    return result.code, json.loads(result.out)


def test_run_once_counts_every_outcome_and_exits_as_documented(sandbox: Sandbox) -> None:
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    sandbox.put("33449.csv", AAPL_SAMPLE)
    clean = sandbox.cli("run", "--once")
    assert clean.err.splitlines()[-1] == (
        "processed 2 file version(s): done 2, unchanged 0, waiting 0, quarantined 0, skipped 0,"
        " superseded 0, deferred 0, failed 0; wrote 3342 row(s)"
    )
    sandbox.put("1.csv", "not,a,bar,file\n1,2,3,4\n")
    sandbox.put(
        "777.csv", "SecId,TradeDate,Ticker,Open,High,Low,Close,MarketHoursVolume\n777,20240102,X,1,1,1,1,1\n"
    )
    bad = sandbox.cli("run", "--once", check=False)
    assert bad.code == 1, bad.err  # a file of this run was quarantined: cron must notice
    assert "quarantined 1" in bad.err.splitlines()[-1] and "waiting 1" in bad.err.splitlines()[-1]
    again = sandbox.cli("run", "--once", check=False)
    assert again.code == 0 and "processed 0 file version(s)" in again.err  # nothing new: nothing wrong


def test_run_once_while_a_daemon_holds_the_state_directory_exits_75(sandbox: Sandbox) -> None:
    with lock_held(sandbox):
        result = sandbox.cli("run", "--once", check=False)
    assert result.code == 75 and "already running" in result.err and "Traceback" not in result.err


def test_health_without_a_daemon_says_stopped(sandbox: Sandbox) -> None:
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    sandbox.cli("run", "--once")
    code, verdict = health(sandbox)
    assert code == 1 and verdict["state"] == "stopped" and "no daemon running" in verdict["reasons"][0]


def test_health_turns_unhealthy_or_degraded_when_work_stops_moving(sandbox: Sandbox) -> None:
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    sandbox.put("33449.csv", AAPL_SAMPLE)
    sandbox.cli("run", "--once")
    now = time.time()
    with lock_held(sandbox):
        set_meta(sandbox, heartbeat=now, failed_cycles=0, backend_down_since=0)
        code_, verdict = health(sandbox)
        assert (code_, verdict["state"]) == (0, "healthy")
        assert sandbox.cli("status", "--health").out.strip() == "healthy"

        db = sqlite3.connect(sandbox.state / "state.db")
        with db:
            db.execute(
                "UPDATE files SET state = 'processing', claimed_at = ? WHERE path = '33449.csv'",
                (now - 2000,),
            )
        code_, verdict = health(sandbox)
        assert code_ == 1 and verdict["state"] == "unhealthy"
        assert "33449.csv has been processing for" in verdict["reasons"][0]
        with db:
            db.execute("UPDATE files SET state = 'done', claimed_at = NULL")
        db.close()

        set_meta(sandbox, failed_cycles=4, last_error="RuntimeError: boom")
        code_, verdict = health(sandbox)
        assert code_ == 1 and "the last 4 worker cycles failed: RuntimeError: boom" in verdict["reasons"]
        set_meta(sandbox, failed_cycles=0, backend_down_since=now - 900, backend_error="connection refused")
        code_, verdict = health(sandbox)
        assert (code_, verdict["state"]) == (1, "degraded")
        assert (
            "backend unreachable for" in verdict["reasons"][0]
            and "connection refused" in verdict["reasons"][0]
        )
        set_meta(sandbox, backend_down_since=0, heartbeat=now - 3600, busy_until=0)
        code_, verdict = health(sandbox)
        assert code_ == 1 and "worker made no progress" in verdict["reasons"][0]
        # a long backend call announced how long it may take: not hung yet
        set_meta(sandbox, heartbeat=now - 90, busy_until=now + 60)
        assert health(sandbox)[1]["state"] == "healthy"
        text = sandbox.cli("status").out
        assert "running (pid " in text and "heartbeat" in text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_busy_metrics_port_is_a_temporary_failure(sandbox: Sandbox) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        started = time.monotonic()
        result = sandbox.cli("run", check=False, timeout=60, ALGOSEEK_SYNC_METRICS_LISTEN=f"127.0.0.1:{port}")
    assert result.code == 75, result.err  # systemd restarts 75 (not 78): the old process may still hold it
    assert "metrics_listen_failed" in result.err and time.monotonic() - started < 30


def test_check_config_validates_what_run_validates(sandbox: Sandbox) -> None:
    result = sandbox.cli("check-config", check=False, ALGOSEEK_SYNC_METRICS_LISTEN="localhost")
    assert result.code == 78 and "'metrics.listen'" in result.err and "host:port" in result.err
    assert len(result.err.strip().splitlines()) == 1
    ok = sandbox.cli("check-config", ALGOSEEK_SYNC_METRICS_LISTEN=f"127.0.0.1:{free_port()}")
    assert "configuration OK" in ok.out


def test_check_config_names_every_missing_credential_at_once(sandbox: Sandbox) -> None:
    result = sandbox.cli("check-config", check=False, ALGOSEEK_SYNC_BACKEND="mainsequence")
    assert result.code == 78
    for name in ("MAINSEQUENCE_ENDPOINT", "MAINSEQUENCE_ACCESS_TOKEN", "MAIN_SEQUENCE_PROJECT_ID"):
        assert name in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_check_config_says_connection_refused_within_seconds(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = sandbox.cli(
        "check-config",
        check=False,
        ALGOSEEK_SYNC_BACKEND="mainsequence",
        MAINSEQUENCE_ENDPOINT=f"http://127.0.0.1:{free_port()}",
        MAINSEQUENCE_ACCESS_TOKEN="token-for-a-closed-port",
        MAIN_SEQUENCE_PROJECT_ID="1",
    )
    elapsed = time.monotonic() - started
    assert result.code == 69, result.err
    assert "connection refused" in result.err and "token-for-a-closed-port" not in result.err
    assert elapsed < 20  # interpreter and SDK import included; the check itself is one attempt


@pytest.fixture
def open_box() -> Iterator[Sandbox]:
    """A sandbox another user can enter (tmp_path is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="algoseek-nobody-"))
    root.chmod(0o777)
    box = Sandbox(root, root / "drop", root / "state")
    for directory in (box.drop, box.state):
        directory.mkdir()
        directory.chmod(0o777)
    yield box
    for path in root.rglob("*"):
        if path.is_dir():
            path.chmod(0o777)
    shutil.rmtree(root)


def as_nobody(box: Sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NOBODY, sys.executable, "-m", "algoseek_sync", *args],
        env=box.env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=box.root,
    )


def test_unreadable_directories_are_named_not_skipped_silently(open_box: Sandbox) -> None:
    open_box.put("equity_security_master.csv", MASTER_SAMPLE)
    open_box.put("ok/33449.csv", AAPL_SAMPLE)
    open_box.put("locked/39827.csv", AAPL_SAMPLE.read_text().replace("33449,", "39827,"))
    for path in open_box.drop.rglob("*"):
        path.chmod(0o777 if path.is_dir() else 0o644)
    (open_box.drop / "locked").chmod(0o000)
    run = as_nobody(open_box, "run", "--once")
    assert run.returncode == 1, run.stderr  # files of the drop were not taken
    assert "1 unreadable director(ies)" in run.stderr.splitlines()[-1]
    data = json.loads(as_nobody(open_box, "status", "--json").stdout)
    unreadable = [p for p in data["problems"]["recent"] if p["kind"] == "unreadable"]
    assert unreadable and unreadable[0]["path"] == "locked" and "Permission denied" in unreadable[0]["detail"]
    assert data["files"]["bars"] == {"done": 1}

    open_box.drop.chmod(0o700)  # now the drop itself is unreadable for the service user
    checked = as_nobody(open_box, "check-config")
    assert checked.returncode == 78 and "drop.dir" in checked.stderr and "not readable" in checked.stderr
    os.chmod(open_box.drop, 0o777)
