"""Importing the ``mainsequence`` SDK without letting it take over the process.

Importing it configures logging and structlog globally, replaces ``sys.excepthook``, writes
under ``~`` and (with a project id set) makes an unbounded-retry request. :func:`load_sdk`
imports it once, with its home-directory paths pointed into the state directory, the project
lookup deferred until our own transport is installed, and the daemon's logging, structlog
configuration and excepthook put back afterwards. :func:`contained` does the same for the
structlog context variables the SDK binds while it runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import structlog

from algoseek_sync.backends.mainsequence import env
from algoseek_sync.backends.mainsequence.transport import BoundedAdapter, TrafficCounters, install

SDK_LOGGER = "mainsequence"
_LOCK = threading.Lock()
_LOADED: Sdk | None = None


@dataclass
class Sdk:
    """The imported client plus the adapter that bounds its traffic."""

    client: ModuleType
    models_tdag: ModuleType
    utils: ModuleType
    exceptions: ModuleType
    adapter: BoundedAdapter
    counters: TrafficCounters


def sdk_dirs(state_dir: Path) -> tuple[Path, Path]:
    """(TDAG root, stand-in home) for the SDK, both under the state directory."""
    base = Path(state_dir) / "mainsequence"
    return base / "tdag", base / "home"


@contextlib.contextmanager
def _preserved_process_state() -> Iterator[None]:
    """Put back logging, structlog, contextvars and the excepthook however the body changes them."""
    structlog_config = structlog.get_config()
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    context = structlog.contextvars.get_contextvars()
    hook = sys.excepthook
    try:
        yield
    finally:
        sys.excepthook = hook
        root.handlers[:] = root_handlers
        root.setLevel(root_level)
        structlog.configure(**structlog_config)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**context)


@contextlib.contextmanager
def contained() -> Iterator[None]:
    """Run SDK code without leaking its structlog context variables into the daemon's logs."""
    context = structlog.contextvars.get_contextvars()
    try:
        yield
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**context)


def _quiet_sdk_logger() -> None:
    """Drop the SDK's own console/file handlers and silence it below CRITICAL.

    The backend reports every failure itself as one redacted line; the SDK would add two
    tracebacks per failed run attempt. Set ``logging.getLogger("mainsequence")`` to ERROR
    to see them again; they then reach the daemon's handlers.

    Each DataNode run re-installs the SDK's tracer provider; OpenTelemetry's warning about
    that is noise, so its logger is raised to ERROR as well.
    """
    sdk_logger = logging.getLogger(SDK_LOGGER)
    for handler in list(sdk_logger.handlers):
        sdk_logger.removeHandler(handler)
        handler.close()
    sdk_logger.setLevel(logging.CRITICAL)
    sdk_logger.propagate = True
    logging.getLogger("opentelemetry.trace").setLevel(logging.ERROR)


def _import(state_dir: Path) -> dict[str, ModuleType]:
    tdag_root, home = sdk_dirs(state_dir)
    tdag_root.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["TDAG_ROOT_PATH"] = str(tdag_root)
    saved: dict[str, str | None] = {k: os.environ.get(k) for k in ("HOME", env.PROJECT_ID)}
    os.environ["HOME"] = str(home)
    os.environ[env.PROJECT_ID] = ""
    try:
        with _preserved_process_state():
            import mainsequence.client as client
            import mainsequence.client.exceptions as exceptions
            import mainsequence.client.models_tdag as models_tdag
            import mainsequence.client.utils as utils
            import mainsequence.tdag.data_nodes.data_nodes  # noqa: F401 - import-time side effects, contained here

            _quiet_sdk_logger()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return {"client": client, "models_tdag": models_tdag, "utils": utils, "exceptions": exceptions}


def load_sdk(state_dir: Path, connect_timeout: float, read_timeout: float) -> Sdk:
    """Import the SDK once per process (contained) and bound its HTTP traffic; later calls reuse it."""
    global _LOADED
    with _LOCK:
        if _LOADED is None:
            modules = _import(state_dir)
            counters = TrafficCounters()
            adapter = BoundedAdapter(connect_timeout, read_timeout, counters)
            install(modules["utils"].session, adapter)
            _LOADED = Sdk(adapter=adapter, counters=counters, **modules)
        _LOADED.adapter.connect_timeout = connect_timeout
        _LOADED.adapter.read_timeout = read_timeout
        return _LOADED


def attach_project(sdk: Sdk) -> Any:
    """Resolve MAIN_SEQUENCE_PROJECT_ID now (the import skipped it) and set the session's data source."""
    with contained():
        models = sdk.models_tdag
        project = sdk.client.Project.get(pk=int(os.environ[env.PROJECT_ID]))
        resolution = models._resolve_local_pod_project(refresh=True)
        if resolution.project is None:
            raise RuntimeError(env.redact(resolution.detail or "project lookup failed"))
        models.SessionDataSource.set_remote_db()
        return project
