"""Assets on SDK 9.x: rows of the markets asset table, FIGIs looked up at OpenFIGI by the client.

The outline is the 3.x registrar's (:class:`~algoseek_sync.backends.mainsequence.assets.AssetRegistrar`):
query what exists in batches, register the missing, one outcome per asset. What changes is
underneath: there is no server-side FIGI registration, so missing FIGIs are mapped at OpenFIGI
(100 per request, ``ID_BB_GLOBAL``) under the product's bounded retry policy (the SDK's helper
retries 429 forever, without a timeout), then written as asset rows plus their OpenFIGI details
in batches. A FIGI OpenFIGI does not know is refused with OpenFIGI's reason; custom assets
(FIGI-less SecIds) are plain upserts.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import requests
from sqlalchemy import inspect

from algoseek_sync.backends.base import AssetOutcome, AssetReport, AssetSpec
from algoseek_sync.backends.mainsequence.assets import AUTH_STATUSES, AssetRegistrar, chunks
from algoseek_sync.backends.mainsequence.retry import is_transient, status_of
from algoseek_sync.backends.mainsequence9.errors import translated

T = TypeVar("T")

OPENFIGI_URL = "https://api.openfigi.com/v3/mapping"
#: the variables (environment or env file) the OpenFIGI key is read from; without one, OpenFIGI's anonymous limits apply
OPENFIGI_KEY_VARIABLES = ("OPENFIGI_API_KEY", "OPEN_FIGI_API_KEY")
OPENFIGI_BATCH = 100
OPENFIGI_TIMEOUT = (5.0, 30.0)
ASSET_TYPE = "equity"
LOOKUP_BATCH = 1000  # the data API truncates a statement's answer at 1,000 rows, silently


class OpenFigiError(Exception):
    """An OpenFIGI answer that is not a mapping: its status (429 and 5xx are retried) and wait hint."""

    def __init__(self, message: str, status_code: int | None, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class UnknownFigi(Exception):
    """OpenFIGI has no instrument for this FIGI: a refusal of this asset, not a failure to retry."""

    status_code = 404


class OpenFigi:
    """OpenFIGI's mapping endpoint, one bounded request at a time (the caller's policy retries)."""

    def __init__(self, url: str | None = None, key: str | None = None) -> None:
        self.url = url or os.environ.get("FIGI_API_URL") or OPENFIGI_URL
        self.key = key or next((os.environ[v] for v in OPENFIGI_KEY_VARIABLES if os.environ.get(v)), "")

    def map(self, figis: Sequence[str]) -> dict[str, dict[str, Any] | str]:
        """FIGI → its first OpenFIGI record, or OpenFIGI's reason when it knows none (≤ 100 FIGIs)."""
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["X-OPENFIGI-APIKEY"] = self.key
        jobs = [{"idType": "ID_BB_GLOBAL", "idValue": figi} for figi in figis]
        try:
            response = requests.post(self.url, json=jobs, headers=headers, timeout=OPENFIGI_TIMEOUT)
        except requests.RequestException as exc:
            raise OpenFigiError(f"OpenFIGI unreachable: {type(exc).__name__}", 503) from exc
        if response.status_code != 200:
            wait = response.headers.get("Retry-After") or response.headers.get("ratelimit-reset")
            raise OpenFigiError(
                f"OpenFIGI answered {response.status_code}: {response.text[:200]}", response.status_code, wait
            )
        answers = response.json()
        out: dict[str, dict[str, Any] | str] = {}
        for figi, answer in zip(figis, answers, strict=True):
            data = answer.get("data") or []
            out[figi] = data[0] if data else str(answer.get("error") or answer.get("warning") or "no match")
        return out


def _mapped(call: Callable[[], T]) -> T:
    """Run an asset call with 9.x failures in the shapes the 3.x registrar's rules know."""
    try:
        return call()
    except Exception as exc:
        raise translated(exc) from exc


class MarketsAssets:
    """The slice of the markets asset API the registrar needs (the 3.x ``AssetApi`` protocol)."""

    def __init__(self) -> None:
        from msm.api.assets import Asset
        from msm.models import AssetTable, OpenFigiAssetDetailsTable
        from msm.repositories.crud import bulk_upsert_model

        self.asset = Asset
        self.tables = (AssetTable, OpenFigiAssetDetailsTable)
        self.bulk_upsert = bulk_upsert_model

    def query(self, *, unique_identifier__in: Sequence[str], per_page: int = LOOKUP_BATCH) -> list[Any]:
        rows: list[Any] = []
        for batch in chunks(list(unique_identifier__in), min(per_page, LOOKUP_BATCH)):
            found = _mapped(lambda b=batch: self.asset.get_many_by_unique_identifier(list(b)))
            rows.extend(found.values())
        return rows

    def upsert_figis(self, records: dict[str, dict[str, Any]]) -> None:
        """Asset rows and their OpenFIGI details for these FIGIs (existing rows are updated in place)."""
        from msm.services.assets.openfigi import build_asset_rows_from_openfigi_result

        asset_table, details_table = self.tables
        context = self.asset._active_context()
        assets = _mapped(
            lambda: self.bulk_upsert(
                context,
                model=asset_table,
                values=[
                    {"uid": uuid.uuid4(), "unique_identifier": f, "asset_type": ASSET_TYPE} for f in records
                ],
                conflict_columns=["unique_identifier"],
            )
        )
        uids = {r["unique_identifier"]: r["uid"] for r in assets.get("rows") or []}
        details = []
        for figi, record in records.items():
            if figi not in uids:
                continue
            rows = build_asset_rows_from_openfigi_result(
                record, asset_uid=uids[figi], time_index="1970-01-01"
            )
            item = rows.open_figi_details
            details.append(
                {a.columns[0].key: getattr(item, a.key) for a in inspect(details_table).column_attrs}
            )
        if details:
            _mapped(
                lambda: self.bulk_upsert(
                    context, model=details_table, values=details, conflict_columns=["asset_uid"]
                )
            )

    def batch_get_or_register_custom_assets(self, assets_data: list[dict]) -> list[Any]:
        asset_table, _ = self.tables
        values = [
            {"uid": uuid.uuid4(), "unique_identifier": a["unique_identifier"], "asset_type": ASSET_TYPE}
            for a in assets_data
        ]
        result = _mapped(
            lambda: self.bulk_upsert(
                self.asset._active_context(),
                model=asset_table,
                values=values,
                conflict_columns=["unique_identifier"],
            )
        )
        return [self.asset.model_validate(r) for r in result.get("rows") or []]

    def get_or_register_custom_asset(self, **payload: Any) -> Any:
        return self.batch_get_or_register_custom_assets([payload])[0]


class AssetRegistrar9(AssetRegistrar):
    """The 3.x registrar with batched OpenFIGI mapping and batched asset rows for FIGIs."""

    api: MarketsAssets

    def __init__(self, api: MarketsAssets, figi: OpenFigi, *args: Any, **kwargs: Any) -> None:
        super().__init__(api, *args, **kwargs)  # type: ignore[arg-type]
        self.figi = figi

    def run(self, specs: Sequence[AssetSpec]) -> AssetReport:
        """The 3.x run (existing found, customs registered) with missing FIGIs queued, then mapped in batches."""
        self.queued: list[str] = []
        super().run(specs)
        for batch in chunks(self.queued, OPENFIGI_BATCH):
            self.register_figis(list(batch))
        return AssetReport(
            outcomes=[self.outcomes[uid] for uid in dict.fromkeys(s.unique_identifier for s in specs)]
        )

    def register_figi(self, spec: AssetSpec) -> None:
        """Queue the FIGI for a batched OpenFIGI mapping (its outcome is set when its batch is done)."""
        self.queued.append(spec.unique_identifier)
        self.outcomes[spec.unique_identifier] = AssetOutcome(
            spec.unique_identifier, "retry", "not mapped yet"
        )

    def register_figis(self, figis: list[str]) -> None:
        """Map ``figis`` at OpenFIGI, refuse the unknown ones, write the rest as one batch."""
        if self.degraded:
            for uid in figis:
                self._retry_later(uid, f"not attempted, platform failing: {self.degraded}")
            return
        try:
            mapped = self.policy.call(lambda: self.figi.map(figis))
        except Exception as exc:
            self._failed(figis, exc)
            return
        known = {f: r for f, r in mapped.items() if isinstance(r, dict)}
        for figi, reason in mapped.items():
            if not isinstance(reason, dict):
                self._failed([figi], UnknownFigi(f"OpenFIGI does not know FIGI {figi}: {reason}"))
        if known:
            self.write_figis(known)

    def write_figis(self, records: dict[str, dict[str, Any]]) -> None:
        """One batch of asset rows; a refused batch is retried asset by asset, so a refusal holds only its asset."""
        try:
            self.policy.call(lambda: self.api.upsert_figis(records))
        except Exception as exc:
            if len(records) == 1 or is_transient(exc) or status_of(exc) in AUTH_STATUSES:
                self._failed(list(records), exc)
                return
            for figi, record in records.items():
                self.write_figis({figi: record})
            return
        for figi in records:
            self.outcomes[figi] = AssetOutcome(figi, "registered")
