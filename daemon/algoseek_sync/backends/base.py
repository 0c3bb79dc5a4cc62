"""The contract every store keeps. The worker talks only to this interface.

Frames exchanged here use plain columns, not indexes:

* bars: ``time_index`` (ISO 8601 UTC text, ``YYYY-MM-DDTHH:MM:SSZ``), ``unique_identifier``,
  ``open, high, low, close, volume, secid, ticker`` and every other source column
  lower-cased (see :data:`algoseek_sync.formats.bars.OUTPUT_COLUMNS`); one row per
  (time_index, unique_identifier).
* master snapshot: one row per unique_identifier with ``secid``, ``kind``,
  ``latest_figi`` and the master's columns lower-cased.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

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


@dataclass(frozen=True)
class MasterUpdate:
    """A master refresh as the backend sees it."""

    snapshot: pd.DataFrame
    #: SecId → (an identifier that already holds the SecId's history, identifiers that must get a copy)
    history_copies: dict[int, tuple[str, list[str]]] = field(default_factory=dict)


Done = Callable[[], None]


class Backend(ABC):
    """A store for assets, the security master and daily bars."""

    #: short name for logs and ``status``
    name: str = "base"

    @abstractmethod
    def check(self) -> str:
        """Return a one-line description of the store; raise BackendUnavailableError if unreachable."""

    @abstractmethod
    def ensure_assets(self, assets: Sequence[AssetSpec]) -> AssetReport:
        """Get-or-register every asset, querying in batches of at most 500.

        Never raises for one asset's failure: each gets an outcome. ``retry`` outcomes
        carry when to try again; ``refused`` ones carry the store's message.
        Raises BackendUnavailableError only when the store cannot be reached at all.
        """

    @abstractmethod
    def apply_master(self, update: MasterUpdate, done: Done) -> None:
        """Replace the stored master snapshot and copy history to new identifiers.

        ``done`` is called exactly once, after the store accepted everything: in the
        embedded store inside the same transaction (if ``done`` raises, nothing is kept).
        """

    @abstractmethod
    def upsert_bars(self, frame: pd.DataFrame, done: Done) -> int:
        """Insert or replace rows by (time_index, unique_identifier); return rows written.

        Idempotent: the same frame twice leaves the store as after once. A frame that
        rewrites existing dates replaces them (corporate-action re-deliveries).
        ``done`` follows the same rule as in :meth:`apply_master`.
        """

    @abstractmethod
    def copy_history(self, secid: int, source_uid: str, target_uids: Sequence[str], done: Done) -> int:
        """Give ``target_uids`` every stored bar of ``source_uid``; return rows written."""

    @abstractmethod
    def read_bars(
        self, uids: Sequence[str], start: str | None = None, end: str | None = None
    ) -> pd.DataFrame:
        """Bars of ``uids`` with ``start <= time_index <= end`` (ISO dates/times), sorted."""

    @abstractmethod
    def read_assets(self) -> pd.DataFrame:
        """Assets the store holds: ``unique_identifier, secid, kind, ticker, name``."""

    def close(self) -> None:
        """Release connections; the default has nothing to release."""
