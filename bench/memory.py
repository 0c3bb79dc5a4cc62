"""Benchmark 5, memory: peak RSS of ``run --once`` backfilling 1,000 and 10,000 SecIds.

Why: memory must stay flat as the universe grows; the master alone is measured too, since
it is parsed whole and is the one part that does grow.
"""

from __future__ import annotations

from common import RUN, Result, cached_drop, fresh, link_copy, log, run_once_cli
from context import Context

from algoseek_sync.synthetic.generate import write_master


def bench_memory(ctx: Context) -> list[Result]:
    plan = ctx.plan
    peaks: dict[int, int] = {}
    out = []
    for n in plan.memory_sizes:
        src = cached_drop(ctx.spec(n))
        drop = link_copy(src, RUN / f"memory-{n}" / "drop")
        run = run_once_cli(drop, fresh(RUN / f"memory-{n}" / "state"))
        peak, secs = run.maxrss, run.seconds
        peaks[n] = peak
        log(f"  run --once {n} SecIds: peak RSS {peak / 1e6:.0f} MB, {secs:.1f}s")
        out.append(
            Result(
                "5 memory",
                f"peak RSS, run --once backfill {n:,} SecIds",
                peak / 1e6,
                "MB",
                target="≤ 300 MB",
                met=peak <= 300e6,
                notes=f"ru_maxrss via wait4 (bench/rss.py); {n:,} x {plan.days} days; wall {secs:.1f}s incl. start-up",
            )
        )
    lo, hi = min(peaks), max(peaks)
    growth = peaks[hi] / peaks[lo]
    master_only: dict[int, int] = {}
    for n in (lo, hi):  # how much of the growth is the security master itself (parsed whole)
        drop = fresh(RUN / f"memory-master-{n}" / "drop")
        write_master(drop, ctx.spec(n))
        master_only[n] = run_once_cli(drop, fresh(RUN / f"memory-master-{n}" / "state")).maxrss
    master_growth = master_only[hi] - master_only[lo]
    out.append(
        Result(
            "5 memory",
            f"peak RSS ratio {hi:,}/{lo:,} SecIds",
            growth,
            "x",
            target="≤ 1.25 (flat)",
            met=growth <= 1.25,
            notes=f"+{(peaks[hi] - peaks[lo]) / 1e6:.0f} MB from {lo:,} to {hi:,}; of it, the master alone"
            f" (run --once on a drop holding only the master): +{master_growth / 1e6:.0f} MB"
            f" ({master_only[lo] / 1e6:.0f} → {master_only[hi] / 1e6:.0f} MB)",
        )
    )
    out.append(
        Result(
            "5 memory",
            f"peak RSS, master only, {hi:,} SecIds",
            master_only[hi] / 1e6,
            "MB",
            notes="the security master is parsed whole (pandas, every column as text)",
            readme=True,
        )
    )
    return out
