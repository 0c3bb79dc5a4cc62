"""Benchmark 6, reconcile: restart with 100,000 known files: time to READY=1, and bare ``scan.reconcile``.

Why: a restart re-walks the whole drop (stat-only) before it is ready; that must stay fast
and lean however many files the ledger already knows.
"""

from __future__ import annotations

import socket
import subprocess
import time
import tracemalloc
from pathlib import Path

from common import CLI, RUN, WORK, Result, cli_env, fresh, log, median, profile_top, settings_for, timer
from context import Context
from daemon_process import stop

from algoseek_sync.watch.scan import reconcile, walk


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
    from algoseek_sync.formats.names import classify
    from algoseek_sync.state.database import Database

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


def bench_reconcile(ctx: Context) -> list[Result]:
    from algoseek_sync.state.database import Database
    from algoseek_sync.state.ledger import Ledger

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
            found = reconcile(drop, ledger, globs)
        if found.recorded or found.seen != count:
            raise RuntimeError(f"reconcile saw {found.seen}, recorded {found.recorded}")
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
            readme=True,
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
