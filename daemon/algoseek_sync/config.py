"""Settings: packaged defaults ← TOML file ← environment, validated by pydantic.

Every problem becomes a :class:`ConfigError` that names the key and the source, so
``algoseek-sync`` can exit 78 with one line instead of a traceback.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

# pydantic looks for plugins through every installed package's entry points on import (~50 ms
# of a `run --once`); the daemon uses none. An explicit setting in the environment wins.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from algoseek_sync.errors import ConfigError

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
}


class _Section(BaseModel):
    # strict: `stability_seconds = true` or `"2"` in a file is a mistake worth naming
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


#: Paths come from TOML strings; strict mode would otherwise demand Path objects.
LaxPath = Annotated[Path, Field(strict=False)]


class DropConfig(_Section):
    dir: LaxPath
    master_glob: list[str] = Field(min_length=1)


class StateConfig(_Section):
    dir: LaxPath


class WatchConfig(_Section):
    observer: Literal["auto", "inotify", "polling"]
    stability_seconds: float = Field(ge=0)
    poll_interval_seconds: float = Field(gt=0)
    reconcile_interval_seconds: float = Field(gt=0)
    event_queue_size: int = Field(ge=100)


class LimitsConfig(_Section):
    max_file_bytes: int = Field(gt=0)
    max_decompressed_bytes: int = Field(gt=0)
    max_line_bytes: int = Field(gt=0)


class BackendConfig(_Section):
    kind: Literal["local", "mainsequence"]


class MainSequenceConfig(_Section):
    env_file: str
    is_demo: bool
    query_batch_size: int = Field(gt=0, le=500)
    retry_attempts: int = Field(ge=1)
    retry_initial_seconds: float = Field(ge=0)
    retry_max_seconds: float = Field(ge=0)
    retry_total_seconds: float = Field(ge=0)
    registration_retry_seconds: float = Field(ge=0)


class MetricsConfig(_Section):
    listen: str

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        if value:
            parse_listen(value)
        return value


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (all interfaces); ValueError names what is wrong."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{listen!r} is not host:port (for example 127.0.0.1:9108 or :9108)")
    return host.strip("[]") or "0.0.0.0", int(port)


class HealthConfig(_Section):
    """When ``status --health``, ``/readyz`` and the systemd watchdog stop saying healthy."""

    heartbeat_seconds: float = Field(gt=0)
    processing_seconds: float = Field(gt=0)
    failed_cycles: int = Field(ge=1)
    stalled_seconds: float = Field(gt=0)
    backend_seconds: float = Field(gt=0)
    backend_check_seconds: float = Field(gt=0)


class QualityConfig(_Section):
    """Data-quality checks of stored bars (quality/)."""

    enabled: bool
    calendar: str = Field(min_length=1)
    stale_sessions: int = Field(ge=2)
    jump_threshold: float = Field(gt=0)
    expected_by: str

    @field_validator("expected_by")
    @classmethod
    def _due(cls, value: str) -> str:
        if value.strip():
            from algoseek_sync.quality.calendar import parse_expected_by

            try:
                parse_expected_by(value)
            except (ValueError, KeyError) as exc:
                raise ValueError(f"{value!r} is not 'HH:MM Area/City' ({exc})") from None
        return value


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


def _env_value(dotted: str, text: str) -> Any:
    """Environment values are text: read numbers and booleans for keys that hold them."""
    section, key = dotted.split(".")
    section_model = Settings.model_fields[section].annotation
    annotation = section_model.model_fields[key].annotation  # type: ignore[union-attr]
    if annotation in (int, float, bool):
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return text
    return text


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    section, key = dotted.split(".")
    data[section][key] = _env_value(dotted, value)


def load_settings(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    """Load defaults, then the file (``path`` or ``$ALGOSEEK_SYNC_CONFIG``), then env overrides."""
    env = dict(os.environ) if env is None else env
    data = tomllib.loads(default_toml())
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
            _set_dotted(data, dotted, env[name])
            origin[dotted] = f"environment variable {name}"
    data["source"] = source
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        dotted = ".".join(str(p) for p in err["loc"])
        where = origin.get(dotted, source)
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(
            f"configuration error in {where}: '{dotted}': {message} (got {err.get('input')!r})"
        ) from None
