"""Shared pieces of the benchmark harness: machine facts, timing, drops, settings, results.

Everything the benchmarks write goes below ``bench/work/`` (git-ignored). Generated
drops are cached there by spec (the generator is deterministic), and hard-link copied
into a fresh working directory per run, so a re-delivery never touches the cache.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import io
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / "work"
CACHE = WORK / "cache"
RUN = WORK / "run"
VENV_BIN = Path(sys.executable).parent
CLI = VENV_BIN / "algoseek-sync"
#: the version of the benchmarks' definitions, written into results.json: bumped when a row's meaning
#: changes (e.g. 2: floors on all cores, CPU seconds, import floor without the package), so a README
#: table made from an older run says it was measured under older definitions
HARNESS = 2

sys.path.insert(0, str(REPO / "daemon"))

from algoseek_sync.synthetic.generate import Aggregation, DropSpec, bar_rows, generate_drop  # noqa: E402


# --------------------------------------------------------------------------- machine
def machine() -> dict[str, Any]:
    """CPU model, cores, RAM, Python and date: the context every number needs."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    except OSError:
        pass
    import pandas
    import pyarrow

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "ram_gb": round(ram / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pyarrow": pyarrow.__version__,
        "pandas": pandas.__version__,
        "sqlite": __import__("sqlite3").sqlite_version,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_avg_at_start": load_average(),
        "daemon_at_start": daemon_version(),
    }


def daemon_version() -> str:
    """The commit the daemon code is at, ``+dirty`` with uncommitted changes under daemon/.

    Why: other engineers commit to this tree while a long run goes on; a run whose start and
    end differ measured more than one version of the daemon.
    """
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "daemon"], capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages (other engineers' tests share the 2 cores)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return [0.0, 0.0, 0.0]


# --------------------------------------------------------------------------- timing
@dataclass
class Timing:
    wall: float
    cpu: float


@contextmanager
def timer() -> Iterator[Timing]:
    """Wall and process-CPU seconds of a block (CPU is less sensitive to a noisy neighbour)."""
    t = Timing(0.0, 0.0)
    w0, c0 = time.perf_counter(), time.process_time()
    yield t
    t.wall, t.cpu = time.perf_counter() - w0, time.process_time() - c0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): with 100 samples p99 is the 99th smallest."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def profile_top(fn: Callable[[], Any], limit: int = 15, sort: str = "cumulative") -> tuple[Any, str]:
    """Run ``fn`` under cProfile; return its result and the top entries by ``sort`` (cumulative time)."""
    prof = cProfile.Profile()
    result = prof.runcall(fn)
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs().sort_stats(sort)
    stats.print_stats(limit)
    text = out.getvalue()
    body = text[text.find("ncalls") :] if "ncalls" in text else text
    return result, body.rstrip()


# --------------------------------------------------------------------------- drops
def spec_for(secids: int, days: int, aggregation: Aggregation = "secid", **extra: Any) -> DropSpec:
    """The benchmark drop: primary-exchange adjusted, .csv.gz, multi-FIGI; a file per SecId unless
    ``aggregation="tradedate"`` (a whole-market file per day, as many deliveries are)."""
    return DropSpec(
        secids=secids,
        days=days,
        schema="primary-adjusted",
        aggregation=aggregation,
        compression="gz",
        **extra,
    )


def cached_drop(spec: DropSpec) -> Path:
    """Generate ``spec`` once into the cache (deterministic), return its directory."""
    key = f"{spec.schema}-{spec.aggregation}-{spec.compression}-{spec.secids}x{spec.days}-s{spec.seed}"
    root = CACHE / key
    marker = root / ".complete.json"
    if marker.exists() and json.loads(marker.read_text()) == asdict(spec):
        return root
    if root.exists():
        shutil.rmtree(root)
    began = time.perf_counter()
    generate_drop(root, spec, workers=min(2, os.cpu_count() or 1))
    marker.write_text(json.dumps(asdict(spec)))
    log(
        f"  generated {spec.secids} SecIds x {spec.days} days into {root} in {time.perf_counter() - began:.1f}s"
    )
    return root


def link_copy(src: Path, dst: Path) -> Path:
    """Hard-link copy of a drop (cheap); files must be replaced, never rewritten in place."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, copy_function=os.link, ignore=shutil.ignore_patterns(".complete.json"))
    return dst


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def gz(text: str) -> bytes:
    """gzip container, level 1 (as the generator writes)."""
    return zlib.compress(text.encode(), 1, wbits=31)


def redeliver(drop: Path, spec: DropSpec, secid: int, dates: list[str]) -> Path:
    """A re-delivered SecId file (its whole history + new days), renamed into place like SFTP."""
    final = drop / f"{secid}.csv.gz"
    tmp = drop / f".{secid}.csv.gz.part"
    with open(tmp, "wb") as fh:
        fh.write(gz(bar_rows(spec, secid, dates)))
    os.replace(tmp, final)
    return final


def drop_bytes(drop: Path) -> tuple[int, int]:
    """(files, compressed bytes) of the bar files in a drop."""
    files = size = 0
    for path in drop.rglob("*.csv*"):
        if "security_master" not in path.name:
            files += 1
            size += path.stat().st_size
    return files, size


# --------------------------------------------------------------------------- settings / env
def settings_for(drop: Path, state: Path, **env: str):
    """Settings as the CLI would load them from the environment (no config file)."""
    from algoseek_sync.config import load_settings

    base = {"ALGOSEEK_SYNC_DROP_DIR": str(drop), "ALGOSEEK_SYNC_STATE_DIR": str(state)}
    base.update(env)
    return load_settings(None, env=base)


def quiet_logging() -> None:
    """Warnings only: per-file info lines would dominate in-process timings."""
    from algoseek_sync.logging import configure_logging

    configure_logging("warning", "json")


def cli_env(drop: Path, state: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALGOSEEK_SYNC_", "NOTIFY_SOCKET"))}
    env.update(
        ALGOSEEK_SYNC_DROP_DIR=str(drop),
        ALGOSEEK_SYNC_STATE_DIR=str(state),
        ALGOSEEK_SYNC_LOG_FORMAT="json",
        ALGOSEEK_SYNC_LOG_LEVEL="warning",
        PYTHONPATH=str(REPO / "daemon"),
    )
    env.update(extra)
    return env


QUALITY_OFF = "[quality]\nenabled = false\n"


def quality_off_env(where: Path) -> dict[str, str]:
    """Environment for a CLI run with the data-quality checks switched off (a config file)."""
    config = where / "quality-off.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(QUALITY_OFF)
    return {"ALGOSEEK_SYNC_CONFIG": str(config)}


# --------------------------------------------------------------------------- processes
@dataclass
class Run:
    """One CLI process: exit code, wall seconds, peak RSS and CPU seconds (when measured), its output."""

    code: int
    seconds: float
    maxrss: int = 0
    stderr: str = ""
    stdout: str = ""
    cpu: float = 0.0  # user + sys of the process and its waited-for children, all threads

    def count(self, outcome: str) -> int:
        """A count from ``run --once``'s summary line ("done 12", "wrote 3 row(s)")."""
        found = re.search(rf"\b{outcome} (\d+)", self.stderr)
        return int(found.group(1)) if found else -1


def run_process(args: list[str], env: dict[str, str] | None = None) -> Run:
    """Wall time of a whole process, started from this one (output captured)."""
    began = time.perf_counter()
    proc = subprocess.run(args, env=env, capture_output=True, text=True)
    return Run(proc.returncode, time.perf_counter() - began, stderr=proc.stderr, stdout=proc.stdout)


def run_measured(args: list[str], env: dict[str, str]) -> Run:
    """A whole process with its peak RSS, started through ``bench/rss.py``.

    Why the detour: ``ru_maxrss`` of a child forked straight from this (large) process would
    include this process's own memory at fork time; forked from a small interpreter it is
    the command's own.
    """
    proc = subprocess.run(
        [sys.executable, str(BENCH / "rss.py"), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    cpu = report["user"] + report["sys"]
    return Run(report["code"], report["seconds"], report["maxrss_bytes"], proc.stderr, cpu=cpu)


def run_once_cli(drop: Path, state: Path, cli: tuple[str, ...] = (str(CLI),), **env: str) -> Run:
    """``algoseek-sync run --once`` (or ``cli`` run --once) as its own process, peak RSS and CPU
    measured; a non-zero exit raises."""
    run = run_measured([*cli, "run", "--once"], cli_env(drop, state, **env))
    if run.code != 0:
        raise RuntimeError(f"run --once exited {run.code}: {run.stderr[-1500:]}")
    return run


# --------------------------------------------------------------------------- results
@dataclass
class Result:
    benchmark: str
    metric: str
    median: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    notes: str = ""
    samples: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    #: shown in the README's table too (rows with a target always are): see bench/tables.py
    readme: bool = False

    @classmethod
    def bounded(
        cls, benchmark: str, metric: str, value: float, unit: str, limit: float, target: str = "", **kw: Any
    ) -> Result:
        """A result whose goal is an upper bound: met when ``value <= limit``."""
        return cls(benchmark, metric, value, unit, target=target or f"≤ {limit:g}", met=value <= limit, **kw)

    def cell(self) -> str:
        if self.median is None:
            return "n/a"
        v = self.median
        if self.unit == "s" and v < 1:
            return f"{v * 1000:.1f} ms"
        if abs(v) >= 1000:
            return f"{v:,.0f} {self.unit}".strip()
        if abs(v) >= 100:
            return f"{v:.0f} {self.unit}".strip()
        return f"{v:.3g} {self.unit}".strip()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
