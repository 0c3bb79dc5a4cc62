"""Benchmark 7, burst: peak RSS of the running daemon absorbing a burst of files, small vs 10x.

Why: a burst of events must not grow memory with the number of files (hints are queued,
files are read one batch at a time).
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from common import BENCH, CLI, RUN, Result, cached_drop, cli_env, fresh, log
from context import Context
from daemon_process import stop, wait_ready


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
    small, large = plan.burst_small, plan.burst_small * 10
    peaks: dict[int, int] = {}
    out = []
    for count in (small, large):
        copies = -(-count // universe)
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
