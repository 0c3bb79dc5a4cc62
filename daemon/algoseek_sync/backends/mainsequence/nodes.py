"""The two DataNodes, after the Main Sequence Algoseek tutorial, for the SDK's 3.19 API.

Imported only after :func:`.sdk.load_sdk` (this module imports the SDK at its top). The
nodes do not read files: the backend hands each node the frame to write (``load``), so the
configuration (and with it the storage hash) holds only what defines the table, and every
run writes to the same two tables whatever files or assets it covers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import mainsequence.client as msc
import pandas as pd
from mainsequence.tdag import DataNode, DataNodeConfiguration
from pydantic import Field

from algoseek_sync.backends.mainsequence.frames import empty_node_frame
from algoseek_sync.backends.platform_tables import (
    ADJUSTED_SUFFIX,
    MASTER_COLUMNS,
    MASTER_TABLE,
    QUALITY_COLUMNS,
    QUALITY_TABLE,
    bar_columns,
    described,
)
from algoseek_sync.formats.datasets import DATASETS

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def table_identifier(base: str, is_demo: bool) -> str:
    return f"{base}_DEMO" if is_demo else base


def column_metadata(frame: pd.DataFrame, known: dict[str, tuple[str, str]], what: str) -> list[Any]:
    """Metadata for every column of ``frame``; columns without a curated entry get a generic one."""
    out = []
    for col in frame.columns:
        label, description = known.get(
            col, (col.replace("_", " ").title(), f"Algoseek {what} column '{col}'")
        )
        out.append(
            msc.ColumnMetaData(
                column_name=col, dtype=str(frame[col].dtype), label=label, description=description
            )
        )
    return out


class SecurityMasterConfig(DataNodeConfiguration):
    """Only the table's identity is hashed; the snapshot itself is handed to the node at run time."""

    is_demo: bool = Field(default=False, description="Write the _DEMO table instead of the production one")


class DailyBarsConfig(DataNodeConfiguration):
    """The tutorial's table (primary-exchange daily OHLC): its identity is unchanged since 0.1."""

    is_demo: bool = Field(default=False, description="Write the _DEMO tables instead of the production ones")


class DatasetBarsConfig(DataNodeConfiguration):
    """Every other dataset's table, and each dataset's backward-adjusted table."""

    is_demo: bool = Field(default=False, description="Write the _DEMO tables instead of the production ones")
    dataset: str = Field(description="Algoseek dataset: primary-adjusted or standard-adjusted")
    adjusted: bool = Field(default=False, description="Backward-adjusted prices and volumes")


class FrameNode(DataNode):
    """A node whose update() returns the frame it was loaded with, for exactly that frame's assets."""

    OFFSET_START = EPOCH

    def __init__(
        self, config: DataNodeConfiguration, *, hash_namespace: str | None = None, test_node: bool = False
    ):
        super().__init__(config=config, hash_namespace=hash_namespace, test_node=test_node)
        self.frame = empty_node_frame()

    def load(self, frame: pd.DataFrame) -> None:
        """Set the rows the next run writes (a DataNode frame, see :mod:`.frames`)."""
        self.frame = frame

    def get_asset_list(self) -> list[Any]:
        uids = self.frame.index.get_level_values("unique_identifier").unique()
        return [msc.Asset(unique_identifier=str(uid)) for uid in uids]

    def update(self) -> pd.DataFrame:
        """The loaded frame; rows at or before an asset's last stored time switch the run to overwrite."""
        frame = self.frame
        if frame.empty:
            return frame
        stats = (self.update_statistics.asset_time_statistics if self.update_statistics else None) or {}
        stored = {
            uid: pd.Timestamp(t)
            for uid, t in stats.items()
            if isinstance(t, dt.datetime) and pd.Timestamp(t) > pd.Timestamp(EPOCH)
        }
        rewrites = [stored[uid] for when, uid in frame.index if uid in stored and when <= stored[uid]]
        if rewrites:
            self.overwrite_latest_value = max(rewrites).to_pydatetime()
        return frame


class SecurityMasterNode(FrameNode):
    """One row per unique_identifier at :data:`MASTER_TIME`, overwritten on every refresh."""

    def __init__(
        self, config: SecurityMasterConfig, *, hash_namespace: str | None = None, test_node: bool = False
    ):
        super().__init__(config=config, hash_namespace=hash_namespace, test_node=test_node)
        self.is_demo = config.is_demo

    def dependencies(self) -> dict[str, DataNode]:
        return {}

    def get_table_metadata(self) -> Any:
        return msc.TableMetaData(
            identifier=table_identifier(MASTER_TABLE, self.is_demo),
            data_frequency_id=msc.DataFrequency.one_d,
            description="Algoseek equity security master: one row per FIGI (or custom id) with its SecId, "
            "as a static snapshot rewritten on every master delivery.",
        )

    def get_column_metadata(self) -> list[Any]:
        return column_metadata(self.frame, described(MASTER_COLUMNS), "security master")


class DailyBarsNode(FrameNode):
    """Daily OHLC bars of one dataset by (close time UTC, FIGI); depends on the security master node."""

    def __init__(
        self,
        config: DailyBarsConfig | DatasetBarsConfig,
        *,
        hash_namespace: str | None = None,
        test_node: bool = False,
    ):
        super().__init__(config=config, hash_namespace=hash_namespace, test_node=test_node)
        self.is_demo = config.is_demo
        self.dataset = DATASETS[getattr(config, "dataset", "primary")]
        self.adjusted = bool(getattr(config, "adjusted", False))
        self.master = SecurityMasterNode(
            SecurityMasterConfig(is_demo=config.is_demo), hash_namespace=hash_namespace
        )

    @classmethod
    def for_dataset(cls, dataset: str, *, is_demo: bool, adjusted: bool = False) -> DailyBarsNode:
        if dataset == "primary" and not adjusted:
            return cls(DailyBarsConfig(is_demo=is_demo))
        return cls(DatasetBarsConfig(is_demo=is_demo, dataset=dataset, adjusted=adjusted))

    def dependencies(self) -> dict[str, DataNode]:
        return {"security_master": self.master}

    def get_table_metadata(self) -> Any:
        base = self.dataset.identifier + (ADJUSTED_SUFFIX if self.adjusted else "")
        what = "backward-adjusted as of the latest factors, " if self.adjusted else ""
        return msc.TableMetaData(
            identifier=table_identifier(base, self.is_demo),
            data_frequency_id=msc.DataFrequency.one_d,
            description=f"Algoseek {self.dataset.title}, {what}one row per trading day close (UTC) and FIGI;"
            " every FIGI of a SecId carries the SecId's full history.",
        )

    def get_column_metadata(self) -> list[Any]:
        return column_metadata(self.frame, described(bar_columns(self.dataset)), "daily bar")


class DataQualityConfig(DataNodeConfiguration):
    is_demo: bool = Field(default=False, description="Write the _DEMO table instead of the production one")


class DataQualityNode(FrameNode):
    """Open data-quality findings by (trade date close UTC, FIGI), rewritten for the affected assets only."""

    def __init__(
        self, config: DataQualityConfig, *, hash_namespace: str | None = None, test_node: bool = False
    ):
        super().__init__(config=config, hash_namespace=hash_namespace, test_node=test_node)
        self.is_demo = config.is_demo
        self.master = SecurityMasterNode(
            SecurityMasterConfig(is_demo=config.is_demo), hash_namespace=hash_namespace
        )

    @classmethod
    def for_demo(cls, is_demo: bool) -> DataQualityNode:
        return cls(DataQualityConfig(is_demo=is_demo))

    def dependencies(self) -> dict[str, DataNode]:
        return {"security_master": self.master}

    def get_table_metadata(self) -> Any:
        return msc.TableMetaData(
            identifier=table_identifier(QUALITY_TABLE, self.is_demo),
            data_frequency_id=msc.DataFrequency.one_d,
            description="algoseek-sync data-quality findings of the Algoseek daily bars: missing sessions, "
            "impossible bars, stale prices, unexplained jumps, delivery completeness.",
        )

    def get_column_metadata(self) -> list[Any]:
        return column_metadata(self.frame, described(QUALITY_COLUMNS), "data quality")
