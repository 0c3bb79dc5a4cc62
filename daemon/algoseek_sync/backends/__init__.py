"""Stores the worker writes to: one interface (:mod:`.base`), two implementations.

The platform backend has one adapter per Main Sequence SDK line, and the two lines cannot share an
environment (both are the ``mainsequence`` distribution; 9.x needs Python 3.13). Which one an install
has is read from the package metadata, so choosing never imports the SDK (1-2 s, side effects).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from algoseek_sync.errors import ConfigError

if TYPE_CHECKING:
    from algoseek_sync.backends.base import Backend
    from algoseek_sync.config import Settings
    from algoseek_sync.state.database import Database

#: the distributions an adapter needs, by SDK line: the `mainsequence` extras of pyproject.toml
SDK9_DISTRIBUTIONS = ("mainsequence", "mainsequence-metatable", "ms-markets")
SDK3_DISTRIBUTIONS = ("mainsequence",)


class Adapter(NamedTuple):
    """One SDK line: the versions of ``mainsequence`` it speaks, its extra, and where its backend lives."""

    line: str
    low: tuple[int, ...]  # inclusive
    high: tuple[int, ...]  # exclusive
    extra: str
    python: tuple[int, int]  # the lowest Python its SDK installs on
    distributions: tuple[str, ...]
    module: str
    cls: str


# The bounds are the extras' ranges in pyproject.toml (tests/test_packaging.py holds them equal)
ADAPTERS = (
    Adapter(
        "9.x",
        (9, 0, 33),
        (9, 1),
        "mainsequence",
        (3, 13),
        SDK9_DISTRIBUTIONS,
        "algoseek_sync.backends.mainsequence9",
        "MainSequence9Backend",
    ),
    Adapter(
        "3.x",
        (3, 19, 17),
        (3, 22),
        "mainsequence3",
        (3, 11),
        SDK3_DISTRIBUTIONS,
        "algoseek_sync.backends.mainsequence",
        "MainSequenceBackend",
    ),
)


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version string ("9.0.34.dev79" -> (9, 0, 34)); () when there is none."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    return tuple(int(part) for part in match.group().split(".")) if match else ()


def _span(adapter: Adapter) -> str:
    low, high = ".".join(map(str, adapter.low)), ".".join(map(str, adapter.high))
    return f">={low},<{high}"


def choose_adapter(installed: Mapping[str, str | None], python: tuple[int, int]) -> Adapter:
    """The adapter for these installed distribution versions (None: not installed), or a one-line ConfigError.

    Pure, so the decision is tested without installing SDKs: ``python`` picks the extra to suggest.
    """
    suggested = next(a for a in ADAPTERS if python >= a.python)
    advice = (
        f"pip install 'algoseek-sync[{suggested.extra}]' (Main Sequence SDK {suggested.line}"
        + (
            f", which needs Python {suggested.python[0]}.{suggested.python[1]}"
            if suggested.python > (3, 11)
            else ""
        )
        + f"; this is Python {python[0]}.{python[1]})"
    )
    version = installed.get("mainsequence")
    if version is None:
        raise ConfigError(
            f"configuration error: 'backend.kind' is \"mainsequence\" but no Main Sequence SDK is installed: {advice}"
        )
    for adapter in ADAPTERS:
        if adapter.low <= release(version) < adapter.high:
            missing = [name for name in adapter.distributions if installed.get(name) is None]
            if missing:
                raise ConfigError(
                    f"configuration error: 'backend.kind' is \"mainsequence\" and mainsequence {version} is "
                    f"installed, but not {', '.join(missing)}: pip install 'algoseek-sync[{adapter.extra}]'"
                )
            return adapter
    spans = "; ".join(f"{a.line}: {_span(a)}" for a in ADAPTERS)
    raise ConfigError(
        f"configuration error: 'backend.kind' is \"mainsequence\" but the installed mainsequence {version} is "
        f"outside the supported SDK lines ({spans}): {advice}"
    )


def installed_versions() -> dict[str, str | None]:
    """The installed versions of every distribution an adapter may need, from package metadata only."""
    import importlib.metadata  # here: 10 ms of imports that only the platform backend needs

    versions: dict[str, str | None] = {}
    for name in dict.fromkeys(SDK9_DISTRIBUTIONS + SDK3_DISTRIBUTIONS):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def platform_adapter() -> Adapter:
    """The adapter this environment's SDK calls for (ConfigError, exit 78, when there is none)."""
    return choose_adapter(installed_versions(), sys.version_info[:2])


def open_backend(settings: Settings, db: Database) -> Backend:
    """The configured backend; the platform SDK is imported only when it is chosen."""
    if settings.backend.kind == "mainsequence":
        adapter = platform_adapter()
        backend_class = getattr(importlib.import_module(adapter.module), adapter.cls)
        return backend_class(settings, db)
    from algoseek_sync.backends.local import LocalBackend

    return LocalBackend(db)
