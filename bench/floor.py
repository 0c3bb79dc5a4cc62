"""The parsing floor: an independent reader of a drop's bar files (gzip + ``pyarrow.csv.read_csv``,
one thread, nothing stored), as whole processes like the backfill it is compared with.

Why processes: the daemon parses on two threads while it writes on a third, so a one-thread
floor flatters it on a 2-core machine. :func:`read_floor` starts one reader process per share
of the files, all at once (one per core for the all-core floor, one for the one-thread floor),
and reports their wall time and their CPU seconds (user + sys, from wait4). Interpreter start-up
is included, as it is in the backfill's whole-process time.

As a script, one reader: ``python bench/floor.py DROP SHARE SHARES`` reads every ``SHARES``-th
bar file from the ``SHARE``-th on and prints what it saw as JSON. Standard library and pyarrow
only, so the floor's processes import nothing of the project.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple


class Sizes(NamedTuple):
    """What one pass over (a share of) the drop's bar files saw."""

    files: int
    rows: int
    gz_bytes: int
    csv_bytes: int


@dataclass(frozen=True)
class FloorRun:
    """One floor measurement: what was read, wall seconds, CPU seconds of all its processes."""

    sizes: Sizes
    wall: float
    cpu: float
    processes: int


def cores() -> int:
    """The cores this process may run on (what an all-core reader can use)."""
    return len(os.sched_getaffinity(0))


def bar_files(drop: Path) -> list[Path]:
    """The drop's bar files (per-SecId or whole-market daily), sorted; the master excluded."""
    return sorted(p for p in drop.glob("*.csv.gz") if "security_master" not in p.name)


def read_share(drop: Path, share: int, shares: int) -> Sizes:
    """gzip + one-thread pyarrow CSV read of every ``shares``-th bar file from the ``share``-th, nothing kept."""
    import pyarrow.csv as pacsv

    options = pacsv.ReadOptions(use_threads=False)
    paths = bar_files(drop)[share::shares]
    rows = compressed = plain = 0
    for path in paths:
        raw = path.read_bytes()
        data = gzip.decompress(raw)
        rows += pacsv.read_csv(io.BytesIO(data), read_options=options).num_rows
        compressed += len(raw)
        plain += len(data)
    return Sizes(len(paths), rows, compressed, plain)


def read_floor(drop: Path, processes: int) -> FloorRun:
    """``processes`` reader processes over interleaved shares of the bar files, started together."""
    began = time.perf_counter()
    children = [
        subprocess.Popen(
            [sys.executable, __file__, str(drop), str(k), str(processes)], stdout=subprocess.PIPE, text=True
        )
        for k in range(processes)
    ]
    parts, cpu = [], 0.0
    for child in children:
        assert child.stdout is not None
        out = child.stdout.read()
        child.stdout.close()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise RuntimeError(f"floor reader {child.args} exited {child.returncode}")
        cpu += usage.ru_utime + usage.ru_stime
        parts.append(Sizes(**json.loads(out)))
    wall = time.perf_counter() - began
    return FloorRun(Sizes(*(sum(column) for column in zip(*parts, strict=True))), wall, cpu, processes)


if __name__ == "__main__":
    print(json.dumps(read_share(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))._asdict()))
