"""Benchmark 11, report: ``algoseek-sync report --html`` on the backfill benchmark's store.

Why: the README tells what the data-quality page weighs and how long it takes to build; those
figures must come from a run, not from one afternoon. The page is built in process
(``write_report``, what the command times) and by the command as a whole process
(interpreter start-up included), interleaved, from the store benchmark 3 backfilled.
"""

from __future__ import annotations

from common import CLI, RUN, Result, cli_env, fresh, median, run_process, settings_for
from context import Context

from algoseek_sync.commands.report import write_report


def bench_report(ctx: Context) -> list[Result]:
    plan = ctx.plan
    spec = ctx.backfill_spec()
    drop, state = ctx.backfill_state()
    where = fresh(RUN / "report")
    settings = settings_for(drop, state)
    sizes: list[int] = []
    inside: list[float] = []
    whole: list[float] = []
    for k in range(plan.report_reps):
        size, seconds = write_report(settings, where / f"in-{k}.html", secids=[], ticker=None, dataset=None)
        sizes.append(size)
        inside.append(seconds)
        run = run_process([str(CLI), "report", "--html", str(where / f"cli-{k}.html")], cli_env(drop, state))
        if run.code != 0:
            raise RuntimeError(f"report exited {run.code}: {run.stderr[-800:]}")
        whole.append(run.seconds)
    of = f"{spec.secids:,} SecIds x {spec.days} days"
    return [
        Result(
            "11 report",
            f"page size, `report --html`, {of}",
            median(sizes) / 1e3,
            "KB",
            readme=True,
            notes="one self-contained HTML page: coverage heatmap, open findings, the chart of the SecId with"
            " the most open findings (the default)",
        ),
        Result(
            "11 report",
            "build, in process (`write_report`)",
            median(inside),
            "s",
            samples=inside,
            readme=True,
            notes=f"read-only open of the store, collect, render, write; n={len(inside)}",
        ),
        Result(
            "11 report",
            "`report --html`, whole process",
            median(whole),
            "s",
            samples=whole,
            readme=True,
            notes="interpreter start-up and imports included",
        ),
    ]
