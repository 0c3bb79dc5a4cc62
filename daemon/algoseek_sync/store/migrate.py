"""Layout 1 → 2: the row-per-FIGI ``bars`` table becomes chunks, one copy per SecId.

Layout 1 did not record the dataset; a row's columns tell it: primary-exchange rows
carry ``closetime`` (and ``cumulativepricefactor`` when adjusted), standard adjusted
rows carry neither. Rows are read SecId by SecId, so memory stays bounded.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from algoseek_sync.formats.bars import ARROW_TYPES, canonical_time
from algoseek_sync.formats.datasets import DATASETS, EXTRA, Dataset
from algoseek_sync.store.chunks import Chunks

if TYPE_CHECKING:
    from algoseek_sync.state.sql import Sql

BATCH_SECIDS = 500


def _dataset_of(row: sqlite3.Row) -> Dataset:
    if row["closetime"] is None and row["opentime"] is None:
        return DATASETS["standard-adjusted"]
    return DATASETS["primary-adjusted" if row["cumulativepricefactor"] is not None else "primary"]


def _value(value: Any, kind: str) -> Any:
    if value is None or value == "":
        return None
    if kind == "int":
        return round(float(value))
    if kind == "float":
        return float(value)
    if kind == "date":
        return int(value)
    if kind == "time":
        return canonical_time(str(value))
    return str(value)


def bars_to_chunks(db: Sql) -> int:
    """Move every distinct (SecId, trade date) row of the old table into chunks; return rows moved."""
    chunks = Chunks(db)
    secids = [r[0] for r in db.execute("SELECT DISTINCT secid FROM bars ORDER BY secid")]
    moved = 0
    for start in range(0, len(secids), BATCH_SECIDS):
        part = secids[start : start + BATCH_SECIDS]
        rows: dict[str, list[sqlite3.Row]] = {}
        seen: set[tuple[int, str]] = set()
        for row in db.select_in(
            "SELECT * FROM bars WHERE secid IN ({marks}) ORDER BY secid, tradedate, unique_identifier", part
        ):
            key = (row["secid"], row["tradedate"])
            if key in seen:
                continue  # the same bar copied to another FIGI of the SecId
            seen.add(key)
            rows.setdefault(_dataset_of(row).name, []).append(row)
        for name, found in rows.items():
            dataset = DATASETS[name]
            arrays = [
                pa.array([_value(r[c.name], c.type) for r in found], ARROW_TYPES[c.type])
                for c in dataset.columns
            ]
            arrays.append(pa.nulls(len(found), pa.string()))
            table = pa.Table.from_arrays(arrays, names=[*(c.name for c in dataset.columns), EXTRA])
            moved += chunks.upsert(dataset, [table])
    return moved
