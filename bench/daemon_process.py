"""Waiting for a daemon subprocess's READY=1 and stopping it: the benchmarks that run ``algoseek-sync run``."""

from __future__ import annotations

import signal
import socket
import subprocess


def stop(proc: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM (a clean stop, whose exit code the benchmarks report), SIGKILL after ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def wait_ready(sock: socket.socket, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Block until READY=1 arrives on the fake NOTIFY_SOCKET ``sock``: measurements start from a ready daemon."""
    sock.settimeout(timeout)
    while True:
        msg = sock.recv(4096).decode()
        if "READY=1" in msg.split("\n"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited {proc.returncode}")
