"""Benchmark 4, latency: writer closes a file → row readable, with ``algoseek-sync run`` watching.

Why: files must be visible soon after the stability window, both to a reader of the
database and to the ``bars`` command.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

from common import CLI, RUN, Result, cli_env, fresh, gz, percentile, spec_for
from context import Context
from daemon_process import stop, wait_ready

from algoseek_sync.synthetic.generate import bar_rows, write_master


class Poller(threading.Thread):
    """Polls the state database read-only for SecIds appearing in the store (``bar_chunks``)."""

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
                    "SELECT DISTINCT secid FROM bar_chunks WHERE secid BETWEEN ? AND ?", (lo, hi)
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
            "4 latency",
            "close → DB-visible p50",
            percentile(lat, 50),
            "s",
            samples=lat,
            notes=common_note,
            readme=True,
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
