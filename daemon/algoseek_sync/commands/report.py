"""``algoseek-sync report --html FILE``: one self-contained HTML page about the data's quality.

The page needs nothing but a browser: inline CSS, static inline SVG charts and a small
vanilla script for the findings filters (no CDN, no web fonts, no network). Its sections:

* a coverage heatmap (SecIds by month, shaded by the share of exchange sessions stored),
  ``id="coverage"``, and the SecIds with the lowest coverage;
* the open findings with counts per kind and severity and client-side filters, ``id="findings"``;
* a price chart per chosen SecId with its corporate actions and findings marked,
  ``id="chart-<secid>"``.

Script errors are shown in ``#script-errors`` (hidden while empty). The numbers come from
:mod:`algoseek_sync.commands.report_data`; this module only renders them.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from algoseek_sync.commands.report_data import MAX_FINDINGS, SEVERITIES, Chart, Coverage, ReportData
from algoseek_sync.errors import UserInputError

if TYPE_CHECKING:
    from algoseek_sync.config import Settings

#: coverage bins: (lowest share, colour, legend label), best first
BINS = (
    (1.0, "#1a9850", "100 %"),
    (0.995, "#c2e699", "≥ 99.5 %"),
    (0.98, "#fee08b", "≥ 98 %"),
    (0.95, "#fdae61", "≥ 95 %"),
    (0.90, "#f46d43", "≥ 90 %"),
    (0.75, "#d73027", "≥ 75 %"),
    (0.0, "#a50026", "< 75 %"),
)
SEVERITY_COLOURS = {"error": "#d62728", "warning": "#e69500", "info": "#3b7dd8"}
EVENT_COLOUR = "#7b3fb5"  # also --event in the stylesheet


# -- formatting -------------------------------------------------------------------------------------


def _day(value: int | None) -> str:
    if not value:
        return ""
    text = str(value)
    return f"{text[:4]}-{text[4:6]}-{text[6:]}"


def _percent(share: float) -> str:
    """Never rounds up to 100 %: 99.996 % shows as 99.99 %."""
    if share >= 1.0:
        return "100 %"
    if share >= 0.99:
        return f"{math.floor(share * 10000) / 100:.2f} %"
    return f"{math.floor(share * 1000) / 10:.1f} %"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _number(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.6g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _observed(observed: dict[str, Any]) -> str:
    return " · ".join(f"{k} {_number(v)}" for k, v in sorted(observed.items()))


def _bin(share: float) -> int:
    for i, (lowest, _, _) in enumerate(BINS):
        if share >= lowest:
            return i
    return len(BINS) - 1


def _ordinal(day: int) -> int:
    return dt.date(day // 10000, day // 100 % 100, day % 100).toordinal()


# -- coverage -------------------------------------------------------------------------------------


def _coverage_svg(cov: Coverage) -> str:
    groups, columns = cov.groups, cov.columns
    label_w, top = 96, 46
    cell_w = max(6, min(72, 960 // max(1, len(columns))))
    cell_h = max(3, min(18, 640 // max(1, len(groups))))
    gap_x, gap_y = int(cell_w >= 8), int(cell_h >= 8)
    width = label_w + cell_w * len(columns) + 10
    height = top + cell_h * len(groups) + 6
    out = [
        f'<svg id="coverage" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="coverage heatmap">'
    ]
    # column labels on calendar boundaries, at least 60 px apart (years once months get crowded)
    size = {"month": 1, "quarter": 3, "year": 12}[cov.bucket]
    step = next((s for s in (1, 2, 3, 6, 12, 24, 60, 120) if s >= size and s / size * cell_w >= 60), 120)
    for c, (label, month) in enumerate(zip(columns, cov.months, strict=True)):
        if month % step:
            continue
        x = label_w + c * cell_w + (cell_w / 2 if step == size else 0)
        text = str(month // 12) if step >= 12 else label
        anchor = "middle" if step == size else "start"
        out.append(
            f'<text class="col" x="{x:.1f}" y="{top - 8}" text-anchor="{anchor}">{escape(text)}</text>'
        )
        if step != size:
            out.append(f'<line class="tick" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 6}" y2="{top - 1}"/>')
    # row labels: the group's first SecId (every k-th row, at least 14 px apart)
    every = max(1, math.ceil(14 / cell_h))
    for g, group in enumerate(groups):
        if g % every:
            continue
        y = top + g * cell_h + min(cell_h, 14) / 2 + 4
        name = str(group.first_secid) if group.size == 1 else f"{group.first_secid}–{group.last_secid}"
        out.append(f'<text class="row" x="{label_w - 6}" y="{y:.1f}" text-anchor="end">{name}</text>')
    unit = {"month": "month", "quarter": "quarter", "year": "year"}[cov.bucket]
    for g, group in enumerate(groups):
        span = (
            f"SecId {group.first_secid}"
            if group.size == 1
            else f"SecIds {group.first_secid}–{group.last_secid}"
        )
        y = top + g * cell_h
        for c, cell in enumerate(group.cells):
            if cell is None:
                continue
            x = label_w + c * cell_w
            tip = f"{span}, {unit} {columns[c]}: {_percent(cell.share)} of sessions"
            if group.size > 1:
                tip += f" (mean of {cell.secids} SecIds)"
                if cell.worst_share < 1.0:
                    tip += f"; worst SecId {cell.worst_secid}: {_percent(cell.worst_share)}"
            out.append(
                f'<rect class="cell c{_bin(cell.share)}" x="{x}" y="{y}" width="{cell_w - gap_x}"'
                f' height="{cell_h - gap_y}"><title>{escape(tip)}</title></rect>'
            )
    out.append("</svg>")
    return "".join(out)


def _coverage_section(cov: Coverage) -> str:
    head = '<section id="coverage-section"><h2>Coverage</h2>'
    if not cov.available:
        return head + f'<p class="note" id="coverage-note">{escape(cov.note)}</p></section>'
    if not cov.groups:
        return head + f'<p class="note" id="coverage-note">{escape(cov.note)}</p></section>'
    grouped = any(g.size > 1 for g in cov.groups)
    intro = (
        f"Share of the exchange's sessions stored, per SecId and {cov.bucket}, between each SecId's"
        f" first and last stored day: {_plural(cov.secids, 'SecId')},"
        f" {cov.present:,} of {cov.expected:,} sessions present ({_percent(cov.share)})."
    )
    if grouped:
        intro += (
            f" Rows are {len(cov.groups)} groups of consecutive SecIds: a cell is the group's mean"
            " share; hover it for the SecId range and the worst SecId."
        )
    legend = "".join(
        f'<span class="swatch"><i style="background:{colour}"></i>{escape(label)}</span>'
        for _, colour, label in BINS
    )
    legend += '<span class="swatch"><i class="none"></i>not stored</span>'
    parts = [
        head,
        f"<p>{escape(intro)}</p>",
        f'<div class="legend">{legend}</div>',
        '<div class="side-by-side"><div class="heatmap">',
        _coverage_svg(cov),
        '<p class="readout" id="coverage-readout">Hover a cell for its SecIds and coverage.</p></div>',
    ]
    if cov.lowest:
        shown = len(cov.lowest)
        more = f" (the {shown} lowest of {cov.incomplete:,})" if cov.incomplete > shown else ""
        parts.append(f'<div class="lowest"><h3>SecIds missing sessions{more}</h3>')
        parts.append(
            '<table class="grid" id="lowest"><thead><tr><th>SecId</th><th>Ticker</th><th>FIGI</th>'
            '<th>First day</th><th>Last day</th><th class="num">Sessions present</th>'
            '<th class="num">Coverage</th></tr></thead><tbody>'
        )
        for c in cov.lowest:
            parts.append(
                f"<tr><td>{c.secid}</td><td>{escape(c.ticker)}</td><td>{escape(c.uid)}</td>"
                f"<td>{_day(c.first)}</td><td>{_day(c.last)}</td>"
                f'<td class="num">{c.present:,} / {c.expected:,}</td>'
                f'<td class="num">{_percent(c.share)}</td></tr>'
            )
        parts.append("</tbody></table></div>")
    else:
        parts.append(
            '<div class="lowest"><p class="ok">Every SecId has every session between its first and last'
            " stored day.</p></div>"
        )
    parts.append("</div></section>")
    return "".join(parts)


# -- findings -------------------------------------------------------------------------------------


def _counts_table(counts: dict[tuple[str, str], int]) -> str:
    kinds = sorted({k for k, _ in counts}, key=lambda k: (SEVERITIES.index(_severity_of(counts, k)), k))
    head = "".join(f'<th class="num">{s}</th>' for s in SEVERITIES)
    rows = []
    for kind in kinds:
        cells = "".join(
            f'<td class="num"><a href="#findings" data-kind="{kind}" data-sev="{s}">{counts[(kind, s)]:,}</a></td>'
            if counts.get((kind, s))
            else '<td class="num dim">·</td>'
            for s in SEVERITIES
        )
        rows.append(f"<tr><th>{escape(kind)}</th>{cells}</tr>")
    totals = "".join(
        f'<td class="num">{sum(n for (_, s), n in counts.items() if s == sev):,}</td>' for sev in SEVERITIES
    )
    return (
        f'<table class="grid counts" id="finding-counts"><thead><tr><th>Kind</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody><tfoot><tr><th>All</th>{totals}</tr></tfoot></table>"
    )


def _severity_of(counts: dict[tuple[str, str], int], kind: str) -> str:
    return next(s for s in SEVERITIES if (kind, s) in counts)


def _findings_section(data: ReportData, charted: set[int]) -> str:
    parts = ['<section id="findings-section"><h2>Open findings</h2>']
    if not data.findings_total:
        parts.append('<p class="ok">No open findings.</p>')
    else:
        parts.append(_counts_table(data.counts))
    kinds = sorted({k for k, _ in data.counts})
    kind_options = "".join(f'<option value="{escape(k)}">{escape(k)}</option>' for k in kinds)
    sev_options = "".join(f'<option value="{s}">{s}</option>' for s in SEVERITIES)
    parts.append(
        '<div class="filters">'
        f'<label>Kind <select id="f-kind"><option value="">all</option>{kind_options}</select></label>'
        f'<label>Severity <select id="f-sev"><option value="">all</option>{sev_options}</select></label>'
        '<label>SecId / FIGI <input id="f-secid" type="search" placeholder="e.g. 33449" size="14"></label>'
        f'<span id="f-shown">{len(data.findings):,} rows</span></div>'
    )
    if len(data.findings) < data.findings_total:
        parts.append(
            f'<p class="note" id="findings-capped">Showing {len(data.findings):,} of'
            f" {data.findings_total:,} open findings (at most {MAX_FINDINGS:,}: errors first, then"
            " warnings, then infos; the newest of each). <code>algoseek-sync quality</code> lists"
            " them all.</p>"
        )
    parts.append(
        '<div class="table-box"><table class="grid" id="findings"><thead><tr><th>Severity</th><th>Kind</th><th>Dataset</th>'
        "<th>SecId</th><th>FIGI</th><th>From</th><th>To</th><th>Observed</th></tr></thead><tbody>"
    )
    for row in data.findings:
        secid = row["secid"]
        uid = row.get("unique_identifier") or (data.uids.get(secid, "") if secid is not None else "")
        sev = row["severity"]
        if secid is None:
            secid_cell = ""
        elif secid in charted:
            secid_cell = f'<a href="#chart-{secid}">{secid}</a>'
        else:
            secid_cell = str(secid)
        query = f"{'' if secid is None else secid} {uid}".strip().lower()
        parts.append(
            f'<tr data-kind="{escape(row["kind"])}" data-sev="{sev}" data-q="{escape(query)}">'
            f'<td><span class="sev {sev}">{sev}</span></td><td>{escape(row["kind"])}</td>'
            f"<td>{escape(row['dataset'])}</td><td>{secid_cell}</td><td>{escape(uid)}</td>"
            f"<td>{_day(row['start_date'])}</td><td>{_day(row['end_date'])}</td>"
            f'<td class="obs">{escape(_observed(row["observed"]))}</td></tr>'
        )
    parts.append("</tbody></table></div></section>")
    return "".join(parts)


# -- charts ---------------------------------------------------------------------------------------


def _nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * step:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _date_ticks(first: int, last: int) -> list[tuple[int, str]]:
    """(ordinal, label): years over long spans, else months (every 1, 2, 3 or 6)."""
    a = dt.date.fromordinal(first)
    b = dt.date.fromordinal(last)
    if (b - a).days > 3 * 365:
        years = list(range(a.year + 1, b.year + 1))
        step = max(1, math.ceil(len(years) / 16))
        return [(dt.date(y, 1, 1).toordinal(), str(y)) for y in years if y % step == 0]
    months = (b.year - a.year) * 12 + b.month - a.month
    step = next((s for s in (1, 2, 3, 6, 12) if months / s <= 12), 12)
    out = []
    m = a.year * 12 + a.month  # the month after ``a``'s (ticks on the 1st)
    while m <= b.year * 12 + b.month - 1:
        year, month = divmod(m, 12)
        day = dt.date(year, month + 1, 1)
        if month % step == 0:
            out.append(
                (day.toordinal(), day.strftime("%b %Y") if month == 0 or not out else day.strftime("%b"))
            )
        m += 1
    return out


def _decimate(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most two points per pixel column (its low and its high), so long histories stay small."""
    px = np.round(x).astype(np.int64)
    if len(px) <= 2 * (px.max() - px.min() + 1):
        return x, y
    starts = np.flatnonzero(np.r_[True, px[1:] != px[:-1]])
    lows, highs = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
    xs = np.repeat(px[starts].astype(float), 2)
    ys = np.column_stack((lows, highs)).ravel()
    return xs, ys


def _chart_svg(chart: Chart) -> str:
    width, height = 1200, 380
    left, right, top, bottom = 72, 24, 34, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    keep = ~np.isnan(chart.closes)
    dates, closes = chart.dates[keep], chart.closes[keep]
    ords = np.array([_ordinal(int(d)) for d in dates.tolist()], dtype=float)
    spans = [
        (f["start_date"] or f["end_date"], f["end_date"] or f["start_date"])
        for f in chart.findings
        if f["start_date"] or f["end_date"]
    ]
    ord_lo = min([*ords.tolist(), *(_ordinal(a) for a, _ in spans)])
    ord_hi = max([*ords.tolist(), *(_ordinal(b) for _, b in spans)])
    if ord_hi == ord_lo:
        ord_lo, ord_hi = ord_lo - 1, ord_hi + 1
    y_lo, y_hi = float(closes.min()), float(closes.max())
    pad = (y_hi - y_lo) * 0.06 or max(abs(y_hi) * 0.05, 1.0)
    y_lo, y_hi = max(0.0, y_lo - pad) if y_lo >= 0 else y_lo - pad, y_hi + pad

    def sx(o: float) -> float:
        return left + (o - ord_lo) / (ord_hi - ord_lo) * plot_w

    def sy(v: float) -> float:
        return top + (y_hi - v) / (y_hi - y_lo) * plot_h

    out = [
        f'<svg id="chart-{chart.secid}" class="chart" xmlns="http://www.w3.org/2000/svg"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="close of SecId {chart.secid}">',
        f'<rect class="plot" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}"/>',
    ]
    for v in _nice_ticks(y_lo, y_hi):
        y = sy(v)
        out.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text class="ylab" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{v:,.6g}</text>')
    for o, label in _date_ticks(int(ord_lo), int(ord_hi)):
        x = sx(o)
        out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}"/>')
        out.append(
            f'<text class="xlab" x="{x:.1f}" y="{top + plot_h + 18}" text-anchor="middle">{label}</text>'
        )
    # findings first (under the line): a band over their days and a marker on the price
    for f in chart.findings:
        if not (f["start_date"] or f["end_date"]):
            continue
        a, b = f["start_date"] or f["end_date"], f["end_date"] or f["start_date"]
        x0, x1 = sx(_ordinal(a)), sx(_ordinal(b))
        y = sy(float(np.interp(_ordinal(a), ords, closes)))
        sev = f["severity"]
        when = _day(a) if a == b else f"{_day(a)} … {_day(b)}"
        tip = f"{f['kind']} ({sev}) {when}: {_observed(f['observed'])}"
        band = f'<rect class="band" x="{x0 - 1:.1f}" y="{top}" width="{max(2.0, x1 - x0 + 2):.1f}" height="{plot_h}"/>'
        out.append(
            f'<g class="finding sev-{sev}"><title>{escape(tip)}</title>{band}'
            f'<circle cx="{x0:.1f}" cy="{y:.1f}" r="5"/></g>'
        )
    xs, ys = _decimate(np.array([sx(o) for o in ords]), np.array([sy(v) for v in closes]))
    path = "M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs.tolist(), ys.tolist(), strict=True))
    out.append(f'<path class="close" d="{path}"/>')
    # corporate actions: a tick on the axis for each; labels for the rare kinds
    reasons = [r or "event" for _, _, r in chart.events]
    common = max(set(reasons), key=reasons.count) if len(reasons) > 12 else None
    last_label = -1e9
    for day, factor, reason in chart.events:
        x = sx(_ordinal(day))
        name = reason or "event"
        tip = f"{_day(day)} {name}" + (f", AdjustmentFactor {factor:.6g}" if factor is not None else "")
        labelled = name != common
        body = [f"<title>{escape(tip)}</title>"]
        if labelled:
            body.append(f'<line class="rule" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}"/>')
            if x - last_label > 60:
                body.append(f'<text x="{x:.1f}" y="{top - 8}" text-anchor="middle">{escape(name)}</text>')
                last_label = x
        body.append(f'<path class="tick" d="M{x:.1f},{top + plot_h - 9}l4,9h-8z"/>')
        out.append(f'<g class="event">{"".join(body)}</g>')
    out.append(
        f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>'
    )
    out.append("</svg>")
    return "".join(out)


def _chart_section(data: ReportData) -> str:
    parts = ['<section id="charts-section"><h2>Price charts</h2>']
    if data.chart_note:
        parts.append(f'<p class="note">{escape(data.chart_note)}</p>')
    for chart in data.charts:
        name = " · ".join(p for p in (f"SecId {chart.secid}", chart.ticker, chart.uid) if p)
        parts.append(f'<figure class="chart-box"><figcaption><h3>{escape(name)}</h3>')
        if not np.isfinite(chart.closes).any():
            parts.append(
                f'<p class="note">No stored closes for SecId {chart.secid} in {escape(data.dataset)}.</p>'
            )
            parts.append("</figcaption></figure>")
            continue
        by_sev = {s: sum(1 for f in chart.findings if f["severity"] == s) for s in SEVERITIES}
        found = ", ".join(f"{n} {s}" for s, n in by_sev.items() if n) or "none"
        parts.append(
            f'<p class="meta">Unadjusted close, {len(chart.dates):,} stored bars'
            f" {_day(int(chart.dates[0]))} … {_day(int(chart.dates[-1]))};"
            f" {_plural(len(chart.events), 'corporate-action event')}; open findings: {found}.</p></figcaption>"
        )
        parts.append(_chart_svg(chart))
        legend = [
            '<span class="swatch"><i class="line"></i>close</span>',
            f'<span class="swatch"><i class="tri" style="border-bottom-color:{EVENT_COLOUR}"></i>'
            "corporate action (AdjustmentFactor / AdjustmentReason)</span>",
        ] + [
            f'<span class="swatch"><i class="dot" style="background:{SEVERITY_COLOURS[s]}"></i>{s}</span>'
            for s in SEVERITIES
        ]
        parts.append(
            f'<div class="legend">{"".join(legend)} <span class="dim">hover a marker for details</span></div>'
        )
        if chart.events:
            rows = "".join(
                f"<tr><td>{_day(d)}</td><td>{escape(r)}</td><td class='num'>{'' if f is None else f'{f:.6g}'}</td></tr>"
                for d, f, r in chart.events
            )
            parts.append(
                f"<details><summary>{_plural(len(chart.events), 'corporate-action event')}</summary>"
                '<table class="grid events"><thead><tr><th>Day</th><th>AdjustmentReason</th>'
                f'<th class="num">AdjustmentFactor</th></tr></thead><tbody>{rows}</tbody></table></details>'
            )
        parts.append("</figure>")
    parts.append("</section>")
    return "".join(parts)


# -- page -----------------------------------------------------------------------------------------

BASE_CSS = """
:root{--event:#7b3fb5;--ink:#1f2328;--dim:#656d76;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:#fff}
main{max-width:1320px;margin:0 auto;padding:20px 28px 60px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:19px;margin:34px 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:18px 0 6px}
p{margin:6px 0}
code{background:var(--bg);padding:1px 4px;border-radius:4px}
.meta,.dim{color:var(--dim)}
.note{color:#6a4a00;background:#fff8e1;border:1px solid #f0d98c;border-radius:6px;padding:6px 10px;display:inline-block}
.ok{color:#116329}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0 4px}
.card{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:120px;background:var(--bg)}
.card b{display:block;font-size:20px}
.card span{color:var(--dim);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card.error b{color:#d62728}.card.warning b{color:#b87700}.card.info b{color:#3b7dd8}
nav a{margin-right:14px}
a{color:#0a59c4;text-decoration:none}a:hover{text-decoration:underline}
#script-errors{background:#ffebe9;border:1px solid #d1242f;color:#82071e;padding:8px 12px;border-radius:6px;margin:10px 0}
#script-errors:empty{display:none}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin:6px 0;font-size:12px;color:var(--dim);align-items:center}
.swatch i{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-2px;border-radius:2px}
.swatch i.none{background:#fff;border:1px solid var(--line)}
.swatch i.line{height:3px;vertical-align:3px;background:#24507a}
.swatch i.dot{border-radius:50%}
.swatch i.tri{width:0;height:0;border:6px solid transparent;border-top:0;border-bottom:9px solid;border-radius:0}
.side-by-side{display:flex;flex-wrap:wrap;gap:10px 40px;align-items:flex-start}
.heatmap{overflow-x:auto;max-width:100%}
.lowest h3{margin-top:0}
#coverage text{font-size:11px;fill:#57606a}
#coverage .tick{stroke:#8c959f}
#coverage rect.cell:hover{stroke:#000;stroke-width:1}
.readout{font-size:12px;color:var(--dim);min-height:1.4em;max-width:600px}
table.grid{border-collapse:collapse;font-size:13px;margin:6px 0}
table.grid th,table.grid td{border-bottom:1px solid #eaeef2;padding:3px 10px;text-align:left;white-space:nowrap}
table.grid thead th{background:var(--bg);position:sticky;top:0;border-bottom:1px solid var(--line)}
table.grid td.num,table.grid th.num{text-align:right;font-variant-numeric:tabular-nums}
table.grid td.obs{white-space:normal;color:#3d444d;font-size:12px}
table.grid tfoot th,table.grid tfoot td{border-top:1px solid var(--line);font-weight:600}
table.counts td a{display:inline-block;min-width:2em}
.sev{display:inline-block;padding:0 7px;border-radius:10px;font-size:12px;color:#fff}
.sev.error{background:#d62728}.sev.warning{background:#e69500}.sev.info{background:#3b7dd8}
.filters{display:flex;flex-wrap:wrap;gap:8px 18px;align-items:center;margin:14px 0 6px;padding:8px 12px;background:var(--bg);border:1px solid var(--line);border-radius:6px}
.filters select,.filters input{font:inherit;margin-left:4px}
#f-shown{color:var(--dim);margin-left:auto}
.table-box{max-height:560px;overflow:auto;border:1px solid var(--line);border-radius:6px}
.table-box table.grid{margin:0;width:100%}
tr[hidden]{display:none}
figure{margin:18px 0 28px}
svg.chart{width:100%;height:auto;display:block}
svg.chart .plot{fill:#fbfcfd;stroke:var(--line)}
svg.chart .grid{stroke:#e6e9ed}
svg.chart .axis{stroke:#8c959f}
svg.chart text{font-size:12px;fill:#57606a}
svg.chart .close{fill:none;stroke:#24507a;stroke-width:1.4;stroke-linejoin:round}
svg.chart .event .tick{fill:var(--event)}
svg.chart .event .rule{stroke:var(--event);stroke-dasharray:4 3;stroke-width:1.2}
svg.chart .event text{fill:var(--event);font-weight:600}
svg.chart .finding circle{stroke:#fff;stroke-width:1.5}
svg.chart .finding .band{opacity:.16}
svg.chart .finding:hover circle{stroke:#000}
details{margin:6px 0}summary{cursor:pointer;color:var(--dim)}
footer{margin-top:40px;color:var(--dim);font-size:12px}
"""


def _css() -> str:
    """The stylesheet, with the colour scales' rules."""
    bins = "".join(f"#coverage .c{i}{{fill:{colour}}}" for i, (_, colour, _) in enumerate(BINS))
    severities = "".join(
        f"svg.chart .sev-{s} circle,svg.chart .sev-{s} .band{{fill:{c}}}" for s, c in SEVERITY_COLOURS.items()
    )
    return BASE_CSS + bins + severities


#: installed first: any later script error is shown on the page (and a test can assert none)
ONERROR = """
(function(){
  var box=document.getElementById('script-errors');
  function show(text){box.hidden=false;var p=document.createElement('div');p.textContent=text;box.appendChild(p);}
  window.onerror=function(message,source,line,column){show('Script error: '+message+' (line '+line+':'+column+')');};
  window.addEventListener('unhandledrejection',function(e){show('Unhandled rejection: '+e.reason);});
})();
"""

SCRIPT = """
(function(){
  var table=document.getElementById('findings');
  var kind=document.getElementById('f-kind'),sev=document.getElementById('f-sev');
  var text=document.getElementById('f-secid'),shown=document.getElementById('f-shown');
  var rows=table.tBodies[0].rows;
  function apply(){
    var k=kind.value,s=sev.value,t=text.value.trim().toLowerCase(),n=0;
    for(var i=0;i<rows.length;i++){
      var r=rows[i];
      var ok=(!k||r.getAttribute('data-kind')===k)&&(!s||r.getAttribute('data-sev')===s)&&
        (!t||r.getAttribute('data-q').indexOf(t)>=0);
      r.hidden=!ok;if(ok)n++;
    }
    shown.textContent=n.toLocaleString('en-US')+' of '+rows.length.toLocaleString('en-US')+' rows shown';
  }
  kind.addEventListener('change',apply);sev.addEventListener('change',apply);text.addEventListener('input',apply);
  var links=document.querySelectorAll('#finding-counts a[data-kind]');
  for(var i=0;i<links.length;i++){
    links[i].addEventListener('click',function(){
      kind.value=this.getAttribute('data-kind');sev.value=this.getAttribute('data-sev');text.value='';apply();
    });
  }
  apply();
  var heat=document.getElementById('coverage'),readout=document.getElementById('coverage-readout');
  if(heat&&readout){
    heat.addEventListener('mouseover',function(e){
      var t=e.target;if(t.classList&&t.classList.contains('cell')){readout.textContent=t.textContent;}
    });
  }
})();
"""


def render(data: ReportData) -> str:
    """The whole page."""
    charted = {c.secid for c in data.charts if np.isfinite(c.closes).any()}
    by_sev = {s: sum(n for (_, sv), n in data.counts.items() if sv == s) for s in SEVERITIES}
    cov = data.coverage
    cards = [
        ("Open findings", f"{data.findings_total:,}", ""),
        *((s + "s", f"{by_sev[s]:,}", s) for s in SEVERITIES),
    ]
    if cov.available and cov.groups:
        cards += [("SecIds stored", f"{cov.secids:,}", ""), ("Sessions present", _percent(cov.share), "")]
    cards_html = "".join(
        f'<div class="card {cls}"><b>{value}</b><span>{escape(label)}</span></div>'
        for label, value, cls in cards
    )
    title = f"Data quality report: {data.dataset}"
    body = [
        f"<header><h1>{escape(title)}</h1>",
        f'<p class="meta">Generated {escape(data.generated_at)} · backend {escape(data.backend)}'
        f" · state {escape(data.state_dir)}</p>",
        f'<div class="cards">{cards_html}</div>',
        '<nav><a href="#coverage-section">Coverage</a><a href="#findings-section">Findings</a>'
        '<a href="#charts-section">Charts</a></nav></header>',
        _coverage_section(cov),
        _findings_section(data, charted),
        _chart_section(data),
        "<footer>algoseek-sync report · a static page: it needs no network.</footer>",
    ]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_css()}</style></head><body>"
        '<main><div id="script-errors" hidden></div>'
        f"<script>{ONERROR}</script>" + "\n".join(body) + f"</main><script>{SCRIPT}</script></body></html>\n"
    )


# -- the command ----------------------------------------------------------------------------------


def check_writable(path: Path) -> None:
    """Fail before any work when ``path`` cannot be written (one line, no traceback)."""
    if path.is_dir():
        raise UserInputError(f"cannot write the report to {path}: it is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise UserInputError(f"cannot write the report to {path}: {parent} is not a directory")
    if not parent.is_dir():
        raise UserInputError(f"cannot write the report to {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserInputError(f"cannot write the report to {path}: permission denied")


def chosen_secids(app: Any, secids: list[int], ticker: str | None) -> list[int]:
    """The SecIds to chart, checked against the master (an unknown one is a user error)."""
    from algoseek_sync.read.resolve import target

    out = [target(app.securities, secid=secid).secids[0] for secid in secids]  # raises when unknown
    if ticker is not None:
        out += target(app.securities, ticker=ticker).secids
    return list(dict.fromkeys(out))


def write_report(
    settings: Settings, path: Path, *, secids: list[int], ticker: str | None, dataset: str | None
) -> tuple[int, float]:
    """Build the report into ``path``; returns (bytes written, seconds taken)."""
    from algoseek_sync.app import open_app
    from algoseek_sync.commands.report_data import collect
    from algoseek_sync.read.store import choose_dataset

    started = time.monotonic()
    check_writable(path)
    app = open_app(settings, readonly=True)
    try:
        stored = sorted(app.ledger.datasets()) or app.backend.datasets()
        chosen = choose_dataset(dataset, stored, stored, "the stored bars")
        if chosen is None:
            raise UserInputError("no bars stored yet: nothing to show")
        data = collect(app, chosen, chosen_secids(app, secids, ticker))
    finally:
        app.close()
    page = render(data).encode()
    try:
        _write(path, page)
    except OSError as exc:
        raise UserInputError(f"cannot write the report to {path}: {exc.strerror or exc}") from None
    return len(page), time.monotonic() - started


def _write(path: Path, page: bytes) -> None:
    """A regular file is replaced whole (readers never see half a page); anything else
    (a symlink, /dev/stdout, a FIFO) is written through, never replaced."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        with path.open("wb") as out:
            out.write(page)
        return
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(page)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
