"""Which platform failures are worth retrying, and the bounded backoff that retries them.

The SDK's own retries are switched off (see :mod:`.transport`), so this policy is the only
place that repeats a request: exponential backoff with jitter, at least ``Retry-After``
when the platform sends one, at most ``attempts`` tries and ``total`` seconds overall.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception

from algoseek_sync.backends.mainsequence.transport import TRANSPORT_HEADER

log = structlog.get_logger("algoseek_sync.platform")

T = TypeVar("T")
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries, if any."""
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def is_transport_failure(exc: BaseException) -> bool:
    """True when the request never got an answer (refused, dropped, timed out)."""
    headers = getattr(exc, "headers", None) or {}
    if headers.get(TRANSPORT_HEADER):
        return True
    return type(exc).__name__ in {
        "TransportError",
        "ConnectionError",
        "Timeout",
        "ReadTimeout",
        "ConnectTimeout",
    }


def is_transient(exc: BaseException) -> bool:
    """429, 5xx and transport failures: the same request may succeed later."""
    if is_transport_failure(exc):
        return True
    return status_of(exc) in TRANSIENT_STATUSES


def retry_after_seconds(exc: BaseException) -> float | None:
    """``Retry-After`` in seconds (numeric form only; HTTP dates are treated as absent)."""
    raw = getattr(exc, "retry_after", None)
    if raw is None:
        headers = getattr(exc, "headers", None) or {}
        raw = headers.get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter; ``sleep`` is injectable for tests."""

    attempts: int
    initial: float
    maximum: float
    total: float
    sleep: Callable[[float], None] = time.sleep
    #: called before every attempt (the backend keeps the worker's heartbeat fresh with it)
    on_attempt: Callable[[], None] = lambda: None

    def backoff(self, attempt: int) -> float:
        """Equal jitter: half the exponential step fixed, half random, so waits never collapse to 0."""
        step = min(self.maximum, self.initial * (2 ** max(0, attempt - 1)))
        return step / 2 + random.uniform(0, step / 2)

    def _wait(self, state: RetryCallState) -> float:
        wait = self.backoff(state.attempt_number)
        exc = state.outcome.exception() if state.outcome else None
        hinted = retry_after_seconds(exc) if exc is not None else None
        return max(wait, hinted) if hinted is not None else wait

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.attempts:
            return True
        elapsed = state.seconds_since_start or 0.0
        return elapsed + (state.upcoming_sleep or 0.0) > self.total

    def _before_sleep(self, state: RetryCallState) -> None:
        """One log line per retry, so an operator sees the backoff (and the platform's Retry-After)."""
        exc = state.outcome.exception() if state.outcome else None
        cause = (exc.__cause__ or exc) if exc is not None else None
        log.info(
            "platform_retry",
            attempt=state.attempt_number,
            wait_s=round(state.upcoming_sleep or 0.0, 3),
            status=status_of(cause) if cause is not None else None,
            retry_after=retry_after_seconds(exc) if exc is not None else None,
        )

    def call(self, fn: Callable[[], T], retry_on: Callable[[BaseException], bool] = is_transient) -> T:
        """Run ``fn``; retry while ``retry_on`` says so and the budget lasts; re-raise the last error."""
        retrying = Retrying(
            stop=self._stop,
            wait=self._wait,
            retry=retry_if_exception(retry_on),
            reraise=True,
            sleep=self.sleep,
            before_sleep=self._before_sleep,
        )

        def attempt() -> T:
            self.on_attempt()
            return fn()

        return retrying(attempt)
