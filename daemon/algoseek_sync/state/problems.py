"""Contained problems: what was wrong, where, and what the daemon did about it.

Vendor data is messy and faults happen; each one stops only itself and is written here,
where ``status`` (and ``/metrics``) show it. Problems are grouped by *scope*: a file's
path, ``master`` (the master in force), ``drop`` (the last walk of the drop directory),
``daemon`` (cycles that failed). Processing a scope again replaces its problems, so
``status`` shows what is wrong now, not what a re-delivery already fixed. The table is
bounded: only the newest :data:`LIMIT` problems are kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from algoseek_sync.errors import Problem

if TYPE_CHECKING:
    from algoseek_sync.state.database import Database

LIMIT = 1000

#: Every kind of problem, with a short description (status, metrics help and the README use these).
KINDS: dict[str, str] = {
    "extra_columns": "bar or master file with columns the schema does not know (kept, see README)",
    "duplicate_rows": "exact duplicate rows dropped",
    "conflicting_rows": "two different rows for one (SecId, trade date): the last one kept",
    "foreign_secid": "rows of another SecId in a SecId file: stored under the rows' SecId",
    "bad_rows": "rows that could not be read (blank SecId, bad date or number, wrong field count): skipped",
    "empty_file": "bar file with a header and no rows: nothing stored",
    "master_row_skipped": "master row without a usable SecId: skipped",
    "master_duplicate": "SecId listed more than once in the master",
    "figi_conflict": "one FIGI listed under two SecIds",
    "master_figi": "invalid FIGI token or ticker history in the master",
    "unreadable": "directory or file in the drop that cannot be read",
    "file_failed": "unexpected error while processing a file",
    "asset_refused": "the backend refused to write an asset's bars",
    "cycle_failed": "a worker cycle failed",
}


class Problems:
    """The ``problems`` table. Writes join any open transaction."""

    def __init__(
        self,
        db: Database,
        on_record: Callable[[str, int], None] = lambda kind, count: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.on_record = on_record
        self.clock = clock

    def replace(self, scope: str, problems: Sequence[Problem]) -> None:
        """The problems of ``scope`` are now exactly ``problems``."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM problems WHERE scope = ?", (scope,))
            self._insert(conn, scope, problems)

    def replace_scopes(self, scoped: dict[str, Sequence[Problem]]) -> None:
        """:meth:`replace` for many scopes in two statements (one batch of files)."""
        if not scoped:
            return
        with self.db.transaction() as conn:
            conn.executemany("DELETE FROM problems WHERE scope = ?", [(scope,) for scope in scoped])
            for scope, problems in scoped.items():
                self._insert(conn, scope, problems)

    def add(self, scope: str, problems: Sequence[Problem]) -> None:
        """Record more problems in ``scope`` (a repeat counts up instead of adding a row)."""
        with self.db.transaction() as conn:
            self._insert(conn, scope, problems)

    def clear(self, scope: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM problems WHERE scope = ?", (scope,))

    def _insert(self, conn: Any, scope: str, problems: Sequence[Problem]) -> None:
        if not problems:
            return
        now = self.clock()
        conn.executemany(
            "INSERT INTO problems (kind, scope, path, secid, unique_identifier, line, detail, action,"
            " first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (kind, scope, detail) DO UPDATE SET count = count + 1, last_seen = excluded.last_seen,"
            " action = excluded.action",
            [
                (p.kind, scope, p.path, p.secid, p.unique_identifier, p.line, p.detail, p.action, now, now)
                for p in problems
            ],
        )
        total = conn.execute("SELECT count(*) FROM problems").fetchone()[0]
        if total > LIMIT:
            conn.execute(
                "DELETE FROM problems WHERE id NOT IN"
                " (SELECT id FROM problems ORDER BY last_seen DESC, id DESC LIMIT ?)",
                (LIMIT,),
            )
        kinds: dict[str, int] = {}
        for p in problems:
            kinds[p.kind] = kinds.get(p.kind, 0) + 1
        for kind, count in kinds.items():
            self.on_record(kind, count)

    # -- reads -------------------------------------------------------------------------
    def recent(self, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first."""
        rows = self.db.execute(
            "SELECT kind, path, secid, unique_identifier, line, detail, action, count, first_seen, last_seen"
            " FROM problems ORDER BY last_seen DESC, id DESC LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """kind → open problems."""
        return dict(self.db.execute("SELECT kind, count(*) FROM problems GROUP BY kind").fetchall())

    def total(self) -> int:
        return self.db.execute("SELECT count(*) FROM problems").fetchone()[0]
