"""Settings: packaged defaults ← TOML file ← environment, validated by msgspec.

Every problem becomes a :class:`ConfigError` that names the key and the source, so
``algoseek-sync`` can exit 78 with one line instead of a traceback. msgspec rather than
pydantic: it validates the same typed, frozen sections and imports in a few milliseconds
instead of about 150, which every CLI command pays before doing anything.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args, get_origin, get_type_hints

import msgspec
from msgspec import Meta

from algoseek_sync.errors import ConfigError

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

CONFIG_ENV = "ALGOSEEK_SYNC_CONFIG"

#: Environment variables that override one key each (name → dotted key).
ENV_OVERRIDES: dict[str, str] = {
    "ALGOSEEK_SYNC_DROP_DIR": "drop.dir",
    "ALGOSEEK_SYNC_STATE_DIR": "state.dir",
    "ALGOSEEK_SYNC_BACKEND": "backend.kind",
    "ALGOSEEK_SYNC_OBSERVER": "watch.observer",
    "ALGOSEEK_SYNC_STABILITY_SECONDS": "watch.stability_seconds",
    "ALGOSEEK_SYNC_RECONCILE_INTERVAL_SECONDS": "watch.reconcile_interval_seconds",
    "ALGOSEEK_SYNC_METRICS_LISTEN": "metrics.listen",
    "ALGOSEEK_SYNC_LOG_LEVEL": "logging.level",
    "ALGOSEEK_SYNC_LOG_FORMAT": "logging.format",
    "ALGOSEEK_SYNC_MAINSEQUENCE_ENV_FILE": "mainsequence.env_file",
    "ALGOSEEK_SYNC_MAINSEQUENCE_CHECKOUT": "mainsequence.checkout",
}

NonNegative = Annotated[float, Meta(ge=0)]
Positive = Annotated[float, Meta(gt=0)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Strictly typed: ``stability_seconds = true`` or ``"2"`` in a file is a mistake worth naming."""


class DropConfig(_Section):
    dir: Path
    master_glob: Annotated[list[str], Meta(min_length=1)]


class StateConfig(_Section):
    dir: Path


class WatchConfig(_Section):
    observer: Literal["auto", "inotify", "polling"]
    stability_seconds: NonNegative
    poll_interval_seconds: Positive
    reconcile_interval_seconds: Positive
    event_queue_size: Annotated[int, Meta(ge=100)]


class LimitsConfig(_Section):
    max_file_bytes: Annotated[int, Meta(gt=0)]
    max_decompressed_bytes: Annotated[int, Meta(gt=0)]
    max_line_bytes: Annotated[int, Meta(gt=0)]


class BackendConfig(_Section):
    kind: Literal["local", "mainsequence"]


class MainSequenceConfig(_Section):
    env_file: str
    is_demo: bool
    query_batch_size: Annotated[int, Meta(gt=0, le=500)]
    retry_attempts: Annotated[int, Meta(ge=1)]
    retry_initial_seconds: NonNegative
    retry_max_seconds: NonNegative
    retry_total_seconds: NonNegative
    registration_retry_seconds: NonNegative
    checkout: str  # SDK 9.x: the Git checkout the SDK resolves the project from ("": the working directory)


class MetricsConfig(_Section):
    listen: str  # checked by parse_listen (see _check)


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (all interfaces); ValueError names what is wrong."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{listen!r} is not host:port (for example 127.0.0.1:9108 or :9108)")
    return host.strip("[]") or "0.0.0.0", int(port)


class HealthConfig(_Section):
    """When ``status --health``, ``/readyz`` and the systemd watchdog stop saying healthy."""

    heartbeat_seconds: Positive
    processing_seconds: Positive
    failed_cycles: Annotated[int, Meta(ge=1)]
    stalled_seconds: Positive
    backend_seconds: Positive
    backend_check_seconds: Positive


class QualityConfig(_Section):
    """Data-quality checks of stored bars (quality/)."""

    enabled: bool
    calendar: Annotated[str, Meta(min_length=1)]
    stale_sessions: Annotated[int, Meta(ge=2)]
    jump_threshold: Positive
    expected_by: str  # checked by parse_expected_by (see _check)


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"]
    format: Literal["auto", "json", "console"]


class Settings(_Section):
    """The whole validated configuration; ``source`` says where it came from."""

    drop: DropConfig
    state: StateConfig
    watch: WatchConfig
    limits: LimitsConfig
    backend: BackendConfig
    mainsequence: MainSequenceConfig
    metrics: MetricsConfig
    health: HealthConfig
    quality: QualityConfig
    logging: LoggingConfig
    source: str = "defaults"

    @property
    def db_path(self) -> Path:
        return self.state.dir / "state.db"

    def replace(self, section: str, **values: Any) -> Settings:
        """A copy with some keys of one section changed (tests, benchmarks)."""
        return msgspec.structs.replace(
            self, **{section: msgspec.structs.replace(getattr(self, section), **values)}
        )


def default_toml() -> str:
    """The packaged defaults as TOML text."""
    return resources.files("algoseek_sync").joinpath("default.toml").read_text("utf-8")


def _merge(base: dict[str, Any], override: dict[str, Any], prefix: str, source: str) -> None:
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            raise ConfigError(f"configuration error in {source}: unknown key '{dotted}'")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"configuration error in {source}: '{dotted}' must be a table")
            _merge(base[key], value, f"{dotted}.", source)
        else:
            base[key] = value


def _env_value(default: Any, text: str) -> Any:
    """Environment values are text: read numbers and booleans for keys whose default is one."""
    if isinstance(default, bool | int | float):
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return text
    return text


def _set_dotted(data: dict[str, Any], defaults: dict[str, Any], dotted: str, value: str) -> None:
    section, key = dotted.split(".")
    data[section][key] = _env_value(defaults[section][key], value)


_WHERE = re.compile(r"^(?P<message>.*?)(?: - at `\$\.(?P<path>[^`]*)`)?$", re.DOTALL)


def _decode_path(kind: type, value: Any) -> Any:
    """Paths are TOML strings (the one type msgspec does not build itself)."""
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise TypeError(f"Expected a path as text, got `{type(value).__name__}`")


def _check(settings: Settings) -> None:
    """The two values whose form a type cannot say: a listen address, a due time."""
    if settings.metrics.listen:
        try:
            parse_listen(settings.metrics.listen)
        except ValueError as exc:
            raise _Invalid("metrics.listen", str(exc)) from None
    if settings.quality.expected_by.strip():
        value = settings.quality.expected_by
        try:
            parse_expected_by(value)
        except (ValueError, KeyError) as exc:
            raise _Invalid("quality.expected_by", f"{value!r} is not 'HH:MM Area/City' ({exc})") from None


class _Invalid(Exception):
    def __init__(self, dotted: str, message: str) -> None:
        super().__init__(message)
        self.dotted, self.message = dotted, message


def load_settings(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    """Load defaults, then the file (``path`` or ``$ALGOSEEK_SYNC_CONFIG``), then env overrides."""
    env = dict(os.environ) if env is None else env
    packaged = default_toml()
    defaults = tomllib.loads(packaged)  # kept as packaged: env values are read by their default's type
    data = tomllib.loads(packaged)
    path = path or env.get(CONFIG_ENV) or None
    source = "defaults"
    if path:
        source = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as exc:
            raise ConfigError(
                f"configuration error: cannot read config file {path}: {exc.strerror}"
            ) from None
        try:
            _merge(data, tomllib.loads(text), "", source)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration error in {path}: invalid TOML: {exc}") from None
    origin: dict[str, str] = {}
    for name, dotted in ENV_OVERRIDES.items():
        if name in env:
            _set_dotted(data, defaults, dotted, env[name])
            origin[dotted] = f"environment variable {name}"
    data["source"] = source
    try:
        settings = msgspec.convert(data, Settings, strict=True, dec_hook=_decode_path)
        _check(settings)
    except msgspec.ValidationError as exc:
        found = _WHERE.match(str(exc))
        assert found is not None
        raise _error(found["path"] or "", found["message"], data, origin, source) from None
    except _Invalid as exc:
        raise _error(exc.dotted, exc.message, data, origin, source) from None
    return settings


def _error(
    dotted: str, message: str, data: dict[str, Any], origin: dict[str, str], source: str
) -> ConfigError:
    """One line: where the value came from, its key, what is wrong, and the value."""
    value: Any = data
    for part in re.findall(r"[^.\[\]]+", dotted):  # watch.stability_seconds, drop.master_glob[0]
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            value = None
    choices = _choices(dotted)
    if choices:  # an invalid enum value, or a value of the wrong type
        message = "must be one of " + ", ".join(repr(c) for c in choices)
    return ConfigError(
        f"configuration error in {origin.get(dotted, source)}: '{dotted}': {message} (got {value!r})"
    )


def _choices(dotted: str) -> tuple[object, ...]:
    """The values a ``Literal`` key accepts (``backend.kind`` → local, mainsequence); () for other keys."""
    kind: Any = Settings
    for part in dotted.split("."):
        if not isinstance(kind, type) or not issubclass(kind, msgspec.Struct):
            return ()
        kind = get_type_hints(kind).get(part)
    return get_args(kind) if get_origin(kind) is Literal else ()


def parse_expected_by(text: str) -> tuple[dt.time, ZoneInfo] | None:
    """``"20:00 America/New_York"`` → (20:00, zone); empty → None (late deliveries not checked).

    zoneinfo is imported here, not at the top: every CLI start imports this module, few need a zone.
    """
    from zoneinfo import ZoneInfo

    if not text.strip():
        return None
    clock, _, zone = text.strip().partition(" ")
    hours, _, minutes = clock.partition(":")
    return dt.time(int(hours), int(minutes or 0)), ZoneInfo(zone.strip() or "America/New_York")
