"""Benchmarks of what algoseek-sync promises; one command: ``make bench``.

    .venv/bin/python bench/run.py                 # the full run (about 25 minutes on 2 cores; the first
                                                  # one also makes the 10 M-row query drop and its store,
                                                  # and the daily-file drop, cached in bench/work/cache:
                                                  # 15-20 minutes more)
    .venv/bin/python bench/run.py --quick         # small sizes, to check the harness (a few minutes);
                                                  # writes to bench/work/quick/, never bench/results.*
    .venv/bin/python bench/run.py --only backfill # one benchmark (repeatable: --only a --only b)
    .venv/bin/python bench/readme.py              # then: the README's table from bench/results.json

Writes ``results.json`` (every sample) and ``results.md`` (the table, and the README's block)
to ``bench/`` (``--out DIR`` elsewhere). With ``--only`` the named benchmarks' rows replace
theirs in the existing results of the same directory. Work files (generated drops, state
databases) go to ``bench/work/`` (git-ignored). Benchmarks, one module each
(``bench/<name>.py``); this file only chooses, runs and reports them:

affected   one re-delivered SecId file in a 100- and a 10,000-SecId universe; checks on vs off
tutorial   the Main Sequence tutorial's re-read-everything cycle vs the daemon, same change
backfill   ``run --once`` on 10,000 SecIds x 250 days from empty vs gzip + pyarrow on every core
           (the floor; and on one thread), wall and CPU seconds
tradedate  the same for whole-market daily files (10,000 SecIds x 250 days in 250 files), peak RSS
parse-ahead  that backfill with 1, 2 (the release) and 3 batches parsed ahead
report     ``report --html`` on the backfilled store: page size, in process and whole process
latency    writer closes a file → row readable, with ``algoseek-sync run`` watching
memory     peak RSS of ``run --once`` backfilling 1,000 and 10,000 SecIds
reconcile  restart with 100,000 known files: time to READY=1, and bare ``scan.reconcile``
burst      peak RSS of ``algoseek-sync run`` absorbing a burst of files, small vs 10x
store      bytes per stored row of the chunked store vs release 0.1's table, same rows
queries    one SecId's history and one date of every SecId at 10 M rows, in-process and CLI
onefile    ``run --once`` as a process after one file changed, vs nothing to do, bare Python and the
           libraries' import floor (without the package)
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
from backfill import bench_backfill, bench_tradedate
from burst import bench_burst
from common import (
    BENCH,
    HARNESS,
    RUN,
    WORK,
    Result,
    daemon_version,
    load_average,
    log,
    machine,
    quiet_logging,
)
from context import Context, Plan
from latency import bench_latency
from memory import bench_memory
from onefile import bench_onefile
from parseahead import bench_parse_ahead
from queries import bench_queries
from reconcile import bench_reconcile
from report import bench_report
from store import bench_store
from tables import header, loads, order, readme_block, row
from tutorial import bench_tutorial

#: name → (its number in the results, runner), in the order they run
RUNNERS: dict[str, tuple[str, Callable[[Context], list[Result]]]] = {
    "backfill": ("3", bench_backfill),  # first: its state is reused by store, report and onefile
    "store": ("8", bench_store),  # before onefile re-delivers files into that state
    "report": ("11", bench_report),
    "onefile": ("10", bench_onefile),
    "tradedate": ("3t", bench_tradedate),
    "parse-ahead": ("3p", bench_parse_ahead),
    "affected": ("1", bench_affected),
    "tutorial": ("2", bench_tutorial),  # reuses affected's 10,000-SecId universe
    "queries": ("9", bench_queries),
    "memory": ("5", bench_memory),
    "reconcile": ("6", bench_reconcile),
    "latency": ("4", bench_latency),
    "burst": ("7", bench_burst),
}


def write_outputs(
    out: Path, info: dict, results: list[Result], plan: Plan, seconds: float, errors: dict[str, str]
) -> None:
    data = {
        "harness": HARNESS,
        "machine": info,
        "plan": asdict(plan),
        "total_seconds": round(seconds, 1),
        "errors": errors,
        "results": [asdict(r) for r in results],
    }
    (out / "results.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    lines = [
        "# algoseek-sync benchmarks",
        "",
        f"Produced by {'`.venv/bin/python bench/run.py --quick`' if plan.quick else '`make bench`'}"
        f" in {seconds / 60:.1f} min. Every sample is in `results.json`.",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB RAM, Python {info['python']},"
        f" pyarrow {info['pyarrow']}, pandas {info['pandas']}, SQLite {info['sqlite']};"
        f" {info['date']}; load average at start {info['load_avg_at_start']} (shared machine);"
        f" 1-minute load average as each benchmark began: {loads(info)}; at the end"
        f" {info.get('load_avg_at_end')}. Daemon code: {info['daemon_at_start']} at the start,"
        f" {info.get('daemon_at_end')} at the end.{_earlier(info)}",
        "",
        *header(),
        *(row(r) for r in results),
    ]
    for name, err in errors.items():
        lines.append(f"| {name} | (failed) | n/a | | **ERROR** | {err.replace('|', '/')[:300]} |")
    profiles = [(r, k, v) for r in results for k, v in r.extra.items() if k.startswith("profile")]
    if profiles:
        lines += ["", "## Profiles", ""]
        for r, key, text in profiles:
            lines += [f"### {r.benchmark}: {r.metric} ({key})", "", "```", text, "```", ""]
    lines += ["", "## README table", "", "What `bench/readme.py` puts between the README's markers:", ""]
    lines += [readme_block(data), ""]
    (out / "results.md").write_text("\n".join(lines).rstrip() + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every benchmark")
    parser.add_argument("--only", action="append", choices=list(RUNNERS), help="run only this benchmark")
    parser.add_argument(
        "--out",
        type=Path,
        help="where results.json and .md go (default bench/, with --quick bench/work/quick/)",
    )
    args = parser.parse_args(argv)
    plan = Plan.make(args.quick)
    out: Path = args.out or (WORK / "quick" if args.quick else BENCH)
    out.mkdir(parents=True, exist_ok=True)
    chosen = [name for name in RUNNERS if not args.only or name in args.only]
    quiet_logging()
    WORK.mkdir(parents=True, exist_ok=True)
    RUN.mkdir(parents=True, exist_ok=True)
    info = machine()
    info["load_avg_by_benchmark"] = {}
    log(f"machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB; plan: {asdict(plan)}")
    previous: list[Result] = []
    prev_path = out / "results.json"
    if args.only and prev_path.exists():
        old = json.loads(prev_path.read_text())
        if old.get("plan", {}).get("quick") == plan.quick and old.get("harness", 1) == HARNESS:
            previous = [Result(**r) for r in old["results"]]
            info["earlier_run"] = earlier_run(old)
        else:  # rows measured at other sizes or under other definitions are not mixed in
            log(f"  {prev_path}: another plan or harness; only the benchmarks run now will be in it")
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
    merged.sort(key=lambda r: order(r.benchmark))
    write_outputs(out, info, merged, plan, time.perf_counter() - began, errors)
    log(f"wrote {out / 'results.md'} and results.json in {(time.perf_counter() - began) / 60:.1f} min")
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
        f" as each benchmark began: {loads(run)}; at the end {run.get('load_avg_at_end')};"
        f" daemon {run.get('daemon_at_start')} → {run.get('daemon_at_end')})."
    )


if __name__ == "__main__":
    sys.exit(main())
