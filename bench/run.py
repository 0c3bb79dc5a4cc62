"""Benchmarks of what algoseek-sync promises; one command: ``make bench``.

    .venv/bin/python bench/run.py                 # the full run (about 15-20 minutes on 2 cores)
    .venv/bin/python bench/run.py --quick         # a small smoke run (about 2 minutes)
    .venv/bin/python bench/run.py --only backfill # one benchmark (repeatable: --only a --only b)

Writes ``bench/results.json`` (every sample) and ``bench/results.md`` (the table). With
``--only`` the named benchmarks' rows replace theirs in the existing results. Work files
(generated drops, state databases) go to ``bench/work/`` (git-ignored). Benchmarks, one
module each (``bench/<name>.py``); this file only chooses, runs and reports them:

affected   one re-delivered SecId file in a 100- and a 10,000-SecId universe
tutorial   the Main Sequence tutorial's re-read-everything cycle vs the daemon, same change
backfill   a whole drop from empty vs the bare parse of the same files
memory     peak RSS of ``run --once`` backfilling 1,000 and 10,000 SecIds
reconcile  restart with 100,000 known files: time to READY=1, and bare ``scan.reconcile``
latency    writer closes a file → row readable, with ``algoseek-sync run`` watching
burst      peak RSS of ``algoseek-sync run`` absorbing a burst of files, small vs 10x
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from affected import bench_affected
from backfill import bench_backfill
from burst import bench_burst
from common import BENCH, RUN, WORK, Result, log, machine, quiet_logging
from context import Context, Plan
from latency import bench_latency
from memory import bench_memory
from reconcile import bench_reconcile
from tutorial import bench_tutorial

BENCHMARKS = ("affected", "tutorial", "backfill", "memory", "reconcile", "latency", "burst")


RUNNERS: dict[str, Callable[[Context], list[Result]]] = {
    "backfill": bench_backfill,  # first: its store is reused by affected/tutorial
    "affected": bench_affected,
    "tutorial": bench_tutorial,
    "memory": bench_memory,
    "reconcile": bench_reconcile,
    "latency": bench_latency,
    "burst": bench_burst,
}


def fmt_target(r: Result) -> str:
    return r.target or ""


def write_outputs(
    info: dict, results: list[Result], plan: Plan, seconds: float, errors: dict[str, str]
) -> None:
    data = {
        "machine": info,
        "plan": asdict(plan),
        "total_seconds": round(seconds, 1),
        "errors": errors,
        "results": [asdict(r) for r in results],
    }
    (BENCH / "results.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    lines = [
        "# algoseek-sync benchmarks",
        "",
        f"Produced by `make bench` (`.venv/bin/python bench/run.py{' --quick' if plan.quick else ''}`)"
        f" in {seconds / 60:.1f} min. Every sample is in `results.json`.",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB RAM, Python {info['python']},"
        f" pyarrow {info['pyarrow']}, pandas {info['pandas']}, SQLite {info['sqlite']};"
        f" {info['date']}; load average at start {info['load_avg_at_start']} (shared machine).",
        "",
        "| benchmark | metric | median | target | met? | notes |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        met = "—" if r.met is None else ("yes" if r.met else "**NO**")
        if r.median is None:
            met = "not run"
        notes = r.notes.replace("|", "\\|")
        lines.append(f"| {r.benchmark} | {r.metric} | {r.cell()} | {fmt_target(r)} | {met} | {notes} |")
    for name, err in errors.items():
        lines.append(f"| {name} | (failed) | n/a | | **ERROR** | {err.replace('|', '/')[:300]} |")
    profiles = [(r, k, v) for r in results for k, v in r.extra.items() if k.startswith("profile")]
    if profiles:
        lines += ["", "## Profiles", ""]
        for r, key, text in profiles:
            lines += [f"### {r.benchmark}: {r.metric} ({key})", "", "```", text, "```", ""]
    (BENCH / "results.md").write_text("\n".join(lines).rstrip() + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every benchmark")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only this benchmark")
    args = parser.parse_args(argv)
    plan = Plan.make(args.quick)
    chosen = [name for name in RUNNERS if not args.only or name in args.only]
    quiet_logging()
    WORK.mkdir(parents=True, exist_ok=True)
    RUN.mkdir(parents=True, exist_ok=True)
    info = machine()
    log(f"machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB; plan: {asdict(plan)}")
    previous: list[Result] = []
    prev_path = BENCH / "results.json"
    if args.only and prev_path.exists():
        old = json.loads(prev_path.read_text())
        if old.get("plan", {}).get("quick") == plan.quick:
            previous = [Result(**r) for r in old["results"]]
    ctx = Context(plan)
    results: dict[str, list[Result]] = {}
    errors: dict[str, str] = {}
    began = time.perf_counter()
    try:
        for name in chosen:
            log(f"== {name}")
            t0 = time.perf_counter()
            try:
                results[name] = RUNNERS[name](ctx)
            except Exception as exc:  # report and go on with the other benchmarks
                import traceback

                traceback.print_exc()
                errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"   {name} took {time.perf_counter() - t0:.0f}s")
            for r in results.get(name, []):
                log(f"   {r.metric}: {r.cell()} {'' if r.met is None else ('MET' if r.met else 'MISSED')}")
    finally:
        ctx.close()
    order = {f"{i + 1}": i for i in range(len(BENCHMARKS))}
    merged = [r for r in previous if not any(r.benchmark.startswith(p) for p in _prefixes(chosen))]
    merged += [r for rs in results.values() for r in rs]
    merged.sort(key=lambda r: order.get(r.benchmark.split()[0], 99))
    write_outputs(info, merged, plan, time.perf_counter() - began, errors)
    log(f"wrote {BENCH / 'results.md'} and results.json in {(time.perf_counter() - began) / 60:.1f} min")
    return 1 if errors else 0


def _prefixes(chosen: list[str]) -> list[str]:
    number = {
        "affected": "1",
        "tutorial": "2",
        "backfill": "3",
        "latency": "4",
        "memory": "5",
        "reconcile": "6",
        "burst": "7",
    }
    return [number[c] + " " for c in chosen]


if __name__ == "__main__":
    sys.exit(main())
