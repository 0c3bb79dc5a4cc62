"""The Algoseek daily datasets: their columns, types and meaning, recognised from a file's header.

Pure data. Each bar row belongs to one :class:`Dataset`; secid and tradedate files of a
dataset carry the same columns (in a different order). Column descriptions follow the
vendor's data dictionary, in our own words; they become the platform's column metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColumnType = Literal["int", "float", "text", "date", "time"]


@dataclass(frozen=True)
class Column:
    source: str  # the vendor's header name
    name: str  # stored/output name (lower case; the tutorial's renames for OHLC, volume, vwap)
    type: ColumnType
    label: str
    description: str


def _c(source: str, name: str, type_: ColumnType, label: str, description: str) -> Column:
    return Column(source, name, type_, label, description)


_KEY = (
    _c("SecId", "secid", "int", "SecId", "Algoseek security id; stable across ticker and name changes"),
    _c("TradeDate", "tradedate", "date", "Trade date", "Trading day as an integer YYYYMMDD (New York date)"),
    _c("Ticker", "ticker", "text", "Ticker", "Ticker on the trade date (empty while traded OTC)"),
)
_PRIMARY_HEAD = (
    _c("Name", "name", "text", "Name", "Security name on the trade date"),
    _c(
        "PrimaryExchange", "primaryexchange", "text", "Primary exchange", "Listing exchange on the trade date"
    ),
    _c("ISIN", "isin", "text", "ISIN", "International Securities Identification Number, may be empty"),
    _c("OpenPrice", "open", "float", "Open", "Price of the opening auction on the primary exchange"),
    _c("OpenSize", "opensize", "int", "Open size", "Shares traded in the opening auction"),
    _c("OpenTime", "opentime", "time", "Open time", "Time of the opening trade, HH:MM:SS[.fff] New York"),
    _c("HighPrice", "high", "float", "High", "Highest trade price of the day on the primary exchange"),
    _c("HighTime", "hightime", "time", "High time", "Time of the highest trade, New York"),
    _c("LowPrice", "low", "float", "Low", "Lowest trade price of the day on the primary exchange"),
    _c("LowTime", "lowtime", "time", "Low time", "Time of the lowest trade, New York"),
    _c("ClosePrice", "close", "float", "Close", "Price of the closing auction on the primary exchange"),
    _c("CloseSize", "closesize", "int", "Close size", "Shares traded in the closing auction"),
    _c("CloseTime", "closetime", "time", "Close time", "Time of the closing trade, New York"),
    _c(
        "ListedMarketHoursVolume",
        "listedmarkethoursvolume",
        "int",
        "Listed market-hours volume",
        "Shares traded on listed venues between 09:30 and 16:00",
    ),
    _c(
        "ListedMarketHoursTrades",
        "listedmarkethourstrades",
        "int",
        "Listed market-hours trades",
        "Number of trades on listed venues between 09:30 and 16:00",
    ),
    _c(
        "ListedTotalVolume",
        "volume",
        "int",
        "Volume",
        "ListedTotalVolume: shares traded on listed venues over the whole day, extended hours included",
    ),
    _c(
        "ListedTotalTrades",
        "listedtotaltrades",
        "int",
        "Listed total trades",
        "Number of trades on listed venues over the whole day",
    ),
    _c(
        "FinraMarketHoursVolume",
        "finramarkethoursvolume",
        "int",
        "FINRA market-hours volume",
        "Shares reported to FINRA (off-exchange) between 09:30 and 16:00",
    ),
    _c(
        "FinraMarketHoursTrades",
        "finramarkethourstrades",
        "int",
        "FINRA market-hours trades",
        "Off-exchange trades reported to FINRA between 09:30 and 16:00",
    ),
    _c(
        "FinraTotalVolume",
        "finratotalvolume",
        "int",
        "FINRA total volume",
        "Shares reported to FINRA over the whole day",
    ),
    _c(
        "FinraTotalTrades",
        "finratotaltrades",
        "int",
        "FINRA total trades",
        "Off-exchange trades reported to FINRA over the whole day",
    ),
)
_FACTORS = (
    _c(
        "CumulativePriceFactor",
        "cumulativepricefactor",
        "float",
        "Cumulative price factor",
        "Product of all price adjustments up to this day; price x CPF(day) / CPF(latest) is the"
        " backward-adjusted price",
    ),
    _c(
        "CumulativeVolumeFactor",
        "cumulativevolumefactor",
        "float",
        "Cumulative volume factor",
        "Product of all volume adjustments up to this day; volume x CVF(latest) / CVF(day) is the"
        " backward-adjusted volume",
    ),
    _c(
        "AdjustmentFactor",
        "adjustmentfactor",
        "float",
        "Adjustment factor",
        "Factor of the corporate event effective on this day (empty on days without one)",
    ),
    _c(
        "AdjustmentReason",
        "adjustmentreason",
        "text",
        "Adjustment reason",
        "Kind of corporate event on this day: CashDiv, BonusSame, Subdiv, Cons, ... (';' when several)",
    ),
)
_VWAPS = (
    _c("MarketVWAP", "vwap", "float", "VWAP", "Volume-weighted average price over market hours"),
    _c("DailyVWAP", "dailyvwap", "float", "Daily VWAP", "Volume-weighted average price over the whole day"),
)
_STANDARD_OHLC = (
    _c("Open", "open", "float", "Open", "First trade price of the regular session, consolidated"),
    _c("High", "high", "float", "High", "Highest trade price of the regular session, consolidated"),
    _c("Low", "low", "float", "Low", "Lowest trade price of the regular session, consolidated"),
    _c("Close", "close", "float", "Close", "Last trade price of the regular session, consolidated"),
    _c(
        "MarketHoursVolume",
        "volume",
        "int",
        "Volume",
        "MarketHoursVolume: consolidated shares traded between 09:30 and 16:00",
    ),
)

#: Extra vendor columns (not in the schema) are kept as a JSON object in this column.
EXTRA = "extra"

DatasetName = Literal["primary", "primary-adjusted", "standard-adjusted"]


@dataclass(frozen=True)
class Dataset:
    name: DatasetName
    title: str
    columns: tuple[Column, ...]
    required: tuple[str, ...]  # source names a file must carry
    #: the platform table's identifier (``_DEMO`` is appended in demo mode)
    identifier: str

    @property
    def has_factors(self) -> bool:
        return any(c.name == "cumulativepricefactor" for c in self.columns)

    @property
    def names(self) -> list[str]:
        """Stored column names in order (``extra`` last)."""
        return [c.name for c in self.columns] + [EXTRA]

    def by_source(self) -> dict[str, Column]:
        return {c.source: c for c in self.columns}


_PRIMARY_REQUIRED = ("SecId", "TradeDate", "Ticker", "OpenPrice", "HighPrice", "LowPrice", "ClosePrice")
_PRIMARY_REQUIRED += ("CloseTime", "ListedTotalVolume")

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "primary",
            "Primary-exchange daily OHLC",
            _KEY + _PRIMARY_HEAD + _VWAPS,
            _PRIMARY_REQUIRED,
            "algoseek_daily_ohlc",
        ),
        Dataset(
            "primary-adjusted",
            "Primary-exchange daily OHLC with adjustment factors",
            _KEY + _PRIMARY_HEAD + _FACTORS + _VWAPS,
            (*_PRIMARY_REQUIRED, "CumulativePriceFactor", "CumulativeVolumeFactor"),
            "algoseek_daily_ohlc_primary_adj",
        ),
        Dataset(
            "standard-adjusted",
            "Standard adjusted daily OHLC (consolidated, with adjustment factors)",
            _KEY + _STANDARD_OHLC + _FACTORS,
            ("SecId", "TradeDate", "Ticker", "Open", "High", "Low", "Close", "MarketHoursVolume"),
            "algoseek_daily_ohlc_standard_adj",
        ),
    )
}

#: Columns every dataset has, in the order ``bars`` shows them first.
COMMON = ["secid", "tradedate", "ticker", "open", "high", "low", "close", "volume"]


def recognise(header: list[str]) -> Dataset | None:
    """The dataset a header belongs to, or None when it is neither schema."""
    present = set(header)
    if "OpenPrice" in present or "ClosePrice" in present:
        adjusted = "CumulativePriceFactor" in present or "CumulativeVolumeFactor" in present
        return DATASETS["primary-adjusted" if adjusted else "primary"]
    if "Open" in present or "Close" in present:
        return DATASETS["standard-adjusted"]
    return None
