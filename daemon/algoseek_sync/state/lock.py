"""The single-writer lock: whoever holds ``<state>/worker.lock`` is the only writer.

``run`` holds it for its lifetime; ``reprocess`` checks it to decide between handing
work to the running daemon (through the ledger) and doing the work itself.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from algoseek_sync.errors import ConfigError


class WorkerLock:
    """An advisory ``flock`` on a file in the state directory, released on close or process exit."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "worker.lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting; False when another process holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise ConfigError(
                f"configuration error: 'state.dir' {self.path.parent}: cannot create the worker lock: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def held_elsewhere(self) -> bool:
        """True when another live process holds the lock (a daemon is running)."""
        if self._fd is not None:
            return False
        try:  # read-only: `status` may run as a user who cannot write the state directory
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WorkerLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
