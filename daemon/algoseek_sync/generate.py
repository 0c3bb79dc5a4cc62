"""Deterministic generator of realistic Algoseek drops (security master + daily OHLC bars).

Why: tests and benchmarks need large drops in the exact vendor formats (see
``docs/algoseek-formats.md``) without shipping vendor data. Everything is a pure
function of a :class:`DropSpec`, so the same spec always gives the same bytes, and a
SecId's values for a date do not depend on how many days or SecIds were asked for
(a "one new day" re-delivery is ``write_bars(root, spec, dates=[next_day])``).

Standard library + numpy only; CSV text is built with ``%`` formatting and compressed
with ``zlib`` (gzip container, level 1, mtime 0) because that is an order of magnitude
faster than pandas and keeps output byte-stable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

Schema = Literal["primary", "primary-adjusted", "standard"]
Aggregation = Literal["secid", "tradedate"]
Compression = Literal["gz", "none"]

OPEN_END = "29991231"

MASTER_COLUMNS: tuple[str, ...] = (
    "SecId",
    "Tickers",
    "TickersStartToEndDate",
    "Name",
    "NameStartToEndDate",
    "ISIN",
    "ISINStartToEndDate",
    "ListStatus",
    "SecurityDescription",
    "USIdentifier",
    "USIdentifierStartToEndDate",
    "PrimaryExchange",
    "PrimaryExchangeStartToEndDate",
    "SEDOL",
    "Sic",
    "Sector",
    "Industry",
    "FIGI",
)

_PRIMARY_HEAD: tuple[str, ...] = (
    "SecId",
    "TradeDate",
    "Ticker",
    "Name",
    "PrimaryExchange",
    "ISIN",
    "OpenPrice",
    "OpenSize",
    "OpenTime",
    "HighPrice",
    "HighTime",
    "LowPrice",
    "LowTime",
    "ClosePrice",
    "CloseSize",
    "CloseTime",
    "ListedMarketHoursVolume",
    "ListedMarketHoursTrades",
    "ListedTotalVolume",
    "ListedTotalTrades",
    "FinraMarketHoursVolume",
    "FinraMarketHoursTrades",
    "FinraTotalVolume",
    "FinraTotalTrades",
)
_FACTORS: tuple[str, ...] = (
    "CumulativePriceFactor",
    "CumulativeVolumeFactor",
    "AdjustmentFactor",
    "AdjustmentReason",
)
_VWAPS: tuple[str, ...] = ("MarketVWAP", "DailyVWAP")

#: Exact header of each bar schema, as in the vendor guides.
BAR_COLUMNS: dict[str, tuple[str, ...]] = {
    "primary": _PRIMARY_HEAD + _VWAPS,
    "primary-adjusted": _PRIMARY_HEAD + _FACTORS + _VWAPS,
    "standard": (
        "SecId",
        "TradeDate",
        "Ticker",
        "Open",
        "High",
        "Low",
        "Close",
        "MarketHoursVolume",
    )
    + _FACTORS,
}


@dataclass(frozen=True)
class DropSpec:
    """What to generate; frozen (hashable) so derived data can be cached per spec."""

    secids: int = 100
    days: int = 20
    start: str = "20240102"
    schema: Schema = "primary-adjusted"
    aggregation: Aggregation = "secid"
    compression: Compression = "gz"
    multi_figi_fraction: float = 0.2
    blank_figi_fraction: float = 0.02
    ticker_change_fraction: float = 0.05
    first_secid: int = 10000
    bucket_dirs: bool = False
    seed: int = 0


@dataclass(frozen=True)
class DropManifest:
    """What was written, so tests can check the reader's output against the truth."""

    master_path: Path
    bar_paths: list[Path]
    secids: list[int]
    figis: dict[int, list[str]]
    tickers: dict[int, list[tuple[str, str, str]]]
    trade_dates: list[str]
    rows: int


@dataclass(frozen=True)
class SecInfo:
    """Per-SecId reference data shared by the master and the bar files."""

    secid: int
    figis: tuple[str, ...]
    tickers: tuple[tuple[str, str, str], ...]  # (ticker, start, end), oldest first
    names: tuple[str, ...]  # aligned with tickers
    change_index: int  # trade-date index where the last ticker starts (0 = no change)
    isin: str
    cusip: str
    sedol: str
    exchange: str
    description: str
    sic: str
    sector: str
    industry: str


@dataclass(frozen=True)
class Universe:
    """The master's content for a spec: SecIds in order, their reference data, the calendar."""

    spec: DropSpec
    trade_dates: tuple[str, ...]
    infos: tuple[SecInfo, ...]

    def info(self, secid: int) -> SecInfo:
        """Reference data of one SecId (SecIds are consecutive from ``first_secid``)."""
        idx = secid - self.spec.first_secid
        if not 0 <= idx < len(self.infos):
            raise KeyError(f"SecId {secid} is not in this universe")
        return self.infos[idx]


# --------------------------------------------------------------------------- identifiers

_FIGI_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZ"  # digits + consonants, as FIGIs use


def _char_value(char: str) -> int:
    return int(char) if char.isdigit() else ord(char) - ord("A") + 10


def figi_check_digit(first11: str) -> int:
    """FIGI check digit (Luhn over A=10 … Z=35, odd 0-based positions doubled)."""
    total = 0
    for pos, char in enumerate(first11):
        value = _char_value(char) * (2 if pos % 2 == 1 else 1)
        total += sum(int(d) for d in str(value))
    return (10 - total % 10) % 10


def make_figi(n: int) -> str:
    """A valid, distinct-per-``n`` FIGI ``BBG`` + 8 base-31 chars of ``n`` + check digit."""
    base = len(_FIGI_ALPHABET)
    if not 0 <= n < base**8:
        raise ValueError(f"n={n} outside 0..{base**8 - 1}")
    chars = []
    for _ in range(8):
        n, rem = divmod(n, base)
        chars.append(_FIGI_ALPHABET[rem])
    first11 = "BBG" + "".join(reversed(chars))
    return first11 + str(figi_check_digit(first11))


def _cusip_check(first8: str) -> str:
    """CUSIP check digit, so USIdentifier/ISIN look like the real thing."""
    total = 0
    for pos, char in enumerate(first8):
        value = _char_value(char) * (2 if pos % 2 == 1 else 1)
        total += value // 10 + value % 10
    return str((10 - total % 10) % 10)


def _isin_check(first11: str) -> str:
    """ISIN check digit: letters → numbers, then Luhn from the right."""
    digits = "".join(str(_char_value(c)) for c in first11)
    total = 0
    for pos, char in enumerate(reversed(digits)):
        value = int(char) * (2 if pos % 2 == 0 else 1)
        total += value // 10 + value % 10
    return str((10 - total % 10) % 10)


def _sedol_check(first6: str) -> str:
    total = sum(_char_value(c) * w for c, w in zip(first6, (1, 3, 1, 7, 3, 9), strict=True))
    return str((10 - total % 10) % 10)


def _letters(n: int) -> str:
    """Bijective base-26 (1=A, 27=AA): distinct uppercase tickers from SecIds."""
    out = []
    while n > 0:
        n, rem = divmod(n - 1, 26)
        out.append(chr(ord("A") + rem))
    return "".join(reversed(out))


# --------------------------------------------------------------------------- calendar


def _nth_weekday(year: int, month: int, weekday: int, nth: int) -> dt.date:
    """nth (1-based; -1 = last) given weekday (Mon=0) of a month."""
    if nth > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (nth - 1))
    last = dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year: int) -> dt.date:
    """Gregorian Easter (anonymous algorithm), for Good Friday."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = (h + m - 7 * ((a + 11 * h + 22 * m) // 451) + 114) // 31
    p = (h + m - 7 * ((a + 11 * h + 22 * m) // 451) + 114) % 31
    return dt.date(year, n, p + 1)


@lru_cache(maxsize=64)
def us_market_holidays(year: int) -> frozenset[dt.date]:
    """Regular NYSE full-day holidays (no one-off closures), so bars skip them like real data."""

    def observed(day: dt.date) -> dt.date:
        if day.weekday() == 5:
            return day - dt.timedelta(days=1)
        if day.weekday() == 6:
            return day + dt.timedelta(days=1)
        return day

    days = {
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _easter(year) - dt.timedelta(days=2),  # Good Friday
        _nth_weekday(year, 5, 0, -1),  # Memorial Day
        observed(dt.date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        observed(dt.date(year, 12, 25)),
    }
    new_year = dt.date(year, 1, 1)
    if new_year.weekday() != 5:  # NYSE does not close on the Friday before a Saturday New Year
        days.add(observed(new_year))
    if year >= 2022:
        days.add(observed(dt.date(year, 6, 19)))  # Juneteenth
    return frozenset(days)


@lru_cache(maxsize=64)
def trading_days(start: str, n: int) -> tuple[str, ...]:
    """The first ``n`` trading days (YYYYMMDD) on or after ``start``."""
    day = dt.datetime.strptime(start, "%Y%m%d").date()
    out: list[str] = []
    while len(out) < n:
        if day.weekday() < 5 and day not in us_market_holidays(day.year):
            out.append(day.strftime("%Y%m%d"))
        day += dt.timedelta(days=1)
    return tuple(out)


def trade_dates(spec: DropSpec, extra: int = 0) -> list[str]:
    """The spec's trading days plus ``extra`` following ones (for re-delivery scenarios)."""
    return list(trading_days(spec.start, spec.days + extra))


def _day_before(yyyymmdd: str) -> str:
    day = dt.datetime.strptime(yyyymmdd, "%Y%m%d").date() - dt.timedelta(days=1)
    return day.strftime("%Y%m%d")


# --------------------------------------------------------------------------- universe

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _hash_uniform(seed: int, secids: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of (seed, secid, salt) → [0, 1): per-SecId draws independent of universe size."""
    with np.errstate(over="ignore"):
        x = secids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        x ^= np.uint64((seed * 0x100000001B3 + salt * 0xC2B2AE3D27D4EB4F) & 0xFFFFFFFFFFFFFFFF)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = (x ^ (x >> np.uint64(31))) & _MASK64
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


_EXCHANGES = ("NASDAQ", "NASDAQ", "NYSE", "NYSE", "NYSE ARCA", "NYSE AMERICAN")
_SUFFIXES = ("Inc.", "Corp.", "Holdings, Inc.", "Group Ltd", "Technologies Inc", "Co.")
_CLASSES = (
    ("3571", "Manufacturing", "Electronic Computers"),
    ("5961", "Retail Trade", "Retail-Catalog & Mail-Order Houses"),
    ("7372", "Services", "Services-Prepackaged Software"),
    ("6022", "Finance, Insurance, And Real Estate", "State Commercial Banks"),
    ("2834", "Manufacturing", "Pharmaceutical Preparations"),
    ("1311", "Mining", "Crude Petroleum & Natural Gas"),
    ("4911", "Transportation, Communications, Electric, Gas, And Sanitary Services", "Electric Services"),
    ("", "", ""),  # classification may be blank
)


def _pick_lowest(u: np.ndarray, count: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the ``count`` lowest draws: exact fractions, stable as the universe grows."""
    order = np.argsort(u, kind="stable")
    if exclude is not None:
        order = order[~exclude[order]]
    mask = np.zeros(len(u), dtype=bool)
    mask[order[:count]] = True
    return mask


@lru_cache(maxsize=16)
def build_universe(spec: DropSpec) -> Universe:
    """Reference data for every SecId of the spec (cached: bar writers ask for it per file)."""
    if spec.secids < 0 or spec.days < 0:
        raise ValueError("secids and days must be >= 0")
    dates = trading_days(spec.start, spec.days)
    ids = np.arange(spec.first_secid, spec.first_secid + spec.secids, dtype=np.int64)
    n = len(ids)
    u_figi = _hash_uniform(spec.seed, ids, 1)
    blank = _pick_lowest(u_figi, round(spec.blank_figi_fraction * n))
    multi = _pick_lowest(u_figi, round(spec.multi_figi_fraction * n), exclude=blank)
    three = _hash_uniform(spec.seed, ids, 2) < 0.3
    change = np.zeros(n, dtype=bool)
    if spec.days >= 2:
        change = _pick_lowest(_hash_uniform(spec.seed, ids, 3), round(spec.ticker_change_fraction * n))
    change_at = 1 + (_hash_uniform(spec.seed, ids, 4) * max(spec.days - 1, 1)).astype(np.int64)
    attrs = (_hash_uniform(spec.seed, ids, 5) * (1 << 30)).astype(np.int64)
    sedol_blank = _hash_uniform(spec.seed, ids, 6) < 0.4
    first = dates[0] if dates else spec.start

    infos: list[SecInfo] = []
    seen: set[str] = set()
    for i, secid in enumerate(ids.tolist()):
        a = int(attrs[i])
        nfigi = 0 if blank[i] else (3 if three[i] else 2) if multi[i] else 1
        figis = tuple(make_figi(secid * 4 + j) for j in range(nfigi))
        current = _letters(secid)
        suffix = _SUFFIXES[a % len(_SUFFIXES)]
        if change[i]:
            old = current + "Z"
            begins = dates[int(change_at[i])]
            tickers = ((old, first, _day_before(begins)), (current, begins, OPEN_END))
            names = (f"{old.capitalize()} {suffix}", f"{current.capitalize()} {suffix}")
            change_index = int(change_at[i])
        else:
            tickers = ((current, first, OPEN_END),)
            names = (f"{current.capitalize()} {suffix}",)
            change_index = 0
        for ticker, _, _ in tickers:
            if ticker in seen:
                raise ValueError(f"ticker {ticker} would repeat; use a smaller universe")
            seen.add(ticker)
        cusip8 = f"{secid % 1000000:06d}{a % 90 + 10:02d}"
        cusip = cusip8 + _cusip_check(cusip8)
        isin11 = "US" + cusip
        sedol6 = f"{(secid * 7 + a) % 1000000:06d}"
        exchange = _EXCHANGES[(a >> 4) % len(_EXCHANGES)]
        sic, sector, industry = _CLASSES[(a >> 8) % len(_CLASSES)]
        infos.append(
            SecInfo(
                secid=secid,
                figis=figis,
                tickers=tickers,
                names=names,
                change_index=change_index,
                isin=isin11 + _isin_check(isin11),
                cusip=cusip,
                sedol="" if sedol_blank[i] else sedol6 + _sedol_check(sedol6),
                exchange=exchange,
                description="ETF" if exchange == "NYSE ARCA" else "Equity Shares",
                sic=sic,
                sector=sector,
                industry=industry,
            )
        )
    return Universe(spec=spec, trade_dates=dates, infos=tuple(infos))


def _csv_field(value: str) -> str:
    """Quote a field only when CSV needs it (names like ``Foo Holdings, Inc.``)."""
    if any(c in value for c in ',"\n\r'):
        return '"' + value.replace('"', '""') + '"'
    return value


def master_csv(spec: DropSpec) -> tuple[str, Universe]:
    """The security master text (header + one row per SecId) and the universe it describes."""
    uni = build_universe(spec)
    lines = [",".join(MASTER_COLUMNS)]
    for info in uni.infos:
        ranges = ";".join(f"{s}:{e}" for _, s, e in info.tickers)
        first = info.tickers[0][1]
        whole = f"{first}:{OPEN_END}"
        row = (
            str(info.secid),
            ";".join(t for t, _, _ in info.tickers),
            ranges,
            ";".join(info.names),
            ranges,
            info.isin,
            whole,
            "L",
            info.description,
            info.cusip,
            whole,
            info.exchange,
            whole,
            info.sedol,
            info.sic,
            info.sector,
            info.industry,
            ";".join(info.figis),
        )
        lines.append(",".join(_csv_field(v) for v in row))
    return "\n".join(lines) + "\n", uni


# --------------------------------------------------------------------------- bars

_N_DRAWS = 24  # uniforms per (SecId, day); fixed so a SecId's day i never depends on the day count
_SECONDS = np.array(
    [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)], dtype=object
)
_FACTOR_ONE = "1,1,,"


def _fmt_factor(x: float) -> str:
    """Factors print like the vendor's: ``1`` when exact, else full repr (``6.9999999999999938``)."""
    return "1" if x == 1.0 else repr(x)


def _series(spec: DropSpec, secid: int, n: int) -> dict[str, list]:
    """Numeric columns for trade-date indexes 0..n-1 of one SecId (a prefix-stable random walk)."""
    rng = np.random.default_rng([spec.seed, secid])
    const = rng.random(4)
    u = rng.random((n, _N_DRAWS))
    base = float(np.exp(np.log(5.0) + const[0] * np.log(100.0)))  # 5 .. 500
    sigma = 0.008 + 0.025 * const[1]
    vol_base = float(np.exp(np.log(2e4) + const[2] * np.log(2e3)))  # 20k .. 40M shares
    # Box-Muller normal returns from two uniform columns.
    z = np.sqrt(-2.0 * np.log1p(-u[:, 0])) * np.cos(2 * np.pi * u[:, 1])
    log_close = np.log(base) + np.cumsum(sigma * z)
    gap = sigma * 0.5 * (u[:, 2] - 0.5)

    # Rare corporate events: cash dividends (~1/250 days), splits (~1/5000 days).
    div = u[:, 11] < 0.004
    split = (u[:, 12] < 0.0002) & (np.arange(n) > 0)
    ratio = np.where(split, np.where(u[:, 13] < 0.5, 2.0, 3.0), 1.0)
    split_cum = np.cumprod(ratio)
    close = np.exp(log_close) / split_cum
    prev_close = np.concatenate(([close[0] / np.exp(gap[0])], close[:-1])) if n else close
    prev_close = prev_close / ratio  # a split day opens near the split-adjusted previous close
    open_ = prev_close * np.exp(gap)

    close_c = np.maximum(np.round(close * 100), 1)
    open_c = np.maximum(np.round(open_ * 100), 1)
    span = close * sigma * 100
    high_c = np.maximum(open_c, close_c) + np.ceil(span * u[:, 3])
    low_c = np.maximum(np.minimum(open_c, close_c) - np.ceil(span * u[:, 4]), 1)
    quirk = u[:, 19] < 0.002  # Open outside [Low, High], as in real files (AAPL 20191220)
    open_c = np.where(quirk, high_c + 1 + np.floor(u[:, 22] * 5), open_c)

    volume = np.floor(vol_base * np.exp(1.2 * (u[:, 5] - 0.5)) * np.where(split, ratio, 1.0)) + 100
    trades = np.floor(volume / (80 + 200 * u[:, 14])) + 1
    ext_vol = np.floor(volume * 0.08 * u[:, 18])
    finra_share = 0.25 + 0.25 * u[:, 15]
    adj_div = 1.0 - (0.003 + 0.01 * u[:, 13])
    adj = np.where(split, 1.0 / ratio, np.where(div, adj_div, 1.0))
    cum_price = np.cumprod(1.0 / adj)
    cum_vol = split_cum

    def vwap(pos: np.ndarray) -> np.ndarray:
        return np.round((low_c + (high_c - low_c) * (0.3 + 0.4 * pos)) / 100.0, 4)

    sec = lambda col, lo, hi: (lo + np.floor(u[:, col] * (hi - lo))).astype(np.int64)  # noqa: E731
    ms = np.floor(u[:, 8] * 1000).astype(np.int64)
    factors = [_FACTOR_ONE] * n
    reasons = np.flatnonzero((adj != 1.0) | (cum_price != 1.0) | (cum_vol != 1.0))
    for i in reasons.tolist():
        cp, cv = _fmt_factor(float(cum_price[i])), _fmt_factor(float(cum_vol[i]))
        if split[i]:
            factors[i] = f"{cp},{cv},{repr(float(adj[i]))},{'Subdiv' if ratio[i] == 3.0 else 'BonusSame'}"
        elif div[i]:
            factors[i] = f"{cp},{cv},{float(adj[i]):.15f},CashDiv"
        else:
            factors[i] = f"{cp},{cv},,"
    return {
        "open": (open_c / 100.0).tolist(),
        "high": (high_c / 100.0).tolist(),
        "low": (low_c / 100.0).tolist(),
        "close": (close_c / 100.0).tolist(),
        "open_size": (np.floor(u[:, 6] * 5000) + 100).astype(np.int64).tolist(),
        "close_size": (np.floor(u[:, 7] * volume * 0.02) + 100).astype(np.int64).tolist(),
        "open_ms": ms.tolist(),
        "open_sec": _SECONDS[sec(20, 34200, 34202)].tolist(),
        "high_time": _SECONDS[sec(9, 34200, 57600)].tolist(),
        "low_time": _SECONDS[sec(10, 34200, 57600)].tolist(),
        "high_ms": np.floor(u[:, 21] * 1000).astype(np.int64).tolist(),
        "low_ms": np.floor(u[:, 23] * 1000).astype(np.int64).tolist(),
        "mh_vol": volume.astype(np.int64).tolist(),
        "mh_trades": trades.astype(np.int64).tolist(),
        "tot_vol": (volume + ext_vol).astype(np.int64).tolist(),
        "tot_trades": (trades + np.floor(ext_vol / 150)).astype(np.int64).tolist(),
        "f_mh_vol": np.floor(volume * finra_share).astype(np.int64).tolist(),
        "f_mh_trades": np.floor(trades * finra_share * 1.5).astype(np.int64).tolist(),
        "f_tot_vol": np.floor((volume + ext_vol) * finra_share * 1.1).astype(np.int64).tolist(),
        "f_tot_trades": np.floor((trades + ext_vol / 150) * finra_share * 1.6).astype(np.int64).tolist(),
        "market_vwap": vwap(u[:, 16]).tolist(),
        "daily_vwap": vwap(u[:, 17]).tolist(),
        "factors": factors,
    }


def _esc(value: str) -> str:
    """A constant baked into a %-format: CSV-quoted and with ``%`` escaped."""
    return _csv_field(value).replace("%", "%%")


def _rows(spec: DropSpec, uni: Universe, secid: int, idx: Sequence[int]) -> list[str]:
    """CSV lines (no header, no newline) of one SecId for the given trade-date indexes."""
    if not idx:
        return []
    info = uni.info(secid)
    n = max(idx) + 1
    all_dates = trading_days(spec.start, max(n, spec.days))
    s = _series(spec, secid, n)
    ch = info.change_index
    tick = [_esc(info.tickers[-1][0] if (ch == 0 or i >= ch) else info.tickers[0][0]) for i in idx]
    dates = [all_dates[i] for i in idx]

    def pick(key: str) -> list:
        col = s[key]
        return col if len(idx) == n and idx[0] == 0 and idx[-1] == n - 1 else [col[i] for i in idx]

    if spec.schema == "standard":
        fmt = f"{secid},%s,%s,%.2f,%.2f,%.2f,%.2f,%d,%s"
        cols = [dates, tick] + [pick(k) for k in ("open", "high", "low", "close", "mh_vol", "factors")]
        return [fmt % t for t in zip(*cols, strict=True)]

    names = [_esc(info.names[-1] if (ch == 0 or i >= ch) else info.names[0]) for i in idx]
    const = f"{_esc(info.exchange)},{_esc(info.isin)}"
    factors = ",%s" if spec.schema == "primary-adjusted" else ""
    fmt = (
        f"{secid},%s,%s,%s,{const},%.2f,%d,%s.%03d,%.2f,%s.%03d,%.2f,%s.%03d,%.2f,%d,16:00:00,"
        f"%d,%d,%d,%d,%d,%d,%d,%d{factors},%.4f,%.4f"
    )
    keys = [
        "open",
        "open_size",
        "open_sec",
        "open_ms",
        "high",
        "high_time",
        "high_ms",
        "low",
        "low_time",
        "low_ms",
        "close",
        "close_size",
        "mh_vol",
        "mh_trades",
        "tot_vol",
        "tot_trades",
        "f_mh_vol",
        "f_mh_trades",
        "f_tot_vol",
        "f_tot_trades",
    ]
    if spec.schema == "primary-adjusted":
        keys.append("factors")
    keys += ["market_vwap", "daily_vwap"]
    cols = [dates, tick, names] + [pick(k) for k in keys]
    return [fmt % t for t in zip(*cols, strict=True)]


def _indexes(spec: DropSpec, dates: Iterable[str] | None) -> list[int]:
    """Trade-date indexes for ``dates`` (default: the spec's days); dates past the spec are allowed."""
    if dates is None:
        return list(range(spec.days))
    wanted = sorted(set(dates))
    if not wanted:
        return []
    calendar = list(trading_days(spec.start, spec.days))
    while calendar and calendar[-1] < wanted[-1]:
        calendar = list(trading_days(spec.start, len(calendar) * 2 + 1))
    where = {d: i for i, d in enumerate(calendar)}
    missing = [d for d in wanted if d not in where]
    if missing:
        raise ValueError(f"not trading days of this spec: {missing[:5]}")
    return [where[d] for d in wanted]


def header(spec: DropSpec) -> str:
    """The bar header line (no newline) for the spec's schema."""
    return ",".join(BAR_COLUMNS[spec.schema])


def bar_rows(spec: DropSpec, secid: int, dates: Iterable[str] | None = None) -> str:
    """CSV text with header for one SecId and the given dates (default: the spec's days)."""
    uni = build_universe(spec)
    lines = _rows(spec, uni, secid, _indexes(spec, dates))
    return header(spec) + "\n" + "".join(line + "\n" for line in lines)


def _encode(spec: DropSpec, text: str) -> bytes:
    """gzip container via zlib (level 1, mtime 0): fast and byte-deterministic, unlike gzip.open."""
    data = text.encode()
    return zlib.compress(data, 1, wbits=31) if spec.compression == "gz" else data


def _suffix(spec: DropSpec) -> str:
    return ".csv.gz" if spec.compression == "gz" else ".csv"


def secid_path(root: Path, spec: DropSpec, secid: int) -> Path:
    """Where a secid-aggregated file goes (``10/10000.csv.gz`` with bucket dirs)."""
    name = f"{secid}{_suffix(spec)}"
    return root / str(secid)[:2] / name if spec.bucket_dirs else root / name


def _write_secid_chunk(root: Path, spec: DropSpec, secids: list[int], idx: list[int]) -> list[Path]:
    uni = build_universe(spec)
    head = header(spec) + "\n"
    paths = []
    made: set[Path] = set()
    for secid in secids:
        path = secid_path(root, spec, secid)
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        lines = _rows(spec, uni, secid, idx)
        path.write_bytes(_encode(spec, head + "".join(line + "\n" for line in lines)))
        paths.append(path)
    return paths


def _write_tradedate_chunk(
    root: Path, spec: DropSpec, secids: list[int], idx: list[int], all_dates: list[str]
) -> list[Path]:
    """Day files for ``idx``; streamed per block of SecIds to bound memory (10k x 250 days)."""
    uni = build_universe(spec)
    root.mkdir(parents=True, exist_ok=True)
    gz = spec.compression == "gz"
    comps = {i: zlib.compressobj(1, zlib.DEFLATED, 31) if gz else None for i in idx}
    paths = {i: root / f"{all_dates[i]}{_suffix(spec)}" for i in idx}
    handles = {i: paths[i].open("wb") for i in idx}
    try:

        def emit(i: int, text: str) -> None:
            comp = comps[i]
            handles[i].write(comp.compress(text.encode()) if comp is not None else text.encode())

        for i in idx:
            emit(i, header(spec) + "\n")
        block = max(1, 200_000 // max(len(idx), 1))
        for start in range(0, len(secids), block):
            buf: dict[int, list[str]] = {i: [] for i in idx}
            for secid in secids[start : start + block]:
                for i, line in zip(idx, _rows(spec, uni, secid, idx), strict=True):
                    buf[i].append(line)
            for i in idx:
                emit(i, "".join(line + "\n" for line in buf[i]))
        for i in idx:
            comp = comps[i]
            if comp is not None:
                handles[i].write(comp.flush())
    finally:
        for handle in handles.values():
            handle.close()
    return [paths[i] for i in idx]


def _split(items: list, parts: int) -> list[list]:
    size = -(-len(items) // parts) if items else 1
    return [items[k : k + size] for k in range(0, len(items), size)]


def write_bars(
    root: Path,
    spec: DropSpec,
    *,
    secids: list[int] | None = None,
    dates: list[str] | None = None,
    workers: int = 1,
) -> list[Path]:
    """Write bar files (all SecIds/days by default) and return their paths, sorted.

    ``dates`` may extend past the spec's days (a re-delivery with a new day); ``workers``
    > 1 splits the work over processes — the bytes are the same either way.
    """
    root = Path(root)
    uni = build_universe(spec)
    ids = sorted(set(secids)) if secids is not None else [i.secid for i in uni.infos]
    for secid in ids:
        uni.info(secid)  # KeyError early for unknown SecIds
    idx = _indexes(spec, dates)
    if not ids or not idx:
        return []
    all_dates = list(trading_days(spec.start, max(max(idx) + 1, spec.days)))
    workers = max(1, workers)
    if spec.aggregation == "secid":
        chunks = _split(ids, workers)
        jobs = [(_write_secid_chunk, (root, spec, c, idx)) for c in chunks]
    else:
        chunks = _split(idx, workers)
        jobs = [(_write_tradedate_chunk, (root, spec, ids, c, all_dates)) for c in chunks]
    if workers == 1 or len(jobs) == 1:
        results = [fn(*args) for fn, args in jobs]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            futures = [pool.submit(fn, *args) for fn, args in jobs]
            results = [f.result() for f in futures]
    return sorted(p for chunk in results for p in chunk)


def write_master(root: Path, spec: DropSpec, name: str = "equity_security_master.csv") -> Path:
    """Write the security master (always plain CSV, as delivered) and return its path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    text, _ = master_csv(spec)
    path = root / name
    path.write_bytes(text.encode())
    return path


def generate_drop(root: Path, spec: DropSpec, *, workers: int = 1) -> DropManifest:
    """Write a whole drop (master + bars) under ``root`` and describe what was written."""
    root = Path(root)
    master = write_master(root, spec)
    paths = write_bars(root, spec, workers=workers)
    uni = build_universe(spec)
    return DropManifest(
        master_path=master,
        bar_paths=paths,
        secids=[i.secid for i in uni.infos],
        figis={i.secid: list(i.figis) for i in uni.infos},
        tickers={i.secid: list(i.tickers) for i in uni.infos},
        trade_dates=list(uni.trade_dates),
        rows=len(uni.infos) * spec.days,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m algoseek_sync.generate DIR ...``: write a drop and print a one-line summary."""
    parser = argparse.ArgumentParser(prog="algoseek_sync.generate", description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="directory to write the drop into")
    d = DropSpec()
    parser.add_argument("--secids", type=int, default=d.secids)
    parser.add_argument("--days", type=int, default=d.days)
    parser.add_argument("--start", default=d.start, help="first trading day, YYYYMMDD")
    parser.add_argument("--schema", choices=["primary", "primary-adjusted", "standard"], default=d.schema)
    parser.add_argument("--aggregation", choices=["secid", "tradedate"], default=d.aggregation)
    parser.add_argument("--compression", choices=["gz", "none"], default=d.compression)
    parser.add_argument("--multi-figi-fraction", type=float, default=d.multi_figi_fraction)
    parser.add_argument("--blank-figi-fraction", type=float, default=d.blank_figi_fraction)
    parser.add_argument("--ticker-change-fraction", type=float, default=d.ticker_change_fraction)
    parser.add_argument("--first-secid", type=int, default=d.first_secid)
    parser.add_argument("--bucket-dirs", action="store_true")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--workers", type=int, default=1, help="processes (output is identical)")
    args = parser.parse_args(argv)
    try:
        dt.datetime.strptime(args.start, "%Y%m%d")
    except ValueError:
        parser.error(f"--start {args.start!r} is not YYYYMMDD")
    spec = DropSpec(
        secids=args.secids,
        days=args.days,
        start=args.start,
        schema=args.schema,
        aggregation=args.aggregation,
        compression=args.compression,
        multi_figi_fraction=args.multi_figi_fraction,
        blank_figi_fraction=args.blank_figi_fraction,
        ticker_change_fraction=args.ticker_change_fraction,
        first_secid=args.first_secid,
        bucket_dirs=args.bucket_dirs,
        seed=args.seed,
    )
    began = time.perf_counter()
    manifest = generate_drop(args.root, spec, workers=args.workers)
    took = time.perf_counter() - began
    size = sum(os.path.getsize(p) for p in manifest.bar_paths)
    span = f"{manifest.trade_dates[0]}..{manifest.trade_dates[-1]}" if manifest.trade_dates else "no days"
    print(
        f"wrote {len(manifest.secids)} SecIds x {len(manifest.trade_dates)} days ({span}), "
        f"{manifest.rows} rows in {len(manifest.bar_paths)} {spec.schema}/{spec.aggregation} files "
        f"({size / 1e6:.1f} MB) + {manifest.master_path.name} under {args.root} in {took:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
