"""Crash safety: SIGKILL `algoseek-sync run` at random moments during an ingest, restart each time.

The final store must equal a clean single `run --once` of the same drop row for row (every
chunk decoded), route the same SecIds to the same identifiers, and the ledger must show
every file done. The long variant (500 files, 22 kills) runs in
`make reliability`; a small one (60 files, 3 kills) in `make test`.
"""

from __future__ import annotations

import os
import random
import shutil
import time
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


def newest_done(db: Path, at_most: int) -> int:
    """Paths whose newest version is done (0 when the database is not there yet)."""
    states = newest_states(db)
    return min(at_most, sum(1 for state in states.values() if state == "done"))


def crash_loop(tmp_path: Path, files: int, kills: int, days: int, seed: int) -> dict[str, int]:
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
    busy_kills = 0  # kills that landed while delivered files were not all done yet
    delivered = 1
    for k in range(kills):
        daemon = Daemon(box, stability="0.2").start()
        time.sleep(rng.uniform(0.0, 1.5))  # sometimes before it is even up
        if k < len(chunks):
            deliver(src, box.drop, chunks[k], rng)  # while it runs: events, gate, worker
            delivered += len(chunks[k])
        time.sleep(rng.uniform(0.0, 1.0))
        if newest_done(box.state / "state.db", delivered) < delivered:
            busy_kills += 1
        assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()[-3000:]
        daemon.proc.kill()  # SIGKILL
        daemon.proc.wait(10)
        assert integrity(box.state / "state.db") == "ok"
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
    got = stored_bars(box.state / "state.db")
    assert len(got) == len(expected)
    assert got == expected
    assert query(daemon.db, routes) == expected_routes
    assert integrity(box.state / "state.db") == "ok"
    stuck = query(daemon.db, "SELECT count(*) FROM files WHERE state IN ('pending', 'processing')")[0][0]
    assert stuck == 0
    return {"kills": kills, "busy_kills": busy_kills, "rows": len(got)}


def test_crash_loop_small(tmp_path: Path) -> None:
    report = crash_loop(tmp_path, files=60, kills=3, days=30, seed=1)
    assert report["kills"] == 3


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_crash_loop_500_files_22_kills(tmp_path: Path) -> None:
    report = crash_loop(tmp_path, files=500, kills=22, days=120, seed=2026)
    print(f"crash loop: {report}")
    assert report["busy_kills"] >= 7, f"too few kills landed while work was outstanding: {report}"
