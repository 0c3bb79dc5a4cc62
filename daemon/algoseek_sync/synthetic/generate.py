"""Deterministic generator of realistic Algoseek drops (security master + daily OHLC bars).

Why: tests and benchmarks need large drops in the exact vendor formats (see
the README's "What it reads") without shipping vendor data. Everything is a pure
function of a :class:`DropSpec`, so the same spec always gives the same bytes, and a
SecId's values for a date do not depend on how many days or SecIds were asked for
(a "one new day" re-delivery is ``write_bars(root, spec, dates=[next_day])``).

Standard library + numpy only; CSV text is built with ``%`` formatting and compressed
with ``zlib`` (gzip container, level 1, mtime 0) because that is an order of magnitude
faster than pandas and keeps output byte-stable.
"""

from __future__ import annotations

import datetime as dt
import itertools
import zlib
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from algoseek_sync.formats.master import COLUMNS

Schema = Literal["primary", "primary-adjusted", "standard-adjusted"]  # the dataset names
#: old schema names still accepted (scripts and benchmarks that wrote ``standard``)
SCHEMA_ALIASES = {"standard": "standard-adjusted"}
Aggregation = Literal["secid", "tradedate"]
Compression = Literal["gz", "none"]

OPEN_END = "29991231"

MASTER_COLUMNS: tuple[str, ...] = COLUMNS  # the vendor guide's order

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
    "standard-adjusted": (
        "SecId",
        "TradeDate",
        "Ticker",
        "Open",
        "High",
        "Low",
        "Close",
        "MarketHoursVolume",
        *_FACTORS,
    ),
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
    #: share of days whose Open lies outside [Low, High], as in real files (AAPL 20191220)
    open_quirks: float = 0.002

    def __post_init__(self) -> None:
        if self.schema in SCHEMA_ALIASES:  # frozen: set once, before anyone hashes the spec
            object.__setattr__(self, "schema", SCHEMA_ALIASES[self.schema])


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


_VALUES = {c: _char_value(c) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
_DIGIT_SUM = {c: (sum(map(int, str(v))), sum(map(int, str(2 * v)))) for c, v in _VALUES.items()}


def figi_check_digit(first11: str) -> int:
    """FIGI check digit (Luhn over A=10 … Z=35, odd 0-based positions doubled)."""
    total = sum(_DIGIT_SUM[char][pos % 2] for pos, char in enumerate(first11))
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
        value = _VALUES[char] * (2 if pos % 2 == 1 else 1)
        total += value // 10 + value % 10
    return str((10 - total % 10) % 10)


def _isin_check(first11: str) -> str:
    """ISIN check digit: letters → numbers, then Luhn from the right."""
    digits = "".join(str(_VALUES[c]) for c in first11)
    total = 0
    for pos, char in enumerate(reversed(digits)):
        value = int(char) * (2 if pos % 2 == 0 else 1)
        total += value // 10 + value % 10
    return str((10 - total % 10) % 10)


def _sedol_check(first6: str) -> str:
    total = sum(_VALUES[c] * w for c, w in zip(first6, (1, 3, 1, 7, 3, 9), strict=True))
    return str((10 - total % 10) % 10)


def _letters(n: int) -> str:
    """Bijective base-26 (1=A, 27=AA): distinct uppercase tickers from SecIds."""
    out = []
    while n > 0:
        n, rem = divmod(n - 1, 26)
        out.append(chr(ord("A") + rem))
    return "".join(reversed(out))


# --------------------------------------------------------------------------- calendar


@lru_cache(maxsize=1)
def _sessions() -> np.ndarray:
    """NYSE sessions (exchange_calendars, as the quality checks use) far enough ahead for any spec."""
    from algoseek_sync.quality.calendar import build

    return build("XNYS", years_ahead=10).dates


@lru_cache(maxsize=64)
def trading_days(start: str, n: int) -> tuple[str, ...]:
    """The first ``n`` NYSE sessions (YYYYMMDD) on or after ``start``."""
    sessions = _sessions()
    first = int(np.searchsorted(sessions, int(start)))
    days = sessions[first : first + n]
    if len(days) < n:
        raise ValueError(f"{n} sessions from {start} run past the calendar's end ({sessions[-1]})")
    return tuple(str(d) for d in days.tolist())


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
        sic, sector, industry = (
            _CLASSES[(a >> 8) % len(_CLASSES)] if exchange != "NYSE ARCA" else ("", "", "")
        )
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

_N_DRAWS = 24  # uniforms per (SecId, day, k); each a pure hash, so day i never depends on the day count
_SECONDS = np.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)], dtype=object)
_FACTOR_ONE = "1,1,,"
_BATCH_VALUES = 3_000_000  # uniforms per batch: bounds memory (~100 MB of temporaries)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on a uint64 array (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _uniforms(seed: int, secids: np.ndarray, n: int) -> np.ndarray:
    """Counter-based uniforms u[secid, day, k] in (0, 1): vectorised over a whole batch of SecIds,
    and a value depends only on (seed, secid, day, k), so output is stable whatever is asked for."""
    with np.errstate(over="ignore"):
        key = _mix64(secids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed & (2**64 - 1)))
        cell = np.arange(n * _N_DRAWS, dtype=np.uint64) * np.uint64(0xD1B54A32D192ED03)
        x = _mix64(key[:, None] ^ cell[None, :])
    u = ((x >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)
    return u.reshape(len(secids), n, _N_DRAWS)


def _fmt_factor(x: float) -> str:
    """Factors print like the vendor's: ``1`` when exact, else full repr (``6.9999999999999938``)."""
    return "1" if x == 1.0 else repr(x)


def _series(spec: DropSpec, secids: list[int], idx: list[int]) -> dict[str, list[list]]:
    """Numeric columns (SecId x selected day) of a prefix-stable random walk, as nested lists."""
    ids = np.asarray(secids, dtype=np.int64)
    n = max(idx) + 1
    u = _uniforms(spec.seed, ids, n)
    base = np.exp(np.log(5.0) + _hash_uniform(spec.seed, ids, 10) * np.log(100.0))[:, None]  # 5 .. 500
    sigma = (0.008 + 0.025 * _hash_uniform(spec.seed, ids, 11))[:, None]
    vol_base = np.exp(np.log(2e4) + _hash_uniform(spec.seed, ids, 12) * np.log(2e3))[:, None]  # 20k .. 40M
    # Box-Muller normal daily returns from two uniform columns.
    z = np.sqrt(-2.0 * np.log(u[:, :, 0])) * np.cos(2 * np.pi * u[:, :, 1])
    log_close = np.log(base) + np.cumsum(sigma * z, axis=1)
    gap = sigma * 0.5 * (u[:, :, 2] - 0.5)

    # Rare corporate events: cash dividends (~1/250 days), splits (~1/5000 days).
    div = u[:, :, 11] < 0.004
    split = (u[:, :, 12] < 0.0002) & (np.arange(n) > 0)[None, :]
    ratio = np.where(split, np.where(u[:, :, 13] < 0.5, 2.0, 3.0), 1.0)
    split_cum = np.cumprod(ratio, axis=1)
    close = np.exp(log_close) / split_cum
    prev_close = np.concatenate((base, close[:, :-1]), axis=1) / ratio  # split days open near adj. close
    open_ = prev_close * np.exp(gap)
    adj = np.where(split, 1.0 / ratio, np.where(div, 1.0 - (0.003 + 0.01 * u[:, :, 14]), 1.0))
    cum_price = np.cumprod(1.0 / adj, axis=1)

    sel = slice(None) if idx == list(range(n)) else np.asarray(idx)
    u, close, open_, sigma_s = u[:, sel], close[:, sel], open_[:, sel], sigma
    split, div, ratio, adj = split[:, sel], div[:, sel], ratio[:, sel], adj[:, sel]
    cum_price, cum_vol = cum_price[:, sel], split_cum[:, sel]

    close_c = np.maximum(np.round(close * 100), 1)
    open_c = np.maximum(np.round(open_ * 100), 1)
    span = close * sigma_s * 100
    high_c = np.maximum(open_c, close_c) + np.ceil(span * u[:, :, 3])
    low_c = np.maximum(np.minimum(open_c, close_c) - np.ceil(span * u[:, :, 4]), 1)
    quirk = u[:, :, 19] < spec.open_quirks  # Open outside [Low, High], as in real files (AAPL 20191220)
    open_c = np.where(quirk, high_c + 1 + np.floor(u[:, :, 22] * 5), open_c)

    volume = np.floor(vol_base * np.exp(1.2 * (u[:, :, 5] - 0.5)) * ratio) + 100
    trades = np.floor(volume / (80 + 200 * u[:, :, 15])) + 1
    ext_vol = np.floor(volume * 0.08 * u[:, :, 18])
    finra = 0.25 + 0.25 * u[:, :, 16]

    def ints(a: np.ndarray) -> list[list[int]]:
        return a.astype(np.int64).tolist()

    def vwap(pos: np.ndarray) -> list[list[float]]:
        return np.round((low_c + (high_c - low_c) * (0.3 + 0.4 * pos)) / 100.0, 4).tolist()

    def clock(col: int, lo: int, hi: int) -> list[list[str]]:
        return _SECONDS[(lo + np.floor(u[:, :, col] * (hi - lo))).astype(np.int64)].tolist()

    factors = [[_FACTOR_ONE] * len(idx) for _ in secids]
    special = (adj != 1.0) | (cum_price != 1.0) | (cum_vol != 1.0)
    for b, i in zip(*np.nonzero(special), strict=True):
        cp, cv = _fmt_factor(float(cum_price[b, i])), _fmt_factor(float(cum_vol[b, i]))
        if split[b, i]:
            reason = "Subdiv" if ratio[b, i] == 3.0 else "BonusSame"
            factors[b][i] = f"{cp},{cv},{float(adj[b, i])!r},{reason}"
        elif div[b, i]:
            factors[b][i] = f"{cp},{cv},{float(adj[b, i]):.15f},CashDiv"
        else:
            factors[b][i] = f"{cp},{cv},,"
    return {
        "open": (open_c / 100.0).tolist(),
        "high": (high_c / 100.0).tolist(),
        "low": (low_c / 100.0).tolist(),
        "close": (close_c / 100.0).tolist(),
        "open_size": ints(np.floor(u[:, :, 6] * 5000) + 100),
        "close_size": ints(np.floor(u[:, :, 7] * volume * 0.02) + 100),
        "open_sec": ints(u[:, :, 20] < 0.2),
        "open_ms": ints(np.floor(u[:, :, 8] * 1000)),
        "high_time": clock(9, 34200, 57600),
        "high_ms": ints(np.floor(u[:, :, 21] * 1000)),
        "low_time": clock(10, 34200, 57600),
        "low_ms": ints(np.floor(u[:, :, 23] * 1000)),
        "mh_vol": ints(volume),
        "mh_trades": ints(trades),
        "tot_vol": ints(volume + ext_vol),
        "tot_trades": ints(trades + np.floor(ext_vol / 150)),
        "f_mh_vol": ints(np.floor(volume * finra)),
        "f_mh_trades": ints(np.floor(trades * finra * 1.5)),
        "f_tot_vol": ints(np.floor((volume + ext_vol) * finra * 1.1)),
        "f_tot_trades": ints(np.floor((trades + ext_vol / 150) * finra * 1.6)),
        "market_vwap": vwap(u[:, :, 16]),
        "daily_vwap": vwap(u[:, :, 17]),
        "factors": factors,
    }


_PRIMARY_KEYS: tuple[str, ...] = (
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
)


def _esc(value: str) -> str:
    """A constant baked into a %-format: CSV-quoted and with ``%`` escaped."""
    return _csv_field(value).replace("%", "%%")


def _row_format(spec: DropSpec, info: SecInfo, ticker: str, name: str) -> str:
    """One %-format per (SecId, ticker): constants baked in so each row formats only numbers."""
    head = f"{info.secid},%s,{_esc(ticker)}"
    if spec.schema == "standard-adjusted":
        return head + ",%.2f,%.2f,%.2f,%.2f,%d,%s"
    factors = ",%s" if spec.schema == "primary-adjusted" else ""
    return (
        f"{head},{_esc(name)},{_esc(info.exchange)},{_esc(info.isin)},"
        "%.2f,%d,09:30:0%d.%03d,%.2f,%s.%03d,%.2f,%s.%03d,%.2f,%d,16:00:00,"
        f"%d,%d,%d,%d,%d,%d,%d,%d{factors},%.4f,%.4f"
    )


def _keys(spec: DropSpec) -> tuple[str, ...]:
    if spec.schema == "standard-adjusted":
        return ("open", "high", "low", "close", "mh_vol", "factors")
    factors = ("factors",) if spec.schema == "primary-adjusted" else ()
    return _PRIMARY_KEYS + factors + ("market_vwap", "daily_vwap")


def _lines(spec: DropSpec, uni: Universe, secids: list[int], idx: list[int]) -> Iterable[list[str]]:
    """CSV lines (no newline) per SecId for trade-date indexes ``idx``, computed in batches."""
    if not idx:
        yield from ([] for _ in secids)
        return
    dates = trading_days(spec.start, max(max(idx) + 1, spec.days))
    day_strs = [dates[i] for i in idx]
    keys = _keys(spec)
    batch = max(1, _BATCH_VALUES // ((max(idx) + 1) * _N_DRAWS))
    for start in range(0, len(secids), batch):
        chunk = secids[start : start + batch]
        s = _series(spec, chunk, idx)
        for b, secid in enumerate(chunk):
            info = uni.info(secid)
            cols = [day_strs] + [s[k][b] for k in keys]
            (t0, _, _), n0 = info.tickers[-1], info.names[-1]
            rows = zip(*cols, strict=True)
            if info.change_index == 0:
                fmt = _row_format(spec, info, t0, n0)
                yield [fmt % t for t in rows]
                continue
            cut = sum(1 for i in idx if i < info.change_index)
            old = _row_format(spec, info, info.tickers[0][0], info.names[0])
            new = _row_format(spec, info, t0, n0)
            out = [old % t for t in itertools.islice(rows, cut)]
            out += [new % t for t in rows]
            yield out


def _indexes(spec: DropSpec, dates: Iterable[str] | None) -> list[int]:
    """Trade-date indexes for ``dates`` (default: the spec's days); dates past the spec are allowed."""
    if dates is None:
        return list(range(spec.days))
    wanted = sorted(set(dates))
    if not wanted:
        return []
    calendar = list(trading_days(spec.start, spec.days))
    while not calendar or calendar[-1] < wanted[-1]:
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
    uni.info(secid)
    (lines,) = _lines(spec, uni, [secid], _indexes(spec, dates))
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
    for secid, lines in zip(secids, _lines(spec, uni, secids, idx), strict=True):
        path = secid_path(root, spec, secid)
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        lines.append("")
        path.write_bytes(_encode(spec, head + "\n".join(lines)))
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
        buf: dict[int, list[str]] = {i: [] for i in idx}
        pending = 0
        for lines in _lines(spec, uni, secids, idx):
            for i, line in zip(idx, lines, strict=True):
                buf[i].append(line)
            pending += len(idx)
            if pending >= 500_000:
                for i in idx:
                    emit(i, "".join(line + "\n" for line in buf[i]))
                    buf[i].clear()
                pending = 0
        for i in idx:
            emit(i, "".join(line + "\n" for line in buf[i]))
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
