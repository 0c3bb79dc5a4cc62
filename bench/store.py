"""Benchmark 8, store size: bytes per stored row of the chunked store vs release 0.1's ``bars`` table.

Why: the store keeps each SecId's bars in zstd chunks per (dataset, SecId, month), and a
second, date-major copy in day blocks that make cross-sections fast (store/days.py);
release 0.1 kept one SQLite row per (FIGI, day), copied to every FIGI of the SecId. The
goal is at most half the old bytes per row. Both are measured on the same rows: the state
database of the backfill benchmark (the whole file, ledger, master and day blocks included,
after a WAL checkpoint), and a scratch database holding only 0.1's table and index, filled
with the rows read back from that store. The day blocks' own share is reported, and the time
to rebuild them all from the chunks (what the backfill's ``run --once`` does at its end).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from common import RUN, Result, fresh, log, timer
from context import Context

from algoseek_sync.synthetic.generate import DropSpec, build_universe

if TYPE_CHECKING:
    import pyarrow as pa

#: release 0.1's bars table (``git show ee45000:daemon/algoseek_sync/formats/bars.py``, OUTPUT_COLUMNS)
LAYOUT_1_COLUMNS = [
    "time_index",
    "unique_identifier",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "secid",
    "ticker",
    "tradedate",
    "name",
    "primaryexchange",
    "isin",
    "opensize",
    "opentime",
    "hightime",
    "lowtime",
    "closesize",
    "closetime",
    "listedmarkethoursvolume",
    "listedmarkethourstrades",
    "listedtotaltrades",
    "finramarkethoursvolume",
    "finramarkethourstrades",
    "finratotalvolume",
    "finratotaltrades",
    "cumulativepricefactor",
    "cumulativevolumefactor",
    "adjustmentfactor",
    "adjustmentreason",
    "vwap",
    "dailyvwap",
]
LAYOUT_1_TEXT = frozenset(
    [
        "time_index",
        "unique_identifier",
        "tradedate",
        "ticker",
        "name",
        "primaryexchange",
        "isin",
        "opentime",
        "hightime",
        "lowtime",
        "closetime",
        "adjustmentreason",
    ]
)
SECID = LAYOUT_1_COLUMNS.index("secid") - 2  # in a row of the value columns
DATASET = "primary-adjusted"
READ_SECIDS = 200  # SecIds read back from the store per batch (memory stays flat)


def layout_1_ddl() -> list[str]:
    """The DDL of ``backends/local.py`` at release 0.1 (one row per (identifier, time_index))."""
    columns = ", ".join(f"{c} {'TEXT' if c in LAYOUT_1_TEXT else 'NUMERIC'}" for c in LAYOUT_1_COLUMNS)
    return [
        f"CREATE TABLE bars ({columns}, PRIMARY KEY (unique_identifier, time_index)) WITHOUT ROWID",
        "CREATE INDEX bars_secid ON bars (secid, time_index)",
    ]


def checkpointed_size(path: Path) -> int:
    """Bytes of a SQLite file after ``PRAGMA wal_checkpoint(TRUNCATE)`` (WAL folded in, emptied)."""
    conn = sqlite3.connect(path)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            raise RuntimeError(f"{path}: the checkpoint was blocked by a reader or writer")
    finally:
        conn.close()
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def identifiers(spec: DropSpec) -> dict[int, list[str]]:
    """SecId → its identifiers in the generated master (FIGIs; 0.1's custom id when it has none)."""
    from algoseek_sync.formats.figi import custom_identifier

    return {i.secid: list(i.figis) or [custom_identifier(i.secid)] for i in build_universe(spec).infos}


def layout_1_rows(table: pa.Table, uids: dict[int, list[str]]) -> Iterator[tuple]:
    """0.1's rows of a store table: text dates and times, every row once per identifier."""
    from algoseek_sync.formats.bars import close_time_index

    values = {c: table[c].to_pylist() for c in LAYOUT_1_COLUMNS[2:]}
    stamps = {d: close_time_index(d) for d in set(values["tradedate"])}
    values["tradedate"] = [str(d) for d in values["tradedate"]]
    dates = table["tradedate"].to_pylist()
    columns = [values[c] for c in LAYOUT_1_COLUMNS[2:]]
    for i, row in enumerate(zip(*columns, strict=True)):
        for uid in uids[row[SECID]]:
            yield (stamps[dates[i]], uid, *row)


def fill_layout_1(state_db: Path, spec: DropSpec, target: Path) -> int:
    """0.1's table in a scratch file, filled with every row of the store: rows inserted."""
    from algoseek_sync.formats.datasets import DATASETS
    from algoseek_sync.state.database import Database
    from algoseek_sync.store.chunks import Chunks

    uids = identifiers(spec)
    secids = sorted(uids)
    source = Database(state_db, readonly=True)
    conn = sqlite3.connect(target, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    for statement in layout_1_ddl():
        conn.execute(statement)
    marks = ",".join("?" * len(LAYOUT_1_COLUMNS))
    inserted = 0
    try:
        chunks = Chunks(source)
        for k in range(0, len(secids), READ_SECIDS):
            table = chunks.read(DATASETS[DATASET], secids[k : k + READ_SECIDS])
            conn.execute("BEGIN")
            inserted += conn.executemany(
                f"INSERT INTO bars VALUES ({marks})", layout_1_rows(table, uids)
            ).rowcount
            conn.execute("COMMIT")
    finally:
        conn.close()
        source.close()
    return inserted


def stored(state_db: Path, uids: dict[int, list[str]]) -> tuple[int, int, int, int]:
    """(chunks, stored rows, (SecId, day) pairs, FIGI-visible rows) of the chunked store."""
    conn = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
    try:
        chunks, rows = conn.execute("SELECT count(*), coalesce(sum(rows), 0) FROM bar_chunks").fetchone()
        per_secid = conn.execute(
            "SELECT secid, sum(rows) FROM bar_chunks c JOIN datasets d ON d.id = c.dataset WHERE d.name = ?"
            " GROUP BY secid",
            (DATASET,),
        ).fetchall()
    finally:
        conn.close()
    days = sum(n for _, n in per_secid)  # one row per (SecId, day) in a dataset
    visible = sum(n * len(uids.get(secid, ())) for secid, n in per_secid)
    return chunks, rows, days, visible


def day_block_bytes(state_db: Path) -> tuple[int, int, int]:
    """(bytes of the day blocks' blobs, day blocks, periods not clean) of the store."""
    conn = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
    try:
        size, blocks = conn.execute(
            "SELECT coalesce(sum(length(data) + length(secids)), 0), count(*) FROM bar_days"
        ).fetchone()
        dirty = conn.execute("SELECT count(*) FROM bar_day_periods WHERE clean = 0").fetchone()[0]
    finally:
        conn.close()
    return size, blocks, dirty


def rebuild_days(state_db: Path) -> tuple[float, int]:
    """(seconds, periods) to rebuild every day block from the chunks, on a scratch copy of the store."""
    from algoseek_sync.backends.local import LocalBackend
    from algoseek_sync.state.database import Database

    scratch = fresh(RUN / "store-days") / "state.db"
    source = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
    target = sqlite3.connect(scratch)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    db = Database(scratch)
    try:
        with db.transaction():
            db.execute("UPDATE bar_day_periods SET clean = 0")
        with timer() as t:
            periods = LocalBackend(db).refresh_cross_sections()
    finally:
        db.close()
    return t.wall, periods


def bench_store(ctx: Context) -> list[Result]:
    spec = ctx.backfill_spec()
    _, state = ctx.backfill_state()
    state_db = state / "state.db"
    new_bytes = checkpointed_size(state_db)
    days = day_block_bytes(state_db)
    rebuild = rebuild_days(state_db)
    uids = identifiers(spec)
    chunks, rows, secid_days, visible = stored(state_db, uids)
    scratch = fresh(RUN / "store") / "layout-1.db"
    with timer() as t:
        old_rows = fill_layout_1(state_db, spec, scratch)
    old_bytes = checkpointed_size(scratch)
    log(
        f"  layout 1: {old_rows:,} rows, {old_bytes / 1e6:.0f} MB (filled in {t.wall:.0f}s); new {new_bytes / 1e6:.0f} MB"
    )
    if old_rows != visible:
        raise RuntimeError(f"layout 1 holds {old_rows:,} rows, the store shows {visible:,} FIGI rows")
    results = store_results(spec, new_bytes, (chunks, rows, secid_days, visible), old_bytes, old_rows)
    return [*results, *day_results(days, rebuild, rows)]


def day_results(days: tuple[int, int, int], rebuild: tuple[float, int], rows: int) -> list[Result]:
    size, blocks, dirty = days
    seconds, periods = rebuild
    return [
        Result(
            "8 store size",
            "day blocks (cross-sections): bytes per stored row",
            size / rows,
            "B",
            notes=f"{size / 1e6:.1f} MB in {blocks:,} day blocks, part of the whole file above (a second,"
            f" date-major copy of each row); {dirty} period(s) not clean after the backfill",
            readme=True,
        ),
        Result(
            "8 store size",
            "rebuild of every day block from the chunks",
            seconds,
            "s",
            notes=f"{periods} months, in process, on a copy of the backfilled store: what `run --once` adds at"
            " its end after a backfill (each month is rebuilt once, not patched batch after batch)",
            readme=True,
        ),
    ]


def store_results(
    spec: DropSpec, new_bytes: int, counts: tuple[int, int, int, int], old_bytes: int, old_rows: int
) -> list[Result]:
    chunks, rows, secid_days, visible = counts
    new_per_row, old_per_row = new_bytes / rows, old_bytes / old_rows
    ratio = new_per_row / old_per_row
    where = f"{spec.secids:,} SecIds x {spec.days} days"
    return [
        Result(
            "8 store size",
            f"chunked store: bytes per stored row, {where}",
            new_per_row,
            "B",
            notes=f"state.db {new_bytes / 1e6:.1f} MB after wal_checkpoint(TRUNCATE), whole file (ledger, master,"
            f" findings included); {rows:,} rows in {chunks:,} chunks",
            readme=True,
        ),
        Result(
            "8 store size",
            "chunked store: bytes per (SecId, day)",
            new_bytes / secid_days,
            "B",
            notes=f"{secid_days:,} (SecId, day) pairs of {DATASET}",
        ),
        Result(
            "8 store size",
            "chunked store: bytes per FIGI-visible row",
            new_bytes / visible,
            "B",
            notes=f"{visible:,} (FIGI, day) rows readable ({visible / rows:.2f} identifiers per SecId row)",
        ),
        Result(
            "8 store size",
            "release 0.1 layout: bytes per stored row",
            old_per_row,
            "B",
            notes=f"scratch SQLite file with 0.1's `bars` table (WITHOUT ROWID, NUMERIC/TEXT) and its"
            f" (secid, time_index) index only: {old_bytes / 1e6:.1f} MB, {old_rows:,} rows (one per FIGI)",
            readme=True,
        ),
        Result.bounded(
            "8 store size",
            "new / old bytes per stored row",
            ratio,
            "x",
            0.5,
            notes=f"each layout's own rows (the new one keeps a SecId's row once); per FIGI-visible row"
            f" (= whole files): {new_bytes / old_bytes:.3f}x",
        ),
    ]
