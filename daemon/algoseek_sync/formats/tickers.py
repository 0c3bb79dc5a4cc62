"""Ticker history: which SecId carried a ticker when (case-sensitive: ``CpN`` is not ``CPN``). Pure.

Kept apart from :mod:`.master` (which needs pandas) so that lookups stay cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TickerSpan:
    secid: int
    ticker: str
    start: str  # YYYY-MM-DD
    end: str  # YYYY-MM-DD (open end kept as 2999-12-31 / 2099-12-31)


def _iso(yyyymmdd: str) -> str:
    return f"{yyyymmdd[:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:8]}"


def parse_ticker_history(secid: int, tickers: str, spans: str) -> tuple[list[TickerSpan], str | None]:
    """Pair ``Tickers`` with ``TickersStartToEndDate`` by position (case-sensitive tickers)."""
    names = [t.strip() for t in (tickers or "").split(";")]
    ranges = [r.strip() for r in (spans or "").split(";")]
    if names == [""]:
        return [], None
    if len(names) != len(ranges):
        return [], f"{len(names)} tickers but {len(ranges)} date ranges"
    out = []
    for name, rng in zip(names, ranges, strict=True):
        start, _, end = rng.partition(":")
        if not (len(start) == 8 and start.isdigit() and len(end) == 8 and end.isdigit()):
            return [], f"bad date range {rng!r}"
        if name:
            out.append(TickerSpan(secid, name, _iso(start), _iso(end)))
    return out, None


def resolve_ticker(spans: list[TickerSpan], ticker: str, on: str | None) -> list[int]:
    """SecIds that carried ``ticker`` (case-sensitive) on ``on`` (YYYY-MM-DD), or most recently."""
    matching = [s for s in spans if s.ticker == ticker]
    if on is not None:
        return sorted({s.secid for s in matching if s.start <= on <= s.end})
    if not matching:
        return []
    latest_end = max(s.end for s in matching)
    return sorted({s.secid for s in matching if s.end == latest_end})
