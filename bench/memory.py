"""Benchmark 5, memory: peak RSS of ``run --once`` backfilling 1,000 and 10,000 SecIds.

Why: memory must stay flat as the universe grows; the master alone is measured too, since
it is parsed whole and is the one part that does grow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from common import BENCH, CLI, RUN, Result, cached_drop, cli_env, fresh, link_copy, log
from context import Context

from algoseek_sync.generate import write_master


def peak_rss_run_once(drop: Path, state: Path) -> tuple[int, float, int]:
    """(peak RSS bytes, seconds, exit code) of ``algoseek-sync run --once`` as a subprocess.

    Started through ``bench/rss.py`` (a small interpreter): ``ru_maxrss`` of a child forked
    straight from this process would include this process's own memory at fork time.
    """
    proc = subprocess.run(
        [sys.executable, str(BENCH / "rss.py"), str(CLI), "run", "--once"],
        env=cli_env(drop, state),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return report["maxrss_bytes"], report["seconds"], report["code"]


def bench_memory(ctx: Context) -> list[Result]:
    plan = ctx.plan
    peaks: dict[int, int] = {}
    out = []
    for n in plan.memory_sizes:
        src = cached_drop(ctx.spec(n))
        drop = link_copy(src, RUN / f"memory-{n}" / "drop")
        peak, secs, code = peak_rss_run_once(drop, fresh(RUN / f"memory-{n}" / "state"))
        if code != 0:
            raise RuntimeError(f"run --once exited {code} on the {n}-SecId drop")
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
        master_only[n], _, _ = peak_rss_run_once(drop, fresh(RUN / f"memory-master-{n}" / "state"))
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
        )
    )
    return out
