"""The state database: one SQLite file in WAL mode shared by ledger, mapping and local store.

One file (not several attached ones) because SQLite only makes a transaction atomic
across tables of the same file in WAL mode: the embedded store's bars and the
ledger's "done" must commit together.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,            -- relative to the drop root, '/'-separated
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT,                   -- known once the worker has read the bytes
    kind TEXT NOT NULL,            -- master | bars | other
    state TEXT NOT NULL,           -- pending | processing | done | waiting_master | quarantined | superseded | skipped
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    rows INTEGER,
    secids TEXT,                   -- SecIds the file held (comma-separated), for reprocess
    first_date TEXT,
    discovered_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    done_at REAL,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    force INTEGER NOT NULL DEFAULT 0,   -- reprocess: apply even when the bytes are unchanged
    UNIQUE (path, size, mtime_ns)
);
CREATE INDEX IF NOT EXISTS files_state ON files (state, kind, mtime_ns);
CREATE INDEX IF NOT EXISTS files_path ON files (path, id);

CREATE TABLE IF NOT EXISTS masters (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    applied_at REAL NOT NULL,
    secids INTEGER NOT NULL,
    assets INTEGER NOT NULL,
    invalid_figis INTEGER NOT NULL
);

-- Which asset (FIGI or custom id) each SecId maps to, and when that changed.
CREATE TABLE IF NOT EXISTS secid_assets (
    secid INTEGER NOT NULL,
    unique_identifier TEXT NOT NULL,
    kind TEXT NOT NULL,            -- figi | custom
    is_latest INTEGER NOT NULL,
    active INTEGER NOT NULL,       -- in the newest master
    registered INTEGER NOT NULL,   -- the backend has the asset: bars may be written
    added_master INTEGER NOT NULL,
    added_at REAL NOT NULL,
    removed_master INTEGER,
    removed_at REAL,
    PRIMARY KEY (secid, unique_identifier)
);
CREATE INDEX IF NOT EXISTS secid_assets_uid ON secid_assets (unique_identifier);

CREATE TABLE IF NOT EXISTS tickers (
    secid INTEGER NOT NULL,
    ticker TEXT NOT NULL,
    start_date TEXT NOT NULL,      -- YYYY-MM-DD
    end_date TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tickers_ticker ON tickers (ticker);

CREATE TABLE IF NOT EXISTS master_issues (
    secid INTEGER NOT NULL,
    token TEXT NOT NULL,
    problem TEXT NOT NULL
);

-- Asset registrations the backend could not finish yet, retried on later cycles.
CREATE TABLE IF NOT EXISTS registrations (
    unique_identifier TEXT PRIMARY KEY,
    secid INTEGER NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,           -- retry | refused
    attempts INTEGER NOT NULL,
    last_error TEXT,
    next_attempt_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT
);
"""


class Database:
    """A SQLite connection with a re-entrant write transaction.

    Each thread (watcher, worker, CLI) opens its own :class:`Database`; SQLite's WAL
    lets readers run while one writer commits.
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        if readonly:
            uri = f"file:{path}?mode=ro"
            self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA busy_timeout = 30000")
        self._depth = 0
        self._lock = threading.RLock()
        if not readonly:
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
            with self.transaction():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; nested calls join the outer transaction."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.conn
            except BaseException:
                self._depth = 0
                self.conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self.conn.execute("COMMIT")

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def select_in(self, sql: str, values: Sequence[object], chunk: int = 500) -> Iterator[sqlite3.Row]:
        """Rows of ``sql`` whose ``{marks}`` is an ``IN (...)`` list of ``values``, ``chunk`` at a time.

        Bounds the number of SQL variables per statement, however many values a caller has.
        """
        for start in range(0, len(values), chunk):
            part = values[start : start + chunk]
            yield from self.conn.execute(sql.format(marks=",".join("?" * len(part))), part)

    def close(self) -> None:
        self.conn.close()
