"""Run ``algoseek-sync run`` as a subprocess on a sandbox (short windows for tests), and read its state
database like another process would: ledger rows, and the bars decoded from the store's chunks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from algoseek_sync.formats.datasets import DATASETS
from algoseek_sync.state.database import Database
from algoseek_sync.store.chunks import Chunks
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


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port where connections are refused, for as long as the block runs.

    A socket bound but not listening: the kernel answers connections with a reset, and no other
    process can take the port meanwhile (unlike a port found free and released, which anyone may bind).
    """
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


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


def stored_tables(db: Path) -> dict[str, pa.Table]:
    """dataset → every bar the embedded store holds for it, decoded from its chunks
    (the dataset's stored columns, sorted by secid and tradedate)."""
    if not db.exists():
        return {}
    database = Database(db, readonly=True)
    try:
        chunks = Chunks(database)
        tables: dict[str, pa.Table] = {}
        for name, dataset in DATASETS.items():
            dataset_id = chunks.dataset_id(name)
            if dataset_id is None:
                continue
            secids = [
                r[0]
                for r in database.execute(
                    "SELECT DISTINCT secid FROM bar_chunks WHERE dataset = ? ORDER BY secid", (dataset_id,)
                )
            ]
            if secids:
                tables[name] = chunks.read(dataset, secids)
        return tables
    finally:
        database.close()


def stored_bars(db: Path) -> list[tuple]:
    """Every stored bar row, in a fixed order: two stores hold the same bars exactly when these are equal.

    One tuple per row: (dataset, secid, tradedate, then the dataset's other columns in
    ``Dataset.names`` order, ``extra`` last). Rows are stored once per SecId (FIGIs are
    routed at read time), so this compares what was stored, not how it is routed.
    """
    rows: list[tuple] = []
    for name, table in stored_tables(db).items():
        others = [c for c in DATASETS[name].names if c not in ("secid", "tradedate")]
        rows += [(name, r["secid"], r["tradedate"], *(r[c] for c in others)) for r in table.to_pylist()]
    return sorted(rows, key=lambda r: (r[0], r[1], r[2]))


def stored_count(db: Path, secid: int | None = None) -> int:
    """Bar rows stored (over every dataset), optionally of one SecId; 0 before the store exists."""
    where, params = ("WHERE secid = ?", (secid,)) if secid is not None else ("", ())
    found = query(db, f"SELECT coalesce(sum(rows), 0) FROM bar_chunks {where}", params)
    return int(found[0][0]) if found else 0


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

    def _running(self) -> None:
        """Fail at once, with its log, when the daemon a wait is for has exited."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")

    def metrics_url(self, timeout: float = 60.0) -> str:
        """``http://host:port`` of the metrics listener, from its log line: started with
        ``metrics.listen = "127.0.0.1:0"`` the daemon binds a port the kernel picks, so no
        other process can take it between choosing and binding."""

        def listening() -> list[dict]:
            self._running()
            return self.events("metrics_listening")

        wait_for(listening, timeout, "the metrics listener")
        return f"http://{listening()[0]['address']}"

    def wait_ready(self, timeout: float = 60.0) -> Daemon:
        def ready() -> bool:
            self._running()
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
