"""The platform's backward-adjusted tables (``<dataset table>_adjusted``), kept in step with the raw ones.

Adjusted values depend on a SecId's *latest* factors, so a new corporate event changes its
whole adjusted history. After the raw rows of a batch are written:

* a SecId whose latest (CPF, CVF) is unchanged gets adjusted rows for the delivered days
  only (an append adds one day);
* a SecId whose latest factors changed, or that this state database has not seen yet, is
  rewritten whole: its history is read back from the raw table on the platform (not from
  the delivered file, which for a tradedate delivery holds one day) and written for every
  identifier of the SecId with overwrite.

The latest factors already published are remembered in the state database
(``platform_factors``); if that memory is lost, the next delivery rewrites, which is
correct, only slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from algoseek_sync.backends.base import Receipt
from algoseek_sync.backends.mainsequence import frames
from algoseek_sync.formats.adjust import Factors, backward_adjusted, latest_factors
from algoseek_sync.formats.bars import last_wins
from algoseek_sync.formats.datasets import Dataset

if TYPE_CHECKING:
    import pandas as pd

    from algoseek_sync.state.database import Database

READ_BATCH = 200  # SecIds whose history is read back in one request


class Platform(Protocol):
    """What the writer needs of the platform backend (a protocol: this module does not import it)."""

    def _node(self, dataset: str, *, adjusted: bool = False) -> Any: ...

    def history(
        self,
        dataset: str,
        secids: Sequence[int],
        routes: dict[int, list[str]],
        columns: Sequence[str] | None = None,
    ) -> Any: ...

    def _write_isolated(self, node: Any, plain: pd.DataFrame, what: str) -> Receipt: ...


class AdjustedWriter:
    """One batch's adjusted rows for one dataset."""

    def __init__(self, backend: Platform, dataset: Dataset, db: Database | None) -> None:
        self.backend = backend
        self.dataset = dataset
        self.db = db

    def write(self, tables: Sequence[pa.Table], routes: dict[int, list[str]], refused: set[str]) -> Receipt:
        table = last_wins(tables)
        receipt = Receipt()
        if table is None:
            return receipt
        routable = {s: [u for u in uids if u not in refused] for s, uids in routes.items()}
        delivered = latest_factors(table)
        known = self._published(list(delivered))
        rewrite, append = [], []
        latest: dict[int, tuple[int, Factors]] = {}
        for secid, (day, factors) in delivered.items():
            if not routable.get(secid):
                continue
            before = known.get(secid)
            newest = (day, factors) if before is None or day >= before[0] else before
            latest[secid] = newest
            (append if before is not None and before[1] == newest[1] else rewrite).append(secid)
        node = self.backend._node(self.dataset.name, adjusted=True)
        if append:
            rows = table.filter(pc.is_in(table["secid"], pa.array(append, pa.int64())))
            receipt.merge(self._publish(node, rows, {s: latest[s][1] for s in append}, routable))
        for start in range(0, len(rewrite), READ_BATCH):
            part = rewrite[start : start + READ_BATCH]
            history = self.backend.history(self.dataset.name, part, routable)
            receipt.merge(self._publish(node, history, {s: latest[s][1] for s in part}, routable))
        self._remember(latest)
        return receipt

    def _publish(
        self, node: Any, table: pa.Table, factors: dict[int, Factors], routes: dict[int, list[str]]
    ) -> Receipt:
        adjusted = backward_adjusted(table, factors)
        frame = frames.published([adjusted], routes)
        if frame.empty:
            return Receipt()
        return self.backend._write_isolated(node, frame, f"{self.dataset.name} adjusted bars")

    # -- what was published before (state database) ------------------------------------------
    def _published(self, secids: list[int]) -> dict[int, tuple[int, Factors]]:
        if self.db is None or not secids:
            return {}
        return {
            secid: (day, (cpf, cvf))
            for secid, day, cpf, cvf in self.db.select_in(
                "SELECT secid, tradedate, cpf, cvf FROM platform_factors WHERE dataset = ? AND secid IN ({marks})",
                secids,
                (self.dataset.name,),
            )
        }

    def _remember(self, latest: dict[int, tuple[int, Factors]]) -> None:
        if self.db is None or not latest:
            return
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO platform_factors (dataset, secid, tradedate, cpf, cvf) VALUES (?, ?, ?, ?, ?)",
                [(self.dataset.name, s, day, cpf, cvf) for s, (day, (cpf, cvf)) in latest.items()],
            )
