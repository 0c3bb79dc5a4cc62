"""The store's string table (tickers, names, ISINs …) as one compressed blob, for wide reads.

Why: a cross-section of 10,000 SecIds needs some 30,000 strings; fetching them row by row
from SQLite costs more than decoding the whole day block. The snapshot holds every string
up to an id in one zstd blob that becomes an Arrow string array without a Python loop;
strings added after it are looked up one by one. Strings are never changed or removed,
so a snapshot is exact for the ids it holds whenever it was written.
"""

from __future__ import annotations

import sqlite3
import struct

import numpy as np
import pyarrow as pa

from algoseek_sync.state.sql import Sql

DDL = (
    "CREATE TABLE IF NOT EXISTS string_snapshot (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " upto INTEGER NOT NULL, count INTEGER NOT NULL, data BLOB NOT NULL)"
)
_ZSTD = pa.Codec("zstd", compression_level=3)
_SIZES = struct.Struct("<qq")  # strings, bytes of text


def stale(db: Sql) -> bool:
    """Whether strings were added since the snapshot (or there is none yet); reads only."""
    top = db.execute("SELECT coalesce(max(id), 0) FROM strings").fetchone()[0]
    try:
        row = db.execute("SELECT upto FROM string_snapshot").fetchone()
    except sqlite3.OperationalError as exc:  # no such table: no writer of this release refreshed it yet
        if "no such table" in str(exc):
            return top > 0
        raise
    return row is None or row[0] < top


def write(db: Sql) -> bool:
    """Rewrite the snapshot when strings were added since (caller's transaction); True if written."""
    db.execute(DDL)
    top = db.execute("SELECT coalesce(max(id), 0) FROM strings").fetchone()[0]
    row = db.execute("SELECT upto FROM string_snapshot").fetchone()
    if row is not None and row[0] >= top:
        return False
    rows = db.execute("SELECT id, text FROM strings ORDER BY id").fetchall()
    ids = np.array([r[0] for r in rows], dtype="<i8")
    texts = pa.array([r[1] for r in rows], pa.string())
    offsets, data = texts.buffers()[1:]
    raw = (
        _SIZES.pack(len(rows), data.size if data is not None else 0)
        + ids.tobytes()
        + offsets.to_pybytes()[: 4 * (len(rows) + 1)]
        + (data.to_pybytes() if data is not None else b"")
    )
    blob = _SIZES.pack(len(raw), 0) + _ZSTD.compress(raw, asbytes=True)
    db.execute("INSERT OR REPLACE INTO string_snapshot VALUES (1, ?, ?, ?)", (top, len(rows), blob))
    return True


class Snapshot:
    """The strings of a snapshot: ids (sorted) and their texts as one Arrow array."""

    def __init__(self, ids: np.ndarray, texts: pa.StringArray) -> None:
        self.ids = ids
        self.texts = texts

    @classmethod
    def load(cls, db: Sql) -> Snapshot | None:
        """The stored snapshot, or None when there is none (a store no writer has refreshed yet)."""
        try:
            row = db.execute("SELECT data FROM string_snapshot").fetchone()
        except sqlite3.OperationalError as exc:  # no such table: no writer of this release refreshed it yet
            if "no such table" in str(exc):
                return None
            raise
        if row is None:
            return None
        size, _ = _SIZES.unpack_from(row[0])
        raw = _ZSTD.decompress(memoryview(row[0])[_SIZES.size :], decompressed_size=size, asbytes=True)
        count, text_bytes = _SIZES.unpack_from(raw)
        at = _SIZES.size
        ids = np.frombuffer(raw, dtype="<i8", count=count, offset=at)
        at += 8 * count
        offsets = pa.py_buffer(raw[at : at + 4 * (count + 1)])
        at += 4 * (count + 1)
        texts = pa.StringArray.from_buffers(count, offsets, pa.py_buffer(raw[at : at + text_bytes]))
        return cls(ids, texts)

    def positions(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in :attr:`texts`, found) of string ids ``values``."""
        pos = np.minimum(np.searchsorted(self.ids, values), max(len(self.ids) - 1, 0))
        found = self.ids[pos] == values if len(self.ids) else np.zeros(len(values), dtype=bool)
        return pos, found
