"""Faults inside the daemon stop only themselves, are visible while they last, and lose nothing.

In-process, on the real worker, ledger, embedded store and SQLite: exceptions are raised at
random points (backend writes, the securities mapping, the ledger) during a drop of a few
hundred files. After the faults stop, the store must equal a clean run's.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pytest

from algoseek_sync.app import App, open_app, run_once
from algoseek_sync.backends.local import LocalBackend
from algoseek_sync.commands.views import status
from algoseek_sync.config import load_settings
from algoseek_sync.formats.datasets import DATASETS
from algoseek_sync.ingest import worker as worker_module
from algoseek_sync.logging import configure_logging
from algoseek_sync.state.ledger import FileState, Ledger
from algoseek_sync.state.securities import Securities
from algoseek_sync.store.chunks import Chunks
from algoseek_sync.synthetic.generate import DropSpec, generate_drop
from algoseek_sync.watch.scan import reconcile

SPEC = DropSpec(
    secids=300, days=5, schema="primary-adjusted", aggregation="secid", compression="none", seed=7
)


def open_on(drop: Path, state: Path) -> App:
    return open_app(
        load_settings(env={"ALGOSEEK_SYNC_DROP_DIR": str(drop), "ALGOSEEK_SYNC_STATE_DIR": str(state)})
    )


def stored(app: App) -> pa.Table:
    chunks = Chunks(app.db)
    secids = [r[0] for r in app.db.execute("SELECT DISTINCT secid FROM bar_chunks ORDER BY secid")]
    return chunks.read(DATASETS["primary-adjusted"], secids)


class Faults:
    """Raise at a wrapped call with probability ``p`` while active; remember every fault raised."""

    def __init__(self, p: float, seed: int) -> None:
        self.p = p
        self.rng = random.Random(seed)
        self.active = True
        self.raised: list[str] = []

    def wrap(self, monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> None:
        real = getattr(owner, name)

        def faulty(*args: object, **kwargs: object) -> object:
            if self.active and self.rng.random() < self.p:
                self.raised.append(f"{owner.__name__}.{name}")
                raise RuntimeError(f"injected fault in {owner.__name__}.{name}")
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, faulty)


def test_random_faults_stop_only_themselves_and_the_store_ends_equal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure_logging("error", "json")  # hundreds of logged tracebacks; plain JSON renders them fast
    drop = tmp_path / "drop"
    generate_drop(drop, SPEC)
    clean = open_on(drop, tmp_path / "clean")
    assert run_once(clean).outcomes["done"] == SPEC.secids + 1
    expected = stored(clean)
    clean.close()

    monkeypatch.setattr(worker_module, "backoff", lambda attempts: 0.0)  # retries due at once
    faults = Faults(p=0.12, seed=3)
    for owner, name in [
        (LocalBackend, "write_bars"),
        (LocalBackend, "write_master"),
        (Securities, "routes"),
        (Securities, "apply_master"),
        (Ledger, "finish"),
        (Ledger, "claim_bars"),
    ]:
        faults.wrap(monkeypatch, owner, name)
    app = open_on(drop, tmp_path / "state")
    reconcile(drop, app.ledger, app.settings.drop.master_glob)
    for _ in range(40):
        before = len(faults.raised)
        stats = app.worker.cycle()
        assert app.ledger.processing_age() == (0.0, ""), "nothing may stay processing after a cycle"
        if len(faults.raised) > before:
            shown = " ".join(p["detail"] for p in status(app)["problems"]["recent"])
            assert "injected fault" in shown, "a fault that happened must be visible in status"
            assert stats.error or stats.outcomes["failed"] or stats.outcomes["quarantined"]
        if not app.ledger.depth():
            break
    assert len(set(faults.raised)) >= 4, faults.raised  # the faults really hit several places

    faults.active = False
    for _ in range(10):
        app.worker.cycle()
        if not app.ledger.depth():
            break
    quarantined = app.ledger.listing([FileState.QUARANTINED], limit=1000)
    assert all("injected fault" in q["last_error"] for q in quarantined)
    ids = [v.id for v in app.ledger.versions_for(paths=[q["path"] for q in quarantined])]
    app.ledger.requeue(ids)  # what `algoseek-sync reprocess --file` does
    app.worker.cycle()
    assert app.ledger.depth() == 0 and app.ledger.processing_age() == (0.0, "")
    assert app.ledger.counts()["bars"] == {"done": SPEC.secids}
    assert stored(app).equals(expected)
    assert status(app)["problems"]["counts"] == {}  # fixed: nothing left to show
    app.close()


def test_a_stop_between_batches_gives_back_every_batch_parsed_ahead(tmp_path: Path) -> None:
    """With batches being parsed ahead, a stop leaves no version `processing`; what was not
    written goes back to `pending` and a later cycle stores it, in claim order."""
    drop = tmp_path / "drop"
    generate_drop(drop, SPEC)
    app = open_on(drop, tmp_path / "state")
    try:
        reconcile(drop, app.ledger, app.settings.drop.master_glob)
        written: list[int] = []
        app.worker.hooks.append(lambda result: written.append(1) if result.kind == "bars" else None)
        stats = app.worker.cycle(should_stop=lambda: len(written) >= worker_module.BATCH_FILES)
        counts = dict(app.db.execute("SELECT state, count(*) FROM files WHERE kind = 'bars' GROUP BY state"))
        assert stats.outcomes["done"] == worker_module.BATCH_FILES + 1  # the master and one batch
        assert counts == {
            "done": worker_module.BATCH_FILES,
            "pending": SPEC.secids - worker_module.BATCH_FILES,
        }
        app.ledger.due_now()
        app.worker.cycle()
        counts = dict(app.db.execute("SELECT state, count(*) FROM files GROUP BY state"))
        assert counts == {"done": SPEC.secids + 1}
    finally:
        app.close()
