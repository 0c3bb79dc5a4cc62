"""Cross-sections from day blocks (store/days.py): always equal to the per-SecId read of the chunks.

Each test writes a real SQLite store the ways deliveries do (SecId by SecId, whole-market days,
corrections, re-deliveries, rolled-back batches, a store of the previous release) and compares
``read_day`` with the same day read SecId-major, with the period's state checked so both the
block path and the chunk path are exercised. The last tests check, through the CLI, that a
cross-section keeps the SecIds a later master leaves out (survivorship).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from algoseek_sync.backends.local import LocalBackend
from algoseek_sync.formats.bars import last_wins, parse_bars
from algoseek_sync.formats.datasets import DATASETS
from algoseek_sync.state.database import Database
from algoseek_sync.store import chunks as chunks_module
from algoseek_sync.store.chunks import Chunks
from algoseek_sync.store.days import MAX_PARTS
from algoseek_sync.synthetic.generate import DropSpec, generate_drop
from conftest import Sandbox

DATASET = DATASETS["primary-adjusted"]
SPEC = DropSpec(secids=8, days=45, schema="primary-adjusted", aggregation="secid", compression="none", seed=5)


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    """8 SecIds x 45 days (January to March 2024), one table sorted by (secid, tradedate)."""
    manifest = generate_drop(tmp_path_factory.mktemp("drop"), SPEC)
    table = last_wins([parse_bars(p.read_bytes()).table for p in manifest.bar_paths])
    assert table is not None and table.num_rows == 8 * 45
    return table


def _write(db: Database, *tables: pa.Table) -> None:
    with db.transaction():
        Chunks(db).upsert(DATASET, list(tables))


def _days(table: pa.Table) -> list[int]:
    return sorted(set(table["tradedate"].to_pylist()))


def _state(db: Database, day: int) -> int | None:
    """1 clean, 0 dirty, None unknown: the state of ``day``'s period."""
    row = db.execute(
        "SELECT clean FROM bar_day_periods p JOIN datasets d ON d.id = p.dataset WHERE d.name = ? AND period = ?",
        (DATASET.name, day // 100),
    ).fetchone()
    return None if row is None else row[0]


def _assert_exact(db: Database, days: list[int], state: int | None) -> None:
    """Every day's cross-section equals the per-SecId read of the chunks, read in ``state``."""
    chunks = Chunks(db)
    secids = sorted(set(chunks.read(DATASET, range(0, 100_000))["secid"].to_pylist()))
    for day in days:
        assert _state(db, day) == state, day
        expected = chunks.read(DATASET, secids, day, day)
        assert expected.num_rows, day
        assert chunks.read_day(DATASET, day).equals(expected), day


def _with_close(table: pa.Table, add: float) -> pa.Table:
    return table.set_column(
        table.schema.get_field_index("close"), "close", pc.add(table["close"], pa.scalar(add))
    )


def _secid(table: pa.Table, secid: int) -> pa.Table:
    return table.filter(pc.equal(table["secid"], secid))


def _on(table: pa.Table, *days: int) -> pa.Table:
    return table.filter(pc.is_in(table["tradedate"], pa.array(days, pa.int32())))


def test_a_backfill_secid_by_secid_is_read_from_chunks_until_refreshed(db: Database, drop: pa.Table) -> None:
    for secid in sorted(set(drop["secid"].to_pylist())):
        _write(db, _secid(drop, secid))  # 45 days a batch: months marked dirty, not patched
    _assert_exact(db, _days(drop), state=0)
    backend = LocalBackend(db)
    assert backend.refresh_cross_sections(limit=1) == 1  # January; an idle writer's step
    _assert_exact(db, [d for d in _days(drop) if d < 20240200], state=1)
    _assert_exact(db, [d for d in _days(drop) if d > 20240200], state=0)
    assert backend.refresh_cross_sections() == 2  # February, March
    _assert_exact(db, _days(drop), state=1)
    assert backend.refresh_cross_sections() == 0
    for day in _days(drop):
        assert Chunks(db).read_day(DATASET, day).equals(_on(drop, day))


def test_a_refresh_with_nothing_to_do_takes_no_write_lock(db: Database, drop: pa.Table) -> None:
    """An idle writer's upkeep must not queue behind the daemon's transactions when it has nothing to build."""
    _write(db, drop)
    LocalBackend(db).upkeep()

    def no_transaction() -> AbstractContextManager:
        raise AssertionError("a write transaction was opened")

    assert Chunks(db).refresh_days(no_transaction) == 0


def test_whole_market_days_are_clean_as_soon_as_written(db: Database, drop: pa.Table) -> None:
    """Daily files (every SecId, one day) create or patch their day's block in the same transaction."""
    for day in _days(drop):
        _write(db, _on(drop, day))
    _assert_exact(db, _days(drop), state=1)
    assert db.execute("SELECT max(part) FROM bar_days").fetchone()[0] == 0


def test_corrections_of_single_days_show_in_the_next_cross_section(db: Database, drop: pa.Table) -> None:
    _write(db, drop)  # one batch holding every row of every month: built at once
    day = _days(drop)[20]
    _assert_exact(db, _days(drop), state=1)
    secids = sorted(set(drop["secid"].to_pylist()))
    for k in range(MAX_PARTS + 3):  # more corrections of one day than it keeps parts
        secid = secids[k % len(secids)]
        _write(db, _with_close(_on(_secid(drop, secid), day), 100.0 + k))
        section = Chunks(db).read_day(DATASET, day)
        closes = dict(zip(section["secid"].to_pylist(), section["close"].to_pylist(), strict=True))
        assert closes[secid] == _on(_secid(drop, secid), day)["close"][0].as_py() + 100.0 + k
        _assert_exact(db, [day], state=1)
        parts = db.execute("SELECT count(*) FROM bar_days WHERE tradedate = ?", (day,)).fetchone()[0]
        assert 1 <= parts <= MAX_PARTS
    assert parts < MAX_PARTS  # the parts were merged at least once


def test_a_redelivery_with_one_new_day_patches_only_that_day(db: Database, drop: pa.Table) -> None:
    days = _days(drop)
    _write(db, _on(drop, *days[:-1]))
    secid = drop["secid"][0].as_py()
    _write(db, _secid(drop, secid))  # the SecId's whole history again, unchanged, and its last day
    assert db.execute("SELECT count(*) FROM bar_days WHERE part > 0").fetchone()[0] == 0
    _assert_exact(db, days, state=1)
    assert Chunks(db).read_day(DATASET, days[-1])["secid"].to_pylist() == [secid]


def test_a_correction_of_many_days_marks_them_dirty_until_refreshed(db: Database, drop: pa.Table) -> None:
    _write(db, drop)
    secid = drop["secid"][3].as_py()
    _write(db, _with_close(_secid(drop, secid), 0.5))
    _assert_exact(db, _days(drop), state=0)
    LocalBackend(db).upkeep()  # an idle writer (or the end of run --once) rebuilds what it left dirty
    _assert_exact(db, _days(drop), state=1)
    section = Chunks(db).read_day(DATASET, _days(drop)[7])
    assert _closes(section)[secid] == _closes(_on(drop, _days(drop)[7]))[secid] + 0.5


def test_a_rolled_back_write_leaves_the_day_blocks_unchanged(db: Database, drop: pa.Table) -> None:
    _write(db, drop)
    day = _days(drop)[5]
    before = Chunks(db).read_day(DATASET, day)
    with pytest.raises(RuntimeError, match="boom"), db.transaction():
        Chunks(db).upsert(DATASET, [_with_close(_on(drop, day), 9.0)])
        raise RuntimeError("boom")
    assert Chunks(db).read_day(DATASET, day).equals(before)
    _assert_exact(db, [day], state=1)


def test_a_rolled_back_first_write_leaves_a_store_that_takes_the_next_one(
    db: Database, drop: pa.Table
) -> None:
    chunks = Chunks(db)  # one instance throughout, as the worker keeps it
    with pytest.raises(RuntimeError, match="boom"), db.transaction():
        chunks.upsert(DATASET, [drop])  # creates the day tables, then rolls them back
        raise RuntimeError("boom")
    with db.transaction():
        chunks.upsert(DATASET, [drop])
    _assert_exact(db, _days(drop), state=1)


def test_a_store_of_the_previous_release_is_read_exactly_then_migrated(
    tmp_path: Path, drop: pa.Table
) -> None:
    path = tmp_path / "state.db"
    writer = Database(path)
    _write(writer, drop)
    writer.execute("DROP TABLE bar_days")  # what a store written before day blocks holds
    writer.execute("DROP TABLE bar_day_periods")
    reader = Database(path, readonly=True)
    try:
        for day in _days(drop):  # read from the chunks; the read-only reader creates nothing
            assert Chunks(reader).read_day(DATASET, day).equals(_on(drop, day))
        tables = {r[0] for r in reader.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "bar_days" not in tables
        assert LocalBackend(reader).upkeep() == 0  # a reader's upkeep writes nothing either
        secid = drop["secid"][0].as_py()
        _write(writer, _with_close(_on(_secid(drop, secid), _days(drop)[0]), 1.0))  # first write after
        assert _state(writer, _days(drop)[30]) == 0  # the periods found in the store start dirty
        LocalBackend(writer).upkeep()
        _assert_exact(writer, _days(drop), state=1)
        expected = _closes(_on(drop, _days(drop)[0]))
        expected[secid] += 1.0
        assert _closes(Chunks(reader).read_day(DATASET, _days(drop)[0])) == expected
    finally:
        reader.close()
        writer.close()


def test_texts_from_the_string_snapshot_include_strings_added_after_it(
    db: Database, drop: pa.Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunks_module, "SNAPSHOT_TEXTS", 0)  # every read takes the snapshot's path
    _write(db, drop)
    LocalBackend(db).close()  # writes the snapshot
    day, secid = _days(drop)[9], drop["secid"][0].as_py()
    row = _on(_secid(drop, secid), day)
    renamed = row.set_column(row.schema.get_field_index("ticker"), "ticker", pa.array(["ZZNEW"], pa.string()))
    _write(db, renamed)  # a string the snapshot does not hold
    expected = last_wins([_on(drop, day), renamed])
    assert Chunks(db).read_day(DATASET, day).equals(expected)
    LocalBackend(db).close()
    assert Chunks(db).read_day(DATASET, day).equals(expected)
    for other in _days(drop):
        assert Chunks(db).read(DATASET, [secid], other, other)["ticker"].to_pylist() == (
            ["ZZNEW"] if other == day else _on(_secid(drop, secid), other)["ticker"].to_pylist()
        )


def _closes(table: pa.Table) -> dict[int, float]:
    return dict(zip(table["secid"].to_pylist(), table["close"].to_pylist(), strict=True))


# -- survivorship: read_day follows every identifier that ever routed a SecId --------------------------

MASTER = "equity_security_master.csv"


def _cross_section(box: Sandbox, day: str) -> pd.DataFrame:
    db = Database(box.state / "state.db", readonly=True)
    try:
        return LocalBackend(db).read_day(DATASET.name, day)
    finally:
        db.close()


def _master(box: Sandbox) -> pd.DataFrame:
    return pd.read_csv(box.drop / MASTER, dtype=str, keep_default_na=False)


def _deliver_master(box: Sandbox, frame: pd.DataFrame) -> None:
    box.put(MASTER, frame.to_csv(index=False))
    box.cli("run", "--once")


@pytest.fixture
def ingested(sandbox: Sandbox) -> tuple[Sandbox, str]:
    spec = DropSpec(secids=6, days=5, schema="primary-adjusted", seed=3, ticker_change_fraction=0.0)
    manifest = generate_drop(sandbox.drop, spec)
    sandbox.cli("run", "--once")
    day = manifest.trade_dates[2]
    return sandbox, f"{day[:4]}-{day[4:6]}-{day[6:]}"


def test_a_secid_a_later_master_leaves_out_keeps_its_past_bars(ingested: tuple[Sandbox, str]) -> None:
    box, day = ingested
    before = _cross_section(box, day)
    master = _master(box)
    gone = [int(s) for s in master["SecId"][:2]]
    assert set(gone) <= set(before["secid"]) and before["secid"].nunique() == 6
    _deliver_master(box, master[~master["SecId"].astype(int).isin(gone)])
    after = _cross_section(box, day)
    pd.testing.assert_frame_equal(after, before)
    assert list(after.dtypes) == list(before.dtypes)


def test_an_identifier_of_two_secids_shows_the_first_ranked_secids_row(ingested: tuple[Sandbox, str]) -> None:
    """The FIGI of SecId a moves to SecId b (a leaves the master): the FIGI's row that day is b's."""
    box, day = ingested
    master = _master(box)
    a, b = master.index[0], master.index[1]
    figi_a, figi_b = master.loc[a, "FIGI"], master.loc[b, "FIGI"]
    moved = master.copy()
    moved.loc[b, "FIGI"] = figi_a
    _deliver_master(box, moved.drop(index=a))
    section = _cross_section(box, day).set_index("unique_identifier")
    secid_b = int(master.loc[b, "SecId"])
    assert section.index.is_unique
    assert section.loc[figi_a, "secid"] == secid_b
    assert section.loc[figi_b, "secid"] == secid_b
    db = Database(box.state / "state.db", readonly=True)
    try:
        from algoseek_sync.backends.base import BarQuery

        history = LocalBackend(db).read_bars(BarQuery(DATASET.name, [figi_a], day, day))
    finally:
        db.close()
    assert history["secid"].tolist() == [secid_b]
    assert np.isclose(history["close"].iloc[0], section.loc[figi_a, "close"])
