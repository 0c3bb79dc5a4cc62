"""Security master CSV → one row per (SecId, asset), ticker history and FIGI problems.

Pure. Follows the Main Sequence tutorial's mapping (split FIGI on ';', drop empty
tokens, de-duplicate keeping order, the last token is ``latest_figi``), validates each
FIGI's check digit, and gives SecIds with no valid FIGI a custom identifier so no
security's bars are dropped.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pandas as pd

from algoseek_sync.errors import BadFileError
from algoseek_sync.formats.figi import custom_identifier, figi_problem

REQUIRED = ("SecId", "Tickers", "TickersStartToEndDate", "FIGI")
OPEN_ENDS = ("29991231", "20991231")


@dataclass(frozen=True)
class TickerSpan:
    secid: int
    ticker: str
    start: str  # YYYY-MM-DD
    end: str  # YYYY-MM-DD (open end kept as 2999-12-31 / 2099-12-31)


@dataclass(frozen=True)
class MasterIssue:
    secid: int
    token: str
    problem: str


@dataclass
class SecurityMaster:
    """A parsed master: ``assets`` has one row per (secid, unique_identifier)."""

    assets: pd.DataFrame
    tickers: list[TickerSpan] = field(default_factory=list)
    issues: list[MasterIssue] = field(default_factory=list)

    def uids_by_secid(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for secid, uid in zip(self.assets["secid"], self.assets["unique_identifier"], strict=True):
            out.setdefault(int(secid), []).append(uid)
        return out

    @property
    def secid_count(self) -> int:
        return int(self.assets["secid"].nunique())


def split_tokens(value: str | None) -> list[str]:
    """Split a ';' list, dropping empty tokens and repeats, keeping order."""
    seen: dict[str, None] = {}
    for token in (value or "").split(";"):
        token = token.strip()
        if token:
            seen.setdefault(token, None)
    return list(seen)


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


def read_master_frame(data: bytes) -> pd.DataFrame:
    """Read every column as a string (a blank ``Sic`` must not turn the column into floats)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError:
        raise BadFileError("security master is not UTF-8 text") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise BadFileError(f"cannot parse security master CSV: {str(exc).splitlines()[0]}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise BadFileError(f"security master is missing required column(s) {', '.join(missing)}")
    return frame


def parse_master(data: bytes) -> SecurityMaster:
    """Parse and validate a whole security master delivery."""
    frame = read_master_frame(data)
    secid_text = frame["SecId"].str.strip()
    if (secid_text == "").any() or not secid_text.str.fullmatch(r"\d+").all():
        bad = secid_text[(secid_text == "") | ~secid_text.str.fullmatch(r"\d+")].iloc[0]
        raise BadFileError(f"security master has a blank or non-integer SecId {bad!r}")
    dupes = secid_text[secid_text.duplicated()]
    if len(dupes):
        raise BadFileError(f"security master lists SecId {dupes.iloc[0]} more than once")
    if len(frame) and (frame["FIGI"].str.strip() == "").all():
        raise BadFileError("security master's FIGI column is blank on every row; refusing it")
    frame["SecId"] = secid_text.astype("int64")
    snapshot = frame.drop(columns=["FIGI"]).rename(columns=lambda c: c.lower()[:63])
    source_rows: list[int] = []  # the master row of each asset (a SecId has one per FIGI)
    uids: list[str] = []
    kinds: list[str] = []
    latest: list[str] = []
    tickers: list[TickerSpan] = []
    issues: list[MasterIssue] = []
    needed = (frame[c].tolist() for c in ("SecId", "FIGI", "Tickers", "TickersStartToEndDate"))
    for row, (secid, figis, names, dates) in enumerate(zip(*needed, strict=True)):
        valid = []
        for token in split_tokens(figis):
            problem = figi_problem(token)
            if problem:
                issues.append(MasterIssue(secid, token, f"invalid FIGI: {problem}"))
            else:
                valid.append(token)
        spans, problem = parse_ticker_history(secid, names, dates)
        if problem:
            issues.append(MasterIssue(secid, names, f"ticker history ignored: {problem}"))
        tickers.extend(spans)
        for uid in valid or [custom_identifier(secid)]:
            source_rows.append(row)
            uids.append(uid)
            kinds.append("figi" if valid else "custom")
            latest.append(valid[-1] if valid else "")
    assets = snapshot.iloc[source_rows].reset_index(drop=True)
    assets["unique_identifier"] = uids
    assets["kind"] = kinds
    assets["latest_figi"] = latest
    return SecurityMaster(assets=assets, tickers=tickers, issues=issues)


def resolve_ticker(spans: list[TickerSpan], ticker: str, on: str | None) -> list[int]:
    """SecIds that carried ``ticker`` (case-sensitive) on ``on`` (YYYY-MM-DD), or most recently."""
    matching = [s for s in spans if s.ticker == ticker]
    if on is not None:
        return sorted({s.secid for s in matching if s.start <= on <= s.end})
    if not matching:
        return []
    latest_end = max(s.end for s in matching)
    return sorted({s.secid for s in matching if s.end == latest_end})
