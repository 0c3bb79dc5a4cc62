"""Read-only views for the CLI: status and bars, shaped for table / CSV / JSON output."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from algoseek_sync.app import App
from algoseek_sync.commands.output import bar_fields, iso_document, render
from algoseek_sync.quality.findings import Filter
from algoseek_sync.read.frames import LEADING, bar_columns
from algoseek_sync.service.health import assess, read_facts
from algoseek_sync.state.ledger import FileState
from algoseek_sync.state.lock import WorkerLock
from algoseek_sync.state.problems import KINDS

PROBLEMS_SHOWN = 20
PROBLEMS_JSON = 200


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def daemon_state(app: App) -> dict[str, Any]:
    """Is a daemon running on this state directory, how old is its heartbeat, what is its verdict."""
    running = WorkerLock(app.settings.state.dir).held_elsewhere()
    facts = read_facts(app.db)
    out: dict[str, Any] = {"running": running, "pid": facts.pid if running else None}
    if running:
        verdict = assess(facts, app.settings.health)
        out["heartbeat_age_s"] = round(facts.heartbeat_age, 1) if facts.heartbeat_age is not None else None
        out["health"] = verdict.message()
    return out


def dataset_summary(app: App) -> dict[str, dict[str, Any]]:
    """dataset → SecIds, rows and date range (embedded store), or just the names (platform)."""
    rows = app.db.execute(
        "SELECT d.name, count(DISTINCT c.secid), sum(c.rows), min(c.first_date), max(c.last_date)"
        " FROM datasets d JOIN bar_chunks c ON c.dataset = d.id GROUP BY d.name ORDER BY d.name"
    ).fetchall()
    if rows:
        return {r[0]: {"secids": r[1], "rows": r[2], "first": r[3], "last": r[4]} for r in rows}
    return {name: {"files": n} for name, n in sorted(app.ledger.datasets().items())}


def status(app: App) -> dict[str, Any]:
    """Everything an operator asks first: daemon, queue, problems, assets, last success."""
    ledger, securities, problems = app.ledger, app.securities, app.problems
    last = ledger.last_success()
    processing_age, processing_path = ledger.processing_age()
    return {
        "drop_dir": str(app.settings.drop.dir),
        "state_dir": str(app.settings.state.dir),
        "backend": app.backend.name,
        "daemon": daemon_state(app),
        "datasets": dataset_summary(app),
        "files": ledger.counts(),
        "queue_depth": ledger.depth(),
        "oldest_pending_age_s": round(ledger.oldest_pending_age(), 1),
        "processing": {"age_s": round(processing_age, 1), "path": processing_path}
        if processing_path
        else None,
        "waiting_master": ledger.listing([FileState.WAITING_MASTER]),
        "quarantined": ledger.listing([FileState.QUARANTINED]),
        "skipped": ledger.listing([FileState.SKIPPED], limit=20),
        "deferred": ledger.deferred(),
        "problems": {"counts": problems.counts(), "recent": problems.recent(PROBLEMS_JSON)},
        "quality": quality_summary(app),
        "assets": securities.asset_counts(),
        "registrations": securities.registration_problems(),
        "last_success": _iso(last) if last else None,
    }


def format_status(data: dict[str, Any]) -> str:
    """``status`` as text; dates and timestamps in ISO form as in ``status --json``."""
    data = iso_document(data)
    daemon = data["daemon"]
    if daemon["running"]:
        age = daemon.get("heartbeat_age_s")
        running = f"running (pid {daemon['pid']}, heartbeat {age if age is not None else '?'} s ago): {daemon['health']}"
    else:
        running = "not running"
    lines = [
        f"drop dir   {data['drop_dir']}",
        f"state dir  {data['state_dir']}",
        f"backend    {data['backend']}",
        f"daemon     {running}",
        f"last success {data['last_success'] or 'never'}; queue depth {data['queue_depth']}"
        f" (oldest {data['oldest_pending_age_s']} s)",
    ]
    if data["processing"]:
        lines.append(f"processing {data['processing']['path']} for {data['processing']['age_s']} s")
    if data["datasets"]:
        lines.append("datasets:")
        for name, info in data["datasets"].items():
            if "rows" in info:
                extent = f"{info['secids']} SecId(s), {info['rows']} row(s), {info['first']}..{info['last']}"
            else:
                extent = f"{info['files']} file(s) applied"
            lines.append(f"  {name}: {extent}")
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
    if data["quality"]["open"]:
        per_kind = ", ".join(f"{k} {n}" for k, n in sorted(data["quality"]["open"].items()))
        lines.append(f"data quality: {per_kind} (algoseek-sync quality)")
    if data["quality"]["late"]:
        lines.append(f"delivery late: {data['quality']['late']}")
    counts = data["problems"]["counts"]
    if counts:
        lines.append(
            "problems: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) + " (newest first)"
        )
        for p in data["problems"]["recent"][:PROBLEMS_SHOWN]:
            where = " ".join(
                part
                for part in (
                    p["path"] or "",
                    f"line {p['line']}" if p["line"] else "",
                    f"SecId {p['secid']}" if p["secid"] is not None else "",
                )
                if part
            )
            repeat = f" (x{p['count']})" if p["count"] > 1 else ""
            lines.append(f"  [{p['kind']}] {where}: {p['detail']} -> {p['action']}{repeat}")
        hidden = sum(counts.values()) - min(PROBLEMS_SHOWN, len(data["problems"]["recent"]))
        if hidden > 0:
            lines.append(f"  … {hidden} more (status --json lists up to {PROBLEMS_JSON})")
    return "\n".join(lines)


def problem_kinds() -> dict[str, str]:
    return dict(KINDS)


def quality_summary(app: App) -> dict[str, Any]:
    """Open findings per kind, the last delivered session and whether a delivery is late."""
    counts: dict[str, int] = {}
    for (kind, _), n in app.quality.findings.counts().items():
        counts[kind] = counts.get(kind, 0) + n
    late = [f for f in app.quality.findings.query(Filter(kind="late_delivery"))]
    return {
        "open": counts,
        "last_delivered": app.quality.last_delivered(),
        "late": f"session {late[0]['start_date']} not delivered yet" if late else None,
    }


# -- bars ---------------------------------------------------------------------------------------

#: the columns the ``bars`` table view shows (CSV and JSON have every column of :mod:`algoseek_sync.read.frames`)
TABLE_COLUMNS = LEADING[2:]


def format_bars(frame: pd.DataFrame, dataset: str, fmt: str) -> str:
    """Bars in the one output style (commands/output.py); the table view shows ``TABLE_COLUMNS``."""
    columns = bar_columns(dataset)
    fields = bar_fields(columns, dataset, shown=TABLE_COLUMNS)
    return render(frame.reindex(columns=columns), fields, fmt)
