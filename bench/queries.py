"""Benchmark 9, queries: one SecId's whole history and every SecId on one date, at 10 M stored rows.

Why: reads must stay interactive however much history the store holds, in-process
(``LocalBackend``) and through the ``bars`` command as a whole process. Goals: a history well
under a second; a cross-section (every SecId on one date) within 50 ms in process, read from
its day block (store/days.py), and within a second as a whole CLI process. The drop (10,000
SecIds x 1,000 days) and its backfilled state are large, so both are cached in
``bench/work/cache``: the drop by its spec, the state by its spec and the store's code (a
change there backfills again; the queries only read it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from common import (
    CACHE,
    CLI,
    REPO,
    Result,
    cached_drop,
    cli_env,
    daemon_version,
    fresh,
    log,
    median,
    profile_top,
    quality_off_env,
    run_once_cli,
    run_process,
    spec_for,
    timer,
)
from context import Context

from algoseek_sync.synthetic.generate import DropSpec, trade_dates

DATASET = "primary-adjusted"
#: what decides how the backfilled state looks (a change here backfills the cached state again)
STORE_CODE = ("state/schema.py", "state/securities.py", "backends/local.py", "store", "formats")


def store_code_hash() -> str:
    digest = hashlib.sha256()
    root = REPO / "daemon" / "algoseek_sync"
    for name in STORE_CODE:
        for path in sorted((root / name).rglob("*.py")) if (root / name).is_dir() else [root / name]:
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cached_state(spec: DropSpec, drop: Path) -> tuple[Path, dict, bool]:
    """(state dir, what the marker says of its backfill, built now) of ``drop`` backfilled with the checks off."""
    root = CACHE / f"{drop.name}-state"
    marker = root / ".complete.json"
    key = {"spec": drop.name, "code": store_code_hash()}
    if marker.exists() and json.loads(marker.read_text())["key"] == key:
        return root / "state", json.loads(marker.read_text()), False
    state = fresh(root) / "state"
    run = run_once_cli(drop, state, **quality_off_env(root))
    marker.write_text(json.dumps({"key": key, "seconds": run.seconds, "daemon": daemon_version()}))
    log(f"  backfilled the query drop ({spec.secids:,} x {spec.days} days) in {run.seconds:.0f}s")
    return state, json.loads(marker.read_text()), True


def in_process(state: Path, secid: int | None = None, day: str | None = None) -> int:
    """One query as a library caller makes it (open, read, close): rows of the frame."""
    from algoseek_sync.backends.base import BarQuery
    from algoseek_sync.backends.local import LocalBackend
    from algoseek_sync.state.database import Database
    from algoseek_sync.state.securities import Securities

    db = Database(state / "state.db", readonly=True)
    try:
        backend = LocalBackend(db)
        if day is not None:
            return len(backend.read_day(DATASET, day))
        assert secid is not None
        return len(backend.read_bars(BarQuery(DATASET, Securities(db).uids_of(secid))))
    finally:
        db.close()


def cli_rows(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(seconds, data rows) of ``algoseek-sync bars ... --format csv`` as a whole process."""
    run = run_process([str(CLI), "bars", *args, "--format", "csv"], env)
    if run.code != 0:
        raise RuntimeError(f"bars {args} exited {run.code}: {run.stderr[-800:]}")
    return run.seconds, len(run.stdout.strip().splitlines()) - 1


def bench_queries(ctx: Context) -> list[Result]:
    plan = ctx.plan
    spec = spec_for(plan.query_secids, plan.query_days)
    drop = cached_drop(spec)
    state, ingest, built = cached_state(spec, drop)
    secid = spec.first_secid + spec.secids // 2
    mid = trade_dates(spec)[spec.days // 2]
    day = f"{mid[:4]}-{mid[4:6]}-{mid[6:]}"
    env = cli_env(drop, state)
    kinds = {
        "history": (lambda: in_process(state, secid=secid), ["--secid", str(secid)]),
        "day": (lambda: in_process(state, day=day), ["--date", day]),
    }
    walls: dict[str, list[float]] = {f"{k}{how}": [] for k in kinds for how in ("", " cli")}
    rows: dict[str, int] = {}
    for _ in range(plan.query_reps):  # interleaved: a noisy neighbour hits every kind alike
        for kind, (query, args) in kinds.items():
            with timer() as t:
                rows[kind] = query()
            walls[kind].append(t.wall)
            seconds, rows[f"{kind} cli"] = cli_rows(args, env)
            walls[f"{kind} cli"].append(seconds)
    for kind in kinds:
        if not rows[kind] or rows[kind] != rows[f"{kind} cli"]:
            raise RuntimeError(f"{kind}: {rows[kind]} rows in-process, {rows[f'{kind} cli']} from the CLI")
    out = query_results(spec, walls, rows, (secid, day), day_source(state, day))
    out.append(ingest_result(spec, ingest, built))  # ingest: the cache marker's record
    for result, (query, _) in zip(out, kinds.values(), strict=False):
        if result.met is False:  # show where the time goes
            result.extra["profile"] = profile_top(query, limit=20)[1]
    return out


def day_source(state: Path, day: str) -> str:
    """Where ``read_day`` takes the date's rows from: its day block, or the chunks (period not clean)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{state / 'state.db'}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT clean FROM bar_day_periods p JOIN datasets d ON d.id = p.dataset"
            " WHERE d.name = ? AND p.period = ?",
            (DATASET, int(day.replace("-", "")[:6])),
        ).fetchone()
    except sqlite3.OperationalError:  # a store without day blocks
        row = None
    finally:
        conn.close()
    return "its day block" if row is not None and row[0] == 1 else "the chunks (no clean day block)"


def query_results(
    spec: DropSpec, walls: dict[str, list[float]], rows: dict[str, int], where: tuple[int, str], source: str
) -> list[Result]:
    secid, day = where
    size = f"{spec.secids:,} SecIds x {spec.days:,} days"
    labels = {
        "history": f"one SecId's whole history (SecId {secid}), {size}",
        "day": f"every SecId on one date ({day}), {size}",
        "history cli": f"`bars --secid {secid} --format csv`, whole process",
        "day cli": f"`bars --date {day} --format csv`, whole process",
    }
    how = {
        "history": "LocalBackend.read_bars(BarQuery(dataset, uids)) incl. opening the database",
        "day": f"LocalBackend.read_day(dataset, day) incl. opening the database; read from {source}",
        "history cli": "interpreter start-up included",
        "day cli": f"interpreter start-up included; read from {source}",
    }
    goals = {"history": (1, "≤ 1 s (well under)"), "day": (0.05, "≤ 50 ms"), "day cli": (1, "≤ 1 s")}
    return [
        Result.bounded(
            "9 queries",
            labels[kind],
            median(walls[kind]),
            "s",
            *goals.get(kind, goals["history"]),
            samples=walls[kind],
            notes=f"{how[kind]}; {rows[kind]:,} rows out; median of {len(walls[kind])}",
        )
        for kind in ("history", "day", "history cli", "day cli")
    ]


def ingest_result(spec: DropSpec, built: dict, now: bool) -> Result:
    """How long the cached state's backfill took, when it was built (informational)."""
    rows, seconds = spec.secids * spec.days, built.get("seconds")
    when = "this run" if now else f"an earlier run, daemon {built.get('daemon', 'unknown')}"
    rate = f"{rows / seconds:,.0f} rows/s; " if seconds else ""
    return Result(
        "9 queries",
        f"backfill of the query drop ({rows:,} rows), checks off",
        seconds,
        "s",
        notes=f"{rate}`run --once` as a process (its end builds the day blocks of cross-sections), built by"
        f" {when}. {built.get('note', '')}".strip(),
    )
