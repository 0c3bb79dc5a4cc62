"""Benchmarks of what algoseek-sync promises; one command: ``make bench``.

    .venv/bin/python bench/run.py                 # the full run (about 25 minutes on 2 cores; the first
                                                  # one also makes the 10 M-row query drop and its store,
                                                  # cached in bench/work/cache: 10-15 minutes more)
    .venv/bin/python bench/run.py --quick         # a small smoke run (2-3 minutes)
    .venv/bin/python bench/run.py --only backfill # one benchmark (repeatable: --only a --only b)

Writes ``bench/results.json`` (every sample) and ``bench/results.md`` (the table). With
``--only`` the named benchmarks' rows replace theirs in the existing results. Work files
(generated drops, state databases) go to ``bench/work/`` (git-ignored). Benchmarks, one
module each (``bench/<name>.py``); this file only chooses, runs and reports them:

affected   one re-delivered SecId file in a 100- and a 10,000-SecId universe; checks on vs off
tutorial   the Main Sequence tutorial's re-read-everything cycle vs the daemon, same change
backfill   ``run --once`` on 10,000 SecIds x 250 days from empty vs gzip + pyarrow (the floor)
latency    writer closes a file → row readable, with ``algoseek-sync run`` watching
memory     peak RSS of ``run --once`` backfilling 1,000 and 10,000 SecIds
reconcile  restart with 100,000 known files: time to READY=1, and bare ``scan.reconcile``
burst      peak RSS of ``algoseek-sync run`` absorbing a burst of files, small vs 10x
store      bytes per stored row of the chunked store vs release 0.1's table, same rows
queries    one SecId's history and one date of every SecId at 10 M rows, in-process and CLI
onefile    ``run --once`` as a process after one file changed, vs nothing to do and bare Python
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
from common import BENCH, RUN, WORK, Result, daemon_version, load_average, log, machine, quiet_logging
from context import Context, Plan
from latency import bench_latency
from memory import bench_memory
from onefile import bench_onefile
from queries import bench_queries
from reconcile import bench_reconcile
from store import bench_store
from tutorial import bench_tutorial

#: name → (its number in the results, runner), in the order they run
RUNNERS: dict[str, tuple[int, Callable[[Context], list[Result]]]] = {
    "backfill": (3, bench_backfill),  # first: its state is reused by store and onefile
    "store": (8, bench_store),  # before onefile re-delivers files into that state
    "onefile": (10, bench_onefile),
    "affected": (1, bench_affected),
    "tutorial": (2, bench_tutorial),  # reuses affected's 10,000-SecId universe
    "queries": (9, bench_queries),
    "memory": (5, bench_memory),
    "reconcile": (6, bench_reconcile),
    "latency": (4, bench_latency),
    "burst": (7, bench_burst),
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
        f" {info['date']}; load average at start {info['load_avg_at_start']} (shared machine);"
        f" 1-minute load average as each benchmark began: {_loads(info)}; at the end"
        f" {info.get('load_avg_at_end')}. Daemon code: {info['daemon_at_start']} at the start,"
        f" {info.get('daemon_at_end')} at the end.{_earlier(info)}",
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
    parser.add_argument("--only", action="append", choices=list(RUNNERS), help="run only this benchmark")
    args = parser.parse_args(argv)
    plan = Plan.make(args.quick)
    chosen = [name for name in RUNNERS if not args.only or name in args.only]
    quiet_logging()
    WORK.mkdir(parents=True, exist_ok=True)
    RUN.mkdir(parents=True, exist_ok=True)
    info = machine()
    info["load_avg_by_benchmark"] = {}
    log(f"machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB; plan: {asdict(plan)}")
    previous: list[Result] = []
    prev_path = BENCH / "results.json"
    if args.only and prev_path.exists():
        old = json.loads(prev_path.read_text())
        if old.get("plan", {}).get("quick") == plan.quick:
            previous = [Result(**r) for r in old["results"]]
            info["earlier_run"] = earlier_run(old)
    ctx = Context(plan)
    results: dict[str, list[Result]] = {}
    errors: dict[str, str] = {}
    began = time.perf_counter()
    try:
        for name in chosen:
            info["load_avg_by_benchmark"][name] = load_average()
            log(f"== {name} (load average {info['load_avg_by_benchmark'][name]})")
            t0 = time.perf_counter()
            try:
                results[name] = RUNNERS[name][1](ctx)
            except Exception as exc:  # report and go on with the other benchmarks
                import traceback

                traceback.print_exc()
                errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"   {name} took {time.perf_counter() - t0:.0f}s")
            for r in results.get(name, []):
                log(f"   {r.metric}: {r.cell()} {'' if r.met is None else ('MET' if r.met else 'MISSED')}")
    finally:
        ctx.close()
    info["load_avg_at_end"] = load_average()
    info["daemon_at_end"] = daemon_version()
    prefixes = tuple(f"{RUNNERS[name][0]} " for name in chosen)
    merged = [r for r in previous if not r.benchmark.startswith(prefixes)]
    merged += [r for rs in results.values() for r in rs]
    merged.sort(key=lambda r: int(r.benchmark.split()[0]))
    write_outputs(info, merged, plan, time.perf_counter() - began, errors)
    log(f"wrote {BENCH / 'results.md'} and results.json in {(time.perf_counter() - began) / 60:.1f} min")
    return 1 if errors else 0


def earlier_run(old: dict) -> dict:
    """What the rows kept from the previous results were measured under (a ``--only`` re-run)."""
    machine = old.get("machine", {})
    if "earlier_run" in machine:
        return machine["earlier_run"]
    keep = ("date", "load_avg_at_start", "load_avg_by_benchmark", "load_avg_at_end", "daemon_at_start")
    return {k: machine.get(k) for k in keep} | {
        "daemon_at_end": machine.get("daemon_at_end"),
        "total_seconds": old.get("total_seconds"),
    }


def _earlier(info: dict) -> str:
    run = info.get("earlier_run")
    if not run:
        return ""
    return (
        f" Rows of the benchmarks not re-run come from the run of {run['date']}"
        f" ({(run.get('total_seconds') or 0) / 60:.1f} min; load average at start {run['load_avg_at_start']};"
        f" as each benchmark began: {_loads(run)}; at the end {run.get('load_avg_at_end')};"
        f" daemon {run.get('daemon_at_start')} → {run.get('daemon_at_end')})."
    )


def _loads(info: dict) -> str:
    return ", ".join(f"{name} {load[0]}" for name, load in info.get("load_avg_by_benchmark", {}).items())


if __name__ == "__main__":
    sys.exit(main())
