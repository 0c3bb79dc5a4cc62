"""``reprocess``: apply chosen file versions again, bypassing the "already done" record.

There is only ever one writer. When a daemon holds the worker lock on the state
directory, ``reprocess`` only queues the versions in the ledger (the daemon's worker
picks them up) and, with ``--wait``, follows them read-only. Otherwise it takes the
lock itself and runs the worker until the queued versions are finished. The command
itself is in :mod:`algoseek_sync.commands.cli`.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import structlog

from algoseek_sync.config import Settings
from algoseek_sync.errors import EX_OK, EX_PROBLEMS, EX_UNAVAILABLE, UserInputError
from algoseek_sync.formats.names import classify
from algoseek_sync.state.database import Database
from algoseek_sync.state.ledger import FINISHED, PROBLEM_STATES, FileState, Ledger, Tracked, Version
from algoseek_sync.state.lock import WorkerLock

log = structlog.get_logger("algoseek_sync.reprocess")

POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Selection:
    """Which versions to reprocess; exactly one kind is given (several SecIds or files are fine)."""

    secids: tuple[int, ...] = ()
    files: tuple[str, ...] = ()
    since: dt.date | None = None
    everything: bool = False

    def describe(self) -> str:
        if self.everything:
            return "all files"
        if self.since is not None:
            return f"files modified since {self.since.isoformat()}"
        parts = [f"SecId {s}" for s in self.secids] + list(self.files)
        return ", ".join(parts)


# -- selection -----------------------------------------------------------------------


def relative_path(drop_dir: Path, given: str) -> str:
    """A ``--file`` argument as the ledger's drop-relative '/'-separated path.

    Accepted: a path as given on the command line (absolute, or relative to the current
    directory) that lies inside the drop, or a path relative to the drop itself.
    """
    root = Path(os.path.abspath(drop_dir))
    roots = {root, Path(os.path.realpath(root))}
    path = Path(given)
    candidates = [Path(os.path.abspath(path))]
    candidates.append(Path(os.path.realpath(candidates[0].parent)) / candidates[0].name)
    for candidate in candidates:
        for base in roots:
            if candidate.is_relative_to(base) and candidate != base:
                return candidate.relative_to(base).as_posix()
    if path.is_absolute():
        raise UserInputError(f"file {given} is not inside the drop directory {drop_dir}")
    rel = Path(os.path.normpath(path))
    if rel.parts[:1] == ("..",):
        raise UserInputError(f"file {given} is not inside the drop directory {drop_dir}")
    return rel.as_posix()


def _since_ns(day: dt.date) -> int:
    """Midnight UTC of ``day`` in epoch nanoseconds (file mtimes are compared in UTC)."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1_000_000_000


def select_versions(ledger: Ledger, settings: Settings, selection: Selection) -> list[Version]:
    """The newest stored version of each selected path; unknown SecIds or files raise UserInputError."""
    if selection.everything:
        return ledger.versions_for(everything=True)
    if selection.since is not None:
        return ledger.versions_for(since_ns=_since_ns(selection.since))
    picked: dict[int, Version] = {}
    if selection.secids:
        every = ledger.versions_for(everything=True)
        for secid in selection.secids:
            found = ledger.versions_for(secids=[secid])
            # A <SecId>.csv[.gz] not read yet has no SecIds recorded: match it by name.
            found += [v for v in every if _named_for(v.path, secid, settings.drop.master_glob)]
            if not found:
                raise UserInputError(f"unknown SecId {secid}: no file in the ledger holds it")
            picked.update((v.id, v) for v in found)
    if selection.files:
        for given in selection.files:
            rel = relative_path(settings.drop.dir, given)
            found = ledger.versions_for(paths=[rel])
            if not found:
                raise UserInputError(f"unknown file {given}: not in the ledger (drop-relative path {rel!r})")
            picked.update((v.id, v) for v in found)
    return sorted(picked.values(), key=lambda v: (v.mtime_ns, v.id))


def _named_for(path: str, secid: int, master_globs: list[str]) -> bool:
    name = classify(path, master_globs)
    return name.kind == "bars" and name.aggregation == "secid" and name.key == str(secid)


def refresh(ledger: Ledger, settings: Settings, versions: list[Version]) -> list[Version]:
    """Record the current on-disk version of each selected path, so the newest bytes are re-read.

    A file that changed since its last recorded version gets a new ledger version (the
    older one is superseded); a vanished file keeps its version and ends ``skipped``.
    """
    changed = False
    for version in versions:
        try:
            st = os.lstat(settings.drop.dir / version.path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            continue
        if (st.st_size, st.st_mtime_ns) != (version.size, version.mtime_ns):
            changed |= ledger.record(version.path, st.st_size, st.st_mtime_ns, version.kind)
    if not changed:
        return versions
    return ledger.versions_for(paths=[v.path for v in versions])


# -- progress ------------------------------------------------------------------------


class Progress:
    """A tqdm bar (files, rows, ETA) on a terminal, one log line per finished file otherwise."""

    def __init__(self, total: int, bar: bool, label: str) -> None:
        self.total = total
        self.done = 0
        self.rows = 0
        self.outcomes: dict[str, int] = {}
        self._bar: Any = None
        if bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="file", desc=label, file=sys.stderr, dynamic_ncols=True)

    def advance(self, path: str, outcome: str, rows: int) -> None:
        self.done += 1
        self.rows += rows
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if self._bar is not None:
            self._bar.set_postfix(rows=self.rows, refresh=False)
            self._bar.update(1)
        else:
            log.info(
                "reprocess_progress", path=path, outcome=outcome, rows=rows, done=self.done, total=self.total
            )

    def note(self, message: str) -> None:
        if self._bar is not None:
            self._bar.set_description_str(message)
        else:
            log.info("reprocess_waiting", detail=message, done=self.done, total=self.total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def summary(self) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        return (
            f"reprocessed {self.done} of {self.total} file version(s) ({parts or 'none'}); {self.rows} row(s)"
        )


# -- the two ways of running ---------------------------------------------------------


def reprocess(
    settings: Settings, selection: Selection, wait: bool = False, progress: bool | None = None
) -> int:
    """Queue the selected versions again and see them applied; returns the exit code.

    ``progress`` None means "a bar when stderr is a terminal".
    """
    if progress is None:
        progress = sys.stderr.isatty()
    if not settings.db_path.exists():
        raise UserInputError(f"nothing to reprocess: no state database at {settings.db_path} yet")
    reader = Database(settings.db_path, readonly=True)
    try:
        if reader.version == 0:
            raise UserInputError(f"nothing to reprocess: the state database at {settings.db_path} is empty")
        versions = select_versions(Ledger(reader), settings, selection)
    finally:
        reader.close()
    if not versions:
        click.echo(f"nothing to reprocess: no recorded file version matches ({selection.describe()})")
        return EX_OK
    lock = WorkerLock(settings.state.dir)
    if lock.acquire():
        try:
            return _run_here(settings, versions, progress)
        finally:
            lock.release()
    return _hand_to_daemon(settings, versions, wait, progress)


def _quiet_logs_for_bar(settings: Settings, bar: bool) -> None:
    """Per-file info lines would shred a progress bar; keep warnings and errors."""
    if bar and settings.logging.level == "info":
        from algoseek_sync.logging import configure_logging

        configure_logging("warning", settings.logging.format)


def _run_here(settings: Settings, versions: list[Version], bar: bool) -> int:
    """No daemon: we hold the lock, so we are the writer; run the worker until our versions finish."""
    from algoseek_sync.app import open_app

    app = open_app(settings)
    try:
        app.ledger.recover()
        versions = refresh(app.ledger, settings, versions)
        ids = {v.id for v in versions}
        app.ledger.requeue(ids)
        log.info("reprocess_queued", versions=len(ids), mode="local")
        paths = {v.path for v in versions}
        _quiet_logs_for_bar(settings, bar)
        tracker = Progress(len(ids), bar, "reprocess")

        def hook(result: Any) -> None:
            if result.path in paths and result.outcome != "deferred":
                tracker.advance(result.path, result.outcome, result.rows)

        app.worker.hooks.append(hook)
        deferred = False
        try:
            while _unfinished(app.ledger, ids):
                stats = app.worker.cycle()
                if stats.deferred:
                    deferred = True
                    break
                if not stats.files:
                    break  # nothing due although some are unfinished: never spin
        finally:
            tracker.close()
        states = app.ledger.track(ids)
    finally:
        app.close()
    return _report(tracker, states, deferred, daemon=False)


def _hand_to_daemon(settings: Settings, versions: list[Version], wait: bool, bar: bool) -> int:
    """A daemon holds the lock: queue through the ledger; with ``wait``, follow read-only."""
    writer = Database(settings.db_path)
    try:
        ledger = Ledger(writer)
        versions = refresh(ledger, settings, versions)
        ids = {v.id for v in versions}
        ledger.requeue(ids)
    finally:
        writer.close()
    log.info("reprocess_queued", versions=len(ids), mode="daemon")
    if not wait:
        click.echo(f"queued {len(ids)} file version(s) for the running daemon (follow with `status`)")
        return EX_OK
    _quiet_logs_for_bar(settings, bar)
    tracker = Progress(len(ids), bar, "reprocess (daemon)")
    reader = Database(settings.db_path, readonly=True)
    lock = WorkerLock(settings.state.dir)
    try:
        states = _follow(Ledger(reader), ids, tracker, lock)
    finally:
        tracker.close()
        reader.close()
    if states is None:
        click.echo(
            "the daemon stopped before finishing; the versions stay queued for its next start", err=True
        )
        return EX_UNAVAILABLE
    return _report(tracker, states, False, daemon=True)


def _follow(
    ledger: Ledger,
    ids: set[int],
    tracker: Progress,
    lock: WorkerLock,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[int, Tracked] | None:
    """Poll the ledger until every id is finished; None when the daemon went away first."""
    seen: set[int] = set()
    last_check = time.monotonic()
    while True:
        states = ledger.track(ids)
        for vid, tracked in sorted(states.items()):
            if tracked.state in FINISHED and vid not in seen:
                seen.add(vid)
                tracker.advance(tracked.path, tracked.state, tracked.rows)
        if len(seen) == len(ids):
            return states
        deferred = [t.error for t in states.values() if t.state == FileState.PENDING and t.error]
        if deferred:
            tracker.note(f"waiting: backend deferred ({deferred[0][:60]})")
        if time.monotonic() - last_check > 2.0:
            last_check = time.monotonic()
            if not lock.held_elsewhere():
                return None
        sleep(POLL_SECONDS)


def _unfinished(ledger: Ledger, ids: set[int]) -> bool:
    return any(t.state not in FINISHED for t in ledger.track(ids).values())


def _report(tracker: Progress, states: dict[int, Tracked], deferred: bool, daemon: bool) -> int:
    click.echo(tracker.summary())
    for tracked in states.values():
        if tracked.state in PROBLEM_STATES or tracked.state == FileState.WAITING_MASTER:
            click.echo(f"  {tracked.state}: {tracked.path}: {tracked.error}", err=True)
    if deferred or any(t.state == FileState.PENDING for t in states.values()):
        who = "the daemon retries them" if daemon else "start the daemon (or run reprocess again) to retry"
        click.echo(f"backend unavailable: some versions stay queued; {who}", err=True)
        return EX_UNAVAILABLE
    if any(t.state in PROBLEM_STATES for t in states.values()):
        return EX_PROBLEMS
    return EX_OK
