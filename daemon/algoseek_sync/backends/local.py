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
import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from algoseek_sync.store.chunks import Chunks

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
            " ORDER BY active DESC, added_master DESC",
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
            rows = _first_secid_wins(table, routes.get(uid, []))
            if rows.num_rows:
                frames.append(_frame(dataset, rows, [uid] * rows.num_rows))
        return _sorted(dataset, frames)

    def read_day(self, dataset: str, day: str) -> pd.DataFrame:
        import pyarrow as pa

        chosen = DATASETS[dataset]
        table = self.chunks.read_day(chosen, int(day.replace("-", "")))
        uids: dict[int, list[str]] = {}
        for secid, uid in self.db.select_in(
            "SELECT secid, unique_identifier FROM secid_assets WHERE active = 1 AND secid IN ({marks})"
            " ORDER BY secid, is_latest DESC, unique_identifier",
            table["secid"].to_pylist(),
        ):
            uids.setdefault(secid, []).append(uid)
        secids = table["secid"].to_pylist()
        take = [i for i, s in enumerate(secids) for _ in uids.get(s, [])]
        names = [u for s in secids for u in uids.get(s, [])]
        return _sorted(chosen, [_frame(chosen, table.take(pa.array(take, pa.int64())), names)])

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


def _first_secid_wins(table: pa.Table, secids: list[int]) -> pa.Table:
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


def _frame(dataset: Dataset, table: pa.Table, uids: list[str]) -> pd.DataFrame:
    import pandas as pd
    import pyarrow as pa

    from algoseek_sync.formats.bars import close_time_index

    frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype()}.get)
    frame.insert(0, "unique_identifier", uids)
    frame.insert(0, "time_index", [close_time_index(d) for d in table["tradedate"].to_pylist()])
    frame.insert(0, "dataset", dataset.name)
    return frame


def _sorted(dataset: Dataset, frames: list[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    columns = ["dataset", "time_index", "unique_identifier", *dataset.names]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return out.sort_values(["time_index", "unique_identifier"], kind="stable").reset_index(drop=True)[columns]
