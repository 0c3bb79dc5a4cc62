"""What the benchmarks of one run share: the plan (sizes, repetitions) and the backfilled universes.

Why: backfilling is the slowest step of a run, so stores are kept and re-used: the in-process
20-day universes by the benchmarks that re-deliver one SecId file into them (affected-only,
tutorial), the backfill benchmark's state by the store-size and one-changed-file ones.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    RUN,
    Run,
    cached_drop,
    fresh,
    link_copy,
    log,
    redeliver,
    run_once_cli,
    settings_for,
    spec_for,
    timer,
)

from algoseek_sync.app import App, open_app, run_once
from algoseek_sync.ingest.worker import CycleStats
from algoseek_sync.synthetic.generate import DropSpec, trade_dates
from algoseek_sync.watch.scan import Entry, record_entry


@dataclass
class Plan:
    """Sizes and repetitions; ``--quick`` shrinks everything."""

    quick: bool
    small: int = 100
    large: int = 10_000
    days: int = 20
    backfill_secids: int = 10_000
    backfill_days: int = 250
    query_secids: int = 10_000
    query_days: int = 1_000
    query_reps: int = 7
    onefile_reps: int = 7
    burst_small: int = 5_000
    affected_reps: int = 9
    tutorial_reps: int = 2
    backfill_reps: int = 2
    tradedate_secids: int = 10_000
    tradedate_days: int = 250
    parse_ahead_depths: tuple[int, ...] = (1, 2, 3)
    parse_ahead_reps: int = 1
    report_reps: int = 3
    memory_sizes: tuple[int, ...] = (1_000, 10_000)
    reconcile_files: int = 100_000
    reconcile_reps: int = 5
    latency_files: int = 80
    latency_interval: float = 0.5
    latency_cli_files: int = 8
    stability_seconds: float = 2.0

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if not quick:
            return cls(quick=False)
        return cls(
            quick=True,
            small=100,
            large=1_000,
            days=10,
            backfill_secids=1_000,
            backfill_days=50,
            query_secids=1_000,
            query_days=100,
            query_reps=3,
            onefile_reps=5,
            burst_small=100,
            affected_reps=5,
            tutorial_reps=1,
            backfill_reps=1,
            tradedate_secids=1_000,
            tradedate_days=50,
            report_reps=2,
            memory_sizes=(200, 1_000),
            reconcile_files=10_000,
            reconcile_reps=3,
            latency_files=15,
            latency_cli_files=3,
        )


@dataclass
class Context:
    plan: Plan
    apps: dict[int, App] = field(default_factory=dict)  # universe size → backfilled app
    drops: dict[int, Path] = field(default_factory=dict)
    specs: dict[int, DropSpec] = field(default_factory=dict)
    redeliveries: dict[int, int] = field(default_factory=dict)  # universe → extra days so far
    backfilled_state: tuple[Path, Path] | None = None  # (drop, state) of the backfill benchmark

    def spec(self, n: int) -> DropSpec:
        return self.specs.setdefault(n, spec_for(n, self.plan.days))

    def backfill_spec(self) -> DropSpec:
        return spec_for(self.plan.backfill_secids, self.plan.backfill_days)

    def keep_backfill(self, drop: Path, state: Path) -> None:
        self.backfilled_state = (drop, state)

    def backfill_state(self) -> tuple[Path, Path]:
        """(drop, state) of the backfill benchmark's drop, backfilled untimed when it did not run."""
        if self.backfilled_state is None:
            run, drop, state = backfill(cached_drop(self.backfill_spec()), "on")
            log(f"  backfilled {self.plan.backfill_secids:,} SecIds (untimed) in {run.seconds:.1f}s")
            self.keep_backfill(drop, state)
        assert self.backfilled_state is not None
        return self.backfilled_state

    def backfilled(self, n: int) -> App:
        """An app whose store holds the whole ``n``-SecId drop (backfilled untimed if needed)."""
        if n not in self.apps:
            drop = link_copy(cached_drop(self.spec(n)), RUN / f"universe-{n}" / "drop")
            state = fresh(RUN / f"universe-{n}" / "state")
            app = open_app(settings_for(drop, state))
            began = time.perf_counter()
            run_once(app)
            log(f"  backfilled the {n}-SecId universe (untimed) in {time.perf_counter() - began:.1f}s")
            self.adopt(n, app, drop)
        return self.apps[n]

    def adopt(self, n: int, app: App, drop: Path) -> None:
        if n in self.apps:
            self.apps[n].close()
        self.apps[n], self.drops[n] = app, drop

    def next_delivery(self, n: int) -> tuple[int, Path]:
        """Re-deliver the middle SecId of universe ``n`` with one more new day than last time."""
        spec = self.spec(n)
        extra = self.redeliveries.get(n, 0) + 1
        self.redeliveries[n] = extra
        secid = spec.first_secid + n // 2
        return secid, redeliver(self.drops[n], spec, secid, trade_dates(spec, extra=extra))

    def close(self) -> None:
        for app in self.apps.values():
            app.close()
        self.apps.clear()


def backfill(src: Path, tag: str, **env: str) -> tuple[Run, Path, Path]:
    """``run --once`` as a process, from an empty state directory, on a hard-link copy of ``src``."""
    root = RUN / f"backfill-{tag}"
    drop, state = link_copy(src, root / "drop"), fresh(root / "state")
    return run_once_cli(drop, state, **env), drop, state


def applied_one(stats: CycleStats) -> bool:
    """One file version was processed and it ended done (zero counts, e.g. of skipped names, aside)."""
    return stats.outcomes == Counter(done=1)


def worker_only(app: App, path: Path) -> tuple[float, float, object]:
    """The daemon's event path: record the new version in the ledger, then one worker cycle."""
    rel = str(path.relative_to(app.settings.drop.dir))
    with timer() as t:
        st = os.lstat(path)
        record_entry(
            app.ledger, Entry(rel, st.st_size, st.st_mtime_ns, True, False), app.settings.drop.master_glob
        )
        stats = app.worker.cycle()
    if not applied_one(stats):
        raise RuntimeError(f"re-delivery of {rel} was not applied: {stats.results}")
    return t.wall, t.cpu, stats
