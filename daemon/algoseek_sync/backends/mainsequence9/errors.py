"""Which 9.x SDK failures are worth retrying, on top of the 3.x rules (429, 5xx, transport failures).

The data API's transfer errors say what happened to a request: ``TransferOutcomeUnknown`` (a
write may or may not have landed; replaying a range-complete frame is safe),
``TransferDeadlineError`` and ``TransferRetryExhausted`` (transient), ``TransferConflictError``
(a chunk receipt in an unexpected state; a new attempt uses a new operation). An unresolvable
or undeployed data API is transient too: the platform may deploy it later.
"""

from __future__ import annotations

from algoseek_sync.backends.mainsequence.env import redact
from algoseek_sync.backends.mainsequence.retry import is_transient, retry_after_seconds, status_of
from algoseek_sync.errors import ConfigError

TRANSIENT_TYPES = frozenset(
    {
        "TransferOutcomeUnknown",
        "TransferDeadlineError",
        "TransferRetryExhausted",
        "TransferConflictError",
        "ApiResolutionError",
        "RequestException",
    }
)
#: the configured checkout cannot name the project: a configuration problem, not an outage
CONFIG_TYPES = frozenset({"CodeRepositoryContextError", "CodeRepositorySourceContextDriftError"})
#: a row the data API cannot take whatever the split: a refusal of that row's asset
REFUSAL_TYPES = frozenset({"TransferLimitError"})


def _named(exc: BaseException, names: frozenset[str]) -> bool:
    return any(cls.__name__ in names for cls in type(exc).__mro__)


def is_transient9(exc: BaseException) -> bool:
    return is_transient(exc) or _named(exc, TRANSIENT_TYPES)


def is_config_error(exc: BaseException) -> bool:
    return _named(exc, CONFIG_TYPES)


def is_refusal(exc: BaseException) -> bool:
    return _named(exc, REFUSAL_TYPES)


class PlatformUnavailable(Exception):
    """A transient 9.x failure as the 3.x rules see one: a 503, with the wait the SDK was told."""

    status_code = 503

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Refused(Exception):
    """Something the data API cannot take whatever the retry (a row past its limits): a refusal."""

    status_code = 400


def translated(exc: Exception) -> Exception:
    """``exc`` in the shape the 3.x backend and registrar classify: transient → 503, limit → 400, checkout → ConfigError."""
    if status_of(exc) is not None:
        return exc
    message = f"{type(exc).__name__}: {redact(exc)}"
    if is_transient9(exc):
        return PlatformUnavailable(message, retry_after_seconds(exc))
    if is_refusal(exc):
        return Refused(message)
    if is_config_error(exc):
        return ConfigError(f"configuration error: the project's Git checkout is not usable: {message}")
    return exc
