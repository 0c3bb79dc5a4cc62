"""The Main Sequence platform as a :class:`~algoseek_sync.backends.base.Backend`.

Writes go through the two DataNodes (:mod:`.nodes`), run for exactly the assets in the
frame handed over; rows the platform already holds unchanged are dropped first, so a
re-run writes nothing. Every platform operation is retried under one bounded policy and,
when the platform stays unreachable or failing, ends in BackendUnavailableError so the
worker keeps the work queued.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from algoseek_sync.backends.base import AssetReport, AssetSpec, Backend, Done, MasterUpdate
from algoseek_sync.backends.mainsequence import env, frames
from algoseek_sync.backends.mainsequence.assets import AssetRegistrar, api_message, chunks
from algoseek_sync.backends.mainsequence.retry import RetryPolicy, is_transient, status_of
from algoseek_sync.errors import BackendRejectedError, BackendUnavailableError, ConfigError

if TYPE_CHECKING:
    from algoseek_sync.backends.mainsequence.sdk import Sdk
    from algoseek_sync.config import Settings
    from algoseek_sync.db import Database

T = TypeVar("T")
BAR_COLUMNS = ["open", "high", "low", "close", "volume", "secid", "ticker"]


class _Transient(Exception):
    """A platform operation failed in a way worth retrying (its message is already redacted).

    ``retry_after`` carries the platform's ``Retry-After`` so the policy waits at least that long.
    """

    def __init__(self, message: str, retry_after: object = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MainSequenceBackend(Backend):
    """Assets, security master and daily bars on the Main Sequence platform (SDK 3.19)."""

    name = "mainsequence"
    #: per-request (connect, read) timeout caps; the SDK's own default read timeout is 120 s
    connect_timeout: float = 5.0
    read_timeout: float = 120.0

    def __init__(
        self, settings: Settings, db: Database | None = None, *, sleep: Callable[[float], None] = time.sleep
    ):
        self.settings = settings
        self.db = db
        self.config = settings.mainsequence
        self.policy = RetryPolicy(
            attempts=self.config.retry_attempts,
            initial=self.config.retry_initial_seconds,
            maximum=self.config.retry_max_seconds,
            total=self.config.retry_total_seconds,
            sleep=sleep,
        )
        env.load_env_file(self.config.env_file)
        self.endpoint = env.require_variables()
        self._sdk: Sdk | None = None
        self._project_ready = False

    # --- SDK plumbing -----------------------------------------------------------------------

    @property
    def sdk(self) -> Sdk:
        from algoseek_sync.backends.mainsequence.sdk import load_sdk

        if self._sdk is None:
            try:
                self._sdk = load_sdk(self.settings.state.dir, self.connect_timeout, self.read_timeout)
            except ImportError as exc:
                raise ConfigError(
                    f"configuration error: the mainsequence SDK cannot be imported: {exc}"
                ) from None
        self._sdk.adapter.connect_timeout = self.connect_timeout
        self._sdk.adapter.read_timeout = self.read_timeout
        return self._sdk

    def _guarded(self, op: Callable[[], T], what: str) -> T:
        """Run ``op`` under the retry policy; transient exhaustion → BackendUnavailableError."""
        from algoseek_sync.backends.mainsequence.sdk import contained

        counters = self.sdk.counters

        def attempt() -> T:
            before = counters.snapshot()
            try:
                with contained():
                    return op()
            except (BackendUnavailableError, ConfigError, BackendRejectedError):
                raise
            except Exception as exc:
                after = counters.snapshot()
                platform_failed = any(a > b for a, b in zip(after[1:], before[1:], strict=True))
                if platform_failed or is_transient(exc):
                    hint = getattr(exc, "retry_after", None) or (
                        counters.retry_after if platform_failed else None
                    )
                    raise _Transient(api_message(exc), retry_after=hint) from exc
                if status_of(exc) in (401, 403):
                    raise BackendUnavailableError(
                        f"Main Sequence refused the credentials: {api_message(exc)}"
                    ) from None
                raise BackendRejectedError(f"Main Sequence refused {what}: {api_message(exc)}") from None

        try:
            return self.policy.call(attempt, retry_on=lambda e: isinstance(e, _Transient))
        except _Transient as exc:
            raise BackendUnavailableError(
                f"Main Sequence platform unavailable during {what}: {exc}"
            ) from None

    def _ensure_project(self) -> None:
        from algoseek_sync.backends.mainsequence.sdk import attach_project

        if self._project_ready:
            return
        try:
            self._guarded(lambda: attach_project(self.sdk), "the project lookup")
        except BackendRejectedError as exc:
            project = os.environ.get(env.PROJECT_ID, "")
            raise ConfigError(
                f"configuration error: {env.PROJECT_ID}={project} is not usable: {exc}"
            ) from None
        self._project_ready = True

    def _nodes(self) -> tuple[Any, Any]:
        from algoseek_sync.backends.mainsequence.nodes import DailyBarsConfig, DailyBarsNode

        self._ensure_project()
        bars = DailyBarsNode(DailyBarsConfig(is_demo=self.config.is_demo))
        return bars.master, bars

    # --- Backend interface ------------------------------------------------------------------

    def check(self) -> str:
        self._ensure_project()
        suffix = ", demo tables" if self.config.is_demo else ""
        project = os.environ.get(env.PROJECT_ID, "")
        return f"Main Sequence platform at {self.endpoint} (project {project}{suffix})"

    def ensure_assets(self, assets: Sequence[AssetSpec]) -> AssetReport:
        if not assets:
            return AssetReport()
        from algoseek_sync.backends.mainsequence.sdk import contained

        api = self.sdk.client.Asset
        registrar = AssetRegistrar(
            api, self.policy, self.config.query_batch_size, self.config.registration_retry_seconds
        )
        with contained():
            return registrar.run(assets)

    def apply_master(self, update: MasterUpdate, done: Done) -> None:
        master, _ = self._nodes()
        snapshot = update.snapshot.copy()
        if not snapshot.empty:
            from algoseek_sync.backends.mainsequence.nodes import MASTER_TIME

            snapshot["time_index"] = MASTER_TIME.strftime(frames.ISO_SECONDS)
            self._write(master, frames.to_node_frame(snapshot), "the security master")
        for secid, (source, targets) in update.history_copies.items():
            self._copy(secid, source, targets)
        done()

    def upsert_bars(self, frame: pd.DataFrame, done: Done) -> int:
        _, bars = self._nodes()
        written = self._write(bars, frames.to_node_frame(frame), "daily bars")
        done()
        return written

    def copy_history(self, secid: int, source_uid: str, target_uids: Sequence[str], done: Done) -> int:
        self._ensure_project()
        written = self._copy(secid, source_uid, target_uids)
        done()
        return written

    def read_bars(
        self, uids: Sequence[str], start: str | None = None, end: str | None = None
    ) -> pd.DataFrame:
        _, bars = self._nodes()
        stored = self._read(bars, list(uids), start, end)
        return frames.to_plain_frame(stored)

    def read_assets(self) -> pd.DataFrame:
        master, _ = self._nodes()
        rows = frames.to_plain_frame(self._read(master, None, None, None))
        columns = ["unique_identifier", "secid", "kind", "ticker", "name"]
        if rows.empty:
            return pd.DataFrame(columns=columns)
        uids = rows["unique_identifier"].tolist()
        found: dict[str, Any] = {}
        for batch in chunks(uids, self.config.query_batch_size):
            assets = self._guarded(
                lambda b=batch: self.sdk.client.Asset.query(unique_identifier__in=list(b), per_page=500),
                "asset query",
            )
            found.update({str(a.unique_identifier): a for a in assets})
        out = rows[rows["unique_identifier"].isin(found)].copy()
        snapshots = {uid: getattr(a, "current_snapshot", None) for uid, a in found.items()}
        out["ticker"] = [getattr(snapshots[u], "ticker", None) or "" for u in out["unique_identifier"]]
        out["name"] = [getattr(snapshots[u], "name", None) or "" for u in out["unique_identifier"]]
        for col in ("secid", "kind"):
            if col not in out.columns:
                out[col] = None
        return out[columns].sort_values("unique_identifier").reset_index(drop=True)

    def close(self) -> None:
        self._project_ready = False

    # --- helpers ----------------------------------------------------------------------------

    def _storage_id(self, node: Any) -> int | None:
        """The platform id of ``node``'s table, or None before its first run."""
        storage = self.sdk.client.DataNodeStorage
        tables = self._guarded(lambda: storage.filter(storage_hash=node.storage_hash), "the table lookup")
        return int(tables[0].id) if tables else None

    def _read(self, node: Any, uids: list[str] | None, start: str | None, end: str | None) -> pd.DataFrame:
        """Stored rows of ``node``'s table (DataNode frame); errors raise instead of reading as empty."""
        table_id = self._storage_id(node)
        if table_id is None or uids == []:
            return frames.empty_node_frame()
        sdk = self.sdk
        url = f"{sdk.utils.API_ENDPOINT}/ts_manager/dynamic_table/{table_id}/get_data_between_dates_from_remote/"

        def stamp(value: str | None, end_of_day: bool) -> float | None:
            if not value:
                return None
            when = pd.Timestamp(value)
            when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
            if end_of_day and len(value) <= 10:
                when += pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
            return when.timestamp()

        body = {
            "start_date": stamp(start, False),
            "end_date": stamp(end, True),
            "great_or_equal": True,
            "less_or_equal": True,
            "unique_identifier_list": uids,
            "columns": None,
            "unique_identifier_range_map": None,
        }

        def fetch() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = []
            offset: int | None = 0
            while offset is not None:
                response = sdk.utils.make_request(
                    s=sdk.utils.session,
                    loaders=sdk.utils.loaders,
                    r_type="POST",
                    url=url,
                    payload={"json": body | {"offset": offset}},
                )
                sdk.exceptions.raise_for_response(response)
                data = response.json()
                rows.extend(data.get("results") or [])
                offset = data.get("next_offset") or None
            return rows

        return frames.records_to_node_frame(pd.DataFrame(self._guarded(fetch, "a table read")))

    def _write(self, node: Any, frame: pd.DataFrame, what: str) -> int:
        """Run ``node`` for ``frame``'s assets with the rows the platform lacks; return rows sent."""
        if frame.empty:
            return 0
        uids = frame.index.get_level_values("unique_identifier").unique().tolist()
        times = frame.index.get_level_values("time_index")
        stored = self._read(node, uids, times.min().isoformat(), times.max().isoformat())
        fresh = frames.changed_rows(frame, stored)
        if fresh.empty:
            return 0

        def run() -> None:
            node_cls = type(node)
            again = node_cls(node.config)
            again.load(fresh)
            again.run(debug_mode=True, update_tree=False, force_update=True)

        self._guarded(run, what)
        return len(fresh)

    def _copy(self, secid: int, source_uid: str, target_uids: Sequence[str]) -> int:
        """Write ``source_uid``'s stored bars under each target identifier."""
        targets = [t for t in target_uids if t != source_uid]
        if not targets:
            return 0
        _, bars = self._nodes()
        history = frames.to_plain_frame(self._read(bars, [source_uid], None, None))
        if history.empty:
            return 0
        copies = [history.assign(unique_identifier=target) for target in targets]
        return self._write(
            bars, frames.to_node_frame(pd.concat(copies, ignore_index=True)), f"history of SecId {secid}"
        )
