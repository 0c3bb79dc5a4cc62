"""Disk full on the state directory: a clear error, no corruption, ingestion resumes once space is freed.

The state directory is a small tmpfs, mounted in a mount namespace of the test's own (the host's
mounts are never touched, and the tmpfs vanishes with the namespace), grown with
``mount -o remount,size=`` to "free space". That takes root (CAP_SYS_ADMIN); where it is
missing the tests skip naming it, and under CI (tests/conftest.py) that skip is a failure. The
in-process tests at the end inject ``sqlite3.OperationalError('database or disk is full')``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from reliability_helpers import private_mount_namespace

from conftest import Sandbox
from helpers_daemon import Daemon, integrity, newest_states, query, stored_bars, stored_count, wait_for

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
    """The sandbox's state dir on a tmpfs of ``FULL`` in a private mount namespace; yields ``resize(size)``.

    The test body, and the CLI and daemon processes it starts, run inside that namespace.
    """
    sandbox.state.mkdir(parents=True, exist_ok=True)

    def mount(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["mount", *args, str(sandbox.state)], capture_output=True, text=True)

    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(private_mount_namespace())
        except OSError as exc:
            pytest.skip(f"a private mount namespace for the tmpfs state directory needs CAP_SYS_ADMIN: {exc}")
        mounted = mount("-t", "tmpfs", "-o", f"size={FULL}", "tmpfs")
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs in a private mount namespace: {mounted.stderr.strip()}")

        def resize(size: str) -> None:
            done = mount("-o", f"remount,size={size}")
            assert done.returncode == 0, f"remount,size={size}: {done.stderr}"

        yield resize


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


#: Bytes left free on the state tmpfs before a reconcile: room for a whole run of an empty drop (the
#: ledger's 32 KiB -shm and a few 16 KiB WAL frames; 40 KiB is too little), far from enough to record
#: the drop's 301 versions (~170 KiB of WAL; they fit in 200 KiB).
RECONCILE_ROOM = 112 * 1024


def _fill_during_reconcile(box: Sandbox) -> tuple[str, Path]:
    """Create the ledger, fill the disk up to ``RECONCILE_ROOM``, `run --once`: it fails recording versions.

    Returns the run's stderr and the ballast file (delete it to free the space).
    """
    empty = Sandbox(box.root, box.root / "empty-drop", box.state)
    empty.drop.mkdir()
    empty.cli("run", "--once")  # the ledger exists, with nothing in it
    free = os.statvfs(box.state)
    ballast = box.state / "ballast"
    ballast.write_bytes(bytes(free.f_bavail * free.f_frsize - RECONCILE_ROOM))
    control = empty.cli("run", "--once", check=False)
    assert control.code == 0, f"the room left does not even hold a run of an empty drop:\n{control.err}"
    first = box.cli("run", "--once", check=False, timeout=300)
    assert first.code == 69, first.err[-2000:]  # deferred: the state database refused the write
    recorded = query(box.state / "state.db", "SELECT count(*) FROM files")
    assert recorded == [(0,)], recorded  # recording the versions failed, and was rolled back whole
    return first.err, ballast


def test_disk_full_during_reconcile_no_corruption_then_resumes(
    sandbox: Sandbox, small_state, drop_and_reference
) -> None:
    drop, expected = drop_and_reference
    box = use_drop(sandbox, drop)
    _, ballast = _fill_during_reconcile(box)
    db = box.state / "state.db"
    assert integrity(db) == "ok"
    ballast.unlink()  # space freed, and room for the whole ingest
    small_state("256m")
    box.cli("run", "--once", timeout=300)
    states = newest_states(db)
    assert len(states) == SECIDS + 1 and set(states.values()) == {"done"}
    assert integrity(db) == "ok"
    assert stored_bars(db) == expected


def test_disk_full_during_reconcile_is_one_clear_line(
    sandbox: Sandbox, small_state, drop_and_reference
) -> None:
    drop, _ = drop_and_reference
    err, _ = _fill_during_reconcile(use_drop(sandbox, drop))
    assert "Traceback" not in err
    said = [line for line in err.splitlines() if not line.startswith("{")]  # all but the JSON log
    assert len(said) == 1 and said[0].startswith("algoseek-sync: state database error: "), said
    assert "database or disk is full" in said[0]


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
