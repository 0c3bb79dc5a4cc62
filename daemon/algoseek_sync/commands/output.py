"""The one output style of every command: tables, CSV and JSON shaped in one place.

Conventions (the README's "Output" section): dates are ``YYYY-MM-DD`` and timestamps ISO-8601
UTC (``2026-12-07T03:50:20Z``) in every format; JSON is a list of records whose keys are the CSV
header; CSV and JSON keep full precision; a table shows prices at the vendor's precision (2 to 4
decimals, 6 for computed values such as adjusted prices), counts and volumes as integers, text
left-aligned and numbers right-aligned.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

    #: what :func:`render` takes: rows as mappings, or a DataFrame (converted column by column)
    Data = Sequence[Mapping[str, object]] | pd.DataFrame

Kind = Literal["text", "int", "number", "day", "time", "json", "flag"]
FORMATS = ("table", "csv", "json")
#: decimals tried for a table's number column, fewest first: the vendor delivers at most 4
VENDOR_DECIMALS = (2, 3, 4)
#: decimals of a column whose values need more than the vendor's 4 (adjusted prices, factors)
COMPUTED_DECIMALS = 6
#: keys whose values are trade dates (YYYYMMDD integers inside) or epoch seconds, in nested documents
DAY_KEYS = frozenset({"tradedate", "start_date", "end_date", "first", "last", "last_delivered"})
TIME_KEYS = frozenset(
    {"first_seen", "last_seen", "resolved_at", "updated_at", "next_attempt_at", "last_success"}
)


@dataclass(frozen=True)
class Field:
    """One output column: its key (CSV header, JSON key), how its values read, its table header."""

    name: str
    kind: Kind = "text"
    header: str | None = None  # table header (default: the name)
    table: bool = True  # shown in the table view
    labels: tuple[str, str] = ("yes", "no")  # a flag's table text for true / false

    @property
    def title(self) -> str:
        return self.header or self.name


def iso_day(value: object) -> str | None:
    """A trade date as ``YYYY-MM-DD``, from ``20200210``, ``"20200210"``, a date or an ISO text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, dt.date):
        return value.strftime("%Y-%m-%d")
    text = str(value)
    if text.isdigit() and len(text) == 8:
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text[:10] if len(text) >= 10 and text[4] == "-" else text


def iso_time(value: object) -> str | None:
    """Epoch seconds, a datetime (naive: UTC) or an ISO text as ISO-8601 UTC to the second:
    ``2026-12-07T03:50:20Z``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        when = value.astimezone(dt.UTC) if value.tzinfo else value
    else:
        when = dt.datetime.fromtimestamp(float(value), dt.UTC)  # type: ignore[arg-type]
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(value: object) -> object:
    """numpy scalars and pandas' missing values as the Python values JSON and CSV write."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()  # type: ignore[union-attr]
    if isinstance(value, float) and math.isnan(value):
        return None
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def value_of(field: Field, value: object) -> object:
    """The value CSV and JSON carry: full precision, dates and timestamps in ISO form."""
    value = _plain(value)
    if value is None:
        return None
    if field.kind == "day":
        return iso_day(value)
    if field.kind == "time":
        return iso_time(value)
    if field.kind == "flag":
        return bool(value)
    return value


def decimals_of(values: Iterable[object]) -> int:
    """Decimals that show every value of a column: the fewest of 2..4 (the vendor's precision) that
    are exact, else :data:`COMPUTED_DECIMALS` (adjusted prices and other computed values)."""
    finite = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]  # type: ignore[arg-type]
    for places in VENDOR_DECIMALS:
        if all(abs(round(v, places) - v) <= 1e-9 * max(1.0, abs(v)) for v in finite):
            return places
    return COMPUTED_DECIMALS


def _table_cells(field: Field, values: list[object]) -> list[str]:
    """One column's table text."""
    if field.kind == "number":
        places = decimals_of(values)
        return ["" if v is None else f"{float(v):.{places}f}" for v in values]  # type: ignore[arg-type]
    if field.kind == "int":
        return ["" if v is None else str(round(v)) for v in values]  # type: ignore[call-overload]
    if field.kind == "flag":
        return ["" if v is None else field.labels[0 if v else 1] for v in values]
    if field.kind == "json":
        return ["" if v is None else json.dumps(v, sort_keys=True, separators=(",", ":")) for v in values]
    return ["" if v is None else str(v) for v in values]


def _column(field: Field, data: Data) -> list[object]:
    """One field's values as CSV and JSON carry them: full precision, ISO dates, ``None`` when missing.
    A DataFrame is converted a column at a time (a cross-section has 10,000 rows)."""
    if not hasattr(data, "columns"):
        return [value_of(field, row.get(field.name)) for row in data]  # type: ignore[union-attr]
    frame: pd.DataFrame = data  # type: ignore[assignment]
    if field.name not in frame.columns:
        return [None] * len(frame)
    series = frame[field.name]
    if field.kind in ("day", "time") and series.dtype.kind == "M":
        if field.kind == "time" and getattr(series.dt, "tz", None) is not None:
            series = series.dt.tz_convert("UTC")
        text = series.dt.strftime("%Y-%m-%d" if field.kind == "day" else "%Y-%m-%dT%H:%M:%SZ")
        return text.astype(object).where(series.notna(), None).tolist()
    values = series.astype(object).where(series.notna(), None).tolist() if series.hasnans else series.tolist()
    if field.kind in ("day", "time", "flag"):
        return [value_of(field, v) for v in values]
    return values


def render(data: Data, fields: Sequence[Field], fmt: str, *, empty: str | None = None) -> str:
    """Rows (dicts, or a DataFrame) as a table, CSV or JSON in the one style; ``empty``: the table's
    text when there is no row (default: the header alone)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}: one of {', '.join(FORMATS)}")
    chosen = [f for f in fields if f.table] if fmt == "table" else list(fields)
    if fmt == "csv" and hasattr(data, "columns"):
        return _frame_csv(data, chosen)  # type: ignore[arg-type]
    columns = [_column(f, data) for f in chosen]
    if fmt == "json":
        names = [f.name for f in chosen]
        return json.dumps([dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)])
    if fmt == "csv":
        cells = [_csv_values(f, values) for f, values in zip(chosen, columns, strict=True)]
        return csv_text([f.name for f in chosen], list(zip(*cells, strict=True)))
    if not len(data) and empty is not None:
        return empty
    cells = [_table_cells(f, values) for f, values in zip(chosen, columns, strict=True)]
    right = [f.kind in ("int", "number") for f in chosen]
    return table_text([f.title for f in chosen], list(zip(*cells, strict=True)), right=right)


def _frame_csv(frame: pd.DataFrame, fields: Sequence[Field]) -> str:
    """CSV of a DataFrame by pandas' C writer (floats as their shortest exact text, missing values
    empty): the columns whose text differs from pandas' (dates, timestamps, flags, JSON) converted first."""
    import pandas as pd

    converted = {
        f.name: _csv_values(f, _column(f, frame))
        if f.kind in ("day", "time", "flag", "json") or f.name not in frame.columns
        else frame[f.name]
        for f in fields
    }
    table = pd.DataFrame(converted, index=frame.index)
    return table.to_csv(index=False, lineterminator="\n").rstrip("\n")


def _csv_values(field: Field, values: list[object]) -> list[object]:
    if field.kind == "json":
        return [None if v is None else json.dumps(v, sort_keys=True, separators=(",", ":")) for v in values]
    if field.kind == "flag":
        return [None if v is None else ("true" if v else "false") for v in values]
    return values


def csv_text(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """CSV with a header; ``None`` as an empty field (the csv module writes it so)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue().rstrip("\n")


def table_text(
    columns: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None
) -> str:
    """Columns separated by two spaces, header first; text left-aligned, ``right`` columns right-aligned."""
    table = [list(columns), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    aligns = list(right) if right is not None else [False] * len(columns)
    return "\n".join(
        "  ".join(c.rjust(w) if a else c.ljust(w) for c, w, a in zip(r, widths, aligns, strict=True)).rstrip()
        for r in table
    )


def iso_document(data: Any) -> Any:
    """A nested document (``status --json``) with its trade dates and epoch timestamps in ISO form,
    found by key (:data:`DAY_KEYS`, :data:`TIME_KEYS`)."""
    if isinstance(data, Mapping):
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key in DAY_KEYS and isinstance(value, int | str) and not isinstance(value, bool):
                out[key] = iso_day(value)
            elif key in TIME_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
                out[key] = iso_time(value)
            else:
                out[key] = iso_document(value)
        return out
    if isinstance(data, list | tuple):
        return [iso_document(v) for v in data]
    return data


def json_document(data: Any) -> str:
    """``status --json``: the document indented, dates and timestamps in ISO form."""
    return json.dumps(iso_document(data), indent=2, default=str)


# -- assets --------------------------------------------------------------------------------------

ASSET_FIELDS = (
    Field("unique_identifier"),
    Field("secid", "int"),
    Field("kind"),
    Field("ticker"),
    Field("name"),
    Field("active", "flag", header="status", labels=("active", "inactive")),
)


def format_assets(frame: pd.DataFrame, fmt: str) -> str:
    """``assets``: one record per asset; ``active`` says whether its SecId is in the master in force."""
    return render(frame, ASSET_FIELDS, fmt, empty="no assets")


# -- bars ----------------------------------------------------------------------------------------

_BAR_KINDS: dict[str, Kind] = {"int": "int", "float": "number", "date": "day", "text": "text", "time": "text"}
_BAR_KEYS: dict[str, Kind] = {"time_index": "time", "secid": "int"}


def bar_fields(columns: Sequence[str], dataset: str, shown: Sequence[str]) -> list[Field]:
    """The fields of ``bars`` output for a dataset: kinds from the dataset's column types; the table
    shows ``shown`` (the trade date as "trade date")."""
    from algoseek_sync.formats.datasets import DATASETS

    types = {c.name: c.type for c in DATASETS[dataset].columns}
    return [
        Field(
            name,
            _BAR_KEYS.get(name) or _BAR_KINDS[types.get(name, "text")],
            header="trade date" if name == "tradedate" else None,
            table=name in shown,
        )
        for name in columns
    ]
