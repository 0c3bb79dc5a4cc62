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

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: the security master is a static snapshot: every row carries this one time
MASTER_TIME = EPOCH + dt.timedelta(minutes=1)
MASTER_TABLE = "algoseek_security_master"
BARS_TABLE = "algoseek_daily_ohlc"

MASTER_COLUMNS: dict[str, tuple[str, str]] = {
    "secid": ("SecId", "Algoseek security id, stable across ticker changes"),
    "kind": ("Asset kind", "'figi' for a FIGI asset, 'custom' for a FIGI-less SecId's custom asset"),
    "latest_figi": ("Latest FIGI", "The SecId's current FIGI (last token of the master's FIGI list)"),
    "tickers": ("Tickers", "';'-separated tickers over time"),
    "name": ("Name", "Security name"),
    "isin": ("ISIN", "International Securities Identification Number"),
    "figi": ("FIGIs", "';'-separated FIGIs of the SecId as delivered"),
}
BAR_COLUMNS: dict[str, tuple[str, str]] = {
    "open": ("Open", "Opening price of the trading day"),
    "high": ("High", "Highest price of the trading day"),
    "low": ("Low", "Lowest price of the trading day"),
    "close": ("Close", "Closing price of the trading day"),
    "volume": ("Volume", "Total volume of the trading day"),
    "vwap": ("VWAP", "Volume-weighted average price"),
    "secid": ("SecId", "Algoseek security id the bar was delivered under"),
    "ticker": ("Ticker", "Ticker on the trade date"),
}


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
    is_demo: bool = Field(default=False, description="Write the _DEMO tables instead of the production ones")


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
        return column_metadata(self.frame, MASTER_COLUMNS, "security master")


class DailyBarsNode(FrameNode):
    """Daily OHLC bars by (close time UTC, FIGI); depends on the security master node."""

    def __init__(
        self, config: DailyBarsConfig, *, hash_namespace: str | None = None, test_node: bool = False
    ):
        super().__init__(config=config, hash_namespace=hash_namespace, test_node=test_node)
        self.is_demo = config.is_demo
        self.master = SecurityMasterNode(
            SecurityMasterConfig(is_demo=config.is_demo), hash_namespace=hash_namespace
        )

    def dependencies(self) -> dict[str, DataNode]:
        return {"security_master": self.master}

    def get_table_metadata(self) -> Any:
        return msc.TableMetaData(
            identifier=table_identifier(BARS_TABLE, self.is_demo),
            data_frequency_id=msc.DataFrequency.one_d,
            description="Algoseek daily OHLC bars, one row per trading day close (UTC) and FIGI; every FIGI "
            "of a SecId carries the SecId's full history.",
        )

    def get_column_metadata(self) -> list[Any]:
        return column_metadata(self.frame, BAR_COLUMNS, "daily bar")
