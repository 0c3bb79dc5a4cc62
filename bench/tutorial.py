"""Benchmark 2, tutorial: the Main Sequence tutorial's re-read-everything cycle vs the daemon, same change.

Why: the daemon exists to beat that strategy; both sides share reader, parser, fan-out and
store (see ``tutorial_baseline.py``), so only the update strategy is compared.
"""

from __future__ import annotations

from common import RUN, Result, fresh, log, median, timer
from context import Context, worker_only


def bench_tutorial(ctx: Context) -> list[Result]:
    from tutorial_baseline import TutorialBaseline

    plan = ctx.plan
    n = plan.large
    app = ctx.backfilled(n)
    baseline = TutorialBaseline(ctx.drops[n], fresh(RUN / "tutorial" / "state"))
    try:
        with timer() as warm:
            first = baseline.cycle()
        log(
            f"  tutorial warm-up cycle (fills its store, untimed): {warm.wall:.1f}s, {first.rows_published} rows"
        )
        daemon: list[float] = []
        tutorial: list[float] = []
        tutorial_cpu: list[float] = []
        reports = []
        for _ in range(plan.tutorial_reps):
            _, path = ctx.next_delivery(n)
            daemon.append(worker_only(app, path)[0])
            with timer() as t:
                reports.append(baseline.cycle())
            tutorial.append(t.wall)
            tutorial_cpu.append(t.cpu)
            log(f"  tutorial cycle {t.wall:.1f}s vs daemon {daemon[-1] * 1000:.1f} ms")
    finally:
        baseline.close()
    ratio = median(tutorial) / median(daemon)
    last = reports[-1]
    return [
        Result(
            "2 vs tutorial",
            f"tutorial cycle, 1 changed file in {n:,} SecIds",
            median(tutorial),
            "s",
            samples=tutorial,
            notes=f"reads {last.files:,} files ({last.rows_read:,} rows), fans out {last.rows_published:,} FIGI"
            f" rows, stores {last.rows_written:,} rows;"
            f" CPU {median(tutorial_cpu):.1f}s; n={len(tutorial)} after 1 untimed warm-up cycle",
            readme=True,
        ),
        Result(
            "2 vs tutorial",
            "daemon, same change (worker only)",
            median(daemon),
            "s",
            samples=daemon,
            notes="measured in the same loop as the tutorial cycles",
            readme=True,
        ),
        Result(
            "2 vs tutorial",
            "speed-up daemon vs tutorial",
            ratio,
            "x",
            target="≥ 100",
            met=ratio >= 100,
            notes="same reader, parser, fan-out and store; only the update strategy differs",
        ),
    ]
