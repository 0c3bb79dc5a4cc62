"""The state database: one SQLite file in WAL mode shared by ledger, mapping and embedded store.

One file (not several attached ones) because SQLite only makes a transaction atomic
across tables of the same file in WAL mode: the embedded store's bars and the
ledger's "done" must commit together. The layout and its migrations live in
:mod:`algoseek_sync.state.schema`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from algoseek_sync.errors import ConfigError
from algoseek_sync.state.schema import SCHEMA_VERSION, check_version, migrate
from algoseek_sync.state.sql import IN_CHUNK, chunked

PAGE_SIZE = 16384


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
        if readonly:
            version = check_version(self.conn, path)
            if 0 < version < SCHEMA_VERSION:
                raise ConfigError(
                    f"state database {path} has layout version {version}: start the daemon (or `run --once`)"
                    f" once to upgrade it to {SCHEMA_VERSION}"
                )
            return
        # 16 KiB pages hold several bar chunks each (a page size is set only when the file is new)
        self.conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        with self.transaction():
            migrate(self)

    @property
    def version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; nested calls join the outer transaction.

        A failed ``COMMIT`` (disk full, I/O error) is rolled back, so the connection is
        usable again for the next transaction instead of failing every later one.
        """
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
                self.conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            finally:
                self._depth = 0

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            # SQLite may have rolled back on its own already (it does after some I/O errors)
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")

    def execute(self, sql: str, params: Sequence[object] | dict[str, object] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def select_in(
        self, sql: str, values: Sequence[object], params: Sequence[object] = (), chunk: int = IN_CHUNK
    ) -> Iterator[sqlite3.Row]:
        """Rows of ``sql`` whose ``{marks}`` is an ``IN (...)`` list of ``values``, ``chunk`` at a time.

        ``params`` are bound before the list. Bounds the number of SQL variables per
        statement, however many values a caller has.
        """
        for part in chunked(values, chunk):
            yield from self.conn.execute(sql.format(marks=",".join("?" * len(part))), (*params, *part))

    def update_in(
        self, sql: str, values: Sequence[object], params: Sequence[object] = (), chunk: int = IN_CHUNK
    ) -> int:
        """Run a writing ``sql`` with an ``IN ({marks})`` list in chunks; return rows changed."""
        changed = 0
        for part in chunked(values, chunk):
            changed += self.conn.execute(
                sql.format(marks=",".join("?" * len(part))), (*params, *part)
            ).rowcount
        return changed

    def close(self) -> None:
        self.conn.close()
