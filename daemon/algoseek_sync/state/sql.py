"""The SQL surface below the state database module: bounded ``IN (...)`` lists, and :class:`Sql`.

A leaf module (no package imports). The schema's version steps and the embedded store's chunk
tables are typed against :class:`Sql` rather than the :class:`~algoseek_sync.state.database.Database`
that opens the file and runs those very steps, so no import, not even a type-only one, points back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

#: SQLite's default limit on host parameters per statement is 32,766 (999 before 3.32): stay far below.
IN_CHUNK = 500


class Sql(Protocol):
    """What migrations and the chunk tables use of an open state database."""

    path: Path
    conn: sqlite3.Connection

    def execute(self, sql: str, params: Sequence[object] | dict[str, object] = ()) -> sqlite3.Cursor: ...

    def select_in(
        self, sql: str, values: Sequence[object], params: Sequence[object] = (), chunk: int = IN_CHUNK
    ) -> Iterator[sqlite3.Row]: ...


def chunked(values: Sequence[object] | Iterable[object], size: int) -> Iterator[list[object]]:
    """Lists of at most ``size`` values."""
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start : start + size]
