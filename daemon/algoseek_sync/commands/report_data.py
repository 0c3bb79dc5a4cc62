"""What the HTML data-quality report shows, computed from the state database and the backend.

Kept apart from the rendering (:mod:`algoseek_sync.commands.report`) so that the numbers can be
tested without HTML. Everything here is cheap at 10,000 SecIds:

* coverage comes from the ``bar_chunks`` catalogue (rows per SecId and month), never from
  decoding bars: stored rows that are sessions (the chunk's rows less its open
  ``non_session_row`` findings) over the exchange sessions of that month that fall inside
  the SecId's first..last stored day. SecIds are then aggregated into at most
  ``MAX_GROUPS`` groups of consecutive SecIds, and months into quarters or years when a
  long history would give more than ``MAX_COLUMNS`` columns;
* findings are the open findings of the dataset (and the dataset-level ones), capped at
  ``MAX_FINDINGS`` rows, errors and warnings first;
* only the charted SecIds' bars are read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from algoseek_sync.quality.findings import NO_SECID, Filter

if TYPE_CHECKING:
    from algoseek_sync.app import App
    from algoseek_sync.quality.calendar import Sessions

MAX_GROUPS = 200
MAX_COLUMNS = 240  # months, then quarters, then years
MAX_CELLS = 16_000  # groups x columns: keeps the page small (120 to 180 bytes a cell)
LOWEST = 20
MAX_FINDINGS = 2000
SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Cell:
    """One heatmap cell: a group of SecIds in one month (or quarter, year)."""

    share: float  # mean share of sessions present over the group's SecIds stored in that period
    secids: int  # SecIds of the group with sessions expected in that period
    worst_secid: int
    worst_share: float


@dataclass(frozen=True)
class Group:
    first_secid: int
    last_secid: int
    size: int
    cells: list[Cell | None]  # one per column; None: no SecId of the group stored then


@dataclass(frozen=True)
class SecIdCoverage:
    secid: int
    first: int  # YYYYMMDD, first and last stored day
    last: int
    present: int  # stored rows that are sessions
    expected: int  # sessions between first and last
    uid: str = ""
    ticker: str = ""

    @property
    def share(self) -> float:
        return self.present / self.expected if self.expected else 1.0


@dataclass
class Coverage:
    available: bool
    note: str = ""
    bucket: str = "month"  # month | quarter | year
    columns: list[str] = field(default_factory=list)  # labels: 2024-01 / 2024 Q1 / 2024
    months: list[int] = field(default_factory=list)  # each column's first month: year * 12 + month - 1
    groups: list[Group] = field(default_factory=list)
    lowest: list[SecIdCoverage] = field(default_factory=list)  # below 100 %, lowest first
    secids: int = 0
    incomplete: int = 0  # SecIds missing at least one session
    present: int = 0
    expected: int = 0

    @property
    def share(self) -> float:
        return self.present / self.expected if self.expected else 1.0


@dataclass
class Chart:
    secid: int
    uid: str
    ticker: str
    dates: np.ndarray  # int64 YYYYMMDD, sorted
    closes: np.ndarray  # float64 (NaN when missing)
    events: list[tuple[int, float | None, str]]  # (day, AdjustmentFactor, AdjustmentReason)
    findings: list[dict[str, Any]]


@dataclass
class ReportData:
    dataset: str
    backend: str
    generated_at: str
    state_dir: str
    coverage: Coverage
    findings: list[dict[str, Any]]  # newest first, at most MAX_FINDINGS
    findings_total: int
    counts: dict[tuple[str, str], int]  # (kind, severity) → open findings
    charts: list[Chart]
    chart_note: str = ""
    uids: dict[int, str] = field(default_factory=dict)


# -- coverage -------------------------------------------------------------------------------------


def _month_index(period: np.ndarray) -> np.ndarray:
    return (period // 100) * 12 + period % 100 - 1


def _bucket_of(months: int, groups: int) -> tuple[str, int]:
    """Months, unless that makes too many columns or cells: then quarters, then years."""
    for name, size in (("month", 1), ("quarter", 3)):
        columns = -(-months // size) + 1  # +1: a period may straddle a bucket boundary
        if columns <= MAX_COLUMNS and columns * groups <= MAX_CELLS:
            return name, size
    return "year", 12


def _label(month: int, bucket: str) -> str:
    year, m = divmod(month, 12)
    if bucket == "month":
        return f"{year}-{m + 1:02d}"
    if bucket == "quarter":
        return f"{year} Q{m // 3 + 1}"
    return str(year)


def _yyyymmdd(month: int, day: int) -> int:
    year, m = divmod(month, 12)
    return year * 10000 + (m + 1) * 100 + day


def coverage_from_chunks(
    chunks: np.ndarray,
    sessions: Sessions,
    non_session: dict[tuple[int, int], int] | None = None,
    *,
    max_groups: int = MAX_GROUPS,
    lowest: int = LOWEST,
) -> Coverage:
    """Coverage of ``chunks``: rows (secid, period YYYYMM, first_date, last_date, rows), sorted by secid.

    ``non_session`` counts the rows of a (secid, period) dated on a non-session (the open
    ``non_session_row`` findings): they are stored rows but not sessions.
    """
    if len(chunks) == 0:
        return Coverage(True, "no bars stored in this dataset yet")
    secid, period, first, last, rows = (chunks[:, i] for i in range(5))
    if non_session:
        rows = rows - np.array(
            [non_session.get((int(s), int(p)), 0) for s, p in zip(secid, period, strict=True)]
        )
    starts = np.flatnonzero(np.r_[True, secid[1:] != secid[:-1]])
    secids = secid[starts]
    row_of = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(secid)]))
    first_s = np.minimum.reduceat(first, starts)
    last_s = np.maximum.reduceat(last, starts)

    month = _month_index(period)
    n_groups = min(max_groups, len(secids))
    bucket, size = _bucket_of(int(month.max() - month.min() + 1), n_groups)
    base = int(month.min()) - int(month.min()) % size
    column = (month - base) // size
    n_columns = int(column.max()) + 1
    col_first = np.array([_yyyymmdd(base + c * size, 1) for c in range(n_columns)], dtype=np.int64)
    col_last = np.array([_yyyymmdd(base + c * size + size - 1, 31) for c in range(n_columns)], dtype=np.int64)

    # sessions expected per (SecId, column): the column's sessions inside the SecId's stored range
    lo = np.maximum(first_s[:, None], col_first[None, :])
    hi = np.minimum(last_s[:, None], col_last[None, :])
    expected = np.where(lo <= hi, sessions.count_between(lo, hi), 0)
    present = np.zeros_like(expected)
    np.add.at(present, (row_of, column), rows)
    present = np.clip(present, 0, expected)  # a row on a non-session is not a session present
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(expected > 0, present / np.maximum(expected, 1), np.nan)

    per_present, per_expected = present.sum(axis=1), expected.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_share = np.where(per_expected > 0, per_present / np.maximum(per_expected, 1), 1.0)
    incomplete = np.flatnonzero(per_share < 1.0)
    order = incomplete[np.lexsort((secids[incomplete], per_share[incomplete]))][:lowest]
    worst = [
        SecIdCoverage(
            int(secids[i]), int(first_s[i]), int(last_s[i]), int(per_present[i]), int(per_expected[i])
        )
        for i in order
    ]

    groups: list[Group] = []
    for part in np.array_split(np.arange(len(secids)), n_groups):
        block = share[part]
        cells: list[Cell | None] = []
        for c in range(n_columns):
            values = block[:, c]
            valid = ~np.isnan(values)
            if not valid.any():
                cells.append(None)
                continue
            k = int(np.nanargmin(values))
            cells.append(
                Cell(float(np.nanmean(values)), int(valid.sum()), int(secids[part[k]]), float(values[k]))
            )
        groups.append(Group(int(secids[part[0]]), int(secids[part[-1]]), len(part), cells))

    return Coverage(
        available=True,
        bucket=bucket,
        columns=[_label(base + c * size, bucket) for c in range(n_columns)],
        months=[base + c * size for c in range(n_columns)],
        groups=groups,
        lowest=worst,
        secids=len(secids),
        incomplete=len(incomplete),
        present=int(per_present.sum()),
        expected=int(per_expected.sum()),
    )


def coverage(app: App, dataset: str) -> Coverage:
    """The coverage of ``dataset`` from the embedded store's chunk catalogue."""
    if app.backend.name != "local":
        return Coverage(
            False,
            f"Coverage is only computed from the embedded store; this state directory writes to the"
            f" {app.backend.name} backend.",
        )
    row = app.db.execute("SELECT id FROM datasets WHERE name = ?", (dataset,)).fetchone()
    if row is None:
        return Coverage(True, "no bars stored in this dataset yet")
    chunks = np.array(
        app.db.execute(
            "SELECT secid, period, first_date, last_date, rows FROM bar_chunks WHERE dataset = ?"
            " ORDER BY secid, period",
            (row[0],),
        ).fetchall(),
        dtype=np.int64,
    ).reshape(-1, 5)
    non_session = {
        (r[0], r[1]): r[2]
        for r in app.db.execute(
            "SELECT secid, start_date / 100, count(*) FROM findings WHERE kind = 'non_session_row'"
            " AND dataset = ? AND resolved_at IS NULL GROUP BY 1, 2",
            (dataset,),
        )
    }
    result = coverage_from_chunks(chunks, app.quality.sessions, non_session)
    names = _names(app, [c.secid for c in result.lowest])
    result.lowest = [
        SecIdCoverage(c.secid, c.first, c.last, c.present, c.expected, *names.get(c.secid, ("", "")))
        for c in result.lowest
    ]
    return result


# -- findings -------------------------------------------------------------------------------------


def findings_of(app: App, dataset: str, cap: int = MAX_FINDINGS) -> tuple[list[dict[str, Any]], int]:
    """Open findings of ``dataset`` and the dataset-level ones, newest first, at most ``cap``.

    When capped, errors come first, then warnings, then infos. Returns (rows, total open).
    """
    rows: list[dict[str, Any]] = []
    for severity in SEVERITIES:
        for name in (dataset, "*"):
            if len(rows) < cap:
                rows += app.quality.findings.query(
                    Filter(severity=severity, dataset=name), limit=cap - len(rows)
                )
    total = app.db.execute(
        "SELECT count(*) FROM findings WHERE resolved_at IS NULL AND dataset IN (?, '*')", (dataset,)
    ).fetchone()[0]
    rows.sort(key=lambda r: (-(r["start_date"] or 0), r["secid"] or 0, r["kind"]))
    return rows, int(total)


def counts_of(app: App, dataset: str) -> dict[tuple[str, str], int]:
    rows = app.db.execute(
        "SELECT kind, severity, count(*) FROM findings WHERE resolved_at IS NULL AND dataset IN (?, '*')"
        " GROUP BY kind, severity ORDER BY kind",
        (dataset,),
    )
    return {(r[0], r[1]): r[2] for r in rows}


def most_findings(app: App, dataset: str) -> int | None:
    """The SecId with the most open findings (errors break ties, then the lowest SecId)."""
    row = app.db.execute(
        "SELECT secid FROM findings WHERE resolved_at IS NULL AND dataset = ? AND secid != ?"
        " GROUP BY secid ORDER BY count(*) DESC, sum(severity = 'error') DESC, secid LIMIT 1",
        (dataset, NO_SECID),
    ).fetchone()
    return int(row[0]) if row else None


# -- charts ---------------------------------------------------------------------------------------


def _names(app: App, secids: list[int]) -> dict[int, tuple[str, str]]:
    """SecId → (current identifier, newest ticker)."""
    uids = app.securities.latest_uids(secids)
    tickers: dict[int, str] = {}
    for secid, ticker in app.db.select_in(
        "SELECT secid, ticker FROM tickers WHERE secid IN ({marks}) ORDER BY end_date", secids
    ):
        tickers[secid] = ticker  # the newest span comes last and wins
    return {s: (uids.get(s, ""), tickers.get(s, "")) for s in secids}


def chart_of(app: App, dataset: str, secid: int) -> Chart:
    """A SecId's stored closes, corporate-action events and open findings."""
    table = app.backend.history(dataset, [secid], app.securities.routes([secid]))
    names = table.column_names
    dates = table["tradedate"].to_numpy().astype(np.int64) if table.num_rows else np.zeros(0, np.int64)
    closes = (
        table["close"].to_numpy(zero_copy_only=False).astype(float) if table.num_rows else np.zeros(0, float)
    )
    events: list[tuple[int, float | None, str]] = []
    if "adjustmentfactor" in names or "adjustmentreason" in names:
        factor = table["adjustmentfactor"].to_pylist() if "adjustmentfactor" in names else [None] * len(dates)
        reason = table["adjustmentreason"].to_pylist() if "adjustmentreason" in names else [None] * len(dates)
        for day, f, r in zip(dates.tolist(), factor, reason, strict=True):
            if f is not None or r:
                events.append((int(day), None if f is None else float(f), r or ""))
    found = app.quality.findings.query(Filter(secids=[secid], dataset=dataset))
    uid, ticker = _names(app, [secid]).get(secid, ("", ""))
    return Chart(secid, uid, ticker, dates, closes, events, found)


def collect(app: App, dataset: str, secids: list[int]) -> ReportData:
    """Everything the report shows; ``secids`` are the SecIds to chart (empty: the worst one)."""
    note = ""
    if not secids:
        top = most_findings(app, dataset)
        if top is None:
            note = "No SecId has open findings: pass --secid or --ticker to chart one."
        else:
            secids = [top]
            note = f"SecId {top} has the most open findings (choose others with --secid or --ticker)."
    rows, total = findings_of(app, dataset)
    uids = app.securities.latest_uids(sorted({r["secid"] for r in rows if r["secid"] is not None}))
    return ReportData(
        dataset=dataset,
        backend=app.backend.name,
        generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        state_dir=str(app.settings.state.dir),
        coverage=coverage(app, dataset),
        findings=rows,
        findings_total=total,
        counts=counts_of(app, dataset),
        charts=[chart_of(app, dataset, s) for s in secids],
        chart_note=note,
        uids=uids,
    )
