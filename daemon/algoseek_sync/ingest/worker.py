"""The only writer. One cycle: due registrations → newest master → affected SecIds' bars.

The worker owns every commit. It claims a batch of file versions, parses them (pure),
hands the rows to the backend, and records what happened in one ledger transaction
(the embedded store's writes join that transaction). Whatever happens, every claimed
version that did not reach a final state goes back to ``pending`` with a backoff.

One bad thing stops only itself: a file the parser refuses is quarantined; a batch
that fails unexpectedly is retried file by file to find the culprit; a file that keeps
failing is quarantined after :data:`MAX_FAILURES` attempts; an asset the backend refuses
holds only its own bars; the rest flows. Each of these is recorded in ``problems``.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from algoseek_sync.backends.base import (
    AssetOutcome,
    AssetReport,
    AssetSpec,
    Backend,
    BarBatch,
    FileBars,
    MasterUpdate,
    Receipt,
)
from algoseek_sync.config import Settings
from algoseek_sync.errors import (
    BackendRejectedError,
    BackendUnavailableError,
    BadFileError,
    FileGoneError,
    Problem,
)
from algoseek_sync.formats.names import classify
from algoseek_sync.ingest.prepare import FileResult, Final, Parsed, Prepared, Reader, refused, unchanged
from algoseek_sync.state.database import Database
from algoseek_sync.state.ledger import FileState, Ledger, Mark, Version
from algoseek_sync.state.problems import Problems
from algoseek_sync.state.securities import Securities, asset_specs

if TYPE_CHECKING:
    from algoseek_sync.quality.monitor import Quality

log = structlog.get_logger("algoseek_sync.worker")

BATCH_FILES = 64
#: batches parsed at once while one is written (threads: pyarrow, zlib and SQLite release the GIL)
PARSE_AHEAD = 2
#: a second batch is parsed ahead only while those in flight are smaller than this (delivered
#: bytes): a batch of whole-market daily files is large enough to keep both threads busy alone
AHEAD_BYTES = 16 << 20
#: unexpected errors a file may cause before it is quarantined (each retry backs off)
MAX_FAILURES = 3


@dataclass
class CycleStats:
    outcomes: Counter[str] = field(default_factory=Counter)
    rows_written: int = 0
    deferred: bool = False  # the backend or the state database is unavailable: work stays queued
    error: str = ""  # the cycle itself failed (logged as cycle_failed)
    unreadable: int = 0  # directories of the drop that could not be listed (run --once)
    results: list[FileResult] = field(default_factory=list)

    @property
    def files(self) -> int:
        return sum(self.outcomes.values())

    def add(self, other: CycleStats) -> None:
        self.outcomes.update(other.outcomes)
        self.rows_written += other.rows_written
        self.deferred |= other.deferred
        self.error = other.error or self.error
        self.results += other.results


def backoff(attempts: int) -> float:
    """Seconds before a released version is tried again (bounded, so outages stay quiet)."""
    return float(min(300, 2 ** min(attempts, 9)))


class Worker:
    """Drains the ledger into the backend."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        ledger: Ledger,
        securities: Securities,
        problems: Problems,
        backend: Backend,
        quality: Quality | None = None,
    ) -> None:
        self.settings = settings
        self.quality = quality
        self.db = db
        self.ledger = ledger
        self.securities = securities
        self.problems = problems
        self.backend = backend
        self.hooks: list[Callable[[FileResult], None]] = []
        self.last_file: str = ""
        self.failed_cycles = 0  # consecutive cycles that ended in an error (health reads it)
        self._recover = False
        self._cycle_problem = False
        self._route_cache: dict[int, list[str]] = {}
        self.reader = Reader.of(settings)
        self._pool: ThreadPoolExecutor | None = None

    # -- the cycle -------------------------------------------------------------------
    def cycle(self, should_stop: Callable[[], bool] = lambda: False) -> CycleStats:
        """Process what is due now; return when the queue is empty, a stop is asked, or the backend is down."""
        stats = CycleStats()
        try:
            if self._recover:
                self._requeue_interrupted()
            self._registrations()
            if self._masters(stats):
                self._drain_bars(stats, should_stop)
        except sqlite3.OperationalError as exc:  # disk full, I/O error: nothing is lost, retried later
            log.error("state_database_error", error=str(exc), db=str(self.settings.db_path))
            stats.deferred = True
            stats.error = f"state database error: {exc}"
            self._recover = True
        except Exception as exc:  # a bug or a fault we did not foresee: contained, visible, retried
            log.exception("cycle_failed", error=f"{type(exc).__name__}: {exc}")
            stats.error = f"{type(exc).__name__}: {exc}"
            self._recover = True
            self._note_cycle_failure(stats.error)
        self.failed_cycles = self.failed_cycles + 1 if stats.error else 0
        if not stats.error and self._cycle_problem:
            self._clear_cycle_problems()
        return stats

    def _note_cycle_failure(self, error: str) -> None:
        try:
            self.problems.add("daemon", [Problem("cycle_failed", error, "claimed files requeued; retried")])
            self._cycle_problem = True
        except sqlite3.Error:
            pass  # the state database itself fails: the log line above is all we can do

    def _clear_cycle_problems(self) -> None:
        self.problems.clear("daemon")
        self._cycle_problem = False

    def _requeue_interrupted(self) -> None:
        """A failed cycle may have left claimed versions ``processing``: queue them again.

        The worker is the only writer, so between cycles nothing else is ``processing``.
        """
        requeued = self.ledger.recover()
        self._recover = False
        if requeued:
            log.info("requeued_after_failure", versions=requeued)

    # -- helpers -------------------------------------------------------------------------
    def _emit(self, stats: CycleStats, result: FileResult) -> None:
        stats.outcomes[result.outcome] += 1
        stats.rows_written += result.written
        stats.results.append(result)
        self.last_file = result.path
        level = "warning" if result.outcome in ("quarantined", "deferred", "failed") else "info"
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

    def _finish(
        self, finals: Sequence[Final], parsed: Sequence[Parsed] = (), receipt: Receipt | None = None
    ) -> list[FileResult]:
        """Ledger marks and problems of a batch, in the caller's transaction; returns the results to emit."""
        marks = [f.mark for f in finals]
        results = [f.result for f in finals]
        scoped: dict[str, list[Problem]] = {
            f.result.path: f.notes for f in finals if f.mark.state != FileState.SUPERSEDED
        }
        refused = receipt.rejected_assets if receipt else {}
        for p in parsed:
            mark, result = self._outcome(p, refused)
            marks.append(mark)
            results.append(result)
            routed = {u for s in p.bars.secids for u in self._route_cache.get(s, [])}
            mine = {uid: why for uid, why in refused.items() if uid in routed}
            scoped[p.version.path] = p.notes + _refusals(mine, "its bars are held")
        if refused:
            self.securities.refuse(refused)
        self.ledger.finish(marks)
        self.problems.replace_scopes({path: [_at(n, path) for n in notes] for path, notes in scoped.items()})
        return results

    def _outcome(self, p: Parsed, refused: dict[str, str]) -> tuple[Mark, FileResult]:
        secids = p.bars.secids
        held = ",".join(str(s) for s in secids)
        written = p.writable.table.num_rows if p.writable is not None else 0
        state, outcome = (
            (FileState.WAITING_MASTER, "waiting_master") if p.waiting else (FileState.DONE, "done")
        )
        mark = Mark(
            p.version.id,
            state,
            p.waiting or None,
            sha256=p.sha256,
            rows=p.rows,
            secids=held,
            dataset=p.bars.dataset.name,
        )
        routes = self._routes_of(secids)
        figis = tuple(u for s in secids for u in routes.get(s, []) if u not in refused)
        result = FileResult(
            p.version.path,
            "bars",
            outcome,  # type: ignore[arg-type]
            rows=p.rows,
            written=written,
            seconds=time.monotonic() - p.started,
            reason=p.waiting,
            secids=tuple(secids),
            figis=figis,
        )
        return mark, result

    def _routes_of(self, secids: Iterable[int]) -> dict[int, list[str]]:
        return {s: self._route_cache.get(s, []) for s in secids}

    def _commit(
        self, write: Callable[[], Receipt], record: Callable[[Receipt], list[FileResult]]
    ) -> list[FileResult]:
        """Write, then record, as one unit: inside one transaction for the embedded store."""
        if self.backend.transactional:
            with self.db.transaction():
                return record(write())
        receipt = write()
        with self.db.transaction():
            return record(receipt)

    def _fail(self, stats: CycleStats, version: Version, exc: Exception, started: float, what: str) -> None:
        """An unexpected error (or a refusal) attributed to one version."""
        error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, BackendRejectedError):
            final = Final(
                Mark(version.id, FileState.QUARANTINED, str(exc)),
                FileResult(
                    version.path,
                    version.kind,
                    "quarantined",
                    seconds=time.monotonic() - started,
                    reason=str(exc),
                ),
            )
            with self.db.transaction():
                results = self._finish([final])
            self._emit_all(stats, results)
            return
        log.error("file_failed", path=version.path, kind=version.kind, during=what, error=error, exc_info=exc)
        reason = f"internal error after {MAX_FAILURES} attempts ({what}): {error} (log event file_failed)"
        state = self.ledger.fail(
            version, error, max_failures=MAX_FAILURES, delay=backoff(version.attempts), final_reason=reason
        )
        action = "quarantined" if state == FileState.QUARANTINED else "retried later with a backoff"
        self.problems.replace(
            version.path, [Problem("file_failed", f"{what}: {error}", action, path=version.path)]
        )
        outcome = "quarantined" if state == FileState.QUARANTINED else "failed"
        self._emit(
            stats,
            FileResult(version.path, version.kind, outcome, seconds=time.monotonic() - started, reason=error),
        )  # type: ignore[arg-type]

    def _defer(self, stats: CycleStats, versions: Sequence[Version], exc: Exception) -> None:
        """The backend is unavailable: the versions wait (with backoff), nothing is blamed on them."""
        self.ledger.release(versions, str(exc), lambda v: backoff(v.attempts))
        stats.deferred = True
        for v in versions:
            self._emit(stats, FileResult(v.path, v.kind, "deferred", reason=str(exc)))

    def _emit_all(self, stats: CycleStats, results: Iterable[FileResult]) -> None:
        for result in results:
            self._emit(stats, result)

    def _release(self, versions: Sequence[Version]) -> None:
        """Claimed versions that did not finish go back to ``pending``: after a backoff when an
        error left them; at once when the process is being stopped (KeyboardInterrupt, SystemExit)
        or the state database failed (not the files' fault: the whole cycle backs off instead)."""
        if not versions:
            return
        error = sys.exc_info()[0]
        stopping = error is not None and not issubclass(error, Exception)
        at_once = stopping or (error is not None and issubclass(error, sqlite3.Error))
        released = self.ledger.release(versions, None, lambda v: 0.0 if at_once else backoff(v.attempts))
        if released:
            log.warning("released_unfinished", versions=released, stopping=stopping or None)

    # -- registrations -------------------------------------------------------------------------
    def _registrations(self) -> None:
        due = self.securities.due_registrations(time.time())
        if not due:
            return
        try:
            report = self.backend.ensure_assets(due)
            ready = report.ready()
            gains: dict[int, list[str]] = {}
            for spec in due:
                if spec.unique_identifier in ready:
                    gains.setdefault(spec.secid, []).append(spec.unique_identifier)
            copies = self.securities.history_sources(gains)

            def record(receipt: Receipt) -> list[FileResult]:
                self.securities.record_registrations(report, {s.unique_identifier: s for s in due})
                if ready:
                    self.ledger.release_waiting()
                return []

            self._commit(lambda: self.backend.copy_history(copies), record)
        except BackendUnavailableError as exc:
            log.warning("registration_deferred", assets=len(due), error=str(exc))
            return
        except sqlite3.OperationalError:
            raise
        except Exception as exc:  # contained: registrations are retried on their schedule
            log.exception("registration_failed", assets=len(due), error=f"{type(exc).__name__}: {exc}")
            self.problems.add(
                "daemon",
                [
                    Problem(
                        "cycle_failed",
                        f"registration retry: {type(exc).__name__}: {exc}",
                        "retried on the next cycle",
                    )
                ],
            )
            self._cycle_problem = True
            return
        log.info("registrations_retried", assets=len(due), ready=len(ready))

    # -- masters -----------------------------------------------------------------------------
    def _masters(self, stats: CycleStats) -> bool:
        """Apply the newest usable pending master; False when bars must wait (backend down).

        A broken newest master is quarantined and the next newest is tried, so a valid
        master delivered alongside a broken one is not lost.
        """
        while (version := self.ledger.claim_master()) is not None:
            try:
                outcome = self._master(stats, version)
            finally:
                self._release([version])
            if outcome == "rejected":
                continue
            if outcome == "applied":
                self.ledger.supersede_older_masters(version)
            return outcome != "deferred"
        return True

    def _master(self, stats: CycleStats, version: Version) -> str:
        """One master version → ``applied`` | ``rejected`` | ``deferred`` | ``failed``."""
        started = time.monotonic()
        try:
            content = self.reader.read(version)
            same = unchanged(version, content, self.ledger.applied_master_sha(), started)
            if same is not None:
                with self.db.transaction():
                    self.ledger.finish([same.mark])
                self._emit(stats, same.result)
                return "applied"
            from algoseek_sync.formats.master import parse_master

            master = parse_master(content.data, routed=self.securities.routed_figis())
        except (BadFileError, FileGoneError) as exc:
            final = refused(version, exc, started)
            with self.db.transaction():
                results = self._finish([final])
            self._emit_all(stats, results)
            return "rejected"
        except sqlite3.OperationalError:
            raise
        except Exception as exc:
            self._fail(stats, version, exc, started, "reading the master")
            return "failed"
        try:
            specs = asset_specs(master)
            report = self._ensure(specs)
            copies = self.securities.history_sources(self.securities.plan_new_links(master, report.ready()))

            def record(receipt: Receipt) -> list[FileResult]:
                self.securities.apply_master(master, report, specs, file_id=version.id, sha256=content.sha256)
                if receipt.rejected_assets:
                    self.securities.refuse(receipt.rejected_assets)
                self.ledger.finish(
                    [
                        Mark(
                            version.id,
                            FileState.DONE,
                            None,
                            sha256=content.sha256,
                            rows=len(master.assets),
                            secids="",
                        )
                    ]
                )
                self.ledger.release_waiting()
                refused = _refusals(receipt.rejected_assets, "left out of the master; its bars are held")
                self.problems.replace("master", [_at(i, version.path) for i in [*master.issues, *refused]])
                self.problems.replace(version.path, [])
                return []

            self._commit(lambda: self.backend.write_master(MasterUpdate(master.assets, copies)), record)
        except BackendUnavailableError as exc:
            self._defer(stats, [version], exc)
            return "deferred"
        except sqlite3.OperationalError:
            raise
        except Exception as exc:
            self._fail(stats, version, exc, started, "applying the master")
            return "rejected" if isinstance(exc, BackendRejectedError) else "failed"
        kinds = Counter(i.kind for i in master.issues)
        log.info(
            "master_applied",
            path=version.path,
            secids=master.secid_count,
            assets=len(master.assets),
            custom=int((master.assets["kind"] == "custom").sum()) if len(master.assets) else 0,
            invalid_figis=master.invalid_figis,
            problems=dict(kinds) or None,
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

    def _ensure(self, specs: Sequence[AssetSpec]) -> AssetReport:
        """Get-or-register the assets the mapping does not know as registered yet."""
        registered = self.securities.registered_uids()
        report = self.backend.ensure_assets([s for s in specs if s.unique_identifier not in registered])
        report.outcomes += [
            AssetOutcome(s.unique_identifier, "existing") for s in specs if s.unique_identifier in registered
        ]
        return report

    # -- bars ---------------------------------------------------------------------------------
    def _drain_bars(self, stats: CycleStats, should_stop: Callable[[], bool]) -> None:
        """Bar batches until the queue is empty, written in the order they were claimed; the
        next :data:`PARSE_AHEAD` batches are read and parsed on other threads meanwhile."""
        ahead: deque[tuple[list[Version], Future[Prepared]]] = deque()
        try:
            self._fill(ahead)
            while ahead and not should_stop():
                versions, future = ahead.popleft()
                try:
                    prepared = future.result()
                    if not should_stop():
                        self._fill(ahead)
                    self._plan(prepared[1])
                    seen = len(stats.results)
                    self._write(stats, *prepared)
                finally:
                    self._release(versions)
                self._check_quality(prepared[1], stats.results[seen:])
                if stats.deferred:
                    break
        finally:
            for versions, future in ahead:
                future.exception()  # let its parsing finish before its versions go back
                self._release(versions)

    def _fill(self, ahead: deque[tuple[list[Version], Future[Prepared]]]) -> None:
        """Claim batches until :data:`PARSE_AHEAD` are being parsed (fewer when the queue runs dry
        or the batches in flight are large)."""
        while len(ahead) < PARSE_AHEAD and (
            not ahead or sum(v.size for claimed, _ in ahead for v in claimed) < AHEAD_BYTES
        ):
            versions = self.ledger.claim_bars(BATCH_FILES)
            if not versions:
                return
            applied = self.ledger.done_shas([v.path for v in versions])
            if self._pool is None:
                if not self.backend.uses_pandas:
                    from algoseek_sync.ingest.arrow import skip_pandas_probe

                    skip_pandas_probe()
                self._pool = ThreadPoolExecutor(max_workers=PARSE_AHEAD, thread_name_prefix="parse")
            ahead.append((versions, self._pool.submit(self.reader.prepare_bars, versions, applied)))

    def _check_quality(self, parsed: Sequence[Parsed], results: Sequence[FileResult]) -> None:
        """Data-quality checks of what this batch stored; they never stop or slow down what follows."""
        if self.quality is None:
            return
        import pyarrow.compute as pc

        from algoseek_sync.quality.monitor import Affected, Delivery

        stored = {r.path for r in results if r.outcome in ("done", "waiting_master")}
        affected = Affected()
        for p in parsed:
            if p.version.path not in stored or p.writable is None or not p.writable.table.num_rows:
                continue
            last = pc.max(p.writable.table["tradedate"]).as_py()
            affected.add(p.bars.dataset.name, set(p.writable.secids), int(last))
            name = classify(p.version.path, self.settings.drop.master_glob)
            if name.aggregation == "tradedate":
                affected.deliveries.append(Delivery(p.bars.dataset.name, int(name.key), set(p.bars.secids)))
        if not affected.secids:
            return
        try:
            self.quality.after_batch(affected)
        except sqlite3.OperationalError:
            raise
        except Exception as exc:  # contained: ingestion goes on, the failure is visible
            log.exception("quality_failed", error=f"{type(exc).__name__}: {exc}")
            self.problems.add(
                "daemon",
                [
                    Problem(
                        "cycle_failed",
                        f"quality checks: {type(exc).__name__}: {exc}",
                        "ingestion continues; re-checked on the next delivery",
                    )
                ],
            )
            self._cycle_problem = True

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _plan(self, parsed: Sequence[Parsed]) -> None:
        """Which rows each file may write now (SecIds the master routes) and why the rest wait."""
        import pyarrow as pa
        import pyarrow.compute as pc

        parsed = [p for p in parsed if p.error is None]
        secids = sorted({s for p in parsed for s in p.bars.secids})
        routes = self.securities.routes(secids)
        self._route_cache = routes
        known = self.securities.known_secids(secids) if len(routes) < len(secids) else set(secids)
        has_master = self.securities.has_master()
        for p in parsed:
            missing = [s for s in p.bars.secids if s not in routes]
            if not missing:
                p.writable = p.bars
                continue
            p.waiting = _waiting_reason(missing, known, has_master)
            routable = pa.array([s for s in p.bars.secids if s in routes], pa.int64())
            table = p.bars.table.filter(pc.is_in(p.bars.table["secid"], routable))
            p.writable = type(p.bars)(p.bars.dataset, table) if table.num_rows else None

    def _write(self, stats: CycleStats, finals: list[Final], parsed: list[Parsed]) -> None:
        """Write the batch; on an unexpected failure, again file by file to find the culprit."""
        for item in [p for p in parsed if p.error is not None]:
            self._fail(stats, item.version, item.error, item.started, "reading and parsing")  # type: ignore[arg-type]
        parsed = [p for p in parsed if p.error is None]
        if not finals and not parsed:
            return
        try:
            results = self._commit(
                lambda: self._write_bars(parsed), lambda receipt: self._finish(finals, parsed, receipt)
            )
        except BackendUnavailableError as exc:
            with self.db.transaction():
                self._emit_all(stats, self._finish(finals))
            self._defer(stats, [p.version for p in parsed], exc)
            return
        except sqlite3.OperationalError:
            raise
        except Exception as exc:
            if len(parsed) + len(finals) > 1:
                log.warning(
                    "batch_failed",
                    files=len(parsed) + len(finals),
                    error=f"{type(exc).__name__}: {exc}",
                    detail="retrying file by file",
                )
                for final in finals:
                    self._write(stats, [final], [])
                for item in parsed:
                    self._write(stats, [], [item])
                    if stats.deferred:
                        return
                return
            item = parsed[0] if parsed else None
            if item is None:
                raise
            self._fail(stats, item.version, exc, item.started, "writing bars")
            return
        self._emit_all(stats, results)

    def _write_bars(self, parsed: Sequence[Parsed]) -> Receipt:
        files = [FileBars(p.version.id, p.version.path, p.writable) for p in parsed if p.writable is not None]
        if not files:
            return Receipt()
        return self.backend.write_bars(BarBatch(files, self._route_cache))


def _refusals(refused: dict[str, str], done: str) -> list[Problem]:
    """One ``asset_refused`` problem per asset the backend refused (identifier → why)."""
    return [
        Problem("asset_refused", f"{uid}: {why}", done, unique_identifier=uid) for uid, why in refused.items()
    ]


def _at(problem: Problem, path: str) -> Problem:
    """A parser's note, placed in its file."""
    return (
        problem
        if problem.path
        else Problem(
            problem.kind,
            problem.detail,
            problem.action,
            path,
            problem.secid,
            problem.unique_identifier,
            problem.line,
        )
    )


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
