"""Data-quality checks of stored bars. Pure: a table of SecIds' histories in, findings out.

Vectorised over every row of every affected SecId (numpy), so checking the SecIds of a
batch costs about as much as decoding their chunks. Each check, and its severity:

* ``missing_session`` (warning): a session of the exchange calendar between a SecId's first
  and last stored day, inside one of its listing periods (the master's ticker date
  ranges), with no bar. Consecutive missing sessions are one finding.
* ``non_session_row`` (warning): a bar dated on a weekend or exchange holiday.
* ``high_below_low``, ``close_outside_range``, ``non_positive_price``, ``negative_volume``,
  ``missing_price_with_volume`` (error): impossible bars.
* ``open_outside_range`` (info): real files have it (AAPL 2019-12-20); never an error.
* ``stale_price`` (warning): N or more consecutive bars with an identical close and zero volume.
* ``unexplained_jump`` (warning): a close-to-close move beyond the threshold on a day without an
  ``AdjustmentFactor``/``AdjustmentReason`` event (datasets that carry events only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from algoseek_sync.quality.calendar import Sessions
from algoseek_sync.quality.kinds import Finding, Params

Span = tuple[int, int]  # a listing period, YYYYMMDD inclusive
DEFAULT = Params()


def _floats(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return table[name].to_numpy(zero_copy_only=False).astype(float)


def _present(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        return np.zeros(table.num_rows, dtype=bool)
    column = table[name]
    return (
        ~column.is_null().to_numpy(zero_copy_only=False) if column.null_count else np.ones(len(column), bool)
    )


@dataclass(frozen=True)
class Columns:
    """The checked columns as numpy arrays, converted once per check (NaN where missing)."""

    secid: np.ndarray
    date: np.ndarray
    first_of: np.ndarray  # True on each SecId's first row
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @classmethod
    def of(cls, table: pa.Table) -> Columns:
        secid = table["secid"].to_numpy()
        return cls(
            secid=secid,
            date=table["tradedate"].to_numpy().astype(np.int64),
            first_of=np.r_[True, secid[1:] != secid[:-1]],
            **{name: _floats(table, name) for name in ("open", "high", "low", "close", "volume")},
        )


def check(
    table: pa.Table,
    sessions: Sessions,
    listing: Mapping[int, Sequence[Span]],
    params: Params = DEFAULT,
    *,
    has_events: bool = True,
) -> list[Finding]:
    """Findings of the histories in ``table`` (every row of each SecId, sorted by secid, tradedate)."""
    if table.num_rows == 0:
        return []
    cols = Columns.of(table)
    findings: list[Finding] = []
    findings += _rows(cols, sessions)
    findings += _stale(cols, params)
    if has_events:
        event = _present(table, "adjustmentfactor") | _present(table, "adjustmentreason")
        findings += _jumps(cols, event, params)
    findings += _missing(cols.secid, cols.date, cols.first_of, sessions, listing)
    return findings


def _row_findings(
    kind: str, mask: np.ndarray, secid: np.ndarray, date: np.ndarray, **values: np.ndarray
) -> list[Finding]:
    out = []
    for i in np.flatnonzero(mask).tolist():
        observed = {k: (None if np.isnan(v[i]) else float(v[i])) for k, v in values.items()}
        out.append(Finding(kind, int(secid[i]), int(date[i]), int(date[i]), observed))
    return out


def _rows(cols: Columns, sessions: Sessions) -> list[Finding]:
    secid, date = cols.secid, cols.date
    o, h, lo, c, v = cols.open, cols.high, cols.low, cols.close, cols.volume
    with np.errstate(invalid="ignore"):
        high_below_low = h < lo
        close_outside = ((c < lo) | (c > h)) & ~high_below_low
        non_positive = (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)
        negative_volume = v < 0
        missing_price = (np.isnan(o) | np.isnan(h) | np.isnan(lo) | np.isnan(c)) & (v > 0)
        open_outside = ((o < lo) | (o > h)) & ~high_below_low
    prices = {"open": o, "high": h, "low": lo, "close": c}
    return (
        _row_findings("non_session_row", ~sessions.is_session(date), secid, date, close=c, volume=v)
        + _row_findings("high_below_low", high_below_low, secid, date, **prices)
        + _row_findings("close_outside_range", close_outside, secid, date, **prices)
        + _row_findings("non_positive_price", non_positive, secid, date, **prices)
        + _row_findings("negative_volume", negative_volume, secid, date, volume=v)
        + _row_findings("missing_price_with_volume", missing_price, secid, date, **prices, volume=v)
        + _row_findings("open_outside_range", open_outside, secid, date, **prices)
    )


def _runs(flag: np.ndarray, starts: np.ndarray) -> Iterable[tuple[int, int]]:
    """(first, last) row of each run of True in ``flag``; a run also breaks where ``starts`` is True."""
    begin = flag & (starts | ~np.r_[False, flag[:-1]])
    firsts = np.flatnonzero(begin)
    for first in firsts.tolist():
        last = first
        while last + 1 < len(flag) and flag[last + 1] and not starts[last + 1]:
            last += 1
        yield first, last


def _stale(cols: Columns, params: Params) -> list[Finding]:
    secid, date, close = cols.secid, cols.date, cols.close
    zero = cols.volume == 0
    if zero.sum() < params.stale_sessions:
        return []
    same = np.r_[False, close[1:] == close[:-1]]
    # a run: consecutive zero-volume rows of one SecId whose close does not change
    starts = cols.first_of | ~same
    out = []
    for first, last in _runs(zero, starts):
        if last - first + 1 >= params.stale_sessions:
            observed = {"close": float(close[first]), "sessions": last - first + 1}
            out.append(Finding("stale_price", int(secid[first]), int(date[first]), int(date[last]), observed))
    return out


def _jumps(cols: Columns, event: np.ndarray, params: Params) -> list[Finding]:
    """Close-to-close moves beyond the threshold on rows without an adjustment ``event``."""
    secid, date, close = cols.secid, cols.date, cols.close
    previous = np.r_[np.nan, close[:-1]]
    previous[cols.first_of] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        move = close / previous - 1.0
    jump = (np.abs(move) > params.jump_threshold) & ~event
    out = []
    for i in np.flatnonzero(jump).tolist():
        observed = {
            "previous_close": float(previous[i]),
            "close": float(close[i]),
            "move": round(float(move[i]), 6),
        }
        out.append(Finding("unexplained_jump", int(secid[i]), int(date[i]), int(date[i]), observed))
    return out


def _clip(first: int, last: int, spans: Sequence[Span]) -> list[Span]:
    """[first, last] intersected with the listing periods (all of it when none are known)."""
    if not spans:
        return [(first, last)]
    out = [(max(first, a), min(last, b)) for a, b in sorted(spans)]
    return [(a, b) for a, b in out if a <= b]


def _missing(
    secid: np.ndarray,
    date: np.ndarray,
    first_of: np.ndarray,
    sessions: Sessions,
    listing: Mapping[int, Sequence[Span]],
) -> list[Finding]:
    starts = np.flatnonzero(first_of)
    stops = np.r_[starts[1:], len(secid)]
    on_session = sessions.is_session(date)
    # fast path: stored sessions == expected sessions over the whole stored range → no gap
    stored = np.add.reduceat(on_session.astype(np.int64), starts)
    expected = sessions.count_between(date[starts], date[stops - 1])
    out: list[Finding] = []
    for k in np.flatnonzero(
        (stored != expected) | np.array([len(listing.get(int(secid[s]), ())) > 1 for s in starts])
    ):
        lo, hi = int(starts[k]), int(stops[k])
        sid = int(secid[lo])
        have = date[lo:hi]
        for a, b in _clip(int(have[0]), int(have[-1]), listing.get(sid, ())):
            gap = np.setdiff1d(sessions.between(a, b), have, assume_unique=True)
            if len(gap):
                out += _gap_findings(sid, gap, sessions)
    return out


def _gap_findings(secid: int, gap: np.ndarray, sessions: Sessions) -> list[Finding]:
    """Missing sessions grouped into runs of consecutive sessions."""
    position = np.searchsorted(sessions.dates, gap)
    breaks = np.flatnonzero(np.diff(position) != 1) + 1
    out = []
    for run in np.split(gap, breaks):
        out.append(Finding("missing_session", secid, int(run[0]), int(run[-1]), {"sessions": len(run)}))
    return out
