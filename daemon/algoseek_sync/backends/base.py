"""The contract every store keeps. The worker talks only to this interface.

Data goes in, a :class:`Receipt` comes out; a backend never calls back into the ledger.
The worker owns every commit:

* an embedded store (``transactional = True``) writes inside the worker's state-database
  transaction, so a batch's rows and its ledger marks commit together or not at all;
* a remote store is written first and the worker commits after. Its writes are
  idempotent by (dataset, time_index, unique_identifier), so a crash in between repeats
  them harmlessly.

Failures have three shapes: :class:`~algoseek_sync.errors.BackendUnavailableError` (nothing
was refused, try the same work later), a :class:`Receipt` naming the files or assets the
store refused (everything else was written), and any other exception (the worker retries
the batch file by file to find the culprit).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from algoseek_sync.formats.bars import BarFile

AssetKind = Literal["figi", "custom"]
AssetStatus = Literal["existing", "registered", "retry", "refused"]


@dataclass(frozen=True)
class AssetSpec:
    """One asset the current master needs: a FIGI, or a custom id for a FIGI-less SecId."""

    unique_identifier: str
    secid: int
    kind: AssetKind
    ticker: str = ""
    name: str = ""
    isin: str = ""
    exchange: str = ""


@dataclass(frozen=True)
class AssetOutcome:
    unique_identifier: str
    status: AssetStatus
    message: str = ""
    retry_at: float | None = None  # epoch seconds, for ``retry``


@dataclass
class AssetReport:
    """Per-asset result of :meth:`Backend.ensure_assets`."""

    outcomes: list[AssetOutcome] = field(default_factory=list)

    def ready(self) -> set[str]:
        """Identifiers the backend has now: bars may be written for them."""
        return {o.unique_identifier for o in self.outcomes if o.status in ("existing", "registered")}

    def count(self, status: AssetStatus) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


#: SecId → (an identifier that already holds the SecId's history, identifiers that must get a copy)
HistoryCopies = dict[int, tuple[str, list[str]]]


@dataclass(frozen=True)
class MasterUpdate:
    """A master refresh as the backend sees it."""

    #: one row per unique_identifier: ``secid, kind, latest_figi`` and the master's columns lower-cased
    snapshot: pd.DataFrame
    history_copies: HistoryCopies = field(default_factory=dict)


@dataclass(frozen=True)
class FileBars:
    """One parsed bar file of a batch, as the backend sees it."""

    version_id: int
    path: str
    bars: BarFile  # dataset + typed table (only SecIds the master routes)


@dataclass(frozen=True)
class BarBatch:
    """Files to write, in delivery order (a later file wins over an earlier one for the same day)."""

    files: Sequence[FileBars]
    #: SecId → identifiers its rows are published under (the platform writes one row per identifier)
    routes: dict[int, list[str]]


@dataclass
class Receipt:
    """What a write did: rows written, and what the store refused (everything else was written)."""

    rows_written: int = 0
    #: version id → reason, for files the store refused as a whole
    rejected_files: dict[int, str] = field(default_factory=dict)
    #: unique_identifier → reason, for assets whose rows the store refused
    rejected_assets: dict[str, str] = field(default_factory=dict)

    def merge(self, other: Receipt) -> Receipt:
        self.rows_written += other.rows_written
        self.rejected_files.update(other.rejected_files)
        self.rejected_assets.update(other.rejected_assets)
        return self


@dataclass(frozen=True)
class BarQuery:
    """What ``bars`` asks for: one dataset, some identifiers (or a date for every one), a range."""

    dataset: str
    uids: Sequence[str] = ()
    start: str | None = None  # YYYY-MM-DD, inclusive
    end: str | None = None  # YYYY-MM-DD, inclusive
    adjusted: bool = False


def _no_keepalive(seconds: float) -> None:
    """Default: nobody watches the backend's progress."""


class Backend(ABC):
    """A store for assets, the security master and daily bars."""

    #: short name for logs and ``status``
    name: str = "base"
    #: True when writes join the caller's open state-database transaction
    transactional: bool = False
    #: called during long operations: "still working, the next sign comes within N seconds"
    keepalive: Callable[[float], None] = staticmethod(_no_keepalive)
    #: True when data-quality findings are published to the store (the platform's table)
    publishes_findings: bool = False
    #: True when the backend hands pandas objects to pyarrow (see algoseek_sync.ingest.arrow)
    uses_pandas: bool = False

    @abstractmethod
    def check(self, *, quick: bool = False) -> str:
        """A one-line description of the store, after a live request to it.

        Raises BackendUnavailableError when it cannot be reached; ``quick`` gives up after
        one attempt (``check-config``) instead of retrying under the policy.
        """

    @abstractmethod
    def ensure_assets(self, assets: Sequence[AssetSpec]) -> AssetReport:
        """Get-or-register every asset, querying in batches of at most 500.

        Never raises for one asset's failure: each gets an outcome. ``retry`` outcomes
        carry when to try again; ``refused`` ones carry the store's message.
        Raises BackendUnavailableError only when the store cannot be reached at all.
        """

    @abstractmethod
    def write_master(self, update: MasterUpdate) -> Receipt:
        """Replace the stored master snapshot and give new identifiers their SecId's history."""

    @abstractmethod
    def write_bars(self, batch: BarBatch) -> Receipt:
        """Upsert every file's rows by (dataset, time_index, unique_identifier).

        Idempotent: the same batch twice leaves the store as after once. Rows for days
        already stored replace them (corporate-action re-deliveries rewrite history). A
        refusal names the file (or asset) that caused it, never the whole batch.
        """

    @abstractmethod
    def copy_history(self, copies: HistoryCopies) -> Receipt:
        """Give identifiers that became writable every stored bar of their SecId."""

    @abstractmethod
    def history(
        self,
        dataset: str,
        secids: Sequence[int],
        routes: dict[int, list[str]],
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """Every stored row of ``secids`` in ``dataset``, typed as parsed, sorted by (secid, tradedate).

        ``routes`` names the identifiers each SecId is published under (a remote store reads one);
        ``columns``, when given, are the columns needed (a store may return only those, with
        ``secid`` and ``tradedate``).
        """

    def write_findings(self, findings: Sequence[dict[str, object]]) -> Receipt:
        """Publish these SecIds' data-quality findings (only where ``publishes_findings``)."""
        return Receipt()

    @abstractmethod
    def datasets(self) -> list[str]:
        """Names of the datasets the store holds bars of."""

    @abstractmethod
    def read_bars(self, query: BarQuery) -> pd.DataFrame:
        """Bars of ``query.uids`` in the range, sorted by (time_index, unique_identifier).

        Columns: ``dataset, time_index, unique_identifier`` and the dataset's columns
        (:attr:`algoseek_sync.formats.datasets.Dataset.names`). ``adjusted`` replaces
        ``open, high, low, close, volume`` by their backward-adjusted values.
        """

    @abstractmethod
    def read_day(self, dataset: str, day: str) -> pd.DataFrame:
        """Every identifier's bar on ``day`` (YYYY-MM-DD): a cross-section, same columns as read_bars."""

    @abstractmethod
    def read_assets(self) -> pd.DataFrame:
        """Assets the store holds: ``unique_identifier, secid, kind, ticker, name``."""

    def prerequisites(self) -> list[tuple[str, bool, str]]:
        """(name, met, detail) of each prerequisite, checked on its own, for ``check-config``; empty:
        :meth:`check` alone says whether the backend can be used."""
        return []

    def upkeep(self, limit: int | None = None) -> int:
        """Work a writer does when it is idle (at most ``limit`` units); returns the units done.

        The default has none; the embedded store rebuilds its cross-section blocks here.
        """
        return 0

    def close(self) -> None:
        """Release connections; the default has nothing to release."""
