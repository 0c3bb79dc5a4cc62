"""The 9.x backend's pure parts: range-complete writes, frame splits, and the shipped migration.

The migration is frozen (a revision must not change once shipped); these tests prove that what it
creates is what :mod:`algoseek_sync.backends.mainsequence9.tables` declares, so a dataset column
added without a new revision fails here, not on a tenant.
"""

from __future__ import annotations

import importlib.util

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations

from algoseek_sync.backends.mainsequence import frames
from algoseek_sync.backends.mainsequence9 import migrations, writes

MIGRATION = "0001_create_algoseek_tables.py"


def node(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """A node frame from (day, identifier, close) rows."""
    plain = pd.DataFrame(rows, columns=["time_index", "unique_identifier", "close"])
    return frames.to_node_frame(plain)


def as_rows(frame: pd.DataFrame) -> list[tuple[str, str, float]]:
    plain = frames.to_plain_frame(frame)
    return [
        (t[:10], u, c)
        for t, u, c in plain[["time_index", "unique_identifier", "close"]].itertuples(index=False)
    ]


def test_a_range_complete_frame_carries_every_stored_day_inside_each_assets_span() -> None:
    stored = node([(f"2024-01-0{d}", uid, float(d)) for d in range(1, 9) for uid in ("A", "B")])
    new = node([("2024-01-02", "A", 20.0), ("2024-01-06", "A", 60.0), ("2024-01-07", "B", 70.0)])
    union = writes.range_complete(new, stored)
    assert as_rows(union) == [
        ("2024-01-02", "A", 20.0),
        ("2024-01-03", "A", 3.0),
        ("2024-01-04", "A", 4.0),
        ("2024-01-05", "A", 5.0),
        ("2024-01-06", "A", 60.0),
        ("2024-01-07", "B", 70.0),
    ]


def test_a_range_complete_frame_of_new_days_only_is_the_new_frame() -> None:
    stored = node([("2024-01-01", "A", 1.0)])
    new = node([("2024-01-02", "A", 2.0), ("2024-01-03", "A", 3.0)])
    assert as_rows(writes.range_complete(new, stored)) == as_rows(new)
    assert as_rows(writes.range_complete(new, node([]))) == as_rows(new)


@pytest.mark.parametrize("max_rows", [1, 2, 3, 5, 100])
def test_split_frames_respect_the_budget_and_keep_each_slice_range_complete(max_rows: int) -> None:
    frame = node([(f"2024-01-0{d}", uid, float(d)) for d in range(1, 6) for uid in ("A", "B", "C")][:-2])
    parts = list(writes.split(frame, max_rows))
    assert sum(len(p) for p in parts) == len(frame)
    assert pd.concat(parts).sort_index().equals(frame.sort_index())
    for part in parts:
        assert len(part) <= max_rows
        for uid, rows in part.groupby(level="unique_identifier"):
            times = rows.index.get_level_values("time_index")
            everything = frame.xs(uid, level="unique_identifier", drop_level=False)
            inside = everything[
                (everything.index.get_level_values("time_index") >= times.min())
                & (everything.index.get_level_values("time_index") <= times.max())
            ]
            assert len(inside) == len(rows)  # nothing of this asset's span is left to another slice


def test_the_shipped_migration_creates_exactly_the_declared_tables() -> None:
    from algoseek_sync.backends.mainsequence9 import tables

    path = migrations.__file__.replace("__init__.py", f"versions/algoseek/{MIGRATION}")
    spec = importlib.util.spec_from_file_location("algoseek_0001", path)
    assert spec is not None and spec.loader is not None
    revision = importlib.util.module_from_spec(spec)
    engine = sa.create_engine("sqlite://")
    with engine.begin() as connection:
        context = MigrationContext.configure(connection)
        with Operations.context(context):
            spec.loader.exec_module(revision)
            revision.upgrade()
        declared = sa.MetaData()
        for model in tables.ALL_MODELS:
            model.__table__.to_metadata(declared)
        assert compare_metadata(MigrationContext.configure(connection), declared) == []
        created = set(sa.inspect(connection).get_table_names())
    assert created == {m.__table__.name for m in tables.ALL_MODELS}
