"""The platform tables of SDK 9.x, declared from the dataset definitions (SQLAlchemy MetaTable models).

Each table is time-indexed by the trading day's close (UTC) and the asset's identifier
(``asset_identifier``, the markets convention). One table per dataset, one backward-adjusted
table per dataset with factors, the security master (one snapshot row per asset at
:data:`MASTER_TIME`) and the data-quality findings. Column labels and descriptions come from
:mod:`algoseek_sync.formats.datasets` and become the platform's column metadata. Imported only
after the SDK is (it subclasses the SDK's table contract).

Without a foreign key to the markets asset table, bars can be written before their asset row
exists (as on 3.x); the worker still writes bars only for assets ``ensure_assets`` made ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from metatables import (
    PlatformTimeIndexMetaTable,
    TimeIndexTableUpdateConfig,
    TimeIndexTableUpdater,
    schema_table_name,
    sqlalchemy_naming_convention,
)
from sqlalchemy import BigInteger, Column, DateTime, Float, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase

from algoseek_sync.backends.platform_tables import (
    ADJUSTED_SUFFIX,
    EXTRA_COLUMN,
    MASTER_COLUMNS,
    MASTER_TABLE,
    MASTER_TIME,  # noqa: F401  (the backend reads it as tables.MASTER_TIME)
    QUALITY_COLUMNS,
    QUALITY_TABLE,
    Columns,
    bar_columns,
)
from algoseek_sync.formats.datasets import DATASETS, EXTRA, Dataset

NAMESPACE = "algoseek"
IDENTITY = "asset_identifier"
TIME_INDEX = "time_index"
_SQL_TYPES: dict[str, Any] = {
    "int": BigInteger,
    "date": BigInteger,
    "float": Float,
    "text": Text,
    "time": Text,
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=sqlalchemy_naming_convention())


@dataclass(frozen=True)
class TableSpec:
    """One platform table: its identifier, description and data columns (name → label, description, type)."""

    identifier: str
    description: str
    columns: Columns


def bar_spec(dataset: Dataset, adjusted: bool) -> TableSpec:
    """A dataset's table; adjusted volumes are floats (a ratio of factors need not be whole)."""
    what = "backward-adjusted as of the latest factors, " if adjusted else ""
    columns = bar_columns(dataset)
    if adjusted:
        label, description, _ = columns["volume"]
        columns["volume"] = (label, description, "float")
    return TableSpec(
        identifier=dataset.identifier + (ADJUSTED_SUFFIX if adjusted else ""),
        description=f"Algoseek {dataset.title}, {what}one row per trading day close (UTC) and FIGI;"
        " every FIGI of a SecId carries the SecId's full history.",
        columns=columns,
    )


MASTER_SPEC = TableSpec(
    MASTER_TABLE,
    "Algoseek equity security master: one row per FIGI (or custom id) with its SecId, "
    "as a static snapshot rewritten on every master delivery.",
    {**MASTER_COLUMNS, EXTRA: EXTRA_COLUMN},
)
QUALITY_SPEC = TableSpec(
    QUALITY_TABLE,
    "algoseek-sync data-quality findings of the Algoseek daily bars: missing sessions, "
    "impossible bars, stale prices, unexplained jumps, delivery completeness.",
    QUALITY_COLUMNS,
)


def _model(spec: TableSpec) -> type[Any]:
    """A MetaTable model class for ``spec`` (time index and identity first, then the data columns)."""
    short = spec.identifier.removeprefix(f"{NAMESPACE}_")
    attrs: dict[str, Any] = {
        "__tablename__": schema_table_name(NAMESPACE, short),
        "__metatable_namespace__": NAMESPACE,
        "__metatable_identifier__": spec.identifier,
        "__metatable_description__": spec.description,
        "__time_index_name__": TIME_INDEX,
        "__index_names__": [TIME_INDEX, IDENTITY],
        "__cadence__": "1d",
        TIME_INDEX: Column(
            DateTime(timezone=True),
            nullable=False,
            info={"label": "Close time", "description": "Close of the trading day, UTC"},
        ),
        IDENTITY: Column(
            String(255),
            nullable=False,
            info={
                "label": "Asset",
                "description": "FIGI of the asset (or the custom id of a FIGI-less SecId)",
            },
        ),
    }
    for name, (label, description, type_) in spec.columns.items():
        attrs[name] = Column(
            _SQL_TYPES[type_](), nullable=True, info={"label": label, "description": description}
        )
    class_name = "".join(part.title() for part in short.split("_")) + "Table"
    return type(class_name, (PlatformTimeIndexMetaTable, Base), attrs)


def _specs() -> dict[tuple[str, bool], TableSpec]:
    out = {(name, False): bar_spec(d, False) for name, d in DATASETS.items()}
    out |= {(name, True): bar_spec(d, True) for name, d in DATASETS.items() if d.has_factors}
    return out


#: (dataset, adjusted) → model
BAR_MODELS: dict[tuple[str, bool], type[Any]] = {key: _model(spec) for key, spec in _specs().items()}
MASTER_MODEL = _model(MASTER_SPEC)
QUALITY_MODEL = _model(QUALITY_SPEC)
ALL_MODELS: list[type[Any]] = [*BAR_MODELS.values(), MASTER_MODEL, QUALITY_MODEL]


def columns_of(model: type[Any]) -> list[str]:
    """Data columns of ``model`` (everything but the time index and the identity)."""
    return [c.name for c in model.__table__.columns if c.name not in (TIME_INDEX, IDENTITY)]


class TableConfig(TimeIndexTableUpdateConfig):
    """Only the table is hashed: one update process per table, whatever rows a write carries."""

    table: str


class TableWriter(TimeIndexTableUpdater):
    """The update process rows are persisted through; the backend hands it range-complete frames.

    Its ``update()`` is never run: the default run path drops rows at or before an asset's last
    stored time, so the backend persists through the update manager directly (see :mod:`.writes`).
    """

    def __init__(self, config: TableConfig, output_table: type[Any]) -> None:
        super().__init__(config=config, output_table=output_table)

    def dependencies(self) -> dict[str, Any]:
        return {}

    def update(self) -> Any:
        raise NotImplementedError("TableWriter persists frames directly")
