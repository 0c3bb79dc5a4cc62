"""Bounded lists of SQL parameters: ``IN (...)`` lists split to stay under SQLite's limit.

A leaf module (no package imports), so that the embedded store's chunk tables can use it
without importing the state database module that migrates into them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

#: SQLite's default limit on host parameters per statement is 32,766 (999 before 3.32): stay far below.
IN_CHUNK = 500


def chunked(values: Sequence[object] | Iterable[object], size: int) -> Iterator[list[object]]:
    """Lists of at most ``size`` values."""
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start : start + size]
