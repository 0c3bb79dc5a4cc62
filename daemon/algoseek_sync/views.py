"""Read-only views for the CLI: status and bars, shaped for table / CSV / JSON output."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from typing import Any

import pandas as pd

from algoseek_sync.app import App
from algoseek_sync.errors import UserInputError
from algoseek_sync.formats.master import resolve_ticker

ALWAYS = ["time_index", "unique_identifier", "secid", "ticker", "open", "high", "low", "close", "volume"]


def status(app: App) -> dict[str, Any]:
    """Everything an operator asks first: queue, problems, assets, last success."""
    ledger, securities = app.ledger, app.securities
    last = ledger.last_success()
    issue_total, issues = securities.issues()
    return {
        "drop_dir": str(app.settings.drop.dir),
        "state_dir": str(app.settings.state.dir),
        "backend": app.backend.name,
        "files": ledger.counts(),
        "queue_depth": ledger.depth(),
        "oldest_pending_age_s": round(ledger.oldest_pending_age(), 1),
        "waiting_master": ledger.listing(["waiting_master"]),
        "quarantined": ledger.listing(["quarantined"]),
        "skipped": ledger.listing(["skipped"], limit=20),
        "deferred": [r for r in ledger.listing(["pending"]) if r["last_error"]],
        "assets": securities.asset_counts(),
        "registrations": securities.registration_problems(),
        "master_issues": {"total": issue_total, "first": issues},
        "last_success": _iso(last) if last else None,
    }


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_status(data: dict[str, Any]) -> str:
    lines = [
        f"drop dir   {data['drop_dir']}",
        f"state dir  {data['state_dir']}",
        f"backend    {data['backend']}",
    ]
    lines.append(
        f"last success {data['last_success'] or 'never'}; queue depth {data['queue_depth']}"
        f" (oldest {data['oldest_pending_age_s']} s)"
    )
    lines.append("files:")
    for kind, states in sorted(data["files"].items()):
        lines.append(f"  {kind:<7} " + ", ".join(f"{s} {n}" for s, n in sorted(states.items())))
    assets = data["assets"]
    lines.append("assets: " + (", ".join(f"{k} {v}" for k, v in sorted(assets.items())) or "none"))
    for title, key in (
        ("waiting for master", "waiting_master"),
        ("quarantined", "quarantined"),
        ("skipped", "skipped"),
        ("deferred (will retry)", "deferred"),
    ):
        if data[key]:
            lines.append(f"{title}:")
            lines += [f"  {r['path']}: {r['last_error']}" for r in data[key]]
    if data["registrations"]:
        lines.append("asset registrations not done:")
        lines += [
            f"  {r['unique_identifier']} (SecId {r['secid']}) {r['state']}: {r['last_error']}"
            for r in data["registrations"]
        ]
    if data["master_issues"]["total"]:
        lines.append(f"master issues: {data['master_issues']['total']}")
        lines += [
            f"  SecId {r['secid']}: {r['token']}: {r['problem']}" for r in data["master_issues"]["first"]
        ]
    return "\n".join(lines)


def resolve_uids(
    app: App, *, figi: str | None, secid: int | None, ticker: str | None, on: str | None
) -> list[str]:
    """The identifiers a ``bars`` query names; unknown names are a clear user error."""
    securities = app.securities
    if figi:
        if not securities.secids_with_uids([figi]):
            raise UserInputError(f"unknown FIGI {figi!r}: not in any applied security master")
        return [figi]
    if secid is not None:
        uids = securities.uids_of(secid)
        if not uids:
            raise UserInputError(f"unknown SecId {secid}: not in any applied security master")
        return uids
    assert ticker is not None
    secids = resolve_ticker(securities.ticker_spans(ticker), ticker, on)
    when = f" on {on}" if on else ""
    if not secids:
        raise UserInputError(f"no SecId carried ticker {ticker!r}{when} (tickers are case-sensitive)")
    if len(secids) > 1:
        raise UserInputError(f"ticker {ticker!r}{when} maps to several SecIds {secids}: use --secid or --on")
    return securities.uids_of(secids[0])


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def bars_rows(frame: pd.DataFrame) -> tuple[list[str], list[list[Any]]]:
    """Columns to show (the fixed ones plus any column with a value) and the rows."""
    columns = ALWAYS + [c for c in frame.columns if c not in ALWAYS and frame[c].notna().any()]
    rows = [[_clean(v) for v in row] for row in frame[columns].itertuples(index=False, name=None)]
    return columns, rows


def format_bars(frame: pd.DataFrame, fmt: str) -> str:
    columns, rows = bars_rows(frame)
    if fmt == "json":
        return json.dumps([dict(zip(columns, r, strict=True)) for r in rows], indent=None)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in r] for r in rows])
        return out.getvalue().rstrip("\n")
    shown = ALWAYS
    table = [shown] + [["" if v is None else str(v) for v in r[: len(shown)]] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(shown))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table)
