"""Backward-adjusted prices and volumes from Algoseek's cumulative factors. Pure.

As of the latest factors of a SecId: adjusted price = price × CPF(day) / CPF(latest), adjusted
volume = volume × CVF(latest) / CVF(day). A day without factors stays empty in the adjusted
columns. Adjusted volumes are floats (a ratio of factors need not be whole).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

PRICES = ("open", "high", "low", "close")
Factors = tuple[float, float]  # (CumulativePriceFactor, CumulativeVolumeFactor)


def latest_factors(table: pa.Table) -> dict[int, tuple[int, Factors]]:
    """SecId → (trade date, factors) of its last row in ``table`` (rows sorted by secid, tradedate)."""
    secid = table["secid"].to_numpy()
    if not len(secid):
        return {}
    last = np.r_[secid[1:] != secid[:-1], True]
    dates = table["tradedate"].to_numpy()[last]
    cpf = table["cumulativepricefactor"].to_numpy(zero_copy_only=False)[last]
    cvf = table["cumulativevolumefactor"].to_numpy(zero_copy_only=False)[last]
    return {
        int(s): (int(d), (float(p), float(v)))
        for s, d, p, v in zip(secid[last].tolist(), dates.tolist(), cpf.tolist(), cvf.tolist(), strict=True)
    }


def backward_adjusted(table: pa.Table, latest: Mapping[int, Factors]) -> pa.Table:
    """``table`` with open/high/low/close/volume replaced by their adjusted values."""
    if table.num_rows == 0:
        return table.set_column(table.column_names.index("volume"), "volume", pa.array([], pa.float64()))
    secid = table["secid"].to_numpy().tolist()
    cpf_last = np.array([latest.get(s, (np.nan, np.nan))[0] for s in secid], dtype=float)
    cvf_last = np.array([latest.get(s, (np.nan, np.nan))[1] for s in secid], dtype=float)
    cpf = _floats(table["cumulativepricefactor"])
    cvf = _floats(table["cumulativevolumefactor"])
    with np.errstate(divide="ignore", invalid="ignore"):
        price_ratio, volume_ratio = cpf / cpf_last, cvf_last / cvf
    for name in PRICES:
        values = _floats(table[name]) * price_ratio
        table = table.set_column(table.column_names.index(name), name, pa.array(values, from_pandas=True))
    volume = _floats(table["volume"]) * volume_ratio
    return table.set_column(table.column_names.index("volume"), "volume", pa.array(volume, from_pandas=True))


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    return column.to_numpy(zero_copy_only=False).astype(float)
