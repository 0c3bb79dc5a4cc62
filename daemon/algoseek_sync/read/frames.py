"""The shape of every bar read (API, CLI, export): one column order and one set of types.

``tradedate`` is a date (``datetime64[ns]`` at midnight) and ``time_index`` the bar's close as
a UTC timestamp, so that pandas, Arrow, Parquet, DuckDB and Polars all see real dates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from algoseek_sync.formats.datasets import DATASETS

if TYPE_CHECKING:
    import pandas as pd

#: the first columns of every bar read, in this order
LEADING = [
    "dataset",
    "time_index",
    "tradedate",
    "unique_identifier",
    "secid",
    "ticker",
    "open",
    "high",
    "low",
    "close",
    "volume",
]


def bar_columns(dataset: str | None) -> list[str]:
    """The columns of a bar read of ``dataset``: the same for every range (stable headers)."""
    if dataset is None:
        return list(LEADING)
    return LEADING + [c for c in DATASETS[dataset].names if c not in LEADING]


def bars_frame(frame: pd.DataFrame, dataset: str | None) -> pd.DataFrame:
    """A backend's bar frame in the public column order, with real date types."""
    import pandas as pd

    out = frame.reindex(columns=bar_columns(dataset))
    if not pd.api.types.is_datetime64_any_dtype(out["tradedate"]):
        out["tradedate"] = _parsed(
            out["tradedate"],  # YYYYMMDD as int, float or text (the distinct values hold no NaN)
            lambda v: pd.to_datetime(pd.to_numeric(v).astype("int64").astype(str), format="%Y%m%d"),
        )
    if not isinstance(out["time_index"].dtype, pd.DatetimeTZDtype):
        out["time_index"] = _parsed(
            out["time_index"], lambda v: pd.to_datetime(v, utc=True, format="ISO8601")
        )
    return out.reset_index(drop=True)


def _parsed(values: pd.Series, parse: Callable[[pd.Index], pd.DatetimeIndex]) -> pd.Series:
    """``parse`` applied to the distinct values only (a cross-section has one date, a history ~250 a year)."""
    import pandas as pd

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    taken = parse(uniques).take(codes, allow_fill=True, fill_value=pd.NaT)  # missing values: NaT
    return pd.Series(taken, index=values.index)
