"""Wiring: settings → database → ledger, securities, problems, backend, worker. Used by every command."""

from __future__ import annotations

import os
from dataclasses import dataclass

import structlog

from algoseek_sync.backends import open_backend
from algoseek_sync.backends.base import Backend
from algoseek_sync.config import Settings
from algoseek_sync.errors import ConfigError
from algoseek_sync.ingest.worker import CycleStats, Worker
from algoseek_sync.quality.monitor import Quality
from algoseek_sync.state.database import Database
from algoseek_sync.state.ledger import Ledger
from algoseek_sync.state.problems import Problems
from algoseek_sync.state.securities import Securities
from algoseek_sync.watch.scan import reconcile

log = structlog.get_logger("algoseek_sync.app")


@dataclass
class App:
    settings: Settings
    db: Database
    ledger: Ledger
    securities: Securities
    problems: Problems
    backend: Backend
    worker: Worker
    quality: Quality

    def close(self) -> None:
        self.worker.close()
        self.backend.close()
        self.db.close()


def open_app(settings: Settings, *, readonly: bool = False) -> App:
    """Open the state database and the configured backend.

    ``readonly`` is for commands that only read (status, bars): they never take the
    write lock, so they cannot block the daemon.
    """
    path = settings.db_path
    if readonly and not path.exists():
        raise ConfigError(f"no state database at {path}: run `algoseek-sync run` first (state.dir)")
    if not readonly:
        check_drop_dir(settings)
    db = Database(path, readonly=readonly)
    if readonly and db.version == 0:
        db.close()
        raise ConfigError(f"state database at {path} is not initialised yet: run `algoseek-sync run` first")
    ledger = Ledger(db)
    securities = Securities(db)
    problems = Problems(db)
    backend = open_backend(settings, db)
    quality = Quality(db, settings.quality, securities, backend)
    worker = Worker(settings, db, ledger, securities, problems, backend, quality)
    return App(settings, db, ledger, securities, problems, backend, worker, quality)


def check_drop_dir(settings: Settings) -> None:
    """The drop must be a readable directory and the state directory creatable (exit 78 otherwise)."""
    drop = settings.drop.dir
    if not drop.is_dir():
        raise ConfigError(f"configuration error: 'drop.dir' {drop} is not a directory")
    if not os.access(drop, os.R_OK | os.X_OK):
        raise ConfigError(f"configuration error: 'drop.dir' {drop} is not readable by this user")
    try:
        settings.state.dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"configuration error: 'state.dir' {settings.state.dir}: {exc.strerror}") from None


def run_once(app: App, *, max_rounds: int = 5) -> CycleStats:
    """Ingest everything in the drop directory now, then return.

    Reconcile and drain; walk again only when a file changed while it was queued (its
    new version is read in the next round), not to confirm that nothing changed: a walk of
    10,000 files costs more than processing one.
    """
    total = CycleStats()
    app.ledger.recover()
    app.ledger.due_now()
    for _ in range(max_rounds):
        result = reconcile(app.settings.drop.dir, app.ledger, app.settings.drop.master_glob)
        app.problems.replace("drop", result.problems)
        total.unreadable = len(result.problems)
        total.outcomes["skipped"] += result.skipped  # links, FIFOs, unrelated names: never read
        stats = app.worker.cycle()
        total.add(stats)
        if stats.deferred or stats.error or not stats.outcomes["superseded"]:
            break
    if not total.deferred and not total.error:
        app.backend.upkeep()  # a backfill leaves the embedded store's cross-section blocks to rebuild
    return total
