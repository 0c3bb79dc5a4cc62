"""Benchmark 3, backfill: a whole drop from empty vs the bare parse of the same files.

Why: the ledger, fan-out and store must not cost more than the parsing they wrap (target ≤ 2x).
"""

from __future__ import annotations

from pathlib import Path

from common import (
    RUN,
    Result,
    cached_drop,
    fresh,
    link_copy,
    log,
    median,
    profile_top,
    settings_for,
    timer,
)
from context import Context

from algoseek_sync.app import App, open_app, run_once
from algoseek_sync.scan import walk


def bare_parse(drop: Path, globs: list[str]) -> tuple[int, int, int, int]:
    """read_file + parse_bars on every bar file: (files, rows, compressed bytes, decompressed bytes)."""
    from algoseek_sync.formats.bars import parse_bars
    from algoseek_sync.formats.names import classify
    from algoseek_sync.formats.read import read_file

    files = rows = raw = data = 0
    limit = 1 << 30
    for entry in walk(drop):
        if not entry.regular or classify(entry.path, globs).kind != "bars":
            continue
        content = read_file(drop, entry.path, max_file_bytes=limit, max_decompressed_bytes=limit)
        rows += parse_bars(content.data).table.num_rows
        files += 1
        raw += content.size
        data += len(content.data)
    return files, rows, raw, data


def backfill_once(src: Path, tag: str) -> tuple[App, Path, float, float, object]:
    drop = link_copy(src, RUN / f"backfill-{tag}" / "drop")
    state = fresh(RUN / f"backfill-{tag}" / "state")
    app = open_app(settings_for(drop, state))
    with timer() as t:
        stats = run_once(app)
    return app, drop, t.wall, t.cpu, stats


def bench_backfill(ctx: Context) -> list[Result]:
    plan = ctx.plan
    n = plan.large
    src = cached_drop(ctx.spec(n))
    globs = settings_for(src, RUN / "unused").drop.master_glob
    parse_w, parse_c, fill_w, fill_c, ratios = [], [], [], [], []
    size = (0, 0, 0, 0)
    written = 0
    for rep in range(plan.backfill_reps):
        with timer() as tp:
            size = bare_parse(src, globs)
        app, drop, wall, cpu, stats = backfill_once(src, str(rep))
        bad = [r for r in stats.results if r.outcome not in ("done",)]
        if bad or stats.files != size[0] + 1:
            raise RuntimeError(f"backfill incomplete: {stats.files} files, problems {bad[:3]}")
        written = stats.rows_written
        parse_w.append(tp.wall)
        parse_c.append(tp.cpu)
        fill_w.append(wall)
        fill_c.append(cpu)
        ratios.append(wall / tp.wall)
        log(f"  backfill {wall:.1f}s (cpu {cpu:.1f}s) vs bare parse {tp.wall:.1f}s (cpu {tp.cpu:.1f}s)")
        ctx.adopt(n, app, drop)  # the affected-only benchmark reuses this store
    files, rows, raw, data = size
    ratio = median(ratios)
    cpu_ratio = median(fill_c) / median(parse_c)
    t = median(fill_w)
    out = [
        Result(
            "3 backfill",
            f"run_once from empty, {n:,} SecIds x {plan.days} days",
            t,
            "s",
            samples=fill_w,
            notes=f"{files:,} files, {rows:,} rows read, {written:,} rows written (fan-out to FIGIs);"
            f" CPU {median(fill_c):.1f}s; n={len(fill_w)}",
        ),
        Result(
            "3 backfill",
            "bare parse (read_file + parse_bars)",
            median(parse_w),
            "s",
            samples=parse_w,
            notes=f"same files, no store, no ledger; CPU {median(parse_c):.1f}s",
        ),
        Result(
            "3 backfill",
            "backfill / bare parse",
            ratio,
            "x",
            target="≤ 2",
            met=ratio <= 2,
            notes=f"median of per-round ratios (rounds interleaved); CPU-time ratio {cpu_ratio:.2f}",
            samples=ratios,
        ),
        Result(
            "3 backfill",
            "rows/s (source rows)",
            rows / t,
            "rows/s",
            notes=f"{written / t:,.0f} stored rows/s",
        ),
        Result(
            "3 backfill", "MB/s compressed", raw / t / 1e6, "MB/s", notes=f"{raw / 1e6:.1f} MB of .csv.gz"
        ),
        Result(
            "3 backfill", "MB/s decompressed", data / t / 1e6, "MB/s", notes=f"{data / 1e6:.1f} MB of CSV"
        ),
    ]
    if ratio > 2:
        out[2].extra["profile"] = profile_backfill(ctx)
    return out


def profile_backfill(ctx: Context) -> str:
    """cProfile of a smaller backfill (1,000 SecIds), enough to show where the time goes."""
    n = min(1_000, ctx.plan.large)
    src = cached_drop(ctx.spec(n))
    drop = link_copy(src, RUN / "backfill-profile" / "drop")
    app = open_app(settings_for(drop, fresh(RUN / "backfill-profile" / "state")))
    try:
        _, top = profile_top(lambda: run_once(app), limit=25)
    finally:
        app.close()
    return f"run_once backfill of {n} SecIds under cProfile (cumulative):\n{top}"
