"""Benchmark 3, backfill: ``run --once`` on a whole drop from empty vs the parsing floor.

Why: storing, the ledger and the quality checks must not cost much more than reading the
files at all (issue goal: ≤ 2x the floor, stretch 1.5x, peak RSS ≤ 300 MB; with checks
within 25 % of without). The floor is an independent reader, not the project's parser:
gzip-decompress each file and ``pyarrow.csv.read_csv`` it on one thread, nothing stored.
The project's own parser over the same files is timed too, to show its share.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from common import (
    RUN,
    Result,
    cached_drop,
    fresh,
    link_copy,
    log,
    median,
    profile_top,
    quality_off_env,
    settings_for,
    spec_for,
    timer,
)
from context import Context, backfill


class Sizes(NamedTuple):
    """What one pass over the drop's bar files saw."""

    files: int
    rows: int
    gz_bytes: int
    csv_bytes: int


def bar_files(drop: Path) -> list[Path]:
    return sorted(p for p in drop.glob("*.csv.gz") if "security_master" not in p.name)


def floor_read(drop: Path) -> Sizes:
    """The parsing floor: gzip + one-thread pyarrow CSV read of every bar file, nothing kept."""
    import pyarrow.csv as pacsv

    options = pacsv.ReadOptions(use_threads=False)
    paths = bar_files(drop)
    rows = compressed = plain = 0
    for path in paths:
        raw = path.read_bytes()
        data = gzip.decompress(raw)
        rows += pacsv.read_csv(io.BytesIO(data), read_options=options).num_rows
        compressed += len(raw)
        plain += len(data)
    return Sizes(len(paths), rows, compressed, plain)


def project_parse(drop: Path) -> int:
    """The daemon's bounded reader and parser (``read_file`` + ``parse_bars``) over the same files: rows."""
    from algoseek_sync.formats.bars import parse_bars
    from algoseek_sync.formats.read import read_file

    limit = 1 << 30
    rows = 0
    for path in bar_files(drop):
        content = read_file(drop, path.name, max_file_bytes=limit, max_decompressed_bytes=limit)
        rows += parse_bars(content.data).table.num_rows
    return rows


@dataclass
class Rounds:
    """Samples of the interleaved rounds (floor, parser, checks on, checks off)."""

    floor: list[float]
    parser: list[float]
    on: list[float]
    off: list[float]
    rss_on: list[int]
    rss_off: list[int]

    @staticmethod
    def ratios(top: list[float], bottom: list[float]) -> list[float]:
        return [a / b for a, b in zip(top, bottom, strict=True)]


def bench_backfill(ctx: Context) -> list[Result]:
    plan = ctx.plan
    spec = ctx.backfill_spec()
    src = cached_drop(spec)
    off_env = quality_off_env(RUN / "backfill-config")
    r = Rounds([], [], [], [], [], [])
    sizes, written = Sizes(0, 0, 0, 0), 0
    for rep in range(plan.backfill_reps):
        with timer() as tf:
            sizes = floor_read(src)
        with timer() as tp:
            project_parse(src)
        on, drop, state = backfill(src, "on")
        off, _, _ = backfill(src, "off", **off_env)
        for run in (on, off):
            if run.count("done") != sizes.files + 1:
                raise RuntimeError(f"backfill incomplete: {run.stderr[-800:]}")
        written = on.count("wrote")
        r.floor.append(tf.wall)
        r.parser.append(tp.wall)
        r.on.append(on.seconds)
        r.off.append(off.seconds)
        r.rss_on.append(on.maxrss)
        r.rss_off.append(off.maxrss)
        log(
            f"  round {rep}: run --once {on.seconds:.1f}s (checks off {off.seconds:.1f}s) vs floor"
            f" {tf.wall:.1f}s, project parser {tp.wall:.1f}s"
        )
        ctx.keep_backfill(drop, state)  # the store-size and one-changed-file benchmarks reuse it
    out = backfill_results(ctx, r, sizes, written)
    if out[4].met is False:
        out[4].extra.update(profile_backfill(ctx))
    return out


def profile_backfill(ctx: Context) -> dict[str, str]:
    """Where the time goes, on at most 1,000 SecIds: the parser (by own time) and ``run_once``.

    ``run_once`` parses the next batch on a second thread, which cProfile does not follow:
    its main thread shows that wait as ``acquire``; the parser's profile shows what it waits for.
    """
    from algoseek_sync.app import open_app, run_once

    spec = spec_for(min(1_000, ctx.plan.backfill_secids), ctx.plan.backfill_days)
    src = cached_drop(spec)
    where = f"{spec.secids:,} SecIds x {spec.days} days"
    _, parser = profile_top(lambda: project_parse(src), limit=20, sort="tottime")
    drop = link_copy(src, RUN / "backfill-profile" / "drop")
    app = open_app(settings_for(drop, fresh(RUN / "backfill-profile" / "state")))
    try:
        _, whole = profile_top(lambda: run_once(app), limit=25)
    finally:
        app.close()
    return {
        "profile_parser": f"read_file + parse_bars of {where}, by own time:\n{parser}",
        "profile_run_once": f"in-process run_once backfill of {where}, main thread, cumulative:\n{whole}",
    }


def backfill_results(ctx: Context, r: Rounds, sizes: Sizes, written: int) -> list[Result]:
    spec = ctx.backfill_spec()
    ratio = median(r.ratios(r.on, r.floor))
    share = median(r.ratios(r.on, r.off))
    peak = max(r.rss_on + r.rss_off)
    t = median(r.on)
    where = f"{spec.secids:,} SecIds x {spec.days} days ({sizes.files:,} .csv.gz files, {sizes.rows:,} rows)"
    return [
        Result(
            "3 backfill",
            f"run --once from empty, {where}",
            t,
            "s",
            samples=r.on,
            notes=f"whole process (bench/rss.py, start-up and the master included), checks on; wrote {written:,} rows;"
            f" peak RSS {median(r.rss_on) / 1e6:.0f} MB; n={len(r.on)}",
        ),
        Result(
            "3 backfill",
            "run --once from empty, quality checks off",
            median(r.off),
            "s",
            samples=r.off,
            notes=f"`[quality] enabled = false`; peak RSS {median(r.rss_off) / 1e6:.0f} MB",
        ),
        Result(
            "3 backfill",
            "floor: gzip + pyarrow read_csv (1 thread)",
            median(r.floor),
            "s",
            samples=r.floor,
            notes=f"independent reader, nothing stored; {sizes.gz_bytes / 1e6:.0f} MB .csv.gz,"
            f" {sizes.csv_bytes / 1e6:.0f} MB CSV",
        ),
        Result(
            "3 backfill",
            "project parser: read_file + parse_bars",
            median(r.parser),
            "s",
            samples=r.parser,
            notes=f"informational: the daemon's reader and parser alone, {median(r.ratios(r.parser, r.floor)):.2f}x"
            " the floor",
        ),
        Result.bounded(
            "3 backfill",
            "backfill / floor",
            ratio,
            "x",
            2,
            samples=r.ratios(r.on, r.floor),
            notes=f"checks on, median of per-round ratios (rounds interleaved); checks off:"
            f" {median(r.ratios(r.off, r.floor)):.2f}x",
        ),
        Result.bounded("3 backfill", "backfill / floor, stretch goal", ratio, "x", 1.5),
        Result.bounded(
            "3 backfill",
            "peak RSS of the backfill",
            peak / 1e6,
            "MB",
            300,
            "≤ 300 MB",
            notes="the larger of checks on and off (ru_maxrss via wait4)",
        ),
        Result.bounded(
            "3 backfill",
            "checks on / checks off",
            share,
            "x",
            1.25,
            samples=r.ratios(r.on, r.off),
            notes=f"the quality checks' share of the backfill: {(share - 1) * 100:+.0f} %",
        ),
        Result(
            "3 backfill",
            "rows/s (source rows, checks on)",
            sizes.rows / t,
            "rows/s",
            notes=f"checks off {sizes.rows / median(r.off):,.0f} rows/s; floor {sizes.rows / median(r.floor):,.0f}"
            f" rows/s; {sizes.gz_bytes / t / 1e6:.2f} MB/s compressed",
        ),
    ]
