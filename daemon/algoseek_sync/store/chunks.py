"""The embedded store's bar tables: one chunk per (dataset, SecId, month), in the state database.

Writes join the caller's transaction (the worker commits bars and ledger marks together);
readers in other processes see whole batches or nothing (SQLite WAL). Each SecId's rows
are kept once; which identifiers (FIGIs) see them is decided at read time by the caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from algoseek_sync.formats.bars import arrow_schema, last_wins
from algoseek_sync.formats.datasets import EXTRA, Dataset
from algoseek_sync.state.sql import IN_CHUNK, Sql, chunked
from algoseek_sync.store import codec, strings
from algoseek_sync.store.codec import Layout, Records
from algoseek_sync.store.days import Days
from algoseek_sync.store.strings import Snapshot

FREQUENCY = "1d"
#: A write of at most this many rows keeps its chunks' decoded form for the reads that follow
#: (the quality checks re-read what a batch just stored; the next batch merges into it)
RECENT_ROWS = 100_000
#: a read needing more strings than this takes them from the string snapshot (store/strings.py)
SNAPSHOT_TEXTS = 500


def period_of(tradedate: np.ndarray) -> np.ndarray:
    """Daily bars are chunked by month: YYYYMMDD → YYYYMM."""
    return tradedate // 100


class Chunks:
    """Bars of every dataset, as chunks. One instance per database connection."""

    def __init__(self, db: Sql) -> None:
        self.db = db
        self._datasets: dict[str, int] = {}
        self._layouts: dict[int, Layout] = {}
        self._strings: dict[int, str] = {}
        self._recent: dict[bytes, codec.Plain] = {}  # blob → decoded, of the last write
        self.days = Days(db, self._layouts_by_id)

    # -- catalogue ---------------------------------------------------------------------
    def dataset_id(self, name: str, *, create: bool = False) -> int | None:
        if name not in self._datasets:
            row = self.db.execute("SELECT id FROM datasets WHERE name = ?", (name,)).fetchone()
            if row is None:
                if not create:
                    return None
                # not kept: the transaction that creates it may be rolled back (the next call looks again)
                return int(
                    self.db.execute(
                        "INSERT INTO datasets (name, frequency) VALUES (?, ?) RETURNING id", (name, FREQUENCY)
                    ).fetchone()[0]
                )
            self._datasets[name] = int(row[0])
        return self._datasets[name]

    def datasets(self) -> list[str]:
        """Datasets holding at least one chunk."""
        rows = self.db.execute(
            "SELECT name FROM datasets d WHERE EXISTS (SELECT 1 FROM bar_chunks c WHERE c.dataset = d.id)"
            " ORDER BY name"
        )
        return [r[0] for r in rows]

    def layout(self, dataset: Dataset, dataset_id: int) -> Layout:
        """The current layout of ``dataset``'s records (registered on first use)."""
        columns = tuple((c.name, c.type) for c in dataset.columns if c.name != "secid")
        text = json.dumps(columns)
        row = self.db.execute(
            "SELECT id FROM chunk_layouts WHERE dataset = ? AND columns = ?", (dataset_id, text)
        ).fetchone()
        if row is None:
            row = self.db.execute(
                "INSERT INTO chunk_layouts (dataset, columns) VALUES (?, ?) RETURNING id", (dataset_id, text)
            ).fetchone()
        layout = Layout(int(row[0]), columns)
        self._layouts[layout.id] = layout
        return layout

    def _layouts_by_id(self) -> dict[int, Layout]:
        for lid, text in self.db.execute("SELECT id, columns FROM chunk_layouts"):
            columns = tuple(tuple(c) for c in json.loads(text))
            if (
                lid not in self._layouts or self._layouts[lid].columns != columns
            ):  # an id a rollback gave away
                self._layouts[lid] = Layout(lid, columns)
        return self._layouts

    # -- strings -------------------------------------------------------------------------
    def _string_ids(self, texts: Sequence[str]) -> dict[str, int]:
        """text → id, adding texts not seen before."""
        found = {
            t: i for i, t in self.db.select_in("SELECT id, text FROM strings WHERE text IN ({marks})", texts)
        }
        missing = [t for t in texts if t not in found]
        if missing:
            self.db.conn.executemany("INSERT INTO strings (text) VALUES (?)", [(t,) for t in missing])
            found.update(
                {
                    t: i
                    for i, t in self.db.select_in(
                        "SELECT id, text FROM strings WHERE text IN ({marks})", missing
                    )
                }
            )
        return found

    def _texts(self, ids: Sequence[int]) -> dict[int, str]:
        wanted = [i for i in ids if i not in self._strings and i != codec.NULL_ID]
        if wanted:
            self._strings.update(
                dict(self.db.select_in("SELECT id, text FROM strings WHERE id IN ({marks})", wanted))
            )
        return self._strings

    # -- writing ---------------------------------------------------------------------------
    def upsert(self, dataset: Dataset, tables: Sequence[pa.Table]) -> int:
        """Store rows by (SecId, TradeDate); a later table (and a later row) wins. Returns rows written."""
        table = last_wins(tables)
        if table is None:
            return 0
        dataset_id = self.dataset_id(dataset.name, create=True)
        assert dataset_id is not None
        layout = self.layout(dataset, dataset_id)
        recs = self._records(table, layout)
        secids = table["secid"].to_numpy()
        periods = period_of(recs.array["tradedate"].astype(np.int64))
        starts = np.flatnonzero(np.r_[True, (secids[1:] != secids[:-1]) | (periods[1:] != periods[:-1])])
        stops = np.r_[starts[1:], len(recs)]
        keys = list(zip(secids[starts].tolist(), periods[starts].tolist(), strict=True))
        existing = self._existing(dataset_id, keys)
        rows = []
        recent: dict[bytes, codec.Plain] = {}
        keep_recent = len(recs) <= RECENT_ROWS
        changed = np.ones(len(recs), dtype=bool)  # rows that differ from the stored ones
        for (secid, period), start, stop in zip(keys, starts.tolist(), stops.tolist(), strict=True):
            part, lo, hi = recs, start, stop
            if (secid, period) in existing:
                new = codec.take(recs, np.arange(start, stop))
                changed[start:stop] = _changed(existing[(secid, period)], new)
                part = _merge(existing[(secid, period)], new)
                lo, hi = 0, len(part)
            dates = part.array["tradedate"]
            blob, plain = codec.encode(part, lo, hi)
            if keep_recent:
                recent[blob] = plain
            rows.append((dataset_id, secid, period, int(dates[lo]), int(dates[hi - 1]), hi - lo, blob))
        self.days.ensure()  # before the chunks: every period stored before this batch has a state
        self.db.conn.executemany(
            "INSERT OR REPLACE INTO bar_chunks (dataset, secid, period, first_date, last_date, rows, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        self._recent = recent  # matched by blob: a rolled-back write is never read from it
        self.days.after_upsert(dataset_id, recs, secids, changed)
        return table.num_rows

    def refresh_days(
        self, transaction: Callable[[], AbstractContextManager], limit: int | None = None
    ) -> int:
        """Rebuild the day blocks of the periods not clean (at most ``limit``), one ``transaction()``
        each, and the string snapshot if strings were added; returns the periods built. With
        nothing to do it only reads (no write lock taken)."""
        if not self.days.exists():
            with transaction():
                self.days.ensure()
        built = 0
        for dataset_id, period in self.days.pending()[:limit]:
            with transaction():
                built += self.days.rebuild(dataset_id, period)
        if strings.stale(self.db):
            with transaction():
                strings.write(self.db)
        return built

    def _records(self, table: pa.Table, layout: Layout) -> Records:
        columns: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
        texts = {name: table[name] for name in layout.text_columns}
        uniques = sorted({t for col in texts.values() for t in pc.unique(col).to_pylist() if t is not None})
        ids = self._string_ids(uniques) if uniques else {}
        for name, kind in layout.columns:
            column = table[name]
            if kind == "text":
                encoded = pc.dictionary_encode(column).combine_chunks()
                lookup = np.array(
                    [ids[t] for t in encoded.dictionary.to_pylist()] + [codec.NULL_ID], np.int32
                )
                index = pc.fill_null(encoded.indices, len(lookup) - 1).to_numpy(zero_copy_only=False)
                columns[name] = (lookup[index], None)
            elif kind == "time":
                columns[name] = codec.time_to_micros(column)
            else:
                mask = pc.is_null(column).to_numpy(zero_copy_only=False) if column.null_count else None
                columns[name] = (pc.fill_null(column, 0).to_numpy(zero_copy_only=False), mask)
        extra: dict[int, str] = {}
        if table[EXTRA].null_count < table.num_rows:
            extra = {i: t for i, t in enumerate(table[EXTRA].to_pylist()) if t is not None}
        return codec.records(layout, columns, extra)

    def _existing(self, dataset_id: int, keys: list[tuple[int, int]]) -> dict[tuple[int, int], Records]:
        """Stored chunks of ``keys``, looked up SecId by SecId through the primary key.

        (Not ``(secid, period) IN (...)``: SQLite answers a row-value list with a scan of the
        whole dataset, which made each batch cost as much as the store is large.)
        """
        wanted = set(keys)
        periods: dict[int, list[int]] = {}
        for secid, period in keys:
            periods.setdefault(secid, []).append(period)
        out: dict[tuple[int, int], Records] = {}
        layouts = self._layouts_by_id()
        secids = sorted(periods)
        for part in chunked(secids, IN_CHUNK):
            lo = min(min(periods[s]) for s in part)  # type: ignore[index]
            hi = max(max(periods[s]) for s in part)  # type: ignore[index]
            marks = ",".join("?" * len(part))
            for secid, period, data in self.db.execute(
                f"SELECT secid, period, data FROM bar_chunks WHERE dataset = ? AND secid IN ({marks})"
                " AND period BETWEEN ? AND ?",
                (dataset_id, *part, lo, hi),
            ):
                if (secid, period) in wanted:
                    (out[(secid, period)],) = codec.decode([data], layouts, self._recent)
        return out

    # -- reading ---------------------------------------------------------------------------
    def read(
        self,
        dataset: Dataset,
        secids: Sequence[int],
        start: int | None = None,
        end: int | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Rows of ``secids`` with start <= tradedate <= end, sorted by (secid, tradedate).

        ``columns`` limits the decoded columns (``secid`` and ``tradedate`` always come): the
        quality checks need six numbers, not the texts and times.
        """
        dataset_id = self.dataset_id(dataset.name)
        if dataset_id is None or not secids:
            return arrow_schema(dataset).empty_table()
        lo, hi = (start or 0) // 100, (end or 99999999) // 100
        rows = self.db.select_in(
            "SELECT secid, rows, data FROM bar_chunks WHERE dataset = ? AND period BETWEEN ? AND ?"
            " AND secid IN ({marks}) ORDER BY secid, period",
            list(secids),
            (dataset_id, lo, hi),
        )
        return self._table(dataset, rows, start, end, columns)

    def read_day(self, dataset: Dataset, day: int) -> pa.Table:
        """Every SecId's row on ``day`` (YYYYMMDD): from its day block when clean, else from the chunks."""
        dataset_id = self.dataset_id(dataset.name)
        if dataset_id is None:
            return arrow_schema(dataset).empty_table()
        found = self.days.read(dataset_id, day)
        if found is not None:
            recs, secids = found
            if recs is None:
                return arrow_schema(dataset).empty_table()
            return self._to_arrow(dataset, recs, secids)
        rows = self.db.execute(
            "SELECT secid, rows, data FROM bar_chunks WHERE dataset = ? AND period = ? AND ? BETWEEN first_date"
            " AND last_date ORDER BY secid",
            (dataset_id, day // 100, day),
        )
        return self._table(dataset, rows, day, day)

    def _table(
        self,
        dataset: Dataset,
        rows: Iterator,
        start: int | None,
        end: int | None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        secids: list[int] = []
        counts: list[int] = []
        blobs: list[bytes] = []
        for secid, count, data in rows:
            secids.append(secid)
            counts.append(count)
            blobs.append(data)
        if not blobs:
            return arrow_schema(dataset).empty_table()
        parts = codec.decode(blobs, self._layouts_by_id(), self._recent)
        if len(parts) != 1:
            raise ValueError("chunks of several layouts in one read are not supported by this release")
        recs = parts[0]
        secid = np.repeat(np.array(secids, dtype=np.int64), counts)
        dates = recs.array["tradedate"]
        keep = np.ones(len(recs), dtype=bool)
        if start is not None:
            keep &= dates >= start
        if end is not None:
            keep &= dates <= end
        if not keep.all():
            picked = np.flatnonzero(keep)
            recs, secid = codec.take(recs, picked), secid[picked]
        return self._to_arrow(dataset, recs, secid, columns)

    def _to_arrow(
        self, dataset: Dataset, recs: Records, secid: np.ndarray, columns: Sequence[str] | None = None
    ) -> pa.Table:
        schema = arrow_schema(dataset)
        if columns is not None:
            chosen = {"secid", "tradedate", *columns}
            schema = pa.schema([f for f in schema if f.name in chosen])
        stored = dict(recs.layout.columns)
        texts = [recs.array[f.name] for f in schema if stored.get(f.name) == "text"]
        snapshot = None
        if texts:  # every text column's strings in one lookup: many (a cross-section) from the snapshot
            if len(np.unique(texts[0])) * len(texts) > SNAPSHOT_TEXTS:
                snapshot = Snapshot.load(self.db)  # not kept: a rolled-back write may give its ids away
            if snapshot is None:
                self._texts(np.unique(np.concatenate(texts)).tolist())
        arrays: list[pa.Array] = []
        for field in schema:
            name = field.name
            if name == "secid":
                arrays.append(pa.array(secid, pa.int64()))
            elif name == EXTRA and not recs.extra:
                arrays.append(pa.nulls(len(recs), pa.string()))
            elif name == EXTRA:
                arrays.append(pa.array([recs.extra.get(i) for i in range(len(recs))], pa.string()))
            elif name not in stored:
                arrays.append(pa.nulls(len(recs), field.type))
            else:
                arrays.append(self._column(recs, name, stored[name], field.type, snapshot))
        return pa.Table.from_arrays(arrays, schema=schema)

    def _column(
        self, recs: Records, name: str, kind: str, type_: pa.DataType, snapshot: Snapshot | None = None
    ) -> pa.Array:
        values = recs.array[name]
        mask = codec.null_mask(recs, name)
        if mask.all():  # common for event columns (AdjustmentReason …): no decoding at all
            return pa.nulls(len(values), type_)
        if kind == "text" and snapshot is not None:
            return self._text_column(values, snapshot)
        if kind == "text":
            ids, positions = np.unique(values, return_inverse=True)
            texts = self._texts(ids.tolist())
            dictionary = pa.array([texts.get(i) for i in ids.tolist()], pa.string())
            indices = pa.array(positions.astype(np.int32), mask=values == codec.NULL_ID)
            return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string())
        if kind == "time":
            return codec.micros_to_time(values, mask)
        return pa.array(np.ascontiguousarray(values), type=type_, mask=mask if mask.any() else None)

    def _text_column(self, values: np.ndarray, snapshot: Snapshot) -> pa.Array:
        """Texts of string ids ``values``: taken from the snapshot, the few newer ones looked up."""
        pos, found = snapshot.positions(values)
        null = values == codec.NULL_ID
        texts = snapshot.texts
        newer = ~found & ~null
        if newer.any():
            ids = np.unique(values[newer])
            known = self._texts(ids.tolist())
            texts = pa.concat_arrays([texts, pa.array([known.get(i) for i in ids.tolist()], pa.string())])
            pos[newer] = len(snapshot.texts) + np.searchsorted(ids, values[newer])
        return texts.take(pa.array(pos.astype(np.int64), mask=null if null.any() else None))

    def latest_factors(self, dataset: Dataset, secids: Sequence[int]) -> dict[int, tuple[float, float]]:
        """SecId → (CumulativePriceFactor, CumulativeVolumeFactor) of its last stored day."""
        dataset_id = self.dataset_id(dataset.name)
        if dataset_id is None or not dataset.has_factors:
            return {}
        out: dict[int, tuple[float, float]] = {}
        layouts = self._layouts_by_id()
        for secid in secids:
            row = self.db.execute(
                "SELECT data FROM bar_chunks WHERE dataset = ? AND secid = ? ORDER BY period DESC LIMIT 1",
                (dataset_id, secid),
            ).fetchone()
            if row is None:
                continue
            (recs,) = codec.decode([row[0]], layouts, self._recent)
            known = ~(
                codec.null_mask(recs, "cumulativepricefactor")
                | codec.null_mask(recs, "cumulativevolumefactor")
            )
            if not known.any():
                continue  # the last month carries no factors: nothing to adjust against
            last = recs.array[np.flatnonzero(known)[-1]]
            out[secid] = (float(last["cumulativepricefactor"]), float(last["cumulativevolumefactor"]))
        return out

    def size(self) -> tuple[int, int]:
        """(chunks, stored rows) over every dataset."""
        row = self.db.execute("SELECT count(*), coalesce(sum(rows), 0) FROM bar_chunks").fetchone()
        return int(row[0]), int(row[1])


def _changed(existing: Records, new: Records) -> np.ndarray:
    """Which rows of ``new`` differ from the stored row of their day (or have none)."""
    out = np.ones(len(new), dtype=bool)
    if existing.layout.id != new.layout.id:
        return out
    dates = existing.array["tradedate"]
    pos = np.minimum(np.searchsorted(dates, new.array["tradedate"]), len(dates) - 1)
    found = np.flatnonzero(dates[pos] == new.array["tradedate"])
    if not len(found):
        return out
    width = new.array.dtype.itemsize
    old_bytes = existing.array[pos[found]].view(np.uint8).reshape(-1, width)
    new_bytes = np.ascontiguousarray(new.array[found]).view(np.uint8).reshape(-1, width)
    same = (old_bytes == new_bytes).all(axis=1)
    if existing.extra or new.extra:  # rare: rows with columns the layout does not know
        for k in np.flatnonzero(same).tolist():
            same[k] = existing.extra.get(int(pos[found[k]])) == new.extra.get(int(found[k]))
    out[found[same]] = False
    return out


def _merge(existing: Records, new: Records) -> Records:
    """A stored chunk with new rows: a new row replaces the stored one of its day."""
    kept = np.flatnonzero(~np.isin(existing.array["tradedate"], new.array["tradedate"]))
    merged = codec.concat([codec.take(existing, kept), new])
    order = np.argsort(merged.array["tradedate"], kind="stable")
    return codec.take(merged, order) if (np.diff(order) != 1).any() else merged
