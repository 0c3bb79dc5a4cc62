"""The only writer. One cycle: due registrations → newest master → affected SecIds' bars.

Ordering, coalescing, parking and retries live here; parsing is delegated to
:mod:`algoseek_sync.formats`, storage to a :class:`~algoseek_sync.backends.base.Backend`.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow.compute as pc
import structlog

from algoseek_sync.backends.base import AssetOutcome, Backend, MasterUpdate
from algoseek_sync.config import Settings
from algoseek_sync.errors import BackendRejectedError, BackendUnavailableError, BadFileError, FileGoneError
from algoseek_sync.formats.bars import BarFile, fan_out, parse_bars
from algoseek_sync.formats.master import parse_master
from algoseek_sync.formats.read import FileContent, read_file
from algoseek_sync.ledger import Ledger, Version
from algoseek_sync.securities import Securities, asset_specs

log = structlog.get_logger("algoseek_sync.worker")

BATCH_FILES = 64
BATCH_ROWS = 200_000


@dataclass(frozen=True)
class FileResult:
    """What happened to one file version; hooks (metrics, progress) receive these."""

    path: str
    kind: str
    outcome: str  # done | unchanged | quarantined | waiting_master | superseded | skipped | deferred
    rows: int = 0
    written: int = 0
    seconds: float = 0.0
    reason: str = ""
    secids: tuple[int, ...] = ()
    figis: tuple[str, ...] = ()


@dataclass
class CycleStats:
    files: int = 0
    rows_written: int = 0
    deferred: bool = False
    results: list[FileResult] = field(default_factory=list)


def backoff(attempts: int) -> float:
    """Seconds before a deferred version is tried again (bounded, so outages stay quiet)."""
    return float(min(300, 2 ** min(attempts, 9)))


@dataclass
class _Parsed:
    version: Version
    content: FileContent
    bars: BarFile
    started: float


class Worker:
    """Drains the ledger into the backend."""

    def __init__(self, settings: Settings, ledger: Ledger, securities: Securities, backend: Backend) -> None:
        self.settings = settings
        self.ledger = ledger
        self.securities = securities
        self.backend = backend
        self.hooks: list[Callable[[FileResult], None]] = []
        self.last_file: str = ""
        self._interrupted = False

    # -- helpers -------------------------------------------------------------------
    def _emit(self, stats: CycleStats, result: FileResult) -> None:
        stats.files += 1
        stats.rows_written += result.written
        stats.results.append(result)
        self.last_file = result.path
        level = "warning" if result.outcome in ("quarantined", "deferred") else "info"
        getattr(log, level)(
            "file_processed",
            path=result.path,
            kind=result.kind,
            outcome=result.outcome,
            rows=result.rows,
            rows_written=result.written,
            duration_s=round(result.seconds, 4),
            reason=result.reason or None,
            secids=_shorten(result.secids),
            figis=_shorten(result.figis),
        )
        for hook in self.hooks:
            hook(result)

    def _read(self, version: Version) -> FileContent:
        limits = self.settings.limits
        content = read_file(
            self.settings.drop.dir,
            version.path,
            max_file_bytes=limits.max_file_bytes,
            max_decompressed_bytes=limits.max_decompressed_bytes,
        )
        if (content.size, content.mtime_ns) != (version.size, version.mtime_ns):
            raise FileGoneError("file changed after it was queued; its new version is queued instead")
        return content

    def _unchanged(
        self,
        stats: CycleStats,
        version: Version,
        content: FileContent,
        applied_sha: str | None,
        started: float,
    ) -> bool:
        """The same bytes as the version already applied: record it done, write nothing."""
        if version.force or content.sha256 != applied_sha:
            return False
        self.ledger.mark_done(
            version.id, sha256=content.sha256, rows=0, secids="", note="same content as the applied version"
        )
        self._emit(
            stats, FileResult(version.path, version.kind, "unchanged", seconds=time.monotonic() - started)
        )
        return True

    def _reject(self, stats: CycleStats, version: Version, exc: Exception, started: float) -> None:
        reason = str(exc)
        if isinstance(exc, FileGoneError):
            outcome = "superseded" if "changed" in reason else "skipped"
            (self.ledger.mark_superseded if outcome == "superseded" else self.ledger.mark_skipped)(
                version.id, reason
            )
        else:
            outcome = "quarantined"
            self.ledger.mark_quarantined(version.id, reason)
        self._emit(
            stats,
            FileResult(
                version.path, version.kind, outcome, seconds=time.monotonic() - started, reason=reason
            ),
        )

    # -- the cycle -------------------------------------------------------------------
    def cycle(self, should_stop: Callable[[], bool] = lambda: False) -> CycleStats:
        """Process what is due now; return when the queue is empty, a stop is asked, or the backend is down."""
        stats = CycleStats()
        try:
            if self._interrupted:
                self._requeue_interrupted()
            self._registrations()
            if not self._masters(stats):
                return stats
            while not should_stop():
                versions = self.ledger.claim_bars(BATCH_FILES)
                if not versions:
                    break
                self._bars(stats, versions)
                if stats.deferred:
                    break
        except sqlite3.OperationalError as exc:
            log.error("state_database_error", error=str(exc), db=str(self.settings.db_path))
            stats.deferred = True
            self._interrupted = True
        return stats

    def _requeue_interrupted(self) -> None:
        """A state-database error (disk full, I/O) left claimed versions ``processing``: queue them again.

        The worker is the only writer, so between cycles nothing else can be ``processing``.
        """
        requeued = self.ledger.recover()
        self._interrupted = False
        if requeued:
            log.info("requeued_after_state_database_error", versions=requeued)

    def _registrations(self) -> None:
        due = self.securities.due_registrations(time.time())
        if not due:
            return
        try:
            report = self.backend.ensure_assets(due)
        except BackendUnavailableError as exc:
            log.warning("registration_deferred", assets=len(due), error=str(exc))
            return
        ready = report.ready()
        gains: dict[int, list[str]] = {}
        for spec in due:
            if spec.unique_identifier in ready:
                gains.setdefault(spec.secid, []).append(spec.unique_identifier)
        for secid, (source, targets) in self.securities.history_sources(gains).items():
            self.backend.copy_history(secid, source, targets, lambda: None)
        with self.ledger.db.transaction():
            self.securities.record_registrations(report, {s.unique_identifier: s for s in due})
            if ready:
                self.ledger.release_waiting()
        log.info("registrations_retried", assets=len(due), ready=len(ready))

    def _masters(self, stats: CycleStats) -> bool:
        """Apply the newest usable pending master; False when bars must wait (backend down).

        A broken newest master is quarantined and the next newest is tried, so a valid
        master delivered alongside a broken one is not lost.
        """
        while (version := self.ledger.claim_master()) is not None:
            outcome = self._master(stats, version)
            if outcome != "rejected":
                if outcome == "applied":
                    self.ledger.supersede_older_masters(version)
                return outcome != "deferred"
        return True

    def _master(self, stats: CycleStats, version: Version) -> str:
        """One master version → ``applied`` | ``rejected`` | ``deferred``."""
        started = time.monotonic()
        try:
            content = self._read(version)
            if self._unchanged(stats, version, content, self.ledger.applied_master_sha(), started):
                return "applied"
            master = parse_master(content.data)
        except (BadFileError, FileGoneError) as exc:
            self._reject(stats, version, exc, started)
            return "rejected"
        specs = asset_specs(master)
        registered = self.securities.registered_uids()
        try:
            report = self.backend.ensure_assets([s for s in specs if s.unique_identifier not in registered])
            report.outcomes += [
                AssetOutcome(s.unique_identifier, "existing")
                for s in specs
                if s.unique_identifier in registered
            ]
            copies = self.securities.history_sources(self.securities.plan_new_links(master, report.ready()))

            def done() -> None:
                self.securities.apply_master(master, report, specs, file_id=version.id, sha256=content.sha256)
                self.ledger.mark_done(
                    version.id, sha256=content.sha256, rows=len(master.assets), secids="", note=None
                )
                self.ledger.release_waiting()

            self.backend.apply_master(MasterUpdate(snapshot=master.assets, history_copies=copies), done)
        except BackendRejectedError as exc:
            self._reject(stats, version, exc, started)
            return "rejected"
        except BackendUnavailableError as exc:
            self.ledger.defer(version.id, str(exc), backoff(version.attempts))
            stats.deferred = True
            self._emit(
                stats,
                FileResult(
                    version.path, "master", "deferred", reason=str(exc), seconds=time.monotonic() - started
                ),
            )
            return "deferred"
        for issue in master.issues[:20]:
            log.warning("master_issue", secid=issue.secid, token=issue.token, problem=issue.problem)
        log.info(
            "master_applied",
            path=version.path,
            secids=master.secid_count,
            assets=len(master.assets),
            custom=int((master.assets["kind"] == "custom").sum()) if len(master.assets) else 0,
            invalid_figis=sum(1 for i in master.issues if i.problem.startswith("invalid FIGI")),
            registration_retry=report.count("retry"),
            registration_refused=report.count("refused"),
            history_copies=sum(len(t) for _, t in copies.values()),
        )
        self._emit(
            stats,
            FileResult(
                version.path, "master", "done", rows=len(master.assets), seconds=time.monotonic() - started
            ),
        )
        return "applied"

    def _parse(self, stats: CycleStats, versions: list[Version]) -> list[_Parsed]:
        parsed: list[_Parsed] = []
        for version in versions:
            started = time.monotonic()
            try:
                content = self._read(version)
                if self._unchanged(stats, version, content, self.ledger.last_done_sha(version.path), started):
                    continue
                bars = parse_bars(content.data, max_line_bytes=self.settings.limits.max_line_bytes)
            except (BadFileError, FileGoneError) as exc:
                self._reject(stats, version, exc, started)
                continue
            parsed.append(_Parsed(version, content, bars, started))
        return parsed

    def _bars(self, stats: CycleStats, versions: list[Version]) -> None:
        parsed = self._parse(stats, versions)
        if not parsed:
            return
        secids = sorted({s for p in parsed for s in p.bars.secids})
        routes = self.securities.routes(secids)
        known = self.securities.known_secids(secids)
        has_master = self.securities.has_master()
        table = fan_out([p.bars.table for p in parsed], routes)
        results: list[FileResult] = []

        def done() -> None:
            for p in parsed:
                missing = [s for s in p.bars.secids if s not in routes]
                held = ",".join(str(s) for s in p.bars.secids)
                rows = p.bars.table.num_rows
                written = sum(rows_for(p, s) * len(routes.get(s, [])) for s in p.bars.secids)
                if missing:
                    reason = _waiting_reason(missing, known, has_master)
                    self.ledger.mark_waiting(
                        p.version.id, reason, sha256=p.content.sha256, rows=rows, secids=held
                    )
                    outcome = "waiting_master"
                else:
                    reason = ""
                    self.ledger.mark_done(p.version.id, sha256=p.content.sha256, rows=rows, secids=held)
                    outcome = "done"
                results.append(
                    FileResult(
                        p.version.path,
                        "bars",
                        outcome,
                        rows=rows,
                        written=written,
                        seconds=time.monotonic() - p.started,
                        reason=reason,
                        secids=tuple(p.bars.secids),
                        figis=tuple(u for sid in p.bars.secids for u in routes.get(sid, [])),
                    )
                )

        try:
            self.backend.upsert_bars(table.to_pandas(), done)
        except BackendRejectedError as exc:
            for p in parsed:
                self._reject(stats, p.version, exc, p.started)
            return
        except BackendUnavailableError as exc:
            for p in parsed:
                self.ledger.defer(p.version.id, str(exc), backoff(p.version.attempts))
                self._emit(stats, FileResult(p.version.path, "bars", "deferred", reason=str(exc)))
            stats.deferred = True
            return
        for result in results:
            self._emit(stats, result)


def rows_for(parsed: _Parsed, secid: int) -> int:
    """Rows of one SecId in a parsed file (tradedate files hold many SecIds)."""
    if len(parsed.bars.secids) == 1:
        return parsed.bars.table.num_rows
    return int(pc.sum(pc.equal(parsed.bars.table["secid"], secid)).as_py() or 0)


def _shorten(items: tuple[object, ...], limit: int = 20) -> list[object] | None:
    """Log at most ``limit`` identifiers per file (a tradedate file holds the universe)."""
    return (
        list(items[:limit]) + ([f"+{len(items) - limit} more"] if len(items) > limit else [])
        if items
        else None
    )


def _waiting_reason(missing: list[int], known: set[int], has_master: bool) -> str:
    if not has_master:
        return "waiting for a security master: none has been applied yet"
    unknown = [s for s in missing if s not in known]
    shown = ", ".join(str(s) for s in (unknown or missing)[:10]) + (" …" if len(missing) > 10 else "")
    if unknown:
        return f"SecId(s) {shown} not in the current security master"
    return f"asset(s) of SecId(s) {shown} not registered with the backend yet"
