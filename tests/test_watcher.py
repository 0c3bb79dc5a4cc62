"""Real watchdog observers on tmp dirs → intake → ledger: never half a file, never twice, never missed."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from algoseek_sync.state.database import Database
from algoseek_sync.state.ledger import Ledger
from algoseek_sync.watch.events import EventLoss, Hint
from algoseek_sync.watch.intake import Intake
from algoseek_sync.watch.mounts import choose_observer, is_network_fs, mount_fstype
from algoseek_sync.watch.observer import Watcher
from algoseek_sync.watch.scan import reconcile
from algoseek_sync.watch.stability import StabilityGate

GLOBS = ["*security_master*.csv", "*security_master*.csv.gz"]
STABILITY = 0.3
POLL = 0.2


def versions(db: Database, rel: str) -> list[tuple[int, int]]:
    """(size, mtime_ns) of every recorded version of ``rel``, oldest first."""
    rows = db.execute("SELECT size, mtime_ns FROM files WHERE path = ? ORDER BY id", (rel,))
    return [(r[0], r[1]) for r in rows]


class Harness:
    """The daemon's intake loop (observer + gate + ledger) on a thread, without the worker."""

    def __init__(self, drop: Path, state: Path, observer: str, queue_size: int = 10_000) -> None:
        self.drop = drop
        self.db = Database(state / "state.db")
        self.hints: queue.Queue[Hint] = queue.Queue(maxsize=queue_size)
        self.overflow = EventLoss()
        self.watcher = Watcher(drop, observer, POLL, self.hints, self.overflow)
        self.choice = self.watcher.start()
        polling = self.choice.kind == "polling"
        gate = StabilityGate(
            STABILITY,
            confirmations=2 if polling else 1,
            interval=POLL if polling else 0.05,
            close_timeout=30.0,
            capacity=queue_size,
        )
        self.intake = Intake(
            drop,
            Ledger(self.db),
            GLOBS,
            gate,
            self.hints,
            require_close=not polling,
            overflow=self.overflow,
            reconcile_every=300.0,
            min_gap=0.5,
        )
        self.stop = threading.Event()
        self._hold = threading.Event()
        self._turn = threading.Lock()  # held by the loop during each intake step
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        try:
            while not self.stop.is_set():
                with self._turn:
                    if not self._hold.is_set():
                        self.intake.step(0.05)
                        continue
                time.sleep(0.02)
        except BaseException as exc:
            self.error = exc
            raise

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """No intake step runs inside the block (one in progress finishes first); hints queue up meanwhile."""
        self._hold.set()
        with self._turn:
            pass
        try:
            yield
        finally:
            self._hold.clear()

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Around writes that pass through partial states. The polling observer has no close events:
        a partial file that stays unchanged for the stability window is taken, by design (the fake-clock
        test shows the rule), so a writer stalled by a loaded machine could expose one. The intake is
        held meanwhile, so these tests cannot depend on the writer's speed; inotify needs no hold."""
        return self.held() if self.choice.kind == "polling" else contextlib.nullcontext()

    def versions(self, rel: str) -> list[tuple[int, int]]:
        return versions(self.db, rel)

    def paths(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT path FROM files ORDER BY id")]

    def wait_for(self, cond: Callable[[], bool], timeout: float = 60.0) -> None:
        """Liveness only: a generous deadline, so a loaded machine is slow, never failed."""
        deadline = time.monotonic() + timeout
        while not cond():
            assert self.error is None, self.error
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.05)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.watcher.close()
        self.db.close()
        assert self.error is None


@contextlib.contextmanager
def running(tmp_path: Path, observer: str, queue_size: int = 10_000) -> Iterator[Harness]:
    """A harness on ``tmp_path/drop`` whose startup reconcile is done."""
    drop = tmp_path / "drop"
    drop.mkdir()
    h = Harness(drop, tmp_path / "state", observer, queue_size)
    try:
        h.wait_for(lambda: h.intake.reconciles > 0)
        yield h
    finally:
        h.close()


@pytest.fixture(params=["inotify", "polling"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with running(tmp_path, request.param) as h:
        yield h


def stat_key(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def write_slowly(path: Path, chunks: list[bytes], pause: float, check: Callable[[], None]) -> None:
    """One open file, written in bursts with pauses (like an SFTP upload); ``check`` runs in each pause."""
    with open(path, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
            time.sleep(pause)
            check()


def test_slow_upload_is_not_recorded_before_closed_and_stable(tmp_path: Path) -> None:
    """inotify: pauses longer than the stability window, yet nothing is taken before the close event
    (a slower writer only makes the pauses longer; the close is what protects)."""
    with running(tmp_path, "inotify") as harness:
        target = harness.drop / "33449.csv"
        write_slowly(
            target, [b"x" * 1000] * 3, STABILITY * 2.5, lambda: assert_not_recorded(harness, "33449.csv")
        )
        harness.wait_for(lambda: bool(harness.versions("33449.csv")))
        time.sleep(STABILITY * 2)
        assert harness.versions("33449.csv") == [stat_key(target)]
        assert stat_key(target)[0] == 3000


def test_polling_slow_upload_is_taken_a_window_after_its_last_write(tmp_path: Path) -> None:
    """Polling has no close events: a file is taken once unchanged for the window (and two more looks),
    so an upload whose pauses are shorter than the window is never taken half-written, however long it
    lasts; its pauses here outlast two looks, so the looks alone would take it.

    A fake clock, as in test_stability, over real files and a real ledger: the pauses are what the
    test says they are, whatever the machine's load.
    """
    window, look, pause = 2.0, 0.5, 1.5
    drop = tmp_path / "drop"
    drop.mkdir()
    db = Database(tmp_path / "state.db")
    gate = StabilityGate(window, confirmations=2, interval=look, close_timeout=60.0)
    intake = Intake(drop, Ledger(db), GLOBS, gate, queue.Queue(), require_close=False, min_gap=0.0)
    target, now = drop / "33449.csv", 0.0
    try:
        with open(target, "wb") as fh:
            for chunk in range(6):  # 7.5 s of upload against a window of 2 s
                if chunk:
                    while now < chunk * pause:  # the pause, looked at every poll
                        now += look
                        assert intake.check(now) == 0, f"taken half-written at {now} s"
                fh.write(b"x" * 1000)
                fh.flush()
                last_write = now
                if not chunk:
                    assert intake.reconcile(now).recorded == 0  # the first look puts it in the gate
        while not versions(db, "33449.csv"):
            assert now < last_write + 5 * window, "never taken after the writes stopped"
            now += look
            intake.check(now)
        assert now - last_write >= window
        assert versions(db, "33449.csv") == [stat_key(target)]
        assert stat_key(target)[0] == 6000
    finally:
        db.close()


def test_polling_observer_takes_an_upload_once_and_whole(tmp_path: Path) -> None:
    """The real polling observer end to end: it reports the file while it is being written, and the
    file is taken once, whole. The intake is held during the upload (see ``Harness.writing``), so no
    stall of the writer can matter; what is asserted is the outcome, not when."""
    with running(tmp_path, "polling") as harness:
        target = harness.drop / "33449.csv"
        with harness.writing(), open(target, "wb") as fh:
            for _ in range(3):
                fh.write(b"x" * 1000)
                fh.flush()
                reported = harness.hints.qsize()
                harness.wait_for(lambda seen=reported: harness.hints.qsize() > seen)
        harness.wait_for(lambda: bool(harness.versions("33449.csv")))
        harness.wait_for(lambda: harness.hints.empty() and not len(harness.intake.gate))
        assert harness.versions("33449.csv") == [stat_key(target)]
        assert stat_key(target)[0] == 3000


def assert_not_recorded(harness: Harness, rel: str) -> None:
    assert harness.versions(rel) == [], f"{rel} recorded while still being written"


def test_rename_from_temp_name_is_recorded_once_under_final_name(harness: Harness) -> None:
    temp = harness.drop / "33449.csv.part"
    write_slowly(temp, [b"y" * 500] * 3, 0.1, lambda: None)
    final = harness.drop / "33449.csv"
    temp.rename(final)
    harness.wait_for(lambda: bool(harness.versions("33449.csv")))
    time.sleep(STABILITY * 2)
    assert harness.paths() == ["33449.csv"]
    assert harness.versions("33449.csv") == [stat_key(final)]


def test_overwrite_is_a_new_version_and_delete_is_harmless(harness: Harness) -> None:
    target = harness.drop / "33449.csv"
    with harness.writing():
        target.write_bytes(b"a" * 100)
    harness.wait_for(lambda: len(harness.versions("33449.csv")) == 1)
    first = stat_key(target)
    time.sleep(0.05)
    with harness.writing():  # truncated, then written: empty for a moment
        target.write_bytes(b"b" * 150)
    harness.wait_for(lambda: len(harness.versions("33449.csv")) == 2)
    assert harness.versions("33449.csv") == [first, stat_key(target)]
    target.unlink()
    gone = harness.drop / "44444.csv"
    with harness.writing():
        gone.write_bytes(b"short-lived")
        gone.unlink()
    time.sleep(STABILITY * 3)
    assert harness.paths() == ["33449.csv", "33449.csv"]


def test_new_sub_folders_are_watched(harness: Harness) -> None:
    sub = harness.drop / "2024" / "01"
    sub.mkdir(parents=True)
    (sub / "20240102.csv").write_bytes(b"z" * 10)
    harness.wait_for(lambda: bool(harness.versions("2024/01/20240102.csv")))


def test_burst_each_version_exactly_once_and_whole(harness: Harness) -> None:
    n = 300
    with harness.writing():
        for i in range(n):
            with open(harness.drop / f"{10000 + i}.csv", "wb") as fh:
                fh.write(b"h" * 200)
                fh.flush()
                fh.write(b"t" * (i + 1))
    harness.wait_for(lambda: len(harness.paths()) >= n)
    time.sleep(STABILITY * 2)
    rows = list(harness.db.execute("SELECT path, size, count(*) FROM files GROUP BY path"))
    assert len(rows) == n
    assert all(r[2] == 1 for r in rows), "a file was recorded twice"
    assert all(r[1] == 200 + int(r[0].split(".")[0]) - 10000 + 1 for r in rows), "a partial size was recorded"


def test_full_event_queue_drops_events_and_reconcile_catches_up(tmp_path: Path) -> None:
    with running(tmp_path, "inotify", queue_size=20) as h:
        with h.held():  # a slow intake: 3 events per file cannot fit in a queue of 20
            for i in range(200):
                (h.drop / f"{20000 + i}.csv").write_bytes(b"q" * 50)
            h.wait_for(lambda: h.overflow.is_set())
        h.wait_for(lambda: len(h.paths()) >= 200)
        assert h.watcher.handler.dropped > 0
        assert h.intake.reconciles > 1
        rows = list(h.db.execute("SELECT path, count(*) FROM files GROUP BY path"))
        assert len(rows) == 200 and all(r[1] == 1 for r in rows)


def test_inotify_overflow_log_triggers_a_reconcile(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    h = Harness(drop, tmp_path / "state", "inotify")
    try:
        h.wait_for(lambda: h.intake.reconciles > 0)
        before = h.intake.reconciles
        h.watcher.stop()  # events for the next file are missed (a restart would reconcile by itself)
        (drop / "55555.csv").write_bytes(b"missed")
        time.sleep(STABILITY * 3)
        assert h.versions("55555.csv") == []
        overflow_log = logging.getLogger("watchdog.observers.inotify_c")
        overflow_log.warning("Inotify queue overflowed; filesystem events were lost")
        h.wait_for(lambda: h.intake.reconciles > before)
        h.wait_for(lambda: bool(h.versions("55555.csv")))
    finally:
        h.close()


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:40 / /mnt/vendor rw,relatime shared:20 - nfs4 server:/export rw,vers=4.2
41 22 0:41 / /mnt/sftp\\040drop rw,nosuid - fuse.sshfs user@host:/ rw,user_id=0
42 40 8:2 / /mnt/vendor/local rw - xfs /dev/sdb1 rw
"""


def test_mount_type_by_longest_prefix() -> None:
    assert mount_fstype(Path("/mnt/vendor/algoseek"), MOUNTINFO) == "nfs4"
    assert mount_fstype(Path("/mnt/vendor/local/x"), MOUNTINFO) == "xfs"
    assert mount_fstype(Path("/mnt/sftp drop/in"), MOUNTINFO) == "fuse.sshfs"
    assert mount_fstype(Path("/srv/drop"), MOUNTINFO) == "ext4"
    assert mount_fstype(Path("/mnt/vendorx"), MOUNTINFO) == "ext4"
    assert is_network_fs("nfs4") and is_network_fs("fuse.sshfs") and is_network_fs("cifs")
    assert not is_network_fs("ext4") and not is_network_fs(None)


def test_auto_picks_polling_on_network_mounts() -> None:
    assert choose_observer("auto", Path("/mnt/vendor/algoseek"), MOUNTINFO).kind == "polling"
    assert "nfs4" in choose_observer("auto", Path("/mnt/vendor/algoseek"), MOUNTINFO).reason
    assert choose_observer("auto", Path("/srv/drop"), MOUNTINFO).kind == "inotify"
    assert choose_observer("inotify", Path("/mnt/vendor/algoseek"), MOUNTINFO).kind == "inotify"
    assert choose_observer("polling", Path("/srv/drop"), MOUNTINFO).kind == "polling"


def test_auto_falls_back_to_polling_when_inotify_limits_are_exhausted(tmp_path: Path) -> None:
    def exhausted() -> object:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    watcher = Watcher(tmp_path, "auto", POLL, queue.Queue(), EventLoss(), inotify_factory=exhausted)
    try:
        choice = watcher.start()
        assert choice.kind == "polling" and "limit" in choice.reason
        assert watcher.alive()
    finally:
        watcher.close()
    strict = Watcher(tmp_path, "inotify", POLL, queue.Queue(), EventLoss(), inotify_factory=exhausted)
    with pytest.raises(OSError):
        strict.start()


def test_dead_observer_is_noticed_and_restarted(tmp_path: Path) -> None:
    watcher = Watcher(tmp_path, "polling", POLL, queue.Queue(), EventLoss())
    try:
        watcher.start()
        assert watcher.alive()
        assert watcher.observer is not None
        for emitter in list(watcher.observer.emitters):
            emitter.stop()
            emitter.join(5)
        assert not watcher.alive()
        watcher.restart()
        assert watcher.alive() and watcher.restarts == 1
    finally:
        watcher.close()


def test_reconcile_heap_does_not_grow_with_the_drop(tmp_path: Path) -> None:
    """A reconcile of 20,000 known files holds batches, not the ledger or the directory, in memory."""
    drop = tmp_path / "drop"
    drop.mkdir()
    db = Database(tmp_path / "state.db")
    ledger = Ledger(db)
    with db.transaction():
        for i in range(20_000):
            path = drop / f"{30000 + i}.csv"
            path.write_bytes(b"k")
            ledger.record(path.name, *stat_key(path), "bars")
    tracemalloc.start()
    try:
        result = reconcile(drop, ledger, GLOBS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        db.close()
    assert (result.seen, result.recorded, result.problems) == (20_000, 0, [])
    assert peak < 8e6, f"reconcile of 20,000 known files peaked at {peak / 1e6:.1f} MB of Python heap"


def test_reconcile_of_known_files_reads_no_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unchanged files are recognised by (path, size, mtime): a stat-only walk, no open()."""
    drop = tmp_path / "drop"
    (drop / "sub").mkdir(parents=True)
    db = Database(tmp_path / "state.db")
    ledger = Ledger(db)
    for i in range(2000):
        path = drop / "sub" / f"{30000 + i}.csv"
        path.write_bytes(b"k")
        size, mtime = stat_key(path)
        ledger.record(f"sub/{30000 + i}.csv", size, mtime, "bars")
    (drop / "40000.csv").write_bytes(b"new")
    gate = StabilityGate(0.0, capacity=100)
    intake = Intake(drop, ledger, GLOBS, gate, queue.Queue(), require_close=True)

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"reconcile opened {args[0]!r}")

    monkeypatch.setattr("builtins.open", no_open)
    monkeypatch.setattr("io.open", no_open)
    result = intake.reconcile(0.0)
    monkeypatch.undo()
    # only the unknown file waits in the gate
    assert (result.seen, result.recorded, len(gate)) == (2001, 0, 1)
    assert "40000.csv" in gate
    db.close()


def test_writing_hint_queued_before_lost_events_does_not_wait_for_a_lost_close(tmp_path: Path) -> None:
    """Events lost while older hints were still queued: the stale "modified" must not demand a close.

    Found by the 50,000-file burst benchmark: a few files sat in the gate for the whole close
    timeout because their close event was dropped and a queued write event came after the loss.
    """
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "33449.csv").write_bytes(b"written and closed before the loss")
    db = Database(tmp_path / "state.db")
    hints: queue.Queue[Hint] = queue.Queue()
    loss = EventLoss()
    # waiting for the close would take the hour of close_timeout; the quiet window after a loss takes
    # 1 s: the deadline below is liveness only, with room for any load
    gate = StabilityGate(STABILITY, interval=0.05, close_timeout=3600.0)
    intake = Intake(drop, Ledger(db), GLOBS, gate, hints, require_close=True, overflow=loss, min_gap=0.0)
    hints.put(Hint("modified", str(drop / "33449.csv")))  # queued; its "closed" was dropped
    loss.set()
    try:
        began = time.monotonic()
        while not intake.ledger.is_known("33449.csv", *stat_key(drop / "33449.csv")):
            assert time.monotonic() - began < 120, "still waiting for a close event that was lost"
            intake.step(0.05)
    finally:
        db.close()
