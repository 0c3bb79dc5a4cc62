"""The Main Sequence platform on SDK 9.x (MetaTables and ms-markets) as a Backend.

The 3.x backend's logic is kept (it is the base class): bars per dataset, adjusted tables kept in
step (:class:`~algoseek_sync.backends.mainsequence.adjusted.AdjustedWriter`), history copies,
refusals narrowed down to the assets causing them, one bounded retry policy. What 9.x changes
is underneath, in the methods overridden here:

* tables are SQLAlchemy MetaTable models (:mod:`.tables`) created by migrations shipped in the
  package (``algoseek-sync migrate``), not created on first write;
* writes overwrite each asset's time range, so every write is made range-complete first
  (:mod:`.writes`) and persisted through the table's update process directly (the SDK's default
  run path silently drops rows at or before an asset's last stored time);
* reads go through the SDK's paged reads with explicit budgets (its default stops at 100,000 rows);
* assets are rows of the markets asset table, FIGIs mapped at OpenFIGI by this process (:mod:`.assets`);
* the project comes from a Git checkout (``mainsequence.checkout``, default the working directory).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd

from algoseek_sync.backends.base import AssetReport, AssetSpec, MasterUpdate, Receipt
from algoseek_sync.backends.mainsequence import env, frames
from algoseek_sync.backends.mainsequence.assets import chunks
from algoseek_sync.backends.mainsequence.backend import MainSequenceBackend
from algoseek_sync.backends.mainsequence.retry import RetryPolicy, status_of
from algoseek_sync.backends.mainsequence9 import writes
from algoseek_sync.backends.mainsequence9.errors import translated
from algoseek_sync.errors import AlgoseekSyncError, BackendRejectedError, BackendUnavailableError, ConfigError

if TYPE_CHECKING:
    from algoseek_sync.backends.mainsequence9.sdk import Sdk9
    from algoseek_sync.config import Settings
    from algoseek_sync.state.database import Database

T = TypeVar("T")
DEFAULT_ENDPOINT = "https://api.main-sequence.app"
#: rows per persisted frame: well inside the SDK's 60 s upload deadline on a slow link
WRITE_ROWS = 20_000
#: read paging: the data API's largest page, identifiers per read, and the read budgets
PAGE_ROWS = 10_000
READ_IDENTIFIERS = 100  # the data API refuses a dimension filter of more values (422)
READ_MAX_ROWS = 50_000_000
READ_MAX_BYTES = 8 << 30
READ_DEADLINE_SECONDS = 600.0
MIGRATE_HINT = "run `algoseek-sync migrate`"


@dataclass
class Table:
    """One platform table: its model and, once written to, its update process."""

    model: type[Any]
    #: the catalog entry with its storage profile (the binding lookup returns it without one)
    meta: Any = field(default=None, repr=False)
    writer: Any = field(default=None, repr=False)


@dataclass(frozen=True)
class Writer:
    """A table's update process as bound once; each persist keeps it (the SDK's answer to a write
    refers to the table by uid only and cannot be written through again)."""

    update: Any
    data_source: Any

    def persist(self, frame: pd.DataFrame) -> None:
        """Write ``frame`` with overwrite (the SDK's updater path, without its latest-value filter)."""
        self.update.upsert_data_into_table(data=frame, data_source=self.data_source, overwrite=True)


class MainSequence9Backend(MainSequenceBackend):
    """Assets, security master and daily bars on the Main Sequence platform (SDK 9.x)."""

    def __init__(
        self, settings: Settings, db: Database | None = None, *, sleep: Callable[[float], None] = time.sleep
    ):
        super().__init__(settings, db, sleep=sleep)
        self.checkout = Path(self.config.checkout or os.getcwd()).expanduser()
        self.write_rows = WRITE_ROWS
        self._sdk9: Sdk9 | None = None
        self._markets_ready = False
        self._tables: dict[str, Table] = {}

    # --- SDK plumbing -----------------------------------------------------------------------

    def _credentials(self) -> str:
        return require_credentials()

    @property
    def sdk(self) -> Sdk9:  # type: ignore[override]
        from algoseek_sync.backends.mainsequence9.sdk import load_sdk

        if self._sdk9 is None:
            try:
                self._sdk9 = load_sdk(self.settings.state.dir, self.checkout)
            except ImportError as exc:
                raise ConfigError(
                    f"configuration error: the mainsequence 9.x SDK cannot be imported: {exc}"
                ) from None
        return self._sdk9

    def _guarded(self, op: Callable[[], T], what: str, policy: RetryPolicy | None = None) -> T:
        """The 3.x policy and classification, with the 9.x SDK's failures translated first.

        Transfer errors without a status (outcome unknown, deadlines) become transient 503s, a
        row past the data API's limits a refusal, an unusable checkout a ConfigError.
        """
        from algoseek_sync.backends.mainsequence9.sdk import contained

        def translated_op() -> T:
            with contained():
                try:
                    return op()
                except Exception as exc:
                    raise translated(exc) from exc

        return super()._guarded(translated_op, what, policy)

    def _ensure_project(self, *, live: bool = False, policy: RetryPolicy | None = None) -> None:
        """Import the SDK, freeze the checkout and reach the data API once (again when ``live``)."""
        if self._project_ready and not live:
            return
        sdk = self.sdk
        self._guarded(lambda: sdk.metatables.get_runtime_status(), "the data API lookup", policy)
        self._project_ready = True

    def _ensure_markets(self) -> None:
        """Attach the markets (asset) tables once; missing ones are a configuration problem."""
        if self._markets_ready:
            return
        self._ensure_project()

        problem = "configuration error: the markets (ms-markets) tables are not usable on this platform"

        def start() -> None:
            import msm

            try:
                msm.start_engine()
            except Exception as exc:
                if translated(exc) is exc and status_of(exc) is None:  # not the platform's answer
                    raise ConfigError(f"{problem}: {env.redact(exc)}") from None
                raise

        try:
            self._guarded(start, "the markets tables lookup")
        except BackendRejectedError as exc:
            raise ConfigError(f"{problem}: {exc}") from None
        self._markets_ready = True

    def _table(self, model: type[Any]) -> Table:
        self._ensure_project()
        key = model.__metatable_identifier__
        if key not in self._tables:
            self._tables[key] = Table(model)
        return self._tables[key]

    def _node(self, dataset: str, *, adjusted: bool = False) -> Table:
        return self._table(self.sdk.tables.BAR_MODELS[(dataset, adjusted)])

    def _meta(self, node: Table) -> Any | None:
        """The table's catalog entry, or None when it is not migrated."""
        from metatables.updaters.managers import ensure_registered_output_table

        if node.meta is not None:
            return node.meta
        models = self.sdk.models

        def bind() -> Any | None:
            try:
                ensure_registered_output_table(node.model, context="algoseek-sync")
            except ValueError:
                return None
            return models.TimeIndexMetaTable.get(uid=str(node.model.get_time_index_meta_table().uid))

        node.meta = self._guarded(bind, "the table lookup")
        return node.meta

    def _writer(self, node: Table) -> Writer:
        """The table's update process, created on the platform on first use."""
        if node.writer is None:
            tables = self.sdk.tables
            if self._meta(node) is None:  # the work stays queued until someone migrates
                raise BackendUnavailableError(
                    f"platform table {node.model.__metatable_identifier__} is not migrated: {MIGRATE_HINT}"
                )

            def build() -> Any:
                writer = tables.TableWriter(
                    tables.TableConfig(table=node.model.__metatable_identifier__), node.model
                )
                writer.verify_and_build_remote_objects()
                return Writer(writer.update_manager.table_update, writer.data_source)

            node.writer = self._guarded(build, "the table's update process")
        return node.writer

    # --- Backend interface ------------------------------------------------------------------

    def check(self, *, quick: bool = False) -> str:
        policy = self._policy(1, 30.0) if quick else None
        self._ensure_project(live=True, policy=policy)
        missing = self.missing_tables()
        if missing:
            raise ConfigError(
                f"configuration error: platform tables not migrated ({', '.join(missing)}): {MIGRATE_HINT}"
            )
        self._ensure_markets()
        api = os.environ.get("METATABLES_API_URL") or "discovered from the platform"
        return f"Main Sequence platform at {self.endpoint} (SDK 9.x, project {self.sdk.checkout}, data API {api})"

    def prerequisites(self) -> list[tuple[str, bool, str]]:
        """Each prerequisite of writing to today's platform, checked on its own: ``check-config``'s lines.

        (name, met, what was found or what is missing); a step whose prerequisite failed is not tried.
        """
        quick = self._policy(1, 30.0)
        steps: list[tuple[str, str | None, Callable[[], str]]] = [
            ("credentials", None, lambda: f"a token for {self.endpoint}"),
            ("identity", None, self._identity),
            ("data API", "identity", lambda: self._reach(quick)),
            ("tables migrated", "data API", self._migrated),
            ("markets tables", "data API", self._markets),
            ("OpenFIGI", None, self._openfigi),
        ]
        found: dict[str, bool] = {}
        out: list[tuple[str, bool, str]] = []
        for name, needs, step in steps:
            if needs is not None and not found[needs]:
                found[name] = False
                out.append((name, False, f"not checked: needs {needs}"))
                continue
            try:
                detail, found[name] = step(), True
            except AlgoseekSyncError as exc:
                detail, found[name] = str(exc).removeprefix("configuration error: "), False
            out.append((name, found[name], detail))
        return out

    def _identity(self) -> str:
        if not (self.checkout / ".git").exists():
            raise ConfigError(f"{self.checkout} is not a Git checkout (set mainsequence.checkout)")
        return f"the project of the Git checkout {self.sdk.checkout}"

    def _reach(self, policy: RetryPolicy) -> str:
        self._ensure_project(live=True, policy=policy)
        return os.environ.get("METATABLES_API_URL") or "discovered from the platform"

    def _migrated(self) -> str:
        missing = self.missing_tables()
        if missing:
            raise ConfigError(f"not migrated: {', '.join(missing)}: {MIGRATE_HINT}")
        return f"{len(self.sdk.tables.ALL_MODELS)} algoseek tables"

    def _markets(self) -> str:
        self._ensure_markets()
        return "ms-markets asset tables present"

    def _openfigi(self) -> str:
        from algoseek_sync.backends.mainsequence9.assets import OpenFigi, OpenFigiError

        figi = OpenFigi()
        try:
            figi.map(["BBG000B9XRY4"])  # one known FIGI: the endpoint answers mappings
        except OpenFigiError as exc:
            raise BackendUnavailableError(f"{figi.url}: {exc}") from None
        return f"{figi.url} answers"

    def missing_tables(self) -> list[str]:
        """Identifiers of the algoseek tables the platform does not have yet."""
        return [
            m.__metatable_identifier__
            for m in self.sdk.tables.ALL_MODELS
            if self._meta(self._table(m)) is None
        ]

    def migrate(self) -> str:
        """Create or upgrade the algoseek tables (the shipped migrations); one line on what was done."""
        from algoseek_sync.backends.mainsequence9.migrations import provider

        self._ensure_project()
        sdk = self.sdk
        result = self._guarded(lambda: sdk.metatables.upgrade_application(provider()), "the table migrations")
        self._tables.clear()
        count = result.get("finalized_count") if isinstance(result, dict) else None
        return f"algoseek tables migrated on {self.endpoint}" + (
            f" ({count} tables finalised)" if count else ""
        )

    def ensure_assets(self, assets: Sequence[AssetSpec]) -> AssetReport:
        if not assets:
            return AssetReport()
        from algoseek_sync.backends.mainsequence9.assets import AssetRegistrar9, MarketsAssets, OpenFigi
        from algoseek_sync.backends.mainsequence9.sdk import contained

        self._ensure_markets()
        registrar = AssetRegistrar9(
            MarketsAssets(),
            OpenFigi(),
            self.policy,
            self.config.query_batch_size,
            self.config.registration_retry_seconds,
        )
        with contained():
            return registrar.run(assets)

    def write_master(self, update: MasterUpdate) -> Receipt:
        tables = self.sdk.tables
        receipt = Receipt()
        snapshot = update.snapshot.copy()
        if not snapshot.empty:
            snapshot["time_index"] = tables.MASTER_TIME.strftime(frames.ISO_SECONDS)
            receipt.merge(
                self._write_isolated(self._table(tables.MASTER_MODEL), snapshot, "the security master")
            )
        return receipt.merge(self.copy_history(update.history_copies))

    def write_findings(self, findings: Sequence[dict[str, object]]) -> Receipt:
        frame = frames.findings_frame(findings)
        if frame.empty:
            return Receipt()
        return self._write_isolated(
            self._table(self.sdk.tables.QUALITY_MODEL), frame, "data-quality findings"
        )

    def read_assets(self) -> pd.DataFrame:
        columns = ["unique_identifier", "secid", "kind", "ticker", "name"]
        rows = frames.to_plain_frame(self._read(self._table(self.sdk.tables.MASTER_MODEL), None, None, None))
        if rows.empty:
            return pd.DataFrame(columns=columns)
        from algoseek_sync.backends.mainsequence9.assets import MarketsAssets

        self._ensure_markets()
        api = MarketsAssets()
        found: set[str] = set()
        for batch in chunks(rows["unique_identifier"].tolist(), self.config.query_batch_size):
            assets = self._guarded(lambda b=batch: api.query(unique_identifier__in=list(b)), "asset query")
            found.update(str(a.unique_identifier) for a in assets)
        out = rows[rows["unique_identifier"].isin(found)].reindex(columns=[*columns, "tickers"])

        def latest(column: str) -> pd.Series:  # the master lists tickers and names oldest first
            return out[column].fillna("").astype(str).str.split(";").str[-1]

        secid = pd.to_numeric(out["secid"], errors="coerce").astype("Int64")
        out = out.assign(ticker=latest("tickers"), name=latest("name"), secid=secid)[columns]
        return out.sort_values("unique_identifier").reset_index(drop=True)

    def close(self) -> None:
        self._project_ready = False
        self._tables.clear()

    # --- storage ----------------------------------------------------------------------------

    def _storage_id(self, node: Any) -> str | None:
        meta = self._meta(node)
        return str(meta.uid) if meta is not None else None

    def _read(self, node: Any, uids: list[str] | None, start: str | None, end: str | None) -> pd.DataFrame:
        """Stored rows of ``node``'s table as a node frame, through the SDK's paged reads."""
        meta = self._meta(node)
        if meta is None or uids == []:
            return frames.empty_node_frame()
        tables = self.sdk.tables
        window = {
            "start_date": _bound(start, end_of_day=False),
            "end_date": _bound(end, end_of_day=True),
            "great_or_equal": True,
            "less_or_equal": True,
        }

        def fetch(batch: Sequence[str] | None) -> list[pd.DataFrame]:
            filters = {tables.IDENTITY: list(batch)} if batch is not None else None
            pages = meta.iter_batches(
                **window,
                dimension_filters=filters,
                page_size=PAGE_ROWS,
                max_rows=READ_MAX_ROWS,
                max_bytes=READ_MAX_BYTES,
                deadline_seconds=READ_DEADLINE_SECONDS,
            )
            return list(pages)

        batches: list[Sequence[str] | None] = (
            list(chunks(uids, READ_IDENTIFIERS)) if uids is not None else [None]
        )
        pages = [
            page for batch in batches for page in self._guarded(lambda b=batch: fetch(b), "a table read")
        ]
        return to_node_frame(pages, tables.IDENTITY)

    def _write(self, node: Any, frame: pd.DataFrame, what: str) -> int:
        """Make ``frame`` range-complete per asset against the store and persist it; return rows changed."""
        if frame.empty:
            return 0
        stored, fresh = self._against_stored(node, frame)
        if fresh.empty:
            return 0
        union = writes.range_complete(frame, stored)
        writer = self._writer(node)
        tables = self.sdk.tables
        for part in writes.split(union, self.write_rows):
            payload = to_store_frame(part, node.model, tables)
            self._guarded(lambda p=payload: writer.persist(p), what)
        return len(fresh)


def require_credentials(environ: dict[str, str] | None = None) -> str:
    """Raise ConfigError unless the SDK has credentials; return the platform endpoint."""
    environ = dict(os.environ) if environ is None else environ
    endpoint = (environ.get(env.ENDPOINT) or DEFAULT_ENDPOINT).strip()
    if not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"configuration error: environment variable {env.ENDPOINT} must be an http(s) URL")
    mode = (environ.get("MAINSEQUENCE_AUTH_MODE") or "jwt").strip()
    tokens = (environ.get(env.ACCESS_TOKEN) or "").strip() or (environ.get(env.REFRESH_TOKEN) or "").strip()
    if mode != "runtime_credential" and not tokens:
        raise ConfigError(
            f"configuration error: environment variable {env.ACCESS_TOKEN} (or {env.REFRESH_TOKEN}) is not set"
        )
    return endpoint.rstrip("/")


def _bound(value: str | None, *, end_of_day: bool) -> dt.datetime | None:
    """A read bound: an ISO time, or a YYYY-MM-DD day (its end when ``end_of_day``)."""
    if not value:
        return None
    when = pd.Timestamp(value)
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    if end_of_day and len(value) <= 10:
        when += pd.Timedelta(days=1) - pd.Timedelta(microseconds=1)
    return when.to_pydatetime()


def to_node_frame(pages: Sequence[pd.DataFrame], identity: str) -> pd.DataFrame:
    """The SDK's typed pages (indexed by time and ``identity``) → a node frame of :mod:`..mainsequence.frames`."""
    pages = [p for p in pages if not p.empty]
    if not pages:
        return frames.empty_node_frame()
    out = pd.concat([p.reset_index() if identity in p.index.names else p for p in pages], ignore_index=True)
    out = out.rename(columns={identity: "unique_identifier"})
    out["time_index"] = pd.to_datetime(out["time_index"], utc=True).dt.as_unit("ns")
    return out.drop_duplicates(subset=frames.INDEX, keep="last").set_index(frames.INDEX).sort_index()


def to_store_frame(frame: pd.DataFrame, model: type[Any], tables: Any) -> pd.DataFrame:
    """A node frame → the SDK's frame for ``model``: its identity name, exactly its columns.

    Columns the table does not declare go into ``extra`` as JSON when the table has one (the
    security master's vendor columns); declared columns the frame lacks are written empty.
    """
    declared = tables.columns_of(model)
    out = frame.reset_index().rename(columns={"unique_identifier": tables.IDENTITY})
    unknown = [c for c in out.columns if c not in declared and c not in (tables.TIME_INDEX, tables.IDENTITY)]
    if unknown and "extra" in declared and "extra" not in out.columns:
        records = out[unknown].astype(object).where(out[unknown].notna(), None).to_dict("records")
        out["extra"] = [
            json.dumps({k: v for k, v in r.items() if v is not None}, default=str) for r in records
        ]
    out = out.reindex(columns=[tables.TIME_INDEX, tables.IDENTITY, *declared])
    return out.set_index([tables.TIME_INDEX, tables.IDENTITY])
