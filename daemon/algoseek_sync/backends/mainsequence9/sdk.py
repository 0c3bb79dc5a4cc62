"""Importing the 9.x SDK (``mainsequence``, ``metatables``, ``msm``) without letting it take over the process.

Like the 3.x line, importing the SDK configures logging and structlog globally, replaces
``sys.excepthook`` and writes under ``~``; the same containment (:mod:`..mainsequence.sdk`) puts
the daemon's state back. New on 9.x: the project is resolved from a Git checkout, frozen once
per process, so :func:`load_sdk` freezes it from the configured checkout (not the daemon's
working directory).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from algoseek_sync.backends.mainsequence.sdk import _preserved_process_state, _quiet_sdk_logger, sdk_dirs
from algoseek_sync.backends.mainsequence.transport import TrafficCounters
from algoseek_sync.errors import ConfigError

_LOCK = threading.Lock()
_LOADED: Sdk9 | None = None
#: loggers the 9.x SDK writes through besides ``mainsequence`` (silenced like it)
_SDK_LOGGERS = ("metatables", "msm")


@dataclass
class Sdk9:
    """The imported SDK modules the backend uses, and the checkout the project was resolved from."""

    metatables: ModuleType
    models: ModuleType  # metatables.models
    transfer: ModuleType  # metatables.transfer_contract (transfer errors)
    exceptions: ModuleType  # mainsequence.client.exceptions
    tables: ModuleType  # our models (they subclass the SDK's table contract)
    checkout: Path
    #: what the 3.x policy reads to tell outages from bugs: 9.x opens a session per data request,
    #: so nothing feeds it; failures are classified by their exception (:mod:`.errors`) instead
    counters: TrafficCounters = field(default_factory=TrafficCounters)


def contained() -> object:
    """Run SDK code with the daemon's logging, structlog and excepthook put back afterwards."""
    return _preserved_process_state()


def _import(state_dir: Path) -> dict[str, ModuleType]:
    tdag_root, home = sdk_dirs(state_dir)
    tdag_root.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TDAG_ROOT_PATH", str(tdag_root))
    saved = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        with _preserved_process_state():
            import mainsequence.client  # noqa: F401 - import-time side effects, contained here
            import mainsequence.client.exceptions as exceptions
            import metatables
            import metatables.models as models
            import metatables.transfer_contract as transfer

            from algoseek_sync.backends.mainsequence9 import tables

            _quiet_sdk_logger()
            import logging

            for name in _SDK_LOGGERS:
                logging.getLogger(name).setLevel(logging.CRITICAL)
    finally:
        if saved is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = saved
    return {
        "metatables": metatables,
        "models": models,
        "transfer": transfer,
        "exceptions": exceptions,
        "tables": tables,
    }


def freeze_checkout(checkout: Path) -> Path:
    """Resolve the project's Git source from ``checkout`` (the SDK keeps it for the whole process)."""
    from mainsequence.code_repository_context import get_git_source_context

    try:
        with _preserved_process_state():
            source = get_git_source_context(code_repository_dir=checkout)
    except Exception as exc:
        raise ConfigError(
            f"configuration error: 'mainsequence.checkout' = {checkout} is not usable as the project's "
            f"Git checkout (a branch checked out, a remote set): {exc}"
        ) from None
    return Path(source.repository_root)


def load_sdk(state_dir: Path, checkout: Path) -> Sdk9:
    """Import the SDK once per process (contained) and freeze the project checkout; later calls reuse it."""
    global _LOADED
    with _LOCK:
        if _LOADED is None:
            modules = _import(Path(state_dir))
            _LOADED = Sdk9(checkout=freeze_checkout(checkout), **modules)
        return _LOADED
