"""The data-quality checks' vocabulary: finding kinds, severities, parameters. No numpy here.

Kept apart from :mod:`.checks` (the numpy engine) so that the worker, the metrics and the CLI
can name findings without importing it: a ``run --once`` with nothing to check stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEVERITY: dict[str, str] = {
    "missing_session": "warning",
    "non_session_row": "warning",
    "high_below_low": "error",
    "close_outside_range": "error",
    "non_positive_price": "error",
    "negative_volume": "error",
    "missing_price_with_volume": "error",
    "open_outside_range": "info",
    "stale_price": "warning",
    "unexplained_jump": "warning",
    "not_delivered": "warning",
    "not_listed": "info",
    "late_delivery": "error",
}
#: kinds found by :func:`check` (the others come from deliveries, see quality/delivery.py)
HISTORY_KINDS = tuple(k for k in SEVERITY if k not in ("not_delivered", "not_listed", "late_delivery"))


@dataclass(frozen=True)
class Params:
    stale_sessions: int = 5
    jump_threshold: float = 0.40


@dataclass(frozen=True)
class Finding:
    kind: str
    secid: int | None
    start: int | None  # YYYYMMDD
    end: int | None
    observed: dict[str, object] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]
