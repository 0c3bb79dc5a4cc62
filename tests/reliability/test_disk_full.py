"""Disk full on the state directory: a clear error, no corruption, ingestion resumes once space is freed.

The state directory is a small tmpfs (mounted as root; the tests skip where mounting is
not allowed), grown with ``mount -o remount,size=`` to "free space". The in-process
tests at the end inject ``sqlite3.OperationalError('database or disk is full')`` and run
everywhere.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import Sandbox
from helpers_daemon import Daemon, integrity, newest_states, stored_bars, stored_count, wait_for

SECIDS, DAYS = 300, 600
#: Too small for the whole ingest, large enough for the ledger's work before it. The state database
#: uses 16 KiB pages and SQLite checkpoints its WAL only at 1000 pages, so the WAL alone grows to
#: ~16 MB (a `run --once` reconcile of 301 new files writes ~15 MB of it); the compressed bars of
#: 300 SecIds x 600 days take ~18 MB more. (300 x 60 days fit in the 6 MB this suite used when
#: bars were stored uncompressed, once per FIGI: the disk never filled.)
FULL = "20m"


@pytest.fixture(scope="module")
def drop_and_reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple]]:
    """A generated drop and the stored bars of a clean `run --once` of it on a roomy disk."""
    from algoseek_sync.synthetic.generate import DropSpec, generate_drop

    root = tmp_path_factory.mktemp("diskfull")
    drop = root / "drop"
    generate_drop(drop, DropSpec(secids=SECIDS, days=DAYS, seed=11))
    ref = Sandbox(root, drop, root / "ref-state")
    ref.cli("run", "--once", timeout=300)
    expected = stored_bars(ref.state / "state.db")
    assert len(expected) == SECIDS * DAYS
    return drop, expected


@pytest.fixture
def small_state(sandbox: Sandbox) -> Iterator[Callable[[str], None]]:
    """Mount a tmpfs as the sandbox's state dir; yields ``resize(size)``."""
    sandbox.state.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FULL}", "tmpfs", str(sandbox.state)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); the in-process tests cover this")

    def resize(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(sandbox.state)], check=True)

    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(sandbox.state)], capture_output=True)


def use_drop(box: Sandbox, drop: Path) -> Sandbox:
    return Sandbox(box.root, drop, box.state)


def test_disk_full_during_ingest_run_once(sandbox: Sandbox, small_state, drop_and_reference) -> None:
    drop, expected = drop_and_reference
    box = use_drop(sandbox, drop)
    small_state(FULL)
    first = box.cli("run", "--once", check=False, timeout=300)
    assert first.code == 69, first.err[-2000:]  # deferred: the state database refused the write
    assert "database or disk is full" in first.err and "state_database_error" in first.err
    assert "Traceback" not in first.err
    db = box.state / "state.db"
    assert integrity(db) == "ok"
    states = newest_states(db)
    assert "done" in states.values() and set(states.values()) != {"done"}  # it stopped midway
    small_state("256m")  # space freed
    again = box.cli("run", "--once", timeout=300)
    assert again.code == 0
    assert set(newest_states(db).values()) == {"done"} and len(newest_states(db)) == SECIDS + 1
    assert integrity(db) == "ok"
    assert stored_bars(db) == expected


def _fill_during_reconcile(box: Sandbox, resize: Callable[[str], None]) -> str:
    resize("3m")  # too small even for the ledger's WAL while recording 301 versions
    first = box.cli("run", "--once", check=False, timeout=300)
    assert first.code != 0
    return first.err


def test_disk_full_during_reconcile_no_corruption_then_resumes(
    sandbox: Sandbox, small_state, drop_and_reference
) -> None:
    drop, expected = drop_and_reference
    box = use_drop(sandbox, drop)
    _fill_during_reconcile(box, small_state)
    db = box.state / "state.db"
    assert integrity(db) == "ok"
    small_state("256m")
    box.cli("run", "--once", timeout=300)
    assert set(newest_states(db).values()) == {"done"}
    assert stored_bars(db) == expected


def test_disk_full_during_reconcile_is_one_clear_line(
    sandbox: Sandbox, small_state, drop_and_reference
) -> None:
    drop, _ = drop_and_reference
    err = _fill_during_reconcile(use_drop(sandbox, drop), small_state)
    assert "Traceback" not in err
    assert "disk is full" in err


def test_disk_full_daemon_keeps_running_and_resumes(
    sandbox: Sandbox, small_state, drop_and_reference
) -> None:
    """Where the write fails is up to timing (a claim, a batch, a commit): it resumes by itself."""
    drop, expected = drop_and_reference
    box = use_drop(sandbox, drop)
    small_state(FULL)
    daemon = Daemon(box, stability="0.2").start()
    try:
        wait_for(lambda: "database or disk is full" in daemon.log(), 120, "the disk to fill up")
        assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()[-3000:]
        assert integrity(daemon.db) == "ok"
        small_state("256m")

        def all_done() -> bool:
            states = newest_states(daemon.db)
            return len(states) == SECIDS + 1 and set(states.values()) == {"done"}

        wait_for(all_done, 60, "ingestion to resume after space was freed")
        assert daemon.proc.poll() is None
    finally:
        assert daemon.stop() == 0
    assert integrity(daemon.db) == "ok"
    assert stored_bars(daemon.db) == expected


# ------------------------------------------------------------------ in-process (no mount needed)


def _inject_full(monkeypatch: pytest.MonkeyPatch, failing_calls: set[int]) -> None:
    """The embedded store's bar writes (one per batch) fail with a full disk on ``failing_calls``."""
    from algoseek_sync.backends.local import LocalBackend

    original = LocalBackend.write_bars
    calls = {"n": 0}

    def write_bars(self, batch):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] in failing_calls:
            raise sqlite3.OperationalError("database or disk is full")
        return original(self, batch)

    monkeypatch.setattr(LocalBackend, "write_bars", write_bars)


def _app(box: Sandbox):
    from algoseek_sync.app import open_app
    from algoseek_sync.config import load_settings

    env = {"ALGOSEEK_SYNC_DROP_DIR": str(box.drop), "ALGOSEEK_SYNC_STATE_DIR": str(box.state)}
    return open_app(load_settings(None, env=env))


def test_injected_disk_full_rolls_back_and_run_once_resumes(
    sandbox: Sandbox, drop_and_reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    from algoseek_sync.app import run_once

    drop, expected = drop_and_reference
    box = use_drop(sandbox, drop)
    _inject_full(monkeypatch, {2})
    app = _app(box)
    try:
        stats = run_once(app)
        assert stats.deferred
        written = stored_count(box.state / "state.db")
        assert 0 < written == sum(r.written for r in stats.results if r.outcome == "done")  # nothing partial
    finally:
        app.close()
    app = _app(box)  # a restart: recover() puts the failed batch back
    try:
        stats = run_once(app)
        assert not stats.deferred
    finally:
        app.close()
    db = box.state / "state.db"
    assert set(newest_states(db).values()) == {"done"}
    assert integrity(db) == "ok"
    assert stored_bars(db) == expected


def test_injected_disk_full_later_cycles_retry_the_batch(
    sandbox: Sandbox, drop_and_reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    from algoseek_sync.watch.scan import reconcile

    drop, _ = drop_and_reference
    box = use_drop(sandbox, drop)
    _inject_full(monkeypatch, {2})
    app = _app(box)
    try:
        reconcile(app.settings.drop.dir, app.ledger, app.settings.drop.master_glob)
        assert app.worker.cycle().deferred
        for _ in range(3):  # the daemon's worker loop: cycle again once the disk has room
            app.worker.cycle()
        counts = app.ledger.counts()["bars"]
        assert counts == {"done": SECIDS}, counts
    finally:
        app.close()
