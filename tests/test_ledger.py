"""Ledger hygiene: finishing only from processing, chunked IN lists, rollback after a failed COMMIT."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from algoseek_sync.state.database import Database
from algoseek_sync.state.ledger import FileState, Ledger, Mark
from algoseek_sync.state.schema import SCHEMA_VERSION


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(Database(tmp_path / "state.db"))


def test_a_reprocess_during_processing_wins(ledger: Ledger) -> None:
    ledger.record("1.csv", 10, 1, "bars")
    (version,) = ledger.claim_bars(10)
    assert ledger.requeue([version.id]) == 1  # `reprocess` while the worker holds the version
    ledger.finish([Mark(version.id, FileState.DONE, None, sha256="x", rows=1)])
    ledger.release([version], "interrupted", lambda v: 60.0)
    tracked = ledger.track([version.id])[version.id]
    assert tracked.state == FileState.PENDING  # not done: the reprocess is not lost
    (again,) = ledger.claim_bars(10)
    assert again.id == version.id and again.force


def test_release_returns_only_unfinished_versions(ledger: Ledger) -> None:
    for n in range(3):
        ledger.record(f"{n}.csv", 10, 1, "bars")
    claimed = ledger.claim_bars(10)
    ledger.finish([Mark(claimed[0].id, FileState.DONE, None)])
    assert ledger.release(claimed, "boom", lambda v: 0.0) == 2
    states = {t.path: t.state for t in ledger.track([v.id for v in claimed]).values()}
    assert states == {"0.csv": FileState.DONE, "1.csv": FileState.PENDING, "2.csv": FileState.PENDING}
    assert ledger.processing_age() == (0.0, "")


def test_failures_quarantine_a_version_after_the_bound(ledger: Ledger) -> None:
    ledger.record("bad.csv", 10, 1, "bars")
    states = []
    for _ in range(3):
        (version,) = ledger.claim_bars(10)
        states.append(ledger.fail(version, "KeyError: x", max_failures=3, delay=0.0, final_reason="gave up"))
    assert states == [FileState.PENDING, FileState.PENDING, FileState.QUARANTINED]
    assert ledger.track([version.id])[version.id].error == "gave up"


def test_in_lists_are_chunked_beyond_sqlites_variable_limit(ledger: Ledger) -> None:
    count = 40_000  # above SQLite's default limit of 32,766 variables per statement
    now = 1.0
    ledger.db.conn.executemany(
        "INSERT INTO files (path, size, mtime_ns, kind, state, discovered_at, updated_at) VALUES (?, 1, 1, 'bars', 'done', ?, ?)",
        [(f"{n}.csv", now, now) for n in range(count)],
    )
    ids = [r[0] for r in ledger.db.execute("SELECT id FROM files")]
    assert ledger.requeue(ids) == count
    assert len(ledger.track(ids)) == count
    assert len(ledger.known_versions([f"{n}.csv" for n in range(count)])) == count
    assert len(ledger.versions_for(everything=True)) == count


class _FailingCommit:
    """A connection whose next COMMIT fails the way a full disk makes it fail."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.fail_next = True

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql == "COMMIT" and self.fail_next:
            self.fail_next = False
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def test_a_failed_commit_is_rolled_back_and_the_connection_stays_usable(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.db")
    db.conn = _FailingCommit(db.conn)  # type: ignore[assignment]
    ledger = Ledger(db)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        ledger.record("lost.csv", 1, 1, "bars")
    assert not db.conn.in_transaction
    assert ledger.record("kept.csv", 1, 1, "bars")  # the next transaction works
    assert [r[0] for r in db.execute("SELECT path FROM files")] == ["kept.csv"]


def test_a_database_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    from algoseek_sync.errors import ConfigError

    path = tmp_path / "state.db"
    Database(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ConfigError, match="newer than this release"):
        Database(path)
