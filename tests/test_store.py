"""The embedded store: chunks per (dataset, SecId, month) in a real SQLite state database."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from algoseek_sync.formats.adjust import backward_adjusted
from algoseek_sync.formats.bars import arrow_schema, last_wins, parse_bars
from algoseek_sync.formats.datasets import DATASETS
from algoseek_sync.state.database import Database
from algoseek_sync.store.chunks import Chunks
from algoseek_sync.synthetic.generate import DropSpec, generate_drop
from conftest import AAPL_SAMPLE, PRIMARY_HEADER, STANDARD_HEADER

STANDARD = DATASETS["standard-adjusted"]
PRIMARY_ADJ = DATASETS["primary-adjusted"]
PRIMARY = DATASETS["primary"]


@pytest.fixture(scope="module")
def aapl() -> pa.Table:
    return parse_bars(AAPL_SAMPLE.read_bytes()).table


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    """A generated primary-adjusted drop: 5 SecIds × 30 days (Jan and Feb 2024), one table."""
    root = tmp_path_factory.mktemp("drop")
    spec = DropSpec(
        secids=5, days=30, schema="primary-adjusted", aggregation="secid", compression="none", seed=1
    )
    manifest = generate_drop(root, spec)
    tables = []
    for path in manifest.bar_paths:
        bars = parse_bars(path.read_bytes())
        assert bars.dataset is PRIMARY_ADJ and bars.notes == ()
        tables.append(bars.table)
    table = last_wins(tables)
    assert table is not None and table.num_rows == manifest.rows == 150
    return table


def _store(db: Database, dataset, tables: list[pa.Table]) -> int:  # type: ignore[no-untyped-def]
    with db.transaction():
        return Chunks(db).upsert(dataset, tables)


def _std(*rows: str) -> pa.Table:
    return parse_bars(("\n".join([STANDARD_HEADER, *rows]) + "\n").encode()).table


def _row(secid: int, date: int, close: float = 1.5, ticker: str = "A", cpf: str = "1", cvf: str = "1") -> str:
    return f"{secid},{date},{ticker},1,2,0.5,{close},100,{cpf},{cvf},,"


def _closes(table: pa.Table) -> dict[tuple[int, int], float]:
    return {
        (s, d): c
        for s, d, c in zip(
            table["secid"].to_pylist(),
            table["tradedate"].to_pylist(),
            table["close"].to_pylist(),
            strict=True,
        )
    }


# -- round trips ---------------------------------------------------------------------------------


def test_aapl_sample_round_trips_exactly(db: Database, aapl: pa.Table) -> None:
    assert _store(db, STANDARD, [aapl]) == 3342
    back = Chunks(db).read(STANDARD, [33449])
    assert back.schema == arrow_schema(STANDARD)
    assert back.equals(aapl)
    assert back["adjustmentfactor"].null_count == 3310 and back["adjustmentreason"].null_count == 3310
    split = back.filter(pc.equal(back["tradedate"], 20140609)).to_pylist()[0]
    assert (split["close"], split["volume"], split["adjustmentreason"]) == (93.70, 72888472, "BonusSame")
    # one chunk per month: 2007-01 .. 2020-04
    assert Chunks(db).size() == (160, 3342)
    assert Chunks(db).datasets() == ["standard-adjusted"]


def test_generated_primary_adjusted_drop_round_trips(db: Database, generated: pa.Table) -> None:
    assert _store(db, PRIMARY_ADJ, [generated]) == 150
    secids = sorted(set(generated["secid"].to_pylist()))
    back = Chunks(db).read(PRIMARY_ADJ, secids)
    assert back.equals(generated)
    # 5 SecIds × (January, February)
    assert Chunks(db).size() == (10, 150)


def test_texts_times_nulls_and_extra_round_trip(db: Database) -> None:
    def prow(date: int, isin: str, opentime: str, closetime: str, volume: str, bonus: str) -> str:
        return (
            f"7,{date},ABC,Abc Inc,NYSE,{isin},10.5,100,{opentime},11,10:00:00,10,11:00:00,10.75,200,"
            f"{closetime},1000,10,{volume},15,300,3,400,4,,10.61,{bonus}"
        )

    data = "\n".join(
        [
            f"{PRIMARY_HEADER},Bonus",
            prow(20240102, "US0000000001", "9:30:00", "16:00:00", "1500", "x"),
            prow(20240103, "", "09:30:00.7", "25:00:00", "1500", ""),
            prow(20240104, "Ünïcødé", "09:30:00.000001", "16:00:00.25", "7", "ζ"),
        ]
    )
    bars = parse_bars((data + "\n").encode())
    table = bars.table
    assert table["opentime"].to_pylist() == ["09:30:00", "09:30:00.700", "09:30:00.000001"]
    assert table["closetime"].to_pylist() == ["16:00:00", None, "16:00:00.250"]
    assert table["isin"].to_pylist()[1] is None and table["vwap"].null_count == 3
    extra = [json.loads(e) for e in table["extra"].to_pylist()]
    assert extra == [{"Bonus": "x"}, {"CloseTime": "25:00:00"}, {"Bonus": "ζ"}]
    assert _store(db, PRIMARY, [table]) == 3
    back = Chunks(db).read(PRIMARY, [7])
    assert back.equals(table)
    assert back["isin"].to_pylist() == ["US0000000001", None, "Ünïcødé"]


# -- upsert semantics -------------------------------------------------------------------------------


def test_second_upsert_replaces_only_the_repeated_days(db: Database, aapl: pa.Table) -> None:
    _store(db, STANDARD, [aapl])
    days = [20140606, 20140609, 20200413]
    changed = aapl.filter(pc.is_in(aapl["tradedate"], pa.array(days, pa.int32())))
    changed = changed.set_column(
        changed.column_names.index("close"), "close", pa.array([1.0, 2.0, 3.0], pa.float64())
    )
    appended = _std("33449,20200414,AAPL,280,285,279,284.5,123,8.0641405312554326,6.9999999999999938,,")
    assert _store(db, STANDARD, [changed, appended]) == 4
    back = Chunks(db).read(STANDARD, [33449])
    assert back.num_rows == 3343
    closes = _closes(back)
    assert [closes[(33449, d)] for d in days] == [1.0, 2.0, 3.0]
    assert closes[(33449, 20200414)] == 284.5
    untouched = back.filter(pc.invert(pc.is_in(back["tradedate"], pa.array([*days, 20200414], pa.int32()))))
    original = aapl.filter(pc.invert(pc.is_in(aapl["tradedate"], pa.array(days, pa.int32()))))
    assert untouched.equals(original)
    assert back["tradedate"].to_pylist() == sorted(back["tradedate"].to_pylist())
    assert Chunks(db).size() == (160, 3343)


def test_later_table_in_one_call_wins_and_texts_survive_several_chunks(db: Database) -> None:
    first = _std(_row(1, 20240102, 1.0, "A"), _row(1, 20240103, 2.0, "B"))
    second = _std(_row(1, 20240103, 3.0, "C"), _row(2, 20240103, 4.0, "D"))
    assert _store(db, STANDARD, [first, second]) == 3
    back = Chunks(db).read(STANDARD, [1, 2])
    assert [(r["secid"], r["tradedate"], r["close"], r["ticker"]) for r in back.to_pylist()] == [
        (1, 20240102, 1.0, "A"),
        (1, 20240103, 3.0, "C"),
        (2, 20240103, 4.0, "D"),
    ]


def test_datasets_with_the_same_secid_stay_apart(db: Database) -> None:
    standard = _std(_row(7, 20240102, 1.5, "STD"))
    primary = parse_bars(
        (
            f"{PRIMARY_HEADER}\n7,20240102,PRI,Abc Inc,NYSE,,10.5,100,09:30:00,11,10:00:00,10,11:00:00,10.75,200,"
            "16:00:00,1000,10,1500,15,300,3,400,4,10.6,10.61\n"
        ).encode()
    ).table
    _store(db, STANDARD, [standard])
    _store(db, PRIMARY, [primary])
    chunks = Chunks(db)
    assert chunks.read(STANDARD, [7]).equals(standard)
    assert chunks.read(PRIMARY, [7]).equals(primary)
    assert chunks.read(PRIMARY_ADJ, [7]).num_rows == 0
    assert chunks.read(PRIMARY_ADJ, [7]).schema == arrow_schema(PRIMARY_ADJ)
    assert chunks.datasets() == ["primary", "standard-adjusted"]
    assert chunks.read_day(STANDARD, 20240102)["ticker"].to_pylist() == ["STD"]
    assert chunks.read_day(PRIMARY, 20240102)["ticker"].to_pylist() == ["PRI"]


def test_empty_upsert_writes_nothing(db: Database) -> None:
    assert _store(db, STANDARD, []) == 0
    assert _store(db, STANDARD, [_std()]) == 0
    assert Chunks(db).size() == (0, 0) and Chunks(db).datasets() == []
    assert Chunks(db).read(STANDARD, [1]).num_rows == 0


# -- reads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "first", "last", "count"),
    [
        (20140530, 20140603, 20140530, 20140603, 3),  # Fri May 30 .. Tue Jun 3, across a month edge
        (20140531, 20140601, None, None, 0),  # a weekend across the month edge
        (20131231, 20140102, 20131231, 20140102, 2),  # across a year edge (Jan 1 is a holiday)
        (None, 20070105, 20070103, 20070105, 3),
        (20200409, None, 20200409, 20200413, 2),  # Good Friday 20200410 is no trading day
        (20140609, 20140609, 20140609, 20140609, 1),
    ],
)
def test_read_bounds_across_month_edges(
    db: Database,
    aapl: pa.Table,
    start: int | None,
    end: int | None,
    first: int | None,
    last: int | None,
    count: int,
) -> None:
    _store(db, STANDARD, [aapl])
    back = Chunks(db).read(STANDARD, [33449], start, end)
    dates = back["tradedate"].to_pylist()
    assert len(dates) == count
    if count:
        assert (dates[0], dates[-1]) == (first, last)
        expected = aapl.filter(
            pc.and_(pc.greater_equal(aapl["tradedate"], first), pc.less_equal(aapl["tradedate"], last))
        )
        assert back.equals(expected)


def test_read_day_returns_one_row_per_secid(db: Database, generated: pa.Table) -> None:
    _store(db, PRIMARY_ADJ, [generated])
    chunks = Chunks(db)
    day = chunks.read_day(PRIMARY_ADJ, 20240201)
    assert day["secid"].to_pylist() == [10000, 10001, 10002, 10003, 10004]
    assert set(day["tradedate"].to_pylist()) == {20240201}
    expected = generated.filter(pc.equal(generated["tradedate"], 20240201))
    assert day.equals(expected)
    assert chunks.read_day(PRIMARY_ADJ, 20240115).num_rows == 0  # Martin Luther King Jr. Day
    assert chunks.read_day(PRIMARY_ADJ, 20240203).num_rows == 0  # a Saturday
    assert chunks.read_day(PRIMARY_ADJ, 20230103).num_rows == 0  # before the first chunk
    assert chunks.read_day(STANDARD, 20240201).num_rows == 0  # a dataset never stored


def test_read_of_several_secids_is_sorted_and_filtered(db: Database, generated: pa.Table) -> None:
    _store(db, PRIMARY_ADJ, [generated])
    back = Chunks(db).read(PRIMARY_ADJ, [10004, 10001, 99999], 20240130, 20240202)
    keys = list(zip(back["secid"].to_pylist(), back["tradedate"].to_pylist(), strict=True))
    dates = [20240130, 20240131, 20240201, 20240202]
    assert keys == [(s, d) for s in (10001, 10004) for d in dates]


def test_latest_factors_are_those_of_the_last_stored_day(db: Database, aapl: pa.Table) -> None:
    _store(db, STANDARD, [aapl.filter(pc.less_equal(aapl["tradedate"], 20140609))])
    chunks = Chunks(db)
    assert chunks.latest_factors(STANDARD, [33449, 1]) == {33449: (7.3235859665873271, 6.9999999999999938)}
    _store(db, STANDARD, [aapl])
    assert chunks.latest_factors(STANDARD, [33449]) == {33449: (8.0641405312554326, 6.9999999999999938)}
    assert chunks.latest_factors(PRIMARY_ADJ, [33449]) == {}
    assert Chunks(db).latest_factors(PRIMARY, [33449]) == {}


def test_latest_factors_of_a_day_without_factors_are_not_zero(db: Database) -> None:
    """A last day whose factor cells are empty is stored with null factors; they must not read back as 0.0,
    which would make every backward-adjusted price of the SecId infinite."""
    table = _std(_row(1, 20240102, 1.5, cpf="2", cvf="4"), _row(1, 20240103, 1.6, cpf="", cvf=""))
    _store(db, STANDARD, [table])
    latest = Chunks(db).latest_factors(STANDARD, [1])
    assert latest.get(1) != (0.0, 0.0), latest
    adjusted = backward_adjusted(Chunks(db).read(STANDARD, [1]), latest)
    closes = np.array(adjusted["close"].to_pylist(), dtype=float)
    assert not np.isinf(closes).any(), closes


# -- readers in other connections ------------------------------------------------------------------


def test_read_only_connection_sees_whole_commits_only(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    writer = Database(path)
    before = _std(_row(1, 20240102, 1.0))
    _store(writer, STANDARD, [before])
    reader = Database(path, readonly=True)
    try:
        seen = Chunks(reader)
        assert _closes(seen.read(STANDARD, [1, 2])) == {(1, 20240102): 1.0}
        with writer.transaction():
            Chunks(writer).upsert(STANDARD, [_std(_row(1, 20240102, 5.0), _row(2, 20240102, 6.0))])
            # the write is not committed yet: the reader sees the old state
            assert _closes(seen.read(STANDARD, [1, 2])) == {(1, 20240102): 1.0}
            assert seen.read_day(STANDARD, 20240102)["secid"].to_pylist() == [1]
        assert _closes(seen.read(STANDARD, [1, 2])) == {(1, 20240102): 5.0, (2, 20240102): 6.0}
        assert _closes(Chunks(reader).read_day(STANDARD, 20240102)) == {
            (1, 20240102): 5.0,
            (2, 20240102): 6.0,
        }
        with pytest.raises(Exception, match="readonly"), reader.transaction():
            Chunks(reader).upsert(STANDARD, [before])
    finally:
        reader.close()
        writer.close()


def test_rolled_back_upsert_leaves_the_store_unchanged(db: Database) -> None:
    _store(db, STANDARD, [_std(_row(1, 20240102, 1.0))])
    with pytest.raises(RuntimeError, match="boom"), db.transaction():
        Chunks(db).upsert(STANDARD, [_std(_row(1, 20240102, 9.0), _row(1, 20240301, 9.0))])
        raise RuntimeError("boom")
    assert _closes(Chunks(db).read(STANDARD, [1])) == {(1, 20240102): 1.0}
    assert Chunks(db).size() == (1, 1)


# -- the writer's own reads (chunks it just wrote are not decoded again) ------------------------------


def test_the_writers_reads_equal_a_fresh_readers(db: Database, aapl: pa.Table) -> None:
    """Reads and merges through the chunks a write kept give what decoding the stored blobs gives."""
    writer = Chunks(db)
    first, correction = aapl.slice(0, 3000), aapl.slice(2990)  # ten days again, then the rest
    with db.transaction():
        writer.upsert(STANDARD, [first])
    with db.transaction():
        writer.upsert(STANDARD, [correction])  # merges into chunks the first write kept
    assert writer.read(STANDARD, [33449]).equals(aapl)
    assert writer.read(STANDARD, [33449]).equals(Chunks(db).read(STANDARD, [33449]))
    assert writer.read_day(STANDARD, 20140609).equals(Chunks(db).read_day(STANDARD, 20140609))
    assert writer.latest_factors(STANDARD, [33449]) == Chunks(db).latest_factors(STANDARD, [33449])


def test_the_writers_reads_keep_extras_and_nulls(db: Database) -> None:
    data = f"{PRIMARY_HEADER},Bonus\n" + "".join(
        f"7,{d},ABC,Abc Inc,NYSE,,10.5,100,09:30:00,11,10:00:00,10,11:00:00,10.75,200,16:00:00,1000,10,"
        f"1500,15,300,3,400,4,,10.61,{bonus}\n"
        for d, bonus in ((20240102, "x"), (20240103, ""), (20240201, "ζ"))
    )
    table = parse_bars(data.encode()).table
    writer = Chunks(db)
    with db.transaction():
        writer.upsert(PRIMARY, [table])
    assert writer.read(PRIMARY, [7]).equals(table)
    assert (
        writer.read(PRIMARY, [7])["extra"].to_pylist() == Chunks(db).read(PRIMARY, [7])["extra"].to_pylist()
    )


def test_a_rolled_back_write_is_not_read_back_by_its_writer(db: Database) -> None:
    writer = Chunks(db)
    with db.transaction():
        writer.upsert(STANDARD, [_std(_row(1, 20240102, 1.0))])
    with pytest.raises(RuntimeError, match="boom"), db.transaction():
        writer.upsert(STANDARD, [_std(_row(1, 20240102, 9.0), _row(1, 20240103, 9.0))])
        raise RuntimeError("boom")
    assert _closes(writer.read(STANDARD, [1])) == {(1, 20240102): 1.0}
