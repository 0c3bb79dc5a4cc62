"""Cross-sections: one block per (dataset, trade date) holding every SecId's row of that day.

Why: chunks are SecId-major (one per SecId and month), so a cross-section read from them
decodes one chunk per SecId to take one row of each: 10,000 zstd frames and B-tree lookups
for one date (about half a second). A day block is one frame. It is a second copy of each
row (``bench/store.py`` measures what it costs) and it is kept exact this way:

* A period (month) is *clean* when ``bar_day_periods`` says so; only then are its day blocks
  read. Any other period (written before this release, or marked dirty) is read from the
  chunks, which are always exact.
* Each upsert updates, in the same transaction as its chunks, the blocks of the days whose
  rows changed (a re-delivered row equal to the stored one changes nothing). A batch that
  changes few days appends a *part* (its changed rows) to each day; of several parts holding
  a SecId, the highest-numbered wins; a day reaching :data:`MAX_PARTS` parts is merged into
  one. A batch that changes many days (a backfill) marks their periods dirty instead: one
  rebuild of a month from its chunks costs less than patching it batch after batch.
* :meth:`Days.refresh` rebuilds dirty (and never built) periods from the chunks, one
  transaction each; the writer runs it when it is done writing (``LocalBackend.close``).

The two tables are created by the first writer that needs them: readers open the database
read-only and treat a missing table as "no period is clean".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from algoseek_sync.state.sql import Sql
from algoseek_sync.store import codec
from algoseek_sync.store.codec import Layout, Records

DDL = (
    "CREATE TABLE IF NOT EXISTS bar_days (dataset INTEGER NOT NULL, tradedate INTEGER NOT NULL,"
    " part INTEGER NOT NULL, rows INTEGER NOT NULL, secids BLOB NOT NULL, data BLOB NOT NULL,"
    " PRIMARY KEY (dataset, tradedate, part))",
    "CREATE TABLE IF NOT EXISTS bar_day_periods (dataset INTEGER NOT NULL, period INTEGER NOT NULL,"
    " clean INTEGER NOT NULL, PRIMARY KEY (dataset, period)) WITHOUT ROWID",
)
#: a batch changing at most this many days patches their blocks; more marks their periods dirty
PATCH_DAYS = 8
#: a day with this many parts is merged into one before another is added
MAX_PARTS = 16
#: rows decoded at a time when a period is rebuilt from its chunks (each slice is a part of each day)
REBUILD_ROWS = 20_000


class Days:
    """Day blocks of every dataset; one instance per :class:`~algoseek_sync.store.chunks.Chunks`."""

    def __init__(self, db: Sql, layouts: Callable[[], Mapping[int, Layout]]) -> None:
        self.db = db
        self._layouts = layouts

    # -- tables ----------------------------------------------------------------------------
    def exists(self) -> bool:
        """Whether the tables are there; asked each time (a rolled-back first write takes them away)."""
        row = self.db.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('bar_days', 'bar_day_periods')"
        ).fetchone()
        return bool(row[0] == 2)

    def ensure(self) -> None:
        """Create the tables (in the caller's transaction); a store's existing periods start dirty."""
        if not self.exists():
            for statement in DDL:
                self.db.execute(statement)
            self.db.execute(
                "INSERT OR IGNORE INTO bar_day_periods (dataset, period, clean)"
                " SELECT DISTINCT dataset, period, 0 FROM bar_chunks"
            )

    def _mark(self, dataset_id: int, period: int, clean: bool) -> None:
        self.db.execute(
            "INSERT INTO bar_day_periods (dataset, period, clean) VALUES (?, ?, ?)"
            " ON CONFLICT (dataset, period) DO UPDATE SET clean = excluded.clean",
            (dataset_id, period, int(clean)),
        )

    # -- reading ---------------------------------------------------------------------------
    def read(self, dataset_id: int, day: int) -> tuple[Records | None, np.ndarray] | None:
        """(records, SecIds) of ``day`` sorted by SecId, or None when its period is not clean.

        One statement, so the period's state and its blocks come from the same snapshot.
        """
        if not self.exists():
            return None
        rows = self.db.execute(
            "SELECT -1, clean, NULL, NULL FROM bar_day_periods WHERE dataset = ? AND period = ?"
            " UNION ALL SELECT part, rows, secids, data FROM bar_days WHERE dataset = ? AND tradedate = ?"
            " ORDER BY 1",
            (dataset_id, day // 100, dataset_id, day),
        ).fetchall()
        if not rows or rows[0][0] != -1 or rows[0][1] != 1 or len(_layout_ids(rows[1:])) > 1:
            return None  # not clean (or parts of several layouts): the chunks answer
        return self._decode(rows[1:])

    def _decode(self, parts: Sequence[Sequence]) -> tuple[Records | None, np.ndarray]:
        """Parts (part, rows, secids, data) in part order → the merged day, sorted by SecId."""
        if not parts:
            return None, np.zeros(0, np.int64)
        decoded = codec.decode([p[3] for p in parts], self._layouts())
        if len(decoded) != 1:
            raise ValueError("day parts of several layouts are not supported by this release")
        recs = decoded[0]
        secids = np.concatenate([codec.unpack_ids(p[2], p[1]) for p in parts])
        if len(parts) > 1 and not (secids[1:] > secids[:-1]).all():
            # parts that overlap (patches): the last part holding a SecId wins; np.unique sorts by SecId
            _, last = np.unique(secids[::-1], return_index=True)
            keep = len(secids) - 1 - last
            recs, secids = codec.take(recs, keep), secids[keep]
        return recs, secids

    # -- writing ---------------------------------------------------------------------------
    def after_upsert(self, dataset_id: int, recs: Records, secids: np.ndarray, changed: np.ndarray) -> None:
        """Bring the day blocks in line with an upsert of ``recs`` (in its transaction, after its
        chunks; :meth:`ensure` ran before them). ``changed`` marks the rows that differ from what
        was stored. A period without a state held no chunk before this batch: the batch holds all
        its rows, and its blocks are built from them.
        """
        if not changed.any():
            return
        dates = recs.array["tradedate"].astype(np.int64)
        periods = dates // 100
        wanted = sorted(set(periods[changed].tolist()))
        states = dict(
            self.db.select_in(
                "SELECT period, clean FROM bar_day_periods WHERE dataset = ? AND period IN ({marks})",
                wanted,
                (dataset_id,),
            )
        )
        patch = len(np.unique(dates[changed])) <= PATCH_DAYS
        for period in wanted:
            in_period = periods == period
            if period not in states:  # a new period: every row of it is in this batch
                rows = np.flatnonzero(in_period)
                self._write_period(dataset_id, period, [(codec.take(recs, rows), secids[rows])])
            elif states.get(period) == 1 and patch:
                rows = np.flatnonzero(in_period & changed)
                rows = rows[np.argsort(dates[rows], kind="stable")]
                for day, start, stop in _runs(dates[rows]):
                    self._patch(dataset_id, day, recs, secids, rows[start:stop])
            else:
                self._mark(dataset_id, period, clean=False)

    def _write_period(
        self, dataset_id: int, period: int, slices: Iterable[tuple[Records, np.ndarray]]
    ) -> None:
        """Replace the period's blocks by ``slices`` (records, SecIds): every row of the period, each
        SecId in one slice; slice k becomes part k of each day. Then mark the period clean."""
        self.db.execute(
            "DELETE FROM bar_days WHERE dataset = ? AND tradedate BETWEEN ? AND ?",
            (dataset_id, period * 100, period * 100 + 99),
        )
        for number, (recs, secids) in enumerate(slices):
            dates = recs.array["tradedate"].astype(np.int64)
            order = np.lexsort((secids, dates))
            part, ids = codec.take(recs, order), secids[order]
            values = [
                _block(dataset_id, day, number, part, ids, start, stop)
                for day, start, stop in _runs(dates[order])
            ]
            self.db.conn.executemany("INSERT INTO bar_days VALUES (?, ?, ?, ?, ?, ?)", values)
        self._mark(dataset_id, period, clean=True)

    def _patch(self, dataset_id: int, day: int, recs: Records, secids: np.ndarray, rows: np.ndarray) -> None:
        """Add ``rows`` (one day's changed rows) to the day's blocks: a new part, or one merged block."""
        order = rows[np.argsort(secids[rows], kind="stable")]
        new, ids = codec.take(recs, order), secids[order]
        parts = self.db.execute(
            "SELECT part, rows, secids, data FROM bar_days WHERE dataset = ? AND tradedate = ? ORDER BY part",
            (dataset_id, day),
        ).fetchall()
        if parts and _layout_ids(parts) != {new.layout.id}:  # a new layout: rebuilt later, from the chunks
            self._mark(dataset_id, day // 100, clean=False)
            return
        if len(parts) < MAX_PARTS:
            number = parts[-1][0] + 1 if parts else 0
            self.db.execute(
                "INSERT INTO bar_days VALUES (?, ?, ?, ?, ?, ?)",
                _block(dataset_id, day, number, new, ids, 0, len(ids)),
            )
            return
        old, old_ids = self._decode(parts)
        assert old is not None
        merged = codec.concat([old, new])
        all_ids = np.concatenate([old_ids, ids])
        _, last = np.unique(all_ids[::-1], return_index=True)
        keep = len(all_ids) - 1 - last
        self.db.execute("DELETE FROM bar_days WHERE dataset = ? AND tradedate = ?", (dataset_id, day))
        self.db.execute(
            "INSERT INTO bar_days VALUES (?, ?, ?, ?, ?, ?)",
            _block(dataset_id, day, 0, codec.take(merged, keep), all_ids[keep], 0, len(keep)),
        )

    # -- rebuilding ------------------------------------------------------------------------
    def pending(self) -> list[tuple[int, int]]:
        """(dataset, period) of the periods whose day blocks are not clean (every one holds chunks:
        :meth:`ensure` lists a store's periods, and each upsert marks the periods it writes)."""
        if not self.exists():
            return []
        rows = self.db.execute("SELECT dataset, period FROM bar_day_periods WHERE clean = 0 ORDER BY 1, 2")
        return [(d, p) for d, p in rows]

    def rebuild(self, dataset_id: int, period: int) -> bool:
        """Build one period's blocks from its chunks (in the caller's transaction); False if impossible.

        The chunks are read and decoded :data:`REBUILD_ROWS` rows at a time (one part of each
        day per slice), so a whole-market month never sits in memory at once: the backfill's
        peak RSS goal holds.
        """
        self.ensure()
        try:
            self._write_period(dataset_id, period, self._slices(dataset_id, period))
        except _MixedLayouts:
            return False  # chunks of several layouts: left to the chunk reads (the period stays dirty)
        return True

    def _slices(self, dataset_id: int, period: int) -> Iterator[tuple[Records, np.ndarray]]:
        layouts = self._layouts()
        seen: set[int] = set()

        def decoded(part: list[tuple[int, int, bytes]]) -> tuple[Records, np.ndarray]:
            seen.update(codec.HEADER.unpack_from(data)[2] for _, _, data in part)
            if len(seen) > 1:
                raise _MixedLayouts
            (recs,) = codec.decode([data for _, _, data in part], layouts)
            return recs, np.repeat(np.array([s for s, _, _ in part], np.int64), [n for _, n, _ in part])

        part: list[tuple[int, int, bytes]] = []
        filled = 0
        for secid, count, data in self.db.execute(
            "SELECT secid, rows, data FROM bar_chunks WHERE dataset = ? AND period = ? ORDER BY secid",
            (dataset_id, period),
        ):  # by SecId, so the parts of a day follow each other in SecId order (read without a merge)
            if filled + count > REBUILD_ROWS and part:
                yield decoded(part)
                part, filled = [], 0
            part.append((secid, count, data))
            filled += count
        if part:
            yield decoded(part)


class _MixedLayouts(Exception):
    """A period's chunks use several layouts (a release added columns): not rebuilt."""


def _block(
    dataset_id: int, day: int, part: int, recs: Records, secids: np.ndarray, start: int, stop: int
) -> tuple[int, int, int, int, bytes, bytes]:
    blob, _ = codec.encode(recs, start, stop)
    return (dataset_id, day, part, stop - start, codec.pack_ids(secids[start:stop]), blob)


def _layout_ids(parts: Sequence[Sequence]) -> set[int]:
    """Layout ids named in the headers of parts (part, rows, secids, data)."""
    return {codec.HEADER.unpack_from(p[3])[2] for p in parts}


def _runs(dates: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """(day, start, stop) of the runs of equal values in ``dates`` (grouped by date)."""
    if not len(dates):
        return
    starts = np.flatnonzero(np.r_[True, dates[1:] != dates[:-1]])
    stops = np.r_[starts[1:], len(dates)]
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        yield int(dates[start]), start, stop
