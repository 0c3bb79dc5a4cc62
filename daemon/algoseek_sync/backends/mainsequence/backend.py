"""The Main Sequence platform as a :class:`~algoseek_sync.backends.base.Backend`.

Writes go through DataNodes (:mod:`.nodes`): the security master, one bars table per
dataset, and a backward-adjusted table per dataset with factors (:mod:`.adjusted`). Each
run covers exactly the assets in the frame handed over; rows the platform already holds
unchanged are dropped first, so a re-run writes nothing. Every platform operation is
retried under one bounded policy and, when the platform stays unreachable or failing,
ends in BackendUnavailableError so the worker keeps the work queued. A refusal by the
platform (a 4xx answer) is narrowed down to the assets that cause it; an exception that
did not come from the platform (a bug) is raised as it is, for the worker to contain.
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from algoseek_sync.backends.base import (
    AssetReport,
    AssetSpec,
    Backend,
    BarBatch,
    BarQuery,
    HistoryCopies,
    MasterUpdate,
    Receipt,
)
from algoseek_sync.backends.mainsequence import env, frames
from algoseek_sync.backends.mainsequence.adjusted import AdjustedWriter
from algoseek_sync.backends.mainsequence.assets import AssetRegistrar, api_message, chunks
from algoseek_sync.backends.mainsequence.retry import RetryPolicy, is_transient, status_of
from algoseek_sync.errors import BackendRejectedError, BackendUnavailableError, ConfigError, UserInputError
from algoseek_sync.formats.datasets import DATASETS

if TYPE_CHECKING:
    from algoseek_sync.backends.mainsequence.sdk import Sdk
    from algoseek_sync.config import Settings
    from algoseek_sync.state.database import Database

T = TypeVar("T")


class _Transient(Exception):
    """A platform operation failed in a way worth retrying (its message is already redacted).

    ``retry_after`` carries the platform's ``Retry-After`` so the policy waits at least that long.
    """

    def __init__(self, message: str, retry_after: object = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MainSequenceBackend(Backend):
    """Assets, security master and daily bars on the Main Sequence platform (SDK 3.19–3.21)."""

    name = "mainsequence"
    publishes_findings = True
    uses_pandas = True  # the SDK's frames go through pyarrow (Table.from_pandas)
    #: per-request (connect, read) timeout caps; the SDK's own default read timeout is 120 s
    connect_timeout: float = 5.0
    read_timeout: float = 120.0

    def __init__(
        self, settings: Settings, db: Database | None = None, *, sleep: Callable[[float], None] = time.sleep
    ):
        self.settings = settings
        self.db = db
        self.config = settings.mainsequence
        self._sleep = sleep
        self.policy = self._policy(self.config.retry_attempts, self.config.retry_total_seconds)
        env.load_env_file(self.config.env_file)
        self.endpoint = self._credentials()
        self._sdk: Sdk | None = None
        self._project_ready = False
        self._nodes: dict[tuple[str, bool], Any] = {}

    def _credentials(self) -> str:
        """Raise ConfigError naming what the SDK lacks; return the platform endpoint."""
        return env.require_variables()

    def _policy(self, attempts: int, total: float) -> RetryPolicy:
        return RetryPolicy(
            attempts=attempts,
            initial=self.config.retry_initial_seconds,
            maximum=self.config.retry_max_seconds,
            total=total,
            sleep=self._waiting,
            on_attempt=lambda: self.keepalive(self.connect_timeout + self.read_timeout),
        )

    def _waiting(self, seconds: float) -> None:
        """A backoff wait: the worker is alive, its next sign comes after the wait and one request."""
        self.keepalive(seconds + self.connect_timeout + self.read_timeout)
        self._sleep(seconds)

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

    def _guarded(self, op: Callable[[], T], what: str, policy: RetryPolicy | None = None) -> T:
        """Run ``op`` under the retry policy; transient exhaustion → BackendUnavailableError.

        Only answers of the platform become BackendRejectedError (a 4xx); any other
        exception is not the platform's doing and propagates unchanged.
        """
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
                status = status_of(exc)
                if status in (401, 403):
                    raise BackendUnavailableError(
                        f"Main Sequence refused the credentials: {api_message(exc)}"
                    ) from None
                if status is not None:
                    raise BackendRejectedError(f"Main Sequence refused {what}: {api_message(exc)}") from None
                raise

        try:
            return (policy or self.policy).call(attempt, retry_on=lambda e: isinstance(e, _Transient))
        except _Transient as exc:
            raise BackendUnavailableError(
                f"Main Sequence platform unavailable during {what}: {exc}"
            ) from None

    def _ensure_project(self, *, live: bool = False, policy: RetryPolicy | None = None) -> None:
        """Resolve the project once; ``live`` asks the platform again (health and check-config)."""
        from algoseek_sync.backends.mainsequence.sdk import attach_project

        if self._project_ready and not live:
            return
        try:
            self._guarded(lambda: attach_project(self.sdk), "the project lookup", policy)
        except BackendRejectedError as exc:
            project = os.environ.get(env.PROJECT_ID, "")
            raise ConfigError(
                f"configuration error: {env.PROJECT_ID}={project} is not usable: {exc}"
            ) from None
        self._project_ready = True

    def _node(self, dataset: str, *, adjusted: bool = False) -> Any:
        """The bars node of ``dataset`` (its master node is ``.master``)."""
        from algoseek_sync.backends.mainsequence.nodes import DailyBarsNode

        self._ensure_project()
        key = (dataset, adjusted)
        if key not in self._nodes:
            self._nodes[key] = DailyBarsNode.for_dataset(
                dataset, is_demo=self.config.is_demo, adjusted=adjusted
            )
        return self._nodes[key]

    # --- Backend interface ------------------------------------------------------------------

    def check(self, *, quick: bool = False) -> str:
        policy = self._policy(1, self.connect_timeout + 1.0) if quick else None
        self._ensure_project(live=True, policy=policy)
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

    def write_master(self, update: MasterUpdate) -> Receipt:
        master = self._node("primary").master
        receipt = Receipt()
        snapshot = update.snapshot.copy()
        if not snapshot.empty:
            from algoseek_sync.backends.platform_tables import MASTER_TIME

            snapshot["time_index"] = MASTER_TIME.strftime(frames.ISO_SECONDS)
            receipt.merge(self._write_isolated(master, snapshot, "the security master"))
        return receipt.merge(self.copy_history(update.history_copies))

    def write_bars(self, batch: BarBatch) -> Receipt:
        receipt = Receipt()
        by_dataset: dict[str, list[Any]] = {}
        for item in batch.files:
            by_dataset.setdefault(item.bars.dataset.name, []).append(item.bars.table)
        for name, tables in by_dataset.items():
            frame = frames.published(tables, batch.routes)
            if frame.empty:
                continue
            receipt.merge(self._write_isolated(self._node(name), frame, f"{name} bars"))
            if DATASETS[name].has_factors:
                writer = AdjustedWriter(self, DATASETS[name], self.db)
                receipt.merge(writer.write(tables, batch.routes, refused=set(receipt.rejected_assets)))
        return receipt

    def copy_history(self, copies: HistoryCopies) -> Receipt:
        receipt = Receipt()
        if not copies:
            return receipt
        self._ensure_project()
        for name in self._datasets_stored():
            node = self._node(name)
            for secid, (source, targets) in copies.items():
                receipt.rows_written += self._copy(node, secid, source, targets)
        return receipt

    def history(
        self,
        dataset: str,
        secids: Sequence[int],
        routes: dict[int, list[str]],
        columns: Sequence[str] | None = None,
    ) -> Any:
        """Raw rows of ``secids`` read back from the dataset's table (one identifier per SecId is enough)."""
        import pyarrow as pa

        from algoseek_sync.formats.bars import arrow_schema, last_wins

        chosen = DATASETS[dataset]
        schema = arrow_schema(chosen)
        one = {routes[s][0]: s for s in secids if routes.get(s)}
        if not one:
            return schema.empty_table()
        stored = frames.to_bars_frame(self._read(self._node(dataset), list(one), None, None), chosen)
        stored = stored[stored["unique_identifier"].isin(one)]
        if stored.empty:
            return schema.empty_table()
        stored = stored.assign(secid=stored["unique_identifier"].map(one))
        table = pa.Table.from_pandas(stored[schema.names], schema=schema, preserve_index=False)
        return last_wins([table.replace_schema_metadata(None)]) or schema.empty_table()

    def write_findings(self, findings: Sequence[dict[str, object]]) -> Receipt:
        from algoseek_sync.backends.mainsequence.nodes import DataQualityNode

        frame = frames.findings_frame(findings)
        if frame.empty:
            return Receipt()
        self._ensure_project()
        node = DataQualityNode.for_demo(self.config.is_demo)
        return self._write_isolated(node, frame, "data-quality findings")

    def datasets(self) -> list[str]:
        return self._datasets_stored()

    def _datasets_stored(self) -> list[str]:
        return [name for name in DATASETS if self._storage_id(self._node(name)) is not None]

    def read_bars(self, query: BarQuery) -> pd.DataFrame:
        dataset = DATASETS[query.dataset]
        if query.adjusted and not dataset.has_factors:
            raise UserInputError(
                f"dataset {dataset.name} carries no adjustment factors: --adjusted needs one that does"
            )
        node = self._node(query.dataset, adjusted=query.adjusted)
        stored = self._read(node, list(query.uids), query.start, query.end)
        return frames.to_bars_frame(stored, dataset)

    def read_day(self, dataset: str, day: str) -> pd.DataFrame:
        stored = self._read(self._node(dataset), None, day, day)
        return frames.to_bars_frame(stored, DATASETS[dataset])

    def read_assets(self) -> pd.DataFrame:
        master = self._node("primary").master
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
        out["secid"] = pd.to_numeric(out["secid"], errors="coerce").astype("Int64")
        return out[columns].sort_values("unique_identifier").reset_index(drop=True)

    def close(self) -> None:
        self._project_ready = False
        self._nodes.clear()

    # --- helpers ----------------------------------------------------------------------------

    def _storage_id(self, node: Any) -> str | None:
        """How the API addresses ``node``'s table (uid from SDK 3.21, id before), or None before its first run."""
        storage = self.sdk.client.DataNodeStorage
        tables = self._guarded(lambda: storage.filter(storage_hash=node.storage_hash), "the table lookup")
        return str(getattr(tables[0], "uid", None) or tables[0].id) if tables else None

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

        body: dict[str, Any] = {
            "start_date": stamp(start, False),
            "end_date": stamp(end, True),
            "great_or_equal": True,
            "less_or_equal": True,
            "columns": None,
        }
        reader = sdk.client.DataNodeStorage.get_data_between_dates_from_api
        if "dimension_filters" in inspect.signature(reader).parameters:
            # SDK 3.20+ filters reads by dimension and no longer sends unique_identifier_list
            if uids is not None:
                body["dimension_filters"] = {"unique_identifier": uids}
        else:
            body |= {"unique_identifier_list": uids, "unique_identifier_range_map": None}

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

    def _against_stored(self, node: Any, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(what ``node``'s table holds for ``frame``'s assets and days, the rows of ``frame`` it lacks)."""
        uids = frame.index.get_level_values("unique_identifier").unique().tolist()
        times = frame.index.get_level_values("time_index")
        stored = self._read(node, uids, times.min().isoformat(), times.max().isoformat())
        return stored, frames.changed_rows(frame, stored)

    def _write(self, node: Any, frame: pd.DataFrame, what: str) -> int:
        """Run ``node`` for ``frame``'s assets with the rows the platform lacks; return rows sent."""
        if frame.empty:
            return 0
        _, fresh = self._against_stored(node, frame)
        if fresh.empty:
            return 0

        def run() -> None:
            again = type(node)(node.config)
            again.load(fresh)
            again.run(debug_mode=True, update_tree=False, force_update=True)

        self._guarded(run, what)
        return len(fresh)

    def _write_isolated(self, node: Any, plain: pd.DataFrame, what: str) -> Receipt:
        """Write ``plain``; when the platform refuses, narrow the refusal down to the assets causing it."""
        receipt = Receipt()
        pending = [frames.to_node_frame(plain)]
        while pending:
            frame = pending.pop()
            try:
                receipt.rows_written += self._write(node, frame, what)
            except BackendRejectedError as exc:
                uids = frame.index.get_level_values("unique_identifier").unique().tolist()
                if len(uids) == 1:
                    receipt.rejected_assets[uids[0]] = str(exc)
                    continue
                half = set(uids[: len(uids) // 2])
                mask = frame.index.get_level_values("unique_identifier").isin(half)
                pending += [frame[mask], frame[~mask]]
        return receipt

    def _copy(self, node: Any, secid: int, source_uid: str, target_uids: Sequence[str]) -> int:
        """Write ``source_uid``'s stored bars under each target identifier."""
        targets = [t for t in target_uids if t != source_uid]
        if not targets:
            return 0
        history = frames.to_plain_frame(self._read(node, [source_uid], None, None))
        if history.empty:
            return 0
        copies = [history.assign(unique_identifier=target) for target in targets]
        return self._write(
            node, frames.to_node_frame(pd.concat(copies, ignore_index=True)), f"history of SecId {secid}"
        )
