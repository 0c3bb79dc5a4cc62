"""systemd's sd_notify datagram protocol, without a dependency on libsystemd.

When the service runs under ``Type=notify`` systemd sets ``NOTIFY_SOCKET`` (a path, or an
abstract socket name starting with ``@``); outside systemd the variable is unset and every
call here is a no-op, so the daemon needs no separate code path.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger("algoseek_sync.notify")


class Notifier:
    """Sends ``KEY=value`` lines to the service manager; silent when there is none."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + raw[1:] if raw.startswith("@") else raw
        self._sock: socket.socket | None = None
        self._watchdog_usec = _watchdog_usec(env)
        self._warned = False

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), None when not asked for."""
        if not self.enabled or not self._watchdog_usec:
            return None
        return self._watchdog_usec / 2_000_000

    def send(self, *lines: str) -> bool:
        """Send one datagram; True when it was delivered. Errors are logged once, never raised."""
        if not self.enabled or not lines:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("sd_notify_failed", socket=self.address.replace("\0", "@"), error=str(exc))
                self._warned = True
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_usec(env: Mapping[str, str]) -> int:
    """``WATCHDOG_USEC`` when it is meant for this process (``WATCHDOG_PID`` unset or ours)."""
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return 0
    try:
        return max(0, int(env.get("WATCHDOG_USEC", "0")))
    except ValueError:
        return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())
