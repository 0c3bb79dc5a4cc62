"""Which SecIds and identifiers a read names, point in time: FIGI, custom id, SecId or dated ticker.

Identifiers follow every link a master ever made (``secid_assets`` keeps removed links), and
tickers the dated spans of the newest master that listed each SecId, so nothing resolves
differently because a later master left a security out (survivorship, README).
"""

from __future__ import annotations

from dataclasses import dataclass

from algoseek_sync.errors import AmbiguousQueryError, UnknownIdentifierError
from algoseek_sync.formats.tickers import TickerSpan, resolve_ticker
from algoseek_sync.state.securities import Securities


@dataclass(frozen=True)
class Target:
    """What a read is about: the SecIds whose rows it returns, under which identifiers."""

    secids: list[int]
    uids: list[str]
    label: str  # for messages: "FIGI 'BBG…'", "SecId 33449", "ticker 'AAPL' (SecId 33449)"
    only_secids: bool  # rows of ``secids`` only (a SecId or ticker read), not of every SecId a FIGI had


def target(
    securities: Securities,
    *,
    figi: str | None = None,
    secid: int | None = None,
    ticker: str | None = None,
    on: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> Target:
    """Resolve exactly one of ``figi`` / ``secid`` / ``ticker``; unknown ones raise, never match nothing."""
    if sum(x is not None for x in (figi, secid, ticker)) != 1:
        raise AmbiguousQueryError("name exactly one of figi=, secid=, ticker=")
    if figi is not None:
        held = securities.secids_with_uids([figi])
        if not held:
            raise UnknownIdentifierError(f"unknown FIGI {figi!r}: no applied security master listed it")
        return Target(sorted(held), [figi], f"FIGI {figi!r}", only_secids=False)
    if secid is not None:
        return _secid_target(securities, int(secid), f"SecId {secid}")
    assert ticker is not None
    found = resolve(securities, ticker, on, start=start, end=end)
    return _secid_target(securities, found, f"ticker {ticker!r} (SecId {found})")


def _secid_target(securities: Securities, secid: int, label: str) -> Target:
    uids = securities.uids_of(secid)
    if not uids:
        raise UnknownIdentifierError(f"unknown SecId {secid}: no applied security master listed it")
    return Target([secid], uids, label, only_secids=True)


def resolve(
    securities: Securities, ticker: str, on: str | None, *, start: str | None = None, end: str | None = None
) -> int:
    """The SecId that carried ``ticker`` on ``on``; without a day, the one carrying it in
    ``[start, end]`` (one only), or without a range its most recent carrier."""
    spans = securities.ticker_spans(ticker)
    if not spans:
        others = securities.tickers_like(ticker)
        hint = f"; did you mean {', '.join(repr(t) for t in others)}?" if others else ""
        raise UnknownIdentifierError(
            f"unknown ticker {ticker!r}: no SecId ever carried it (case-sensitive){hint}"
        )
    if on is None and (start is not None or end is not None):
        first, last = start or "0000-00-00", end or "9999-99-99"
        carriers = sorted({s.secid for s in spans if s.start <= last and s.end >= first})
        when = f"between {start or 'the start'} and {end or 'the end'}"
    else:
        carriers, when = resolve_ticker(spans, ticker, on), f"on {on}"
    if not carriers:
        raise UnknownIdentifierError(f"no SecId carried ticker {ticker!r} {when}: {_spans_text(spans)}")
    if len(carriers) > 1:
        chosen = [s for s in spans if s.secid in carriers]
        raise AmbiguousQueryError(
            f"ticker {ticker!r} names several SecIds ({_spans_text(chosen)}): give a day (on=, --on) or a SecId"
        )
    return carriers[0]


def _spans_text(spans: list[TickerSpan]) -> str:
    ordered = sorted(spans, key=lambda s: (s.start, s.secid))
    return ", ".join(f"SecId {s.secid} {s.start}..{_end(s.end)}" for s in ordered)


def _end(end: str) -> str:
    return "open" if end >= "2099-12-31" else end
