"""sd_notify: a fake NOTIFY_SOCKET receives READY, STATUS, WATCHDOG pings and STOPPING."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from algoseek_sync.service.notify import Notifier
from conftest import Sandbox
from helpers_daemon import Daemon, wait_for


class FakeSystemd:
    """A unix datagram socket collecting every notification."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.extend(data.decode().splitlines())

    def count(self, prefix: str) -> int:
        return sum(1 for m in list(self.messages) if m.startswith(prefix))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """Unix socket paths are limited to 107 bytes: pytest's tmp_path can be longer."""
    path = Path(tempfile.mkdtemp(prefix="asn-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_notifier_path_socket_and_no_socket(short_dir: Path) -> None:
    fake = FakeSystemd(str(short_dir / "notify"))
    try:
        notifier = Notifier({"NOTIFY_SOCKET": str(short_dir / "notify"), "WATCHDOG_USEC": "4000000"})
        assert notifier.watchdog_interval() == 2.0
        assert notifier.ready("starting") and notifier.status("queue 0;\nlast file x") and notifier.stopping()
        wait_for(lambda: fake.count("STOPPING=1"), 5)
        assert fake.messages == ["READY=1", "STATUS=starting", "STATUS=queue 0; last file x", "STOPPING=1"]
        notifier.close()
    finally:
        fake.close()
    silent = Notifier({})
    assert not silent.enabled and not silent.ready() and silent.watchdog_interval() is None
    other = Notifier(
        {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    )
    assert other.watchdog_interval() is None  # the watchdog is meant for another process
    assert not Notifier({"NOTIFY_SOCKET": str(short_dir / "missing")}).send("READY=1")


def test_daemon_talks_to_systemd_on_an_abstract_socket(
    sandbox: Sandbox, samples: object, short_dir: Path
) -> None:
    name = f"algoseek-sync-test-{os.getpid()}-{short_dir.name}"
    fake = FakeSystemd("\0" + name)
    daemon = Daemon(sandbox, NOTIFY_SOCKET="@" + name, WATCHDOG_USEC="1000000")
    try:
        daemon.start().wait_ready()
        wait_for(lambda: fake.count("READY=1"), 30, "READY=1")
        wait_for(lambda: fake.count("WATCHDOG=1") >= 3, 30, "repeated WATCHDOG=1")
        sandbox.put("33449.csv", b"SecId,TradeDate\n")  # any file: STATUS reports the last one
        wait_for(lambda: any("last file 33449.csv" in m for m in fake.messages), 30, "STATUS with last file")
        assert fake.count("STATUS=") >= 2
        assert fake.count("READY=1") == 1  # pings may precede it: a long first reconcile must not be killed
        assert daemon.stop() == 0
        wait_for(lambda: fake.count("STOPPING=1"), 5, "STOPPING=1")
    finally:
        daemon.kill()
        fake.close()


def test_dead_observer_is_not_hidden(sandbox: Sandbox, short_dir: Path) -> None:
    """The drop directory disappears: the observer dies, restarts fail, the daemon exits non-zero."""
    fake = FakeSystemd(str(short_dir / "notify"))
    daemon = Daemon(sandbox, NOTIFY_SOCKET=str(short_dir / "notify"), WATCHDOG_USEC="1000000")
    try:
        daemon.start().wait_ready()
        wait_for(lambda: fake.count("WATCHDOG=1") >= 1, 30, "WATCHDOG=1")
        shutil.rmtree(sandbox.drop)
        code = daemon.proc.wait(30)  # type: ignore[union-attr]
        assert code == 70, daemon.log()
        assert '"observer_died"' in daemon.log() and '"observer_keeps_dying"' in daemon.log()
        assert fake.count("STOPPING=1")
    finally:
        daemon.kill()
        fake.close()
