"""Security master CSV → one row per (SecId, asset), ticker history and what was wrong.

Pure. Follows the Main Sequence tutorial's mapping (split FIGI on ';', drop empty
tokens, de-duplicate keeping order, the last token is ``latest_figi``), validates each
FIGI's check digit, and gives SecIds with no valid FIGI a custom identifier so no
security's bars are dropped. The master applies even when some rows are odd (the row
policy, also in the README):

* a row without a SecId, or with one that is not an integer, is skipped and reported;
* exact duplicate rows are merged; two different rows for one SecId keep the last one;
* a FIGI listed under two SecIds goes to one of them (:func:`settle_conflicts`): a FIGI
  already routed keeps its SecId, so routing never jumps because a conflicting row
  appeared; otherwise the SecId that lists it as its current (last) FIGI wins, then a
  listed (``ListStatus`` L) SecId over others, then the higher (newer) SecId. The other
  SecId keeps its remaining FIGIs, or gets its custom identifier when none is left;
* unknown extra columns are kept in the snapshot and named.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from algoseek_sync.errors import BadFileError, Problem
from algoseek_sync.formats.figi import custom_identifier, figi_problem
from algoseek_sync.formats.tickers import TickerSpan, parse_ticker_history

REQUIRED = ("SecId", "Tickers", "TickersStartToEndDate", "FIGI")
#: the master's columns, in the delivered order
COLUMNS = (
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
OPEN_ENDS = ("29991231", "20991231")


@dataclass(frozen=True)
class _Entry:
    """One usable master row: its SecId and valid FIGIs, before conflicts are settled."""

    row: int  # index into the frame
    secid: int
    figis: tuple[str, ...]
    listed: bool


@dataclass
class SecurityMaster:
    """A parsed master: ``assets`` has one row per unique_identifier (each routed to one SecId)."""

    assets: pd.DataFrame
    tickers: list[TickerSpan] = field(default_factory=list)
    #: name history, in the same encoding as the tickers (``ticker`` holds the name)
    names: list[TickerSpan] = field(default_factory=list)
    issues: list[Problem] = field(default_factory=list)
    secid_count: int = 0
    invalid_figis: int = 0

    def uids_by_secid(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for secid, uid in zip(self.assets["secid"], self.assets["unique_identifier"], strict=True):
            out.setdefault(int(secid), []).append(uid)
        return out


def split_tokens(value: str | None) -> list[str]:
    """Split a ';' list, dropping empty tokens and repeats, keeping order."""
    seen: dict[str, None] = {}
    for token in (value or "").split(";"):
        token = token.strip()
        if token:
            seen.setdefault(token, None)
    return list(seen)


def read_master_frame(data: bytes) -> pd.DataFrame:
    """Read every column as a string (a blank ``Sic`` must not turn the column into floats)."""
    try:  # blank lines are read (and dropped below) so that index + 2 is every row's file line
        frame = pd.read_csv(
            io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8", skip_blank_lines=False
        )
    except UnicodeDecodeError:
        raise BadFileError("security master is not UTF-8 text") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise BadFileError(f"cannot parse security master CSV: {str(exc).splitlines()[0]}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame[(frame != "").any(axis=1)]
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise BadFileError(f"security master is missing required column(s) {', '.join(missing)}")
    return frame


def _usable_rows(frame: pd.DataFrame, issues: list[Problem]) -> pd.DataFrame:
    """Skip rows without an integer SecId; merge exact duplicates; keep the last row of a SecId."""
    secid_text = frame["SecId"].str.strip()
    usable = secid_text.str.fullmatch(r"\d{1,18}")
    for index in frame.index[~usable]:
        value = secid_text[index]
        why = "no SecId" if value == "" else f"SecId {value!r} is not an integer"
        issues.append(
            Problem("master_row_skipped", f"line {index + 2}: {why}", "row skipped", line=int(index) + 2)
        )
    frame = frame[usable].copy()
    frame["SecId"] = secid_text[usable].astype("int64")
    exact = frame.duplicated(keep="first")
    if exact.any():
        lines = [int(i) + 2 for i in frame.index[exact]]
        issues.append(
            Problem(
                "master_duplicate",
                f"{len(lines)} exact duplicate row(s), line(s) {', '.join(map(str, lines[:5]))}",
                "merged",
                line=lines[0],
            )
        )
        frame = frame[~exact]
    repeated = frame["SecId"].duplicated(keep="last")
    for index in frame.index[repeated]:
        secid = int(frame.at[index, "SecId"])
        last = int(frame.index[(frame["SecId"] == secid)][-1])
        issues.append(
            Problem(
                "master_duplicate",
                f"SecId {secid} listed on line {index + 2} and line {last + 2} with different values",
                f"kept line {last + 2} (the last one)",
                secid=secid,
                line=int(index) + 2,
            )
        )
    return frame[~repeated]


def parse_master(data: bytes, routed: Mapping[str, int] | None = None) -> SecurityMaster:
    """Parse a whole security master delivery; ``routed`` is the FIGI → SecId routing in force."""
    frame = read_master_frame(data)
    issues: list[Problem] = []
    extras = [c for c in frame.columns if c not in COLUMNS]
    if extras:
        issues.append(
            Problem(
                "extra_columns",
                f"master column(s) {', '.join(extras)} are not in the schema",
                "kept in the master snapshot",
            )
        )
    frame = _usable_rows(frame, issues)
    if not len(frame):
        raise BadFileError(
            "security master has no row with a usable SecId; refusing it (the master in force stays)"
        )
    if (frame["FIGI"].str.strip() == "").all():
        raise BadFileError("security master's FIGI column is blank on every row; refusing it")
    entries: list[_Entry] = []
    tickers: list[TickerSpan] = []
    names_over_time: list[TickerSpan] = []
    invalid = 0
    status = frame["ListStatus"].tolist() if "ListStatus" in frame.columns else [""] * len(frame)
    needed = [frame[c].tolist() for c in ("SecId", "FIGI", "Tickers", "TickersStartToEndDate")]
    name_values, name_dates = (
        frame[c].tolist() if c in frame.columns else [""] * len(frame) for c in ("Name", "NameStartToEndDate")
    )
    for row, (secid, figis, names, dates, list_status) in enumerate(zip(*needed, status, strict=True)):
        valid = []
        for token in split_tokens(figis):
            problem = figi_problem(token)
            if problem:
                invalid += 1
                issues.append(
                    Problem("master_figi", f"{token}: invalid FIGI: {problem}", "token ignored", secid=secid)
                )
            else:
                valid.append(token)
        spans, problem = parse_ticker_history(secid, names, dates)
        if problem:
            issues.append(
                Problem("master_figi", f"{names}: ticker history ignored: {problem}", "ignored", secid=secid)
            )
        tickers.extend(spans)
        named, _ = parse_ticker_history(secid, name_values[row], name_dates[row])  # a bad one: no names
        names_over_time.extend(named)
        entries.append(_Entry(row, secid, tuple(valid), list_status.strip() == "L"))
    entries = settle_conflicts(entries, routed or {}, issues)
    snapshot = frame.drop(columns=["FIGI"]).rename(columns=lambda c: c.lower()[:63])
    return SecurityMaster(
        assets=_assets(snapshot, entries),
        tickers=tickers,
        names=names_over_time,
        issues=issues,
        secid_count=len(entries),
        invalid_figis=invalid,
    )


def _assets(snapshot: pd.DataFrame, entries: list[_Entry]) -> pd.DataFrame:
    source_rows: list[int] = []  # the master row of each asset (a SecId has one per FIGI)
    uids: list[str] = []
    kinds: list[str] = []
    latest: list[str] = []
    for entry in entries:
        for uid in entry.figis or (custom_identifier(entry.secid),):
            source_rows.append(entry.row)
            uids.append(uid)
            kinds.append("figi" if entry.figis else "custom")
            latest.append(entry.figis[-1] if entry.figis else "")
    assets = snapshot.iloc[source_rows].reset_index(drop=True)
    assets["unique_identifier"] = uids
    assets["kind"] = kinds
    assets["latest_figi"] = latest
    return assets


def settle_conflicts(entries: list[_Entry], routed: Mapping[str, int], issues: list[Problem]) -> list[_Entry]:
    """Give every FIGI listed under several SecIds to exactly one of them (rule in the module docstring)."""
    claims: dict[str, list[_Entry]] = {}
    for entry in entries:
        for figi in entry.figis:
            claims.setdefault(figi, []).append(entry)
    lost: dict[int, set[str]] = {}
    for figi, claimants in claims.items():
        if len(claimants) < 2:
            continue
        winner = _winner(figi, claimants, routed)
        others = sorted(c.secid for c in claimants if c is not winner)
        why = "already routed to it" if routed.get(figi) == winner.secid else "conflict rule"
        issues.append(
            Problem(
                "figi_conflict",
                f"{figi} listed under SecIds {', '.join(map(str, sorted(c.secid for c in claimants)))}",
                f"kept on SecId {winner.secid} ({why}); removed from SecId {', '.join(map(str, others))}",
                secid=winner.secid,
                unique_identifier=figi,
            )
        )
        for entry in claimants:
            if entry is not winner:
                lost.setdefault(entry.row, set()).add(figi)
    if not lost:
        return entries
    return [
        _Entry(e.row, e.secid, tuple(f for f in e.figis if f not in lost.get(e.row, ())), e.listed)
        for e in entries
    ]


def _winner(figi: str, claimants: list[_Entry], routed: Mapping[str, int]) -> _Entry:
    current = [c for c in claimants if routed.get(figi) == c.secid]
    if current:
        return current[0]
    return max(claimants, key=lambda c: (c.figis[-1] == figi, c.listed, c.secid))
