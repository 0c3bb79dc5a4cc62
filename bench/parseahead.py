"""Benchmark 3p, parse-ahead depth: the backfill of benchmark 3 with 1, 2 (the release) and 3 batches
parsed ahead on other threads while one is written.

Why: the worker's ``PARSE_AHEAD = 2`` is a measured choice on a 2-core machine, and the README
says so; this keeps that claim a benchmark row instead of a one-off figure. Each depth is the
real CLI (``bench/parse_ahead_cli.py`` sets only that constant), as a whole process with its
peak RSS and CPU seconds, from an empty state, checks on; the depths run interleaved.
"""

from __future__ import annotations

import sys

from backfill import Samples, checked, run_notes
from common import BENCH, RUN, Result, cached_drop, fresh, link_copy, log, median, run_once_cli
from context import Context
from floor import bar_files

from algoseek_sync.ingest.worker import PARSE_AHEAD


def bench_parse_ahead(ctx: Context) -> list[Result]:
    plan = ctx.plan
    spec = ctx.backfill_spec()
    src = cached_drop(spec)
    files = len(bar_files(src))
    runs = {depth: Samples() for depth in plan.parse_ahead_depths}
    written = 0
    for rep in range(plan.parse_ahead_reps):
        for depth, samples in runs.items():
            root = RUN / f"parse-ahead-{depth}"
            drop, state = link_copy(src, root / "drop"), fresh(root / "state")
            cli = (sys.executable, str(BENCH / "parse_ahead_cli.py"), str(depth))
            run = checked(run_once_cli(drop, state, cli=cli), files)
            samples.add_run(run)
            written = run.count("wrote")
            log(
                f"  round {rep}, {depth} ahead: {run.seconds:.1f}s, CPU {run.cpu:.1f}s, {run.maxrss / 1e6:.0f} MB"
            )
    release = runs.get(PARSE_AHEAD)
    out = []
    for depth, samples in runs.items():
        versus = (
            f"; {median(samples.over(release)):.2f}x the release's depth"
            if release and release is not samples
            else ""
        )
        out.append(
            Result(
                "3p parse-ahead",
                f"run --once from empty, {depth} batch(es) parsed ahead{' (the release)' if depth == PARSE_AHEAD else ''}",
                median(samples.wall),
                "s",
                samples=samples.wall,
                readme=True,
                notes=f"{spec.secids:,} SecIds x {spec.days} days as in 3; {run_notes(samples, written)}{versus}",
            )
        )
    return out
