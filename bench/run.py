"""Benchmarks of what algoseek-sync promises; one command: ``make bench``.

    .venv/bin/python bench/run.py                 # the full run (about 15-20 minutes on 2 cores)
    .venv/bin/python bench/run.py --quick         # a small smoke run (about 2 minutes)
    .venv/bin/python bench/run.py --only backfill # one benchmark (repeatable: --only a --only b)

Writes ``bench/results.json`` (every sample) and ``bench/results.md`` (the table). With
``--only`` the named benchmarks' rows replace theirs in the existing results. Work files
(generated drops, state databases) go to ``bench/work/`` (git-ignored). Benchmarks:

affected   one re-delivered SecId file in a 100- and a 10,000-SecId universe
tutorial   the Main Sequence tutorial's re-read-everything cycle vs the daemon, same change
backfill   a whole drop from empty vs the bare parse of the same files
memory     peak RSS of ``run --once`` backfilling 1,000 and 10,000 SecIds
reconcile  restart with 100,000 known files: time to READY=1, and bare ``scan.reconcile``
latency    writer closes a file → row readable, with ``algoseek-sync run`` watching
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH,
    CLI,
    WORK,
    Result,
    cached_drop,
    cli_env,
    fresh,
    gz,
    link_copy,
    log,
    machine,
    median,
    percentile,
    profile_top,
    quiet_logging,
    redeliver,
    settings_for,
    spec_for,
    timer,
)

from algoseek_sync.app import App, open_app, run_once
from algoseek_sync.generate import DropSpec, bar_rows, trade_dates, write_master
from algoseek_sync.scan import Entry, reconcile, record_entry, walk

RUN = WORK / "run"
BENCHMARKS = ("affected", "tutorial", "backfill", "memory", "reconcile", "latency", "burst")


@dataclass
class Plan:
    """Sizes and repetitions; ``--quick`` shrinks everything."""

    quick: bool
    small: int = 100
    large: int = 10_000
    days: int = 20
    affected_reps: int = 9
    tutorial_reps: int = 2
    backfill_reps: int = 2
    memory_sizes: tuple[int, ...] = (1_000, 10_000)
    reconcile_files: int = 100_000
    reconcile_reps: int = 5
    latency_files: int = 80
    latency_interval: float = 0.5
    latency_cli_files: int = 8
    stability_seconds: float = 2.0

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if not quick:
            return cls(quick=False)
        return cls(
            quick=True,
            small=100,
            large=1_000,
            days=10,
            affected_reps=5,
            tutorial_reps=1,
            backfill_reps=1,
            memory_sizes=(200, 1_000),
            reconcile_files=10_000,
            reconcile_reps=3,
            latency_files=15,
            latency_cli_files=3,
        )


@dataclass
class Context:
    plan: Plan
    apps: dict[int, App] = field(default_factory=dict)  # universe size → backfilled app
    drops: dict[int, Path] = field(default_factory=dict)
    specs: dict[int, DropSpec] = field(default_factory=dict)
    redeliveries: dict[int, int] = field(default_factory=dict)  # universe → extra days so far

    def spec(self, n: int) -> DropSpec:
        return self.specs.setdefault(n, spec_for(n, self.plan.days))

    def backfilled(self, n: int) -> App:
        """An app whose store holds the whole ``n``-SecId drop (backfilled untimed if needed)."""
        if n not in self.apps:
            drop = link_copy(cached_drop(self.spec(n)), RUN / f"universe-{n}" / "drop")
            state = fresh(RUN / f"universe-{n}" / "state")
            app = open_app(settings_for(drop, state))
            began = time.perf_counter()
            run_once(app)
            log(f"  backfilled the {n}-SecId universe (untimed) in {time.perf_counter() - began:.1f}s")
            self.adopt(n, app, drop)
        return self.apps[n]

    def adopt(self, n: int, app: App, drop: Path) -> None:
        if n in self.apps:
            self.apps[n].close()
        self.apps[n], self.drops[n] = app, drop

    def next_delivery(self, n: int) -> tuple[int, Path]:
        """Re-deliver the middle SecId of universe ``n`` with one more new day than last time."""
        spec = self.spec(n)
        extra = self.redeliveries.get(n, 0) + 1
        self.redeliveries[n] = extra
        secid = spec.first_secid + n // 2
        return secid, redeliver(self.drops[n], spec, secid, trade_dates(spec, extra=extra))

    def close(self) -> None:
        for app in self.apps.values():
            app.close()
        self.apps.clear()


def worker_only(app: App, path: Path) -> tuple[float, float, object]:
    """The daemon's event path: record the new version in the ledger, then one worker cycle."""
    rel = str(path.relative_to(app.settings.drop.dir))
    with timer() as t:
        st = os.lstat(path)
        record_entry(
            app.ledger, Entry(rel, st.st_size, st.st_mtime_ns, True, False), app.settings.drop.master_glob
        )
        stats = app.worker.cycle()
    outcomes = [r.outcome for r in stats.results]
    if outcomes != ["done"]:
        raise RuntimeError(f"re-delivery of {rel} was not applied: {stats.results}")
    return t.wall, t.cpu, stats


def check_new_day(app: App, secid: int, day: str) -> None:
    """The re-delivered day is in the store for every identifier of the SecId."""
    iso = f"{day[:4]}-{day[4:6]}-{day[6:]}"
    n = app.db.execute(
        "SELECT count(*) FROM bars WHERE secid = ? AND time_index LIKE ?", (secid, f"{iso}%")
    ).fetchone()[0]
    if not n:
        raise RuntimeError(f"SecId {secid}: {day} not in the store after its re-delivery")


# =========================================================================== 1. affected-only
def bench_affected(ctx: Context) -> list[Result]:
    plan = ctx.plan
    sizes = (plan.small, plan.large)
    worker: dict[int, list[float]] = {n: [] for n in sizes}
    worker_cpu: dict[int, list[float]] = {n: [] for n in sizes}
    once: dict[int, list[float]] = {n: [] for n in sizes}
    for n in sizes:
        ctx.backfilled(n)
    for _ in range(plan.affected_reps):
        for n in sizes:  # alternate sizes so a noisy neighbour hits both alike
            app = ctx.apps[n]
            secid, path = ctx.next_delivery(n)
            wall, cpu, _ = worker_only(app, path)
            worker[n].append(wall)
            worker_cpu[n].append(cpu)
            check_new_day(app, secid, trade_dates(ctx.spec(n), extra=ctx.redeliveries[n])[-1])
    for _ in range(plan.affected_reps):
        for n in sizes:
            app = ctx.apps[n]
            secid, path = ctx.next_delivery(n)
            with timer() as t:
                stats = run_once(app)
            if [r.outcome for r in stats.results] != ["done"]:
                raise RuntimeError(f"run_once did not apply the re-delivery: {stats.results}")
            once[n].append(t.wall)
    small, large = sizes
    ratio = median(worker[large]) / median(worker[small])
    ratio_cpu = median(worker_cpu[large]) / median(worker_cpu[small])
    ratio_once = median(once[large]) / median(once[small])
    rows = ctx.spec(large).days + ctx.redeliveries[large]
    out = [
        Result(
            "1 affected-only",
            f"worker only, {small} SecIds",
            median(worker[small]),
            "s",
            notes=f"record_entry + worker.cycle(), one file (~{rows} rows, all days + new one); n={len(worker[small])}",
            samples=worker[small],
        ),
        Result(
            "1 affected-only",
            f"worker only, {large:,} SecIds",
            median(worker[large]),
            "s",
            samples=worker[large],
            notes=f"n={len(worker[large])}",
        ),
        Result(
            "1 affected-only",
            f"worker only ratio {large:,}/{small}",
            ratio,
            "x",
            target="≤ 1.2",
            met=ratio <= 1.2,
            notes=f"the target applies here (the daemon's event path); CPU-time ratio {ratio_cpu:.2f}",
        ),
        Result(
            "1 affected-only",
            f"run --once incl. reconcile, {small} SecIds",
            median(once[small]),
            "s",
            samples=once[small],
            notes="in-process run_once: recover + reconcile (stat walk) + cycle + a 2nd reconcile",
        ),
        Result(
            "1 affected-only",
            f"run --once incl. reconcile, {large:,} SecIds",
            median(once[large]),
            "s",
            samples=once[large],
        ),
        Result(
            "1 affected-only",
            f"run --once ratio {large:,}/{small}",
            ratio_once,
            "x",
            notes="informational: reconcile walks the whole drop by design (stat-only); no target",
        ),
    ]
    if ratio > 1.2:
        for n in sizes:
            _, path = ctx.next_delivery(n)
            _, top = profile_top(lambda n=n, path=path: worker_only(ctx.apps[n], path))
            out[2].extra[f"profile_{n}"] = top
    return out


# =========================================================================== 2. tutorial baseline
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
            f"  tutorial warm-up cycle (fills its store, untimed): {warm.wall:.1f}s, {first.rows_written} rows"
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
            notes=f"reads {last.files:,} files ({last.rows_read:,} rows), upserts {last.rows_written:,} rows;"
            f" CPU {median(tutorial_cpu):.1f}s; n={len(tutorial)} after 1 untimed warm-up cycle",
        ),
        Result(
            "2 vs tutorial",
            "daemon, same change (worker only)",
            median(daemon),
            "s",
            samples=daemon,
            notes="measured in the same loop as the tutorial cycles",
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


# =========================================================================== 3. backfill
def bare_parse(drop: Path, globs: list[str]) -> tuple[int, int, int, int]:
    """read_file + parse_bars on every bar file: (files, rows, compressed bytes, decompressed bytes)."""
    from algoseek_sync.formats.bars import parse_bars
    from algoseek_sync.formats.names import classify
    from algoseek_sync.formats.read import read_file

    files = rows = raw = data = 0
    limit = 1 << 30
    for entry in walk(drop):
        if not entry.regular or classify(entry.path, globs).kind != "bars":
            continue
        content = read_file(drop, entry.path, max_file_bytes=limit, max_decompressed_bytes=limit)
        rows += parse_bars(content.data).table.num_rows
        files += 1
        raw += content.size
        data += len(content.data)
    return files, rows, raw, data


def backfill_once(src: Path, tag: str) -> tuple[App, Path, float, float, object]:
    drop = link_copy(src, RUN / f"backfill-{tag}" / "drop")
    state = fresh(RUN / f"backfill-{tag}" / "state")
    app = open_app(settings_for(drop, state))
    with timer() as t:
        stats = run_once(app)
    return app, drop, t.wall, t.cpu, stats


def bench_backfill(ctx: Context) -> list[Result]:
    plan = ctx.plan
    n = plan.large
    src = cached_drop(ctx.spec(n))
    globs = settings_for(src, RUN / "unused").drop.master_glob
    parse_w, parse_c, fill_w, fill_c, ratios = [], [], [], [], []
    size = (0, 0, 0, 0)
    written = 0
    for rep in range(plan.backfill_reps):
        with timer() as tp:
            size = bare_parse(src, globs)
        app, drop, wall, cpu, stats = backfill_once(src, str(rep))
        bad = [r for r in stats.results if r.outcome not in ("done",)]
        if bad or stats.files != size[0] + 1:
            raise RuntimeError(f"backfill incomplete: {stats.files} files, problems {bad[:3]}")
        written = stats.rows_written
        parse_w.append(tp.wall)
        parse_c.append(tp.cpu)
        fill_w.append(wall)
        fill_c.append(cpu)
        ratios.append(wall / tp.wall)
        log(f"  backfill {wall:.1f}s (cpu {cpu:.1f}s) vs bare parse {tp.wall:.1f}s (cpu {tp.cpu:.1f}s)")
        ctx.adopt(n, app, drop)  # the affected-only benchmark reuses this store
    files, rows, raw, data = size
    ratio = median(ratios)
    cpu_ratio = median(fill_c) / median(parse_c)
    t = median(fill_w)
    out = [
        Result(
            "3 backfill",
            f"run_once from empty, {n:,} SecIds x {plan.days} days",
            t,
            "s",
            samples=fill_w,
            notes=f"{files:,} files, {rows:,} rows read, {written:,} rows written (fan-out to FIGIs);"
            f" CPU {median(fill_c):.1f}s; n={len(fill_w)}",
        ),
        Result(
            "3 backfill",
            "bare parse (read_file + parse_bars)",
            median(parse_w),
            "s",
            samples=parse_w,
            notes=f"same files, no store, no ledger; CPU {median(parse_c):.1f}s",
        ),
        Result(
            "3 backfill",
            "backfill / bare parse",
            ratio,
            "x",
            target="≤ 2",
            met=ratio <= 2,
            notes=f"median of per-round ratios (rounds interleaved); CPU-time ratio {cpu_ratio:.2f}",
            samples=ratios,
        ),
        Result(
            "3 backfill",
            "rows/s (source rows)",
            rows / t,
            "rows/s",
            notes=f"{written / t:,.0f} stored rows/s",
        ),
        Result(
            "3 backfill", "MB/s compressed", raw / t / 1e6, "MB/s", notes=f"{raw / 1e6:.1f} MB of .csv.gz"
        ),
        Result(
            "3 backfill", "MB/s decompressed", data / t / 1e6, "MB/s", notes=f"{data / 1e6:.1f} MB of CSV"
        ),
    ]
    if ratio > 2:
        out[2].extra["profile"] = profile_backfill(ctx)
    return out


def profile_backfill(ctx: Context) -> str:
    """cProfile of a smaller backfill (1,000 SecIds), enough to show where the time goes."""
    n = min(1_000, ctx.plan.large)
    src = cached_drop(ctx.spec(n))
    drop = link_copy(src, RUN / "backfill-profile" / "drop")
    app = open_app(settings_for(drop, fresh(RUN / "backfill-profile" / "state")))
    try:
        _, top = profile_top(lambda: run_once(app), limit=25)
    finally:
        app.close()
    return f"run_once backfill of {n} SecIds under cProfile (cumulative):\n{top}"


# =========================================================================== 5. memory
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


# =========================================================================== 6. reconcile
def tiny_drop(count: int) -> Path:
    """``count`` tiny files ``NNN/<secid>.csv`` (not valid bars: the ledger already knows them)."""
    root = WORK / "cache" / f"tiny-{count}"
    marker = root / ".complete"
    if marker.exists():
        return root
    fresh(root)
    began = time.perf_counter()
    for i in range(count):
        bucket = root / f"{i // 1000:03d}"
        if i % 1000 == 0:
            bucket.mkdir()
        (bucket / f"{100000 + i}.csv").write_bytes(b"x\n")
    marker.write_text("ok")
    log(f"  wrote {count:,} tiny files in {time.perf_counter() - began:.1f}s")
    return root


def known_state(drop: Path, state: Path) -> int:
    """A state database whose ledger holds every file of ``drop`` as done, by its lstat (no first run)."""
    from algoseek_sync.backends.local import LocalBackend
    from algoseek_sync.db import Database
    from algoseek_sync.formats.names import classify

    fresh(state)
    db = Database(state / "state.db")
    LocalBackend(db)
    now = time.time()
    globs = settings_for(drop, state).drop.master_glob
    rows = [
        (e.path, e.size, e.mtime_ns, "x" * 64, classify(e.path, globs).kind, "done", 1, 0, now, now, now)
        for e in walk(drop)
    ]
    with db.transaction() as conn:
        conn.executemany(
            "INSERT INTO files (path, size, mtime_ns, sha256, kind, state, attempts, rows, discovered_at,"
            " updated_at, done_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    db.close()
    return len(rows)


def time_to_ready(drop: Path, state: Path, timeout: float = 120) -> float:
    """Seconds from spawning ``algoseek-sync run`` to its READY=1 datagram; the daemon is then stopped."""
    sock_path = RUN / "notify.sock"
    sock_path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(timeout)
    began = time.perf_counter()
    proc = subprocess.Popen(
        [str(CLI), "run"],
        env=cli_env(drop, state, NOTIFY_SOCKET=str(sock_path), ALGOSEEK_SYNC_OBSERVER="inotify"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        while True:
            try:
                msg = sock.recv(4096).decode()
            except TimeoutError:
                raise RuntimeError("no READY=1 from the daemon") from None
            if "READY=1" in msg.split("\n"):
                return time.perf_counter() - began
            if proc.poll() is not None:
                raise RuntimeError(f"daemon exited {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
    finally:
        sock.close()
        sock_path.unlink(missing_ok=True)
        stop(proc)


def stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def bench_reconcile(ctx: Context) -> list[Result]:
    from algoseek_sync.db import Database
    from algoseek_sync.ledger import Ledger

    plan = ctx.plan
    count = plan.reconcile_files
    drop = tiny_drop(count)
    state = RUN / "reconcile" / "state"
    rows = known_state(drop, state)
    bare = []
    db = Database(state / "state.db")
    ledger = Ledger(db)
    globs = settings_for(drop, state).drop.master_glob
    for _ in range(plan.reconcile_reps):
        with timer() as t:
            seen, recorded = reconcile(drop, ledger, globs)
        if recorded or seen != count:
            raise RuntimeError(f"reconcile saw {seen}, recorded {recorded}")
        bare.append(t.wall)
    _, top = profile_top(lambda: reconcile(drop, ledger, globs), limit=12)
    tracemalloc.start()
    reconcile(drop, ledger, globs)
    heap_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    db.close()
    out = [
        Result(
            "6 reconcile",
            f"bare scan.reconcile, {count:,} known files",
            median(bare),
            "s",
            samples=bare,
            notes=f"in-process, warm page cache; ledger pre-populated by inserting {rows:,} rows"
            " matching each file's lstat (state done), not by a first run",
            extra={"profile": top},
        ),
        Result(
            "6 reconcile",
            f"Python heap peak of one bare reconcile, {count:,} known files",
            heap_peak / 1e6,
            "MB",
            notes="tracemalloc; the walk is lazy and known versions are looked up 2,000 paths at a time,"
            " so this does not grow with the number of files",
        ),
    ]
    empty = fresh(RUN / "reconcile" / "empty-drop")
    startup = []
    for _ in range(3):
        startup.append(time_to_ready(empty, fresh(RUN / "reconcile" / "empty-state")))
    ready = []
    for _ in range(plan.reconcile_reps):
        ready.append(time_to_ready(drop, state))
    t = median(ready)
    out.append(
        Result(
            "6 reconcile",
            f"restart to READY=1, {count:,} known files",
            t,
            "s",
            target="≤ 5 s",
            met=t <= 5,
            samples=ready,
            notes=f"spawn of `algoseek-sync run` → READY=1 on a fake NOTIFY_SOCKET; includes interpreter"
            f" start-up (empty drop: {median(startup):.2f}s)",
        )
    )
    return out


# =========================================================================== 4. latency
class Poller(threading.Thread):
    """Polls the state database read-only for SecIds appearing in ``bars``."""

    def __init__(self, db_path: Path, secids: list[int], interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.db_path, self.wanted, self.interval = db_path, set(secids), interval
        self.seen: dict[int, float] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        conn = None
        lo, hi = min(self.wanted), max(self.wanted)
        while not self.halt.is_set() and len(self.seen) < len(self.wanted):
            try:
                if conn is None:
                    conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
                rows = conn.execute(
                    "SELECT DISTINCT secid FROM bars WHERE secid BETWEEN ? AND ?", (lo, hi)
                ).fetchall()
                now = time.monotonic()
                for (secid,) in rows:
                    if secid in self.wanted and secid not in self.seen:
                        self.seen[secid] = now
            except sqlite3.Error:
                conn = None
            time.sleep(self.interval)
        if conn is not None:
            conn.close()


def wait_ready(sock: socket.socket, proc: subprocess.Popen, timeout: float = 60) -> None:
    sock.settimeout(timeout)
    while True:
        msg = sock.recv(4096).decode()
        if "READY=1" in msg.split("\n"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited {proc.returncode}")


def bench_latency(ctx: Context) -> list[Result]:
    plan = ctx.plan
    total = plan.latency_files + plan.latency_cli_files
    spec = spec_for(total + 10, 20)
    drop = fresh(RUN / "latency" / "drop")
    state = fresh(RUN / "latency" / "state")
    write_master(drop, spec)
    secids = [spec.first_secid + i for i in range(total)]
    payload = {s: gz(bar_rows(spec, s)) for s in secids}
    sock_path = RUN / "latency" / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    env = cli_env(
        drop,
        state,
        NOTIFY_SOCKET=str(sock_path),
        ALGOSEEK_SYNC_OBSERVER="inotify",
        ALGOSEEK_SYNC_STABILITY_SECONDS=str(plan.stability_seconds),
    )
    proc = subprocess.Popen([str(CLI), "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    closed: dict[int, float] = {}
    cli_lat: list[float] = []
    try:
        wait_ready(sock, proc)
        db_ids, cli_ids = secids[: plan.latency_files], secids[plan.latency_files :]
        poller = Poller(state / "state.db", db_ids)
        poller.start()
        for secid in db_ids:
            target = drop / f"{secid}.csv.gz"
            with open(target, "wb") as fh:
                fh.write(payload[secid])
            closed[secid] = time.monotonic()
            time.sleep(plan.latency_interval)
        poller.join(timeout=30 + plan.stability_seconds)
        poller.halt.set()
        # via the CLI: one file at a time, `bars` run back to back until the row is there
        for secid in cli_ids:
            with open(drop / f"{secid}.csv.gz", "wb") as fh:
                fh.write(payload[secid])
            t0 = time.monotonic()
            while time.monotonic() - t0 < 60:
                res = subprocess.run(
                    [str(CLI), "bars", "--secid", str(secid), "--format", "csv"],
                    env=cli_env(drop, state),
                    capture_output=True,
                    text=True,
                )
                if res.returncode == 0 and len(res.stdout.strip().splitlines()) > 1:
                    cli_lat.append(time.monotonic() - t0)
                    break
            else:
                cli_lat.append(float("inf"))
        alive = proc.poll() is None
    finally:
        sock.close()
        sock_path.unlink(missing_ok=True)
        code = stop(proc)
    lat = [poller.seen[s] - closed[s] if s in poller.seen else float("inf") for s in db_ids]
    lost = sum(1 for x in lat if x == float("inf"))
    target = plan.stability_seconds + 1
    p99 = percentile(lat, 99)
    common_note = f"{len(db_ids)} files, one every {plan.latency_interval}s, stability_seconds={plan.stability_seconds:g}, inotify"
    out = [
        Result(
            "4 latency", "close → DB-visible p50", percentile(lat, 50), "s", samples=lat, notes=common_note
        ),
        Result("4 latency", "close → DB-visible p90", percentile(lat, 90), "s"),
        Result(
            "4 latency",
            "close → DB-visible p99",
            p99,
            "s",
            target=f"≤ {target:g} s",
            met=p99 <= target,
            notes=f"read-only SQLite poll every 10 ms; {lost} file(s) never visible; daemon alive at end:"
            f" {alive}, exit on SIGTERM {code}",
        ),
        Result(
            "4 latency",
            "close → `bars` CLI shows it, p50",
            percentile(cli_lat, 50),
            "s",
            samples=cli_lat,
            notes=f"{len(cli_ids)} files one at a time, `algoseek-sync bars` run back to back (each includes"
            " interpreter start-up, so resolution is one CLI run)",
        ),
        Result("4 latency", "close → `bars` CLI shows it, max", max(cli_lat) if cli_lat else None, "s"),
    ]
    return out


# =========================================================================== driver


# =========================================================================== 7. burst
def burst_once(src: Path, copies: int, count: int, tag: str) -> tuple[int, float, int]:
    """(peak RSS bytes, seconds to drain, exit code) of `algoseek-sync run` absorbing ``count`` files.

    The daemon runs (inotify) on a drop holding only the master; once it is applied, the files
    are copied in as fast as possible, ``copies`` sub-folders of the universe's files, and the time runs
    until the ledger shows every one done. Peak RSS comes from bench/rss.py (wait4).
    """
    root = fresh(RUN / "burst" / tag)
    drop, state = fresh(root / "drop"), fresh(root / "state")
    master = next(src.glob("*security_master*"))
    shutil.copyfile(master, drop / master.name)
    bars = sorted(p for p in src.glob("*.csv.gz"))
    sock_path = root / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    env = cli_env(drop, state, NOTIFY_SOCKET=str(sock_path), ALGOSEEK_SYNC_OBSERVER="inotify")
    log_file = (root / "daemon.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "rss.py"), str(CLI), "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    try:
        wait_ready(sock, proc)
        db = state / "state.db"
        while _done(db, "master") < 1:  # the master first: the peak then measures files only
            if proc.poll() is not None:
                raise RuntimeError(f"burst {tag}: daemon exited {proc.returncode} before applying the master")
            time.sleep(0.2)
        began = time.perf_counter()
        written = 0
        for k in range(copies):
            folder = drop / f"delivery-{k}"
            folder.mkdir()
            for path in bars[: count - written]:
                shutil.copyfile(path, folder / path.name)
                written += 1
        while _done(db, "bars") < count:
            if proc.poll() is not None or time.perf_counter() - began > 3600:
                raise RuntimeError(
                    f"burst {tag}: daemon exited or stalled ({_done(db, 'bars')}/{count} done)"
                )
            time.sleep(0.5)
        drained = time.perf_counter() - began
    finally:
        sock.close()
        code = stop(proc, timeout=60)
        log_file.close()
    report = json.loads((root / "daemon.log").read_text().strip().splitlines()[-1])
    return report["maxrss_bytes"], drained, code


def _done(db: Path, kind: str) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(
                "SELECT count(*) FROM files WHERE kind = ? AND state = 'done'", (kind,)
            ).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def bench_burst(ctx: Context) -> list[Result]:
    plan = ctx.plan
    universe = plan.large
    src = cached_drop(ctx.spec(universe))
    small, large = universe // 2, universe * 5
    peaks: dict[int, int] = {}
    out = []
    for count, copies in ((small, 1), (large, 5)):
        peak, drained, code = burst_once(src, copies, count, f"{count}")
        peaks[count] = peak
        log(
            f"  burst of {count:,} files: peak RSS {peak / 1e6:.0f} MB, drained in {drained:.1f}s, exit {code}"
        )
        out.append(
            Result(
                "7 burst",
                f"peak RSS, daemon absorbing a {count:,}-file burst",
                peak / 1e6,
                "MB",
                target="≤ 300 MB",
                met=peak <= 300e6,
                notes=f"`algoseek-sync run` (inotify), {universe:,}-SecId master applied first, {copies}"
                f" folder(s) of secid files copied in at once; drained in {drained:.0f}s ({count / drained:,.0f} files/s);"
                f" exit on SIGTERM {code}",
            )
        )
    ratio = peaks[large] / peaks[small]
    out.append(
        Result(
            "7 burst",
            f"peak RSS ratio {large:,}/{small:,} files",
            ratio,
            "x",
            target="≤ 1.25 (flat)",
            met=ratio <= 1.25,
            notes="same universe and master: only the number of files differs",
        )
    )
    return out


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
