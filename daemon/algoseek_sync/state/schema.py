"""The state database's layout and its migrations, in one place.

``PRAGMA user_version`` holds the layout version. A new database is created at
:data:`SCHEMA_VERSION` directly; an older one is migrated step by step inside the
opening transaction (all or nothing); a newer one (written by a later release) is
refused with a clear message instead of being damaged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from algoseek_sync.errors import ConfigError

if TYPE_CHECKING:
    from algoseek_sync.state.sql import Sql

SCHEMA_VERSION = 3

LEDGER = """
CREATE TABLE files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,            -- relative to the drop root, '/'-separated
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT,                   -- known once the worker has read the bytes
    kind TEXT NOT NULL,            -- master | bars | other
    state TEXT NOT NULL,           -- ledger.FileState
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    rows INTEGER,
    secids TEXT,                   -- SecIds the file held (comma-separated), for reprocess
    dataset TEXT,                  -- the bar dataset its header names (formats/datasets.py)
    discovered_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    done_at REAL,
    claimed_at REAL,               -- when the worker took it (health: nothing stays processing long)
    failures INTEGER NOT NULL DEFAULT 0,  -- unexpected errors so far (quarantined after a few)
    next_attempt_at REAL NOT NULL DEFAULT 0,
    force INTEGER NOT NULL DEFAULT 0,   -- reprocess: apply even when the bytes are unchanged
    UNIQUE (path, size, mtime_ns)
);
CREATE INDEX files_state ON files (state, kind, mtime_ns);
CREATE INDEX files_path ON files (path, id);

CREATE TABLE masters (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    applied_at REAL NOT NULL,
    secids INTEGER NOT NULL,
    assets INTEGER NOT NULL,
    invalid_figis INTEGER NOT NULL
);

-- Which asset (FIGI or custom id) each SecId maps to, and when that changed.
CREATE TABLE secid_assets (
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
CREATE INDEX secid_assets_uid ON secid_assets (unique_identifier);

CREATE TABLE tickers (
    secid INTEGER NOT NULL,
    ticker TEXT NOT NULL,
    start_date TEXT NOT NULL,      -- YYYY-MM-DD
    end_date TEXT NOT NULL
);
CREATE INDEX tickers_ticker ON tickers (ticker);
CREATE INDEX tickers_secid ON tickers (secid);  -- listing periods of the affected SecIds, per batch

-- Asset registrations the backend could not finish yet, retried on later cycles.
CREATE TABLE registrations (
    unique_identifier TEXT PRIMARY KEY,
    secid INTEGER NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,           -- retry | refused
    attempts INTEGER NOT NULL,
    last_error TEXT,
    next_attempt_at REAL NOT NULL
);

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT
);
"""

NAMES = """
-- Name history, like tickers. Both keep, per SecId, the spans of the newest master that listed
-- it: a master that leaves a SecId out does not erase its past (survivorship, README).
CREATE TABLE names (
    secid INTEGER NOT NULL,
    name TEXT NOT NULL,
    start_date TEXT NOT NULL,      -- YYYY-MM-DD
    end_date TEXT NOT NULL
);
CREATE INDEX names_secid ON names (secid);
"""

PROBLEMS = """
-- Data and runtime problems that were contained (see problems.py): what, where, what was done.
CREATE TABLE problems (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    scope TEXT NOT NULL,           -- the path (or 'master', 'daemon'): problems are replaced per scope
    path TEXT,
    secid INTEGER,
    unique_identifier TEXT,
    line INTEGER,
    detail TEXT NOT NULL,
    action TEXT NOT NULL,
    count INTEGER NOT NULL DEFAULT 1,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    UNIQUE (kind, scope, detail)
);
CREATE INDEX problems_seen ON problems (last_seen);
CREATE INDEX problems_scope ON problems (scope);
"""

STORE = """
CREATE TABLE assets (
    unique_identifier TEXT PRIMARY KEY,
    secid INTEGER NOT NULL,
    kind TEXT NOT NULL,
    ticker TEXT, name TEXT, isin TEXT, exchange TEXT,
    registered_at REAL NOT NULL
);
CREATE TABLE master_snapshot (
    unique_identifier TEXT PRIMARY KEY,
    secid INTEGER NOT NULL,
    kind TEXT NOT NULL,
    latest_figi TEXT,
    data TEXT NOT NULL          -- the master row's other columns, lower-cased, as JSON
);
-- Bars (store/): one compressed chunk per (dataset, SecId, period), period = YYYYMM for daily bars.
CREATE TABLE datasets (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,     -- primary | primary-adjusted | standard-adjusted
    frequency TEXT NOT NULL        -- 1d (1m later: period = YYYYMMDD)
);
CREATE TABLE chunk_layouts (
    id INTEGER PRIMARY KEY,
    dataset INTEGER NOT NULL,
    columns TEXT NOT NULL,         -- JSON [[name, kind], ...] of the records
    UNIQUE (dataset, columns)
);
CREATE TABLE strings (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE      -- tickers, names, ISINs, exchanges, adjustment reasons
);
CREATE TABLE bar_chunks (
    dataset INTEGER NOT NULL,
    secid INTEGER NOT NULL,
    period INTEGER NOT NULL,
    first_date INTEGER NOT NULL,
    last_date INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (dataset, secid, period)
);
CREATE INDEX bar_chunks_period ON bar_chunks (dataset, period);
-- Data quality (quality/): findings of the checks, open until a later delivery fixes them.
CREATE TABLE findings (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,        -- error | warning | info
    dataset TEXT NOT NULL,         -- '*' for findings about every dataset (late delivery)
    secid INTEGER NOT NULL,        -- -1 when not about one SecId
    unique_identifier TEXT,        -- the SecId's current FIGI (or custom id) when found
    start_date INTEGER NOT NULL,   -- YYYYMMDD, 0 when not about a day
    end_date INTEGER,
    observed TEXT,                 -- JSON: the values that made it a finding
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    resolved_at REAL,
    UNIQUE (kind, dataset, secid, start_date)
);
CREATE INDEX findings_open ON findings (resolved_at, kind);
CREATE INDEX findings_secid ON findings (secid, dataset);
CREATE TABLE quality_state (
    dataset TEXT PRIMARY KEY,
    last_session INTEGER NOT NULL  -- the newest trade date delivered
);
CREATE TABLE calendar_sessions (
    name TEXT PRIMARY KEY,
    built_at REAL NOT NULL,
    version TEXT NOT NULL,
    dates BLOB NOT NULL,           -- int64 YYYYMMDD
    closes BLOB NOT NULL           -- float64 epoch seconds
);
-- Platform backend: the latest factors its adjusted tables were computed with (backends/mainsequence/adjusted.py).
CREATE TABLE platform_factors (
    dataset TEXT NOT NULL,
    secid INTEGER NOT NULL,
    tradedate INTEGER NOT NULL,
    cpf REAL,
    cvf REAL,
    PRIMARY KEY (dataset, secid)
);
"""


def _statements(script: str) -> list[str]:
    return [s for s in script.split(";") if s.strip()]


def _create(conn: sqlite3.Connection) -> None:
    for statement in _statements(LEDGER + NAMES + PROBLEMS + STORE):
        conn.execute(statement)


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
    return row is not None


def _v1_to_v2(db: Sql) -> None:
    """Problems replace master_issues; files gain claimed_at and failures; bars move into chunks."""
    conn = db.conn
    conn.execute("ALTER TABLE files ADD COLUMN claimed_at REAL")
    conn.execute("ALTER TABLE files ADD COLUMN failures INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE files DROP COLUMN first_date")
    conn.execute("ALTER TABLE files ADD COLUMN dataset TEXT")
    conn.execute("CREATE INDEX IF NOT EXISTS tickers_secid ON tickers (secid)")
    for statement in _statements(PROBLEMS):
        conn.execute(statement)
    if _has_table(conn, "master_issues"):
        conn.execute(
            "INSERT OR IGNORE INTO problems (kind, scope, secid, detail, action, first_seen, last_seen)"
            " SELECT 'master_figi', 'master', secid, token || ': ' || problem, 'token ignored',"
            " strftime('%s', 'now'), strftime('%s', 'now') FROM master_issues"
        )
        conn.execute("DROP TABLE master_issues")
    for statement in _statements(STORE):
        conn.execute(statement.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS "))
    if _has_table(conn, "bars"):
        from algoseek_sync.store.migrate import bars_to_chunks

        bars_to_chunks(db)
        conn.execute("DROP TABLE bars")


def _v2_to_v3(db: Sql) -> None:
    """Name history (filled by the next master applied; earlier masters kept no names)."""
    for statement in _statements(NAMES):
        db.conn.execute(statement)


#: version → the step that brings a database from that version to the next
MIGRATIONS: dict[int, Callable[[Sql], None]] = {1: _v1_to_v2, 2: _v2_to_v3}


def check_version(conn: sqlite3.Connection, path: Path) -> int:
    """The layout version; refuse one this release does not know (a newer release wrote it)."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise ConfigError(
            f"state database {path} has layout version {version}, newer than this release knows"
            f" ({SCHEMA_VERSION}): upgrade algoseek-sync or restore a matching backup"
        )
    return version


def migrate(db: Sql) -> None:
    """Create or upgrade the layout; runs inside the caller's transaction."""
    version = check_version(db.conn, db.path)
    if version == 0:
        _create(db.conn)
    else:
        for step in range(version, SCHEMA_VERSION):
            MIGRATIONS[step](db)
    db.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
