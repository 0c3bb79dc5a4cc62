"""Crash safety: SIGKILL `algoseek-sync run` at random moments during an ingest, restart each time.

Some kills are aimed: the test waits until the ledger shows a batch of bar files claimed
(``processing``) and kills then. Whether a kill landed while a batch was in flight is read from the ledger after the
kill, not assumed: SIGKILL leaves the claimed versions ``processing`` exactly when the daemon died
between claiming a batch and recording how it ended. After the last restart every file must be
done exactly once (those caught in flight claimed again), the store must equal a clean single
`run --once` of the same drop row for row (every chunk decoded), and route the same SecIds to the
same identifiers. The long variant (500 files, 22 kills) runs in `make reliability`; a small one
(60 files, 3 kills, all aimed) in `make test`.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import Sandbox
from helpers_daemon import Daemon, integrity, newest_states, query, stored_bars, wait_for


def generate(root: Path, secids: int, days: int):
    from algoseek_sync.synthetic.generate import DropSpec, generate_drop

    return generate_drop(root, DropSpec(secids=secids, days=days, seed=7))


def deliver(src: Path, drop: Path, paths: list[Path], rng: random.Random) -> None:
    """Copy files into the drop: half written in place (then closed), half renamed into place."""
    for path in paths:
        rel = path.relative_to(src)
        target = drop / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rng.random() < 0.5:
            shutil.copyfile(path, target)
        else:
            tmp = target.with_name(target.name + ".part")
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)


#: versions a batch claimed (``claimed_at``: the daemon's wall clock) and has not recorded the end of
IN_FLIGHT = "SELECT path, kind FROM files WHERE state = 'processing' AND claimed_at >= ?"


def in_flight(db: Path, since: float) -> dict[str, str]:
    """path → kind of the versions claimed since ``since`` and still ``processing``.

    Versions a previous kill left ``processing`` keep their older ``claimed_at`` until the next
    daemon's recovery queues them again: only claims of the daemon started at ``since`` count.
    """
    return dict(query(db, IN_FLIGHT, (since,)))


def await_a_bar_batch(db: Path, since: float, timeout: float) -> None:
    """Return as soon as the ledger shows bar files claimed since ``since`` in flight, or after ``timeout``.

    Polled with a short interval and a connection kept open: a small batch is in flight briefly.
    """
    deadline = time.monotonic() + timeout
    conn: sqlite3.Connection | None = None
    try:
        while time.monotonic() < deadline:
            if conn is None and db.exists():
                conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
            if conn is not None:
                try:
                    if "bars" in dict(conn.execute(IN_FLIGHT, (since,))).values():
                        return
                except sqlite3.OperationalError:  # the ledger's tables are not created yet
                    pass
            time.sleep(0.002)
    finally:
        if conn is not None:
            conn.close()


@dataclass
class CrashReport:
    kills: int = 0
    aimed: int = 0
    #: kills after which the ledger held versions ``processing``: a batch was in flight
    mid_batch: int = 0
    #: of those, kills that caught bar files in flight (their rows on their way to the store)
    mid_bars: int = 0
    #: the paths caught in flight by those kills
    caught: set[str] = field(default_factory=set)

    def __str__(self) -> str:
        return (
            f"{self.kills} kills ({self.aimed} aimed): {self.mid_batch} with a batch in flight,"
            f" {self.mid_bars} with bar files in flight; {len(self.caught)} files caught in flight"
        )


def crash_loop(tmp_path: Path, files: int, kills: int, days: int, seed: int, aim: float) -> CrashReport:
    """Deliver ``files`` SecId files over ``kills`` daemon lives, SIGKILL each (a share ``aim`` of the
    kills aimed at an in-flight batch), then let one last daemon finish and compare with a clean run."""
    rng = random.Random(seed)
    src = tmp_path / "src"
    manifest = generate(src, files, days)
    # the reference: one clean run of the whole drop
    ref = Sandbox(tmp_path / "ref", src, tmp_path / "ref" / "state")
    ref.root.mkdir()
    ref.cli("run", "--once", timeout=600)
    expected = stored_bars(ref.state / "state.db")
    assert len(expected) == files * days  # stored once per SecId, whatever its FIGIs
    routes = "SELECT secid, unique_identifier, kind, is_latest, active FROM secid_assets ORDER BY 1, 2"
    expected_routes = query(ref.state / "state.db", routes)
    assert len(expected_routes) > files  # some SecIds have several FIGIs: all see the same rows

    box = Sandbox(tmp_path / "crash", tmp_path / "crash" / "drop", tmp_path / "crash" / "state")
    box.drop.mkdir(parents=True)
    shutil.copyfile(manifest.master_path, box.drop / manifest.master_path.name)
    bar_paths = list(manifest.bar_paths)
    rng.shuffle(bar_paths)
    per_round = -(-len(bar_paths) // (kills + 1))
    chunks = [bar_paths[i : i + per_round] for i in range(0, len(bar_paths), per_round)]
    report = CrashReport()
    db = box.state / "state.db"
    for k in range(kills):
        born = time.time()
        daemon = Daemon(box, stability="0.2").start()
        time.sleep(rng.uniform(0.0, 1.5))  # sometimes before it is even up
        if k < len(chunks):
            deliver(src, box.drop, chunks[k], rng)  # while it runs: events, gate, worker
        if rng.random() < aim:
            report.aimed += 1
            await_a_bar_batch(db, born, 60)
        else:
            time.sleep(rng.uniform(0.0, 1.0))
        assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()[-3000:]
        daemon.proc.kill()  # SIGKILL
        daemon.proc.wait(10)
        report.kills += 1
        caught = in_flight(db, born)
        if caught:
            report.mid_batch += 1
            report.mid_bars += "bars" in caught.values()
            report.caught.update(caught)
        assert integrity(db) == "ok"
    for chunk in chunks[kills:]:
        deliver(src, box.drop, chunk, rng)
    daemon = Daemon(box, stability="0.2").start()
    try:
        daemon.wait_ready()

        def all_done() -> bool:
            states = newest_states(daemon.db)
            return len(states) == files + 1 and set(states.values()) == {"done"}

        wait_for(all_done, 300, "every file done after the crash loop")
    finally:
        assert daemon.stop() == 0
    # every file done exactly once: one done version per path, the drop's paths and no others
    done = dict(query(db, "SELECT path, count(*) FROM files WHERE state = 'done' GROUP BY path"))
    delivered = {p.relative_to(src).as_posix() for p in [manifest.master_path, *manifest.bar_paths]}
    assert set(done) == delivered and set(done.values()) == {1}, done
    assert query(db, "SELECT count(*) FROM files WHERE state IN ('pending', 'processing')") == [(0,)]
    # the versions a kill caught in flight were claimed again after the restart, and finished
    attempts = dict(query(db, "SELECT path, attempts FROM files WHERE state = 'done'"))
    again = {path: attempts.get(path) for path in sorted(report.caught)}
    assert all(n is not None and n >= 2 for n in again.values()), again
    # exact stored values, routed as in the clean run
    got = stored_bars(db)
    assert len(got) == len(expected)
    assert got == expected
    assert query(db, routes) == expected_routes
    assert integrity(db) == "ok"
    return report


def test_crash_loop_small(tmp_path: Path) -> None:
    report = crash_loop(tmp_path, files=60, kills=3, days=30, seed=1, aim=1.0)
    print(f"crash loop: {report}")
    assert report.mid_bars >= 1, f"no kill landed while a batch of bar files was in flight: {report}"


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_crash_loop_500_files_22_kills(tmp_path: Path) -> None:
    report = crash_loop(tmp_path, files=500, kills=22, days=120, seed=2026, aim=0.5)
    print(f"crash loop: {report}")
    assert report.mid_bars > report.aimed // 2, (
        f"too few kills landed while bar files were in flight: {report}"
    )
