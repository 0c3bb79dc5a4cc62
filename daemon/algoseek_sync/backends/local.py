"""The embedded store: assets, master snapshot and bars in the state database (SQLite WAL).

Shares the ledger's database file so a file's bars and its ``done`` mark commit in one
transaction; other processes (``status``, ``bars``) read while the daemon writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import pandas as pd

from algoseek_sync.backends.base import AssetOutcome, AssetReport, AssetSpec, Backend, Done, MasterUpdate
from algoseek_sync.db import Database
from algoseek_sync.formats.bars import OUTPUT_COLUMNS, TEXT_OUTPUT

BATCH = 500
_COLS = ", ".join(OUTPUT_COLUMNS)

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS assets (
        unique_identifier TEXT PRIMARY KEY,
        secid INTEGER NOT NULL,
        kind TEXT NOT NULL,
        ticker TEXT, name TEXT, isin TEXT, exchange TEXT,
        registered_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS master_snapshot (
        unique_identifier TEXT PRIMARY KEY,
        secid INTEGER NOT NULL,
        kind TEXT NOT NULL,
        latest_figi TEXT,
        data TEXT NOT NULL          -- the master row's other columns, lower-cased, as JSON
    )""",
    "CREATE TABLE IF NOT EXISTS bars ("
    + ", ".join(f"{c} {'TEXT' if c in TEXT_OUTPUT else 'NUMERIC'}" for c in OUTPUT_COLUMNS)
    + ", PRIMARY KEY (unique_identifier, time_index)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS bars_secid ON bars (secid, time_index)",
]


class LocalBackend(Backend):
    """Embedded SQLite store; ``done`` runs inside the write transaction."""

    name = "local"

    def __init__(self, db: Database) -> None:
        self.db = db
        if not db.readonly:
            with db.transaction() as conn:
                for statement in SCHEMA:
                    conn.execute(statement)

    def check(self) -> str:
        self.db.execute("SELECT count(*) FROM assets").fetchone()
        return f"embedded SQLite store at {self.db.path}"

    def ensure_assets(self, assets: Sequence[AssetSpec]) -> AssetReport:
        report = AssetReport()
        with self.db.transaction() as conn:
            for start in range(0, len(assets), BATCH):
                batch = assets[start : start + BATCH]
                marks = ",".join("?" * len(batch))
                existing = {
                    r[0]
                    for r in conn.execute(
                        f"SELECT unique_identifier FROM assets WHERE unique_identifier IN ({marks})",
                        [a.unique_identifier for a in batch],
                    )
                }
                now = time.time()
                for spec in batch:
                    conn.execute(
                        "INSERT INTO assets (unique_identifier, secid, kind, ticker, name, isin, exchange,"
                        " registered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (unique_identifier) DO UPDATE"
                        " SET ticker = excluded.ticker, name = excluded.name, isin = excluded.isin,"
                        " exchange = excluded.exchange, secid = excluded.secid",
                        (
                            spec.unique_identifier,
                            spec.secid,
                            spec.kind,
                            spec.ticker,
                            spec.name,
                            spec.isin,
                            spec.exchange,
                            now,
                        ),
                    )
                    status = "existing" if spec.unique_identifier in existing else "registered"
                    report.outcomes.append(AssetOutcome(spec.unique_identifier, status))
        return report

    def apply_master(self, update: MasterUpdate, done: Done) -> None:
        keys = ("unique_identifier", "secid", "kind", "latest_figi")
        columns = {c: update.snapshot[c].tolist() for c in update.snapshot.columns}  # column-wise: cheap
        extra = sorted(c for c in columns if c not in keys)
        rows = (  # a generator: executemany streams it, no list of every row's JSON
            (uid, int(secid), kind, latest, json.dumps({c: columns[c][i] for c in extra}))
            for i, (uid, secid, kind, latest) in enumerate(zip(*(columns[k] for k in keys), strict=True))
        )
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM master_snapshot")
            conn.executemany("INSERT INTO master_snapshot VALUES (?, ?, ?, ?, ?)", rows)
            for secid, (source, targets) in update.history_copies.items():
                self.copy_history(secid, source, targets, lambda: None)
            done()

    def upsert_bars(self, frame: pd.DataFrame, done: Done) -> int:
        columns = [frame[c].tolist() if c in frame.columns else [None] * len(frame) for c in OUTPUT_COLUMNS]
        marks = ",".join("?" * len(OUTPUT_COLUMNS))
        with self.db.transaction() as conn:
            conn.executemany(
                f"INSERT OR REPLACE INTO bars ({_COLS}) VALUES ({marks})", zip(*columns, strict=True)
            )
            done()
        return len(frame)

    def copy_history(self, secid: int, source_uid: str, target_uids: Sequence[str], done: Done) -> int:
        others = ", ".join(c for c in OUTPUT_COLUMNS if c != "unique_identifier")
        written = 0
        with self.db.transaction() as conn:
            for target in target_uids:
                written += conn.execute(
                    f"INSERT OR REPLACE INTO bars (unique_identifier, {others})"
                    f" SELECT ?, {others} FROM bars WHERE unique_identifier = ? AND secid = ?",
                    (target, source_uid, secid),
                ).rowcount
            done()
        return written

    def read_bars(
        self, uids: Sequence[str], start: str | None = None, end: str | None = None
    ) -> pd.DataFrame:
        marks = ",".join("?" * len(uids))
        sql = f"SELECT {_COLS} FROM bars WHERE unique_identifier IN ({marks})"
        params: list[object] = list(uids)
        if start:
            sql += " AND time_index >= ?"
            params.append(start)
        if end:
            sql += " AND time_index <= ?"
            params.append(end)
        sql += " ORDER BY time_index, unique_identifier"
        rows = self.db.execute(sql, params).fetchall()
        return pd.DataFrame([tuple(r) for r in rows], columns=OUTPUT_COLUMNS, dtype=object)

    def read_assets(self) -> pd.DataFrame:
        rows = self.db.execute(
            "SELECT unique_identifier, secid, kind, ticker, name FROM assets ORDER BY secid, unique_identifier"
        ).fetchall()
        return pd.DataFrame(
            [tuple(r) for r in rows], columns=["unique_identifier", "secid", "kind", "ticker", "name"]
        )
