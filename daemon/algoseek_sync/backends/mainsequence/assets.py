"""Get-or-register assets on the platform, one outcome per asset.

Existing assets are found with batched ``Asset.query``; missing FIGIs are registered one by
one, FIGI-less SecIds as custom assets in batches. A refusal (400/404/422) is final for that
asset; a transient failure is retried under the policy and, once the budget is spent, the
asset gets ``retry`` with a due time, and so does every asset not yet tried in this call,
so a failing platform is not hammered asset by asset.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from algoseek_sync.backends.base import AssetOutcome, AssetReport, AssetSpec
from algoseek_sync.backends.mainsequence.env import redact
from algoseek_sync.backends.mainsequence.retry import RetryPolicy, is_transient, status_of
from algoseek_sync.errors import BackendUnavailableError

AUTH_STATUSES = frozenset({401, 403})


class AssetApi(Protocol):
    """The slice of ``msc.Asset`` used here (a class with these classmethods)."""

    def query(self, **kwargs: Any) -> list[Any]: ...
    def register_asset_from_figi(self, figi: str) -> Any: ...
    def batch_get_or_register_custom_assets(self, assets_data: list[dict]) -> list[Any]: ...
    def get_or_register_custom_asset(self, **kwargs: Any) -> Any: ...


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def api_message(exc: BaseException) -> str:
    """The platform's message for a refusal, with its status, secrets masked."""
    status = status_of(exc)
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return redact(f"{status} {text}" if status else text)


def custom_payload(spec: AssetSpec) -> dict[str, Any]:
    snapshot = {"name": spec.name or spec.ticker or spec.unique_identifier, "ticker": spec.ticker or None}
    return {"unique_identifier": spec.unique_identifier, "snapshot": snapshot}


class AssetRegistrar:
    """One ``ensure_assets`` call: query, register, and collect outcomes."""

    def __init__(
        self,
        api: AssetApi,
        policy: RetryPolicy,
        batch_size: int,
        registration_retry_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.policy = policy
        self.batch_size = batch_size
        self.registration_retry_seconds = registration_retry_seconds
        self.clock = clock
        self.outcomes: dict[str, AssetOutcome] = {}
        self.degraded = ""

    def run(self, specs: Sequence[AssetSpec]) -> AssetReport:
        unique = list({s.unique_identifier: s for s in specs}.values())
        existing = self.query_existing([s.unique_identifier for s in unique])
        for uid in existing:
            self.outcomes[uid] = AssetOutcome(uid, "existing")
        missing = [s for s in unique if s.unique_identifier not in existing]
        for spec in (s for s in missing if s.kind == "figi"):
            self.register_figi(spec)
        customs = [s for s in missing if s.kind == "custom"]
        for batch in chunks(customs, self.batch_size):
            self.register_customs(batch)
        return AssetReport(outcomes=[self.outcomes[s.unique_identifier] for s in unique])

    def query_existing(self, uids: Sequence[str]) -> set[str]:
        """Identifiers the platform already has; an unreachable platform raises BackendUnavailableError."""
        found: set[str] = set()
        for batch in chunks(list(uids), self.batch_size):
            try:
                assets = self.policy.call(
                    lambda b=batch: self.api.query(unique_identifier__in=list(b), per_page=500)
                )
            except Exception as exc:
                raise BackendUnavailableError(
                    f"Main Sequence asset query failed: {api_message(exc)}"
                ) from None
            found.update(str(a.unique_identifier) for a in assets)
        return found

    def _retry_later(self, uid: str, message: str) -> None:
        due = self.clock() + self.registration_retry_seconds
        self.outcomes[uid] = AssetOutcome(uid, "retry", message, retry_at=due)

    def _failed(self, uids: Sequence[str], exc: BaseException) -> None:
        """Record a failure for ``uids``: refused, retry later, or (auth) stop everything."""
        if status_of(exc) in AUTH_STATUSES:
            raise BackendUnavailableError(
                f"Main Sequence refused the credentials: {api_message(exc)}"
            ) from None
        if is_transient(exc):
            self.degraded = api_message(exc)
            for uid in uids:
                self._retry_later(uid, self.degraded)
            return
        for uid in uids:
            self.outcomes[uid] = AssetOutcome(uid, "refused", api_message(exc))

    def register_figi(self, spec: AssetSpec) -> None:
        uid = spec.unique_identifier
        if self.degraded:
            self._retry_later(uid, f"not attempted, platform failing: {self.degraded}")
            return
        try:
            self.policy.call(lambda: self.api.register_asset_from_figi(figi=uid))
        except Exception as exc:
            if status_of(exc) == 409:
                self._after_conflict(uid)
                return
            self._failed([uid], exc)
            return
        self.outcomes[uid] = AssetOutcome(uid, "registered")

    def _after_conflict(self, uid: str) -> None:
        """409 means someone registered it meanwhile: confirm with a query."""
        try:
            found = self.query_existing([uid])
        except BackendUnavailableError as exc:
            self._retry_later(uid, str(exc))
            return
        if uid in found:
            self.outcomes[uid] = AssetOutcome(uid, "existing")
        else:
            self._retry_later(uid, "409 conflict but the asset was not found")

    def register_customs(self, batch: Sequence[AssetSpec]) -> None:
        uids = [s.unique_identifier for s in batch]
        if self.degraded:
            for uid in uids:
                self._retry_later(uid, f"not attempted, platform failing: {self.degraded}")
            return
        try:
            assets = self.policy.call(
                lambda: self.api.batch_get_or_register_custom_assets([custom_payload(s) for s in batch])
            )
        except Exception as exc:
            if is_transient(exc) or status_of(exc) in AUTH_STATUSES or len(batch) == 1:
                self._failed(uids, exc)
                return
            for spec in batch:
                self.register_custom(spec)
            return
        returned = {str(a.unique_identifier) for a in assets}
        for uid in uids:
            if uid in returned:
                self.outcomes[uid] = AssetOutcome(uid, "registered")
            else:
                self._retry_later(uid, "custom asset missing from the platform's batch answer")

    def register_custom(self, spec: AssetSpec) -> None:
        """One by one, after a batch refusal, so one bad asset does not refuse the others."""
        uid = spec.unique_identifier
        if self.degraded:
            self._retry_later(uid, f"not attempted, platform failing: {self.degraded}")
            return
        try:
            self.policy.call(lambda: self.api.get_or_register_custom_asset(**custom_payload(spec)))
        except Exception as exc:
            self._failed([uid], exc)
            return
        self.outcomes[uid] = AssetOutcome(uid, "registered")
