"""Run ``algoseek-sync run`` as a subprocess on a sandbox, with short windows for tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conftest import Sandbox

FAST_CONFIG = """\
[watch]
poll_interval_seconds = 0.2
reconcile_interval_seconds = 300.0
"""


def wait_for(cond: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """Liveness only: poll ``cond`` until true, fail after a generous ``timeout``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """Read the state database like another process would (read-only, WAL readers never block)."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def integrity(db: Path) -> str:
    """SQLite's own check of the state database ("ok" when intact)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def bars_rows(db: Path) -> list[tuple]:
    """Every stored bar, in a fixed order: two stores are equal when these lists are."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT * FROM bars ORDER BY unique_identifier, time_index").fetchall()
    finally:
        conn.close()


def newest_states(db: Path) -> dict[str, str]:
    """path → state of its newest version."""
    return dict(
        query(
            db,
            "SELECT path, state FROM files f WHERE id = (SELECT max(id) FROM files g WHERE g.path = f.path)",
        )
    )


class Daemon:
    """One ``algoseek-sync run`` process; its stderr (JSON log lines) goes to a file."""

    def __init__(self, box: Sandbox, observer: str = "inotify", stability: str = "0.3", **env: str) -> None:
        self.box = box
        config = box.root / "fast.toml"
        config.write_text(FAST_CONFIG)
        self.env = box.env(
            ALGOSEEK_SYNC_CONFIG=str(config),
            ALGOSEEK_SYNC_OBSERVER=observer,
            ALGOSEEK_SYNC_STABILITY_SECONDS=stability,
            **env,
        )
        for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            if key not in env:
                self.env.pop(key, None)
        self.log_path = box.root / f"daemon-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def db(self) -> Path:
        return self.box.state / "state.db"

    def start(self) -> Daemon:
        with open(self.log_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "algoseek_sync", "run"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self, name: str) -> list[dict]:
        """The JSON log records whose ``event`` is ``name``."""
        records = []
        for line in self.log().splitlines():
            if f'"{name}"' in line:
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if record.get("event") == name:
                        records.append(record)
        return records

    def wait_ready(self, timeout: float = 60.0) -> Daemon:
        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            return '"daemon_ready"' in self.log()

        wait_for(ready, timeout, "the daemon to be ready")
        return self

    def signal(self, signum: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; the exit code (the daemon promises to exit within 10 s)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"daemon did not exit within {timeout} s of SIGTERM:\n{self.log()}"
            ) from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def states(self) -> dict[str, int]:
        return dict(query(self.db, "SELECT state, count(*) FROM files GROUP BY state"))

    def settled(self, files: int) -> bool:
        """``files`` versions known and none pending or processing."""
        states = self.states()
        return sum(states.values()) >= files and not states.get("pending") and not states.get("processing")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
