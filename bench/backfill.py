"""Benchmark 3, backfill: ``run --once`` on a whole drop from empty vs the parsing floor; 3t, the same
for a drop of whole-market daily (tradedate) files.

Why: storing, the ledger and the quality checks must not cost much more than reading the
files at all (issue goals: ≤ 2x the floor, stretch 1.5x, peak RSS ≤ 300 MB; with checks
within 25 % of without). The floor is an independent reader, not the project's parser
(``bench/floor.py``: gzip + ``pyarrow.csv.read_csv``, nothing stored). The goals are held
against the floor that uses every core, one reader process per core, because the daemon uses
them too (two parse threads and a writer); the one-thread floor is kept as secondary
information. Wall and CPU seconds (user + sys, all threads and processes) are reported for the
floors and the backfill alike. The project's own parser over the same files is timed too, to
show its share. Many deliveries are a file per day holding every SecId, not a file per SecId:
3t backfills such a drop, with its own floors over the same bytes and its peak RSS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from common import (
    RUN,
    Result,
    Run,
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
from floor import FloorRun, Sizes, bar_files, cores, read_floor


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
class Samples:
    """One measured thing over the interleaved rounds: wall seconds, CPU seconds, peak RSS bytes."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)

    def add_run(self, run: Run) -> None:
        self.wall.append(run.seconds)
        self.cpu.append(run.cpu)
        self.rss.append(run.maxrss)

    def add_floor(self, floor: FloorRun) -> None:
        self.wall.append(floor.wall)
        self.cpu.append(floor.cpu)

    def over(self, other: Samples, cpu: bool = False) -> list[float]:
        """Per-round ratios (each round's pair measured side by side)."""
        top, bottom = (self.cpu, other.cpu) if cpu else (self.wall, other.wall)
        return [a / b for a, b in zip(top, bottom, strict=True)]


@dataclass
class Floors:
    """The all-core and the one-thread floor over the same files, measured in every round."""

    every: Samples = field(default_factory=Samples)
    one: Samples = field(default_factory=Samples)
    processes: int = 0
    sizes: Sizes = field(default_factory=lambda: Sizes(0, 0, 0, 0))

    def measure(self, drop: Path) -> None:
        every, one = read_floor(drop, cores()), read_floor(drop, 1)
        self.every.add_floor(every)
        self.one.add_floor(one)
        self.processes, self.sizes = every.processes, every.sizes

    def rows(self, benchmark: str) -> list[Result]:
        s = self.sizes
        return [
            Result(
                benchmark,
                f"floor, all cores: {self.processes} reader processes, gzip + pyarrow read_csv",
                median(self.every.wall),
                "s",
                samples=self.every.wall,
                readme=True,
                notes=f"CPU {median(self.every.cpu):.1f} s (user+sys of the {self.processes} processes, wait4);"
                f" each reads 1 in {self.processes} of the files on one thread, nothing stored, interpreter start-up"
                f" included; {s.files:,} files, {s.gz_bytes / 1e6:.0f} MB .csv.gz, {s.csv_bytes / 1e6:.0f} MB CSV",
            ),
            Result(
                benchmark,
                "floor, 1 thread: one reader process",
                median(self.one.wall),
                "s",
                samples=self.one.wall,
                readme=True,
                notes=f"CPU {median(self.one.cpu):.1f} s; the same reader over all the files in one process",
            ),
        ]

    def ratios(self, benchmark: str, on: Samples, checks_off: Samples | None = None) -> list[Result]:
        """The backfill against the all-core floor (the goal), the one-thread floor and in CPU seconds."""

        def off(bottom: Samples, cpu: bool = False) -> str:
            return f"; checks off: {median(checks_off.over(bottom, cpu)):.2f}x" if checks_off else ""

        return [
            Result.bounded(
                benchmark,
                "backfill / floor (all cores)",
                median(on.over(self.every)),
                "x",
                2,
                samples=on.over(self.every),
                notes=f"wall seconds, checks on, median of per-round ratios (rounds interleaved){off(self.every)}",
            ),
            Result(
                benchmark,
                "backfill / floor (1 thread), secondary",
                median(on.over(self.one)),
                "x",
                samples=on.over(self.one),
                readme=True,
                notes=f"against a floor that uses one of the {self.processes} cores{off(self.one)}",
            ),
            Result(
                benchmark,
                "CPU seconds: backfill / floor (all cores)",
                median(on.over(self.every, cpu=True)),
                "x",
                samples=on.over(self.every, cpu=True),
                readme=True,
                notes=f"user+sys, all threads: the work done whatever the parallelism; against the 1-thread"
                f" floor's CPU: {median(on.over(self.one, cpu=True)):.2f}x{off(self.every, cpu=True)}",
            ),
        ]


def checked(run: Run, files: int) -> Run:
    """A backfill that applied every bar file and the master."""
    if run.count("done") != files + 1:
        raise RuntimeError(f"backfill incomplete: {run.stderr[-800:]}")
    return run


def run_notes(run: Samples, written: int) -> str:
    return (
        f"CPU {median(run.cpu):.1f} s (user+sys, all threads); peak RSS {median(run.rss) / 1e6:.0f} MB;"
        f" wrote {written:,} rows; n={len(run.wall)}"
    )


def bench_backfill(ctx: Context) -> list[Result]:
    plan = ctx.plan
    spec = ctx.backfill_spec()
    src = cached_drop(spec)
    off_env = quality_off_env(RUN / "backfill-config")
    floors, parser, on, off = Floors(), Samples(), Samples(), Samples()
    written = 0
    for rep in range(plan.backfill_reps):
        floors.measure(src)
        with timer() as tp:
            project_parse(src)
        parser.wall.append(tp.wall)
        parser.cpu.append(tp.cpu)
        run_on, drop, state = backfill(src, "on")
        run_off, _, _ = backfill(src, "off", **off_env)
        on.add_run(checked(run_on, floors.sizes.files))
        off.add_run(checked(run_off, floors.sizes.files))
        written = run_on.count("wrote")
        log(
            f"  round {rep}: run --once {run_on.seconds:.1f}s (checks off {run_off.seconds:.1f}s) vs floor"
            f" {floors.every.wall[-1]:.1f}s on {floors.processes} cores, {floors.one.wall[-1]:.1f}s on one;"
            f" project parser {tp.wall:.1f}s"
        )
        ctx.keep_backfill(drop, state)  # the store-size and one-changed-file benchmarks reuse it
    out = backfill_results(ctx, floors, parser, on, off, written)
    headline = next(r for r in out if r.metric == "backfill / floor (all cores)")
    if headline.met is False:
        headline.extra.update(profile_backfill(ctx))
    return out


def profile_backfill(ctx: Context) -> dict[str, str]:
    """Where the time goes, on at most 1,000 SecIds: the parser (by own time) and ``run_once``.

    ``run_once`` parses the next batches on other threads, which cProfile does not follow:
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


def backfill_results(
    ctx: Context, floors: Floors, parser: Samples, on: Samples, off: Samples, written: int
) -> list[Result]:
    spec = ctx.backfill_spec()
    sizes = floors.sizes
    share = median(on.over(off))
    t = median(on.wall)
    where = f"{spec.secids:,} SecIds x {spec.days} days ({sizes.files:,} .csv.gz files, {sizes.rows:,} rows)"
    ratios = floors.ratios("3 backfill", on, off)
    return [
        Result(
            "3 backfill",
            f"run --once from empty, {where}",
            t,
            "s",
            samples=on.wall,
            readme=True,
            notes=f"whole process (bench/rss.py, start-up and the master included), checks on; {run_notes(on, written)}",
        ),
        Result(
            "3 backfill",
            "run --once from empty, quality checks off",
            median(off.wall),
            "s",
            samples=off.wall,
            notes=f"`[quality] enabled = false`; CPU {median(off.cpu):.1f} s; peak RSS {median(off.rss) / 1e6:.0f} MB",
        ),
        *floors.rows("3 backfill"),
        Result(
            "3 backfill",
            "project parser: read_file + parse_bars (1 thread, in process)",
            median(parser.wall),
            "s",
            samples=parser.wall,
            notes=f"informational: the daemon's reader and parser alone, CPU {median(parser.cpu):.1f} s;"
            f" {median(parser.over(floors.one)):.2f}x the 1-thread floor",
        ),
        ratios[0],
        Result.bounded(
            "3 backfill",
            "backfill / floor (all cores), stretch goal",
            median(on.over(floors.every)),
            "x",
            1.5,
        ),
        *ratios[1:],
        Result.bounded(
            "3 backfill",
            "peak RSS of the backfill",
            max(on.rss + off.rss) / 1e6,
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
            samples=on.over(off),
            notes=f"the quality checks' share of the backfill: {(share - 1) * 100:+.0f} %",
        ),
        Result(
            "3 backfill",
            "rows/s (source rows, checks on)",
            sizes.rows / t,
            "rows/s",
            notes=f"checks off {sizes.rows / median(off.wall):,.0f} rows/s; all-core floor"
            f" {sizes.rows / median(floors.every.wall):,.0f} rows/s; {sizes.gz_bytes / t / 1e6:.2f} MB/s compressed",
        ),
    ]


def bench_tradedate(ctx: Context) -> list[Result]:
    """3t: ``run --once`` from empty on whole-market daily files, against the floors over the same files."""
    plan = ctx.plan
    spec = spec_for(plan.tradedate_secids, plan.tradedate_days, aggregation="tradedate")
    src = cached_drop(spec)
    floors, on = Floors(), Samples()
    written = 0
    for rep in range(plan.backfill_reps):
        floors.measure(src)
        run, _, _ = backfill(src, "tradedate")
        on.add_run(checked(run, floors.sizes.files))
        written = run.count("wrote")
        log(
            f"  round {rep}: run --once {run.seconds:.1f}s, peak RSS {run.maxrss / 1e6:.0f} MB vs floor"
            f" {floors.every.wall[-1]:.1f}s on {floors.processes} cores, {floors.one.wall[-1]:.1f}s on one"
        )
    name = "3t backfill, daily files"
    s = floors.sizes
    return [
        Result(
            name,
            f"run --once from empty, whole-market daily files, {spec.secids:,} SecIds x {spec.days} days"
            f" ({s.files:,} .csv.gz files of {s.rows // max(s.files, 1):,} rows)",
            median(on.wall),
            "s",
            samples=on.wall,
            readme=True,
            notes=f"tradedate layout (one `YYYYMMDD.csv.gz` per day, every SecId in it); whole process, checks on;"
            f" {run_notes(on, written)}",
        ),
        *floors.rows(name),
        *floors.ratios(name, on),
        Result.bounded(
            name,
            "peak RSS of the daily-file backfill",
            max(on.rss) / 1e6,
            "MB",
            300,
            "≤ 300 MB",
            notes="the backfill's goal; ru_maxrss via wait4 (bench/rss.py)",
        ),
    ]
