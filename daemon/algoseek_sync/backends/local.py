"""The embedded store as a :class:`~algoseek_sync.backends.base.Backend` (SQLite, no network).

It lives in the state database, so its writes join the worker's transaction: a batch's
bars and the ledger's ``done`` marks commit together (``transactional``). Bars are kept
once per SecId (see :mod:`algoseek_sync.store.chunks`); the identifiers (FIGIs) that see
them are looked up at read time in the SecId → asset mapping, so a FIGI added to a SecId
sees its whole history at once, with nothing copied.

numpy, pyarrow and pandas are imported where they are used: a ``run --once`` with nothing
to do never loads them (a whole run on one changed file stays well under half a second).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

import structlog

from algoseek_sync.backends.base import (
    AssetOutcome,
    AssetReport,
    AssetSpec,
    Backend,
    BarBatch,
    BarQuery,
    HistoryCopies,
    MasterUpdate,
    Receipt,
)
from algoseek_sync.errors import UserInputError
from algoseek_sync.formats.datasets import DATASETS, Dataset
from algoseek_sync.state.database import Database
from algoseek_sync.state.sql import IN_CHUNK

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from algoseek_sync.store.chunks import Chunks

log = structlog.get_logger("algoseek_sync.backends.local")

MASTER_KEYS = ("unique_identifier", "secid", "kind", "latest_figi")


class LocalBackend(Backend):
    """Embedded SQLite store; writes join the caller's transaction."""

    name = "local"
    transactional = True

    def __init__(self, db: Database) -> None:
        self.db = db

    @cached_property
    def chunks(self) -> Chunks:
        from algoseek_sync.store.chunks import Chunks

        return Chunks(self.db)

    def check(self, *, quick: bool = False) -> str:
        self.db.execute("SELECT count(*) FROM assets").fetchone()
        return f"embedded SQLite store at {self.db.path}"

    def ensure_assets(self, assets: Sequence[AssetSpec]) -> AssetReport:
        report = AssetReport()
        with self.db.transaction() as conn:
            existing = {
                r[0]
                for r in self.db.select_in(
                    "SELECT unique_identifier FROM assets WHERE unique_identifier IN ({marks})",
                    [a.unique_identifier for a in assets],
                )
            }
            now = time.time()
            conn.executemany(
                "INSERT INTO assets (unique_identifier, secid, kind, ticker, name, isin, exchange, registered_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (unique_identifier) DO UPDATE SET"
                " ticker = excluded.ticker, name = excluded.name, isin = excluded.isin,"
                " exchange = excluded.exchange, secid = excluded.secid",
                [
                    (a.unique_identifier, a.secid, a.kind, a.ticker, a.name, a.isin, a.exchange, now)
                    for a in assets
                ],
            )
        for spec in assets:
            status = "existing" if spec.unique_identifier in existing else "registered"
            report.outcomes.append(AssetOutcome(spec.unique_identifier, status))
        return report

    def write_master(self, update: MasterUpdate) -> Receipt:
        snapshot = update.snapshot
        columns = {c: snapshot[c].tolist() for c in snapshot.columns}  # column-wise: cheap
        extra = sorted(c for c in columns if c not in MASTER_KEYS)
        rows = (  # a generator: executemany streams it, no list of every row's JSON
            (uid, int(secid), kind, latest, json.dumps({c: columns[c][i] for c in extra}))
            for i, (uid, secid, kind, latest) in enumerate(
                zip(*(columns[k] for k in MASTER_KEYS), strict=True)
            )
        )
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM master_snapshot")
            conn.executemany("INSERT INTO master_snapshot VALUES (?, ?, ?, ?, ?)", rows)
        return Receipt()

    def write_bars(self, batch: BarBatch) -> Receipt:
        by_dataset: dict[str, list[Any]] = {}
        for item in batch.files:
            by_dataset.setdefault(item.bars.dataset.name, []).append(item.bars.table)
        written = 0
        with self.db.transaction():
            for name, tables in by_dataset.items():
                written += self.chunks.upsert(DATASETS[name], tables)
        return Receipt(rows_written=written)

    def copy_history(self, copies: HistoryCopies) -> Receipt:
        """Nothing to copy: a new identifier reads its SecId's rows (routing happens at read time)."""
        return Receipt()

    def history(
        self,
        dataset: str,
        secids: Sequence[int],
        routes: dict[int, list[str]],
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        return self.chunks.read(DATASETS[dataset], secids, columns=columns)

    def datasets(self) -> list[str]:
        return self.chunks.datasets()

    # -- reads -----------------------------------------------------------------------------
    def _secids_of(self, uids: Sequence[str]) -> dict[str, list[int]]:
        """identifier → SecIds that carry (or carried) it, the current one first."""
        out: dict[str, list[int]] = {}
        for uid, secid in self.db.select_in(
            "SELECT unique_identifier, secid FROM secid_assets WHERE unique_identifier IN ({marks})"
            " ORDER BY active DESC, added_master DESC, secid",
            list(uids),
        ):
            out.setdefault(uid, []).append(secid)
        return out

    def read_bars(self, query: BarQuery) -> pd.DataFrame:

        dataset = DATASETS[query.dataset]
        routes = self._secids_of(query.uids)
        secids = sorted({s for found in routes.values() for s in found})
        start = int(query.start.replace("-", "")) if query.start else None
        end = int(query.end.replace("-", "")) if query.end else None
        table = self.chunks.read(dataset, secids, start, end)
        if query.adjusted:
            table = self._adjusted(dataset, table)
        frames = []
        for uid in query.uids:
            rows = first_secid_wins(table, routes.get(uid, []))
            if rows.num_rows:
                frames.append(identifier_frame(dataset, rows, [uid] * rows.num_rows))
        return _sorted(dataset, frames)

    def read_day(self, dataset: str, day: str) -> pd.DataFrame:
        """Every SecId's bar on ``day``, under each identifier that routes or ever routed it.

        Survivorship-free: a SecId a later master left out keeps its past bars. An identifier
        carried by several SecIds with a bar that day shows the row of the one :meth:`_secids_of`
        ranks first, as :meth:`read_bars` does.
        """
        import numpy as np
        import pyarrow as pa

        chosen = DATASETS[dataset]
        table = self.chunks.read_day(chosen, int(day.replace("-", "")))
        secids = table["secid"].to_numpy()
        carrier, uids = self._carriers(secids)
        shared = sorted({uids[i] for i in range(1, len(uids)) if uids[i] == uids[i - 1]})
        if shared:  # an identifier carried by several of the SecIds: the first-ranked one's row
            groups: dict[str, set[int]] = {uid: set() for uid in shared}
            for uid, secid in zip(uids, carrier.tolist(), strict=True):
                if uid in groups:
                    groups[uid].add(secid)
            chosen_secid = {
                uid: next(s for s in ranked if s in groups[uid])
                for uid, ranked in self._secids_of(shared).items()
            }
            keep = np.array(
                [chosen_secid.get(u, s) == s for u, s in zip(uids, carrier.tolist(), strict=True)]
            )
            carrier, uids = carrier[keep], [u for u, k in zip(uids, keep.tolist(), strict=True) if k]
        order = np.argsort(secids, kind="stable")
        take = pa.array(order[np.searchsorted(secids, carrier, sorter=order)], pa.int64())
        return _sorted(chosen, [identifier_frame(chosen, table.take(take), uids)], ordered=True)

    def _carriers(self, secids: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """(SecIds, identifiers) of every identifier that routes or ever routed one of ``secids``
        (whatever the newest master says), sorted by identifier then SecId."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if len(secids) > IN_CHUNK:  # most of the table: one scan as two JSON arrays, not 10,000 row tuples
            found, names = (
                json.loads(text)
                for text in self.db.execute(
                    "SELECT json_group_array(secid), json_group_array(unique_identifier) FROM secid_assets"
                ).fetchone()
            )
        else:
            marks = ",".join("?" * len(secids))
            rows = self.db.execute(
                f"SELECT secid, unique_identifier FROM secid_assets WHERE secid IN ({marks})", secids.tolist()
            ).fetchall()
            found, names = [r[0] for r in rows], [r[1] for r in rows]
        if not found:
            return np.zeros(0, np.int64), []
        pairs = pa.table({"uid": pa.array(names, pa.string()), "secid": np.array(found, np.int64)})
        pairs = pairs.filter(pc.is_in(pairs["secid"], pa.array(secids, pa.int64())))
        pairs = pairs.take(pc.sort_indices(pairs, [("uid", "ascending"), ("secid", "ascending")]))
        return pairs["secid"].to_numpy(), pairs["uid"].to_pylist()

    def refresh_cross_sections(self, limit: int | None = None) -> int:
        """Rebuild the day blocks that writes left dirty (see store/days.py), at most ``limit``
        months (about a second each at 10,000 SecIds); returns the months rebuilt.

        A writer calls it when it has nothing else to do; until then cross-sections of those
        months are read (exactly, more slowly) from the chunks.
        """
        return self.chunks.refresh_days(self.db.transaction, limit)

    def upkeep(self, limit: int | None = None) -> int:
        """Rebuild dirty cross-section blocks; a failure leaves them dirty (reads stay exact)."""
        if self.db.readonly:
            return 0
        try:
            built = self.refresh_cross_sections(limit)
        except sqlite3.Error as exc:
            log.warning("cross-section blocks not rebuilt", error=str(exc))
            return 0
        if built:
            log.info("cross-section blocks rebuilt", periods=built)
        return built

    def _adjusted(self, dataset: Dataset, table: pa.Table) -> pa.Table:
        """Backward-adjusted as of the latest stored factors of each SecId."""
        if not dataset.has_factors:
            raise UserInputError(
                f"dataset {dataset.name} carries no adjustment factors: --adjusted needs one that does"
            )
        from algoseek_sync.formats.adjust import backward_adjusted

        latest = self.chunks.latest_factors(dataset, sorted(set(table["secid"].to_pylist())))
        return backward_adjusted(table, latest)

    def read_assets(self) -> pd.DataFrame:
        import pandas as pd

        rows = self.db.execute(
            "SELECT unique_identifier, secid, kind, ticker, name FROM assets ORDER BY secid, unique_identifier"
        ).fetchall()
        return pd.DataFrame(
            [tuple(r) for r in rows], columns=["unique_identifier", "secid", "kind", "ticker", "name"]
        )


def first_secid_wins(table: pa.Table, secids: list[int]) -> pa.Table:
    """Rows of ``secids``; on a day several of them hold, the first SecId's row."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not secids:
        return table.slice(0, 0)
    if len(secids) == 1:
        return table.filter(pc.equal(table["secid"], secids[0]))
    picked = table.filter(pc.is_in(table["secid"], pa.array(secids, pa.int64())))
    rank = np.array([secids.index(s) for s in picked["secid"].to_pylist()])
    order = np.lexsort((rank, picked["tradedate"].to_numpy()))
    dates = picked["tradedate"].to_numpy()[order]
    first = np.r_[True, dates[1:] != dates[:-1]]
    return picked.take(pa.array(order[first]))


def identifier_frame(dataset: Dataset, table: pa.Table, uids: list[str]) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    from algoseek_sync.formats.bars import close_time_index

    frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype()}.get)
    frame.insert(0, "unique_identifier", uids)
    dates = table["tradedate"].to_pylist()
    stamps = {d: close_time_index(d) for d in set(dates)}  # a cross-section has one date
    frame.insert(0, "time_index", [stamps[d] for d in dates])
    frame.insert(0, "dataset", dataset.name)
    return frame


def _sorted(dataset: Dataset, frames: list[pd.DataFrame], *, ordered: bool = False) -> pd.DataFrame:
    """The frames as one, sorted by (time_index, unique_identifier) unless already ``ordered``."""
    import pandas as pd

    columns = ["dataset", "time_index", "unique_identifier", *dataset.names]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if not ordered:
        out = out.sort_values(["time_index", "unique_identifier"], kind="stable").reset_index(drop=True)
    return out[columns]
