"""``run --once``: ingest what the drop holds now, print a count per outcome, exit with the README's code."""

from __future__ import annotations

import click

from algoseek_sync.config import Settings
from algoseek_sync.errors import EX_OK, EX_PROBLEMS, EX_SOFTWARE, EX_UNAVAILABLE, TemporaryFailure
from algoseek_sync.ingest.worker import CycleStats
from algoseek_sync.state.lock import WorkerLock

#: every outcome, in the order the summary names them
OUTCOMES = (
    "done",
    "unchanged",
    "waiting_master",
    "quarantined",
    "skipped",
    "superseded",
    "deferred",
    "failed",
)


def summary(stats: CycleStats) -> str:
    counts = ", ".join(f"{name.replace('_master', '')} {stats.outcomes.get(name, 0)}" for name in OUTCOMES)
    unreadable = f"; {stats.unreadable} unreadable director(ies), see status" if stats.unreadable else ""
    return f"processed {stats.files} file version(s): {counts}; wrote {stats.rows_written} row(s){unreadable}"


def exit_code(stats: CycleStats) -> int:
    """69 when work stays queued (backend or state database unavailable), 70 when a cycle failed,
    1 when a file of this run ended quarantined or skipped or a directory could not be read, else 0."""
    if stats.deferred:
        return EX_UNAVAILABLE
    if stats.error or stats.outcomes.get("failed"):
        return EX_SOFTWARE
    if stats.outcomes.get("quarantined") or stats.outcomes.get("skipped") or stats.unreadable:
        return EX_PROBLEMS
    return EX_OK


def run_once_command(settings: Settings) -> int:
    from algoseek_sync.app import open_app, run_once

    lock = WorkerLock(settings.state.dir)
    if not lock.acquire():
        raise TemporaryFailure(
            f"a daemon is already running on {settings.state.dir}; use `algoseek-sync reprocess` instead"
        )
    try:
        app = open_app(settings)
        try:
            stats = run_once(app)
        finally:
            app.close()
    finally:
        lock.release()
    click.echo(summary(stats), err=True)
    if stats.error:
        click.echo(f"algoseek-sync: {stats.error}", err=True)
    return exit_code(stats)
