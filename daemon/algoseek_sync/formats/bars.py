"""Daily OHLC bar files → one typed table per file, with what was wrong in it.

Pure: bytes in, table and notes out. The dataset is recognised from the header and
columns are mapped by name (secid and tradedate aggregations order them differently).
Vendor data is messy, so one bad row stops only itself (the row policy, also in the
README):

* unknown extra columns are accepted; their values are kept as a JSON object in ``extra``;
* rows that cannot be read (wrong field count, blank or non-integer SecId, a TradeDate
  that is not a date, a number that is not a number) are skipped and reported;
* a fractional value in an integer column (volumes, sizes, trades) is rounded to the
  nearest integer, so the column stays integer, and the exact text is kept in ``extra``;
* exact duplicate rows are dropped and counted; two different rows for one (SecId,
  TradeDate) keep the **last** one (vendors append corrections) and are reported with
  both values.

Only a file-level problem refuses the whole file (:class:`BadFileError`): no header, an
unknown schema, a missing required column, a duplicated column name, text that is not
UTF-8, a line over the limit, or no readable row at all.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from algoseek_sync.errors import BadFileError, Problem
from algoseek_sync.formats.datasets import DATASETS, EXTRA, Column, Dataset, recognise

NEW_YORK = ZoneInfo("America/New_York")
ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "text": pa.string(),
    "date": pa.int32(),
    "time": pa.string(),
}
#: A time of day as stored: HH:MM:SS, then .fff when it has milliseconds, .ffffff when it has microseconds.
CANONICAL_TIME = r"^([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.(\d\d[1-9]|\d[1-9]\d|[1-9]\d\d)(\d\d\d)?)?$"
_CANONICAL = pc.MatchSubstringOptions(CANONICAL_TIME)
_TIME = re.compile(r"^(\d{1,2}):(\d\d):(\d\d)(?:\.(\d{1,6}))?$")
ARROW_MIN_BLOCK = 1 << 16
SHOWN = 5  # line numbers named per note


@dataclass(frozen=True)
class BarFile:
    dataset: Dataset
    table: pa.Table  # the dataset's stored columns, typed (see Dataset.names)
    notes: tuple[Problem, ...] = ()
    extra_columns: tuple[str, ...] = ()

    @cached_property
    def secids(self) -> list[int]:
        """The file's SecIds, sorted (asked for by the parser, the planner and the writer)."""
        return sorted(pc.unique(self.table["secid"]).to_pylist())


def source_schema(dataset: Dataset) -> pa.Schema:
    """A file of ``dataset`` with every column in order, as the typed read gives it."""
    return _schemas(dataset.name)[0]


def arrow_schema(dataset: Dataset) -> pa.Schema:
    """The typed table every file of ``dataset`` is parsed into."""
    return _schemas(dataset.name)[1]


@cache
def _schemas(name: str) -> tuple[pa.Schema, pa.Schema]:
    """Built once per dataset, looked up by name (hashing a Dataset hashes all its columns)."""
    dataset = DATASETS[name]
    source = pa.schema([pa.field(c.source, ARROW_TYPES[c.type]) for c in dataset.columns])
    fields = [pa.field(c.name, ARROW_TYPES[c.type]) for c in dataset.columns]
    return source, pa.schema([*fields, pa.field(EXTRA, pa.string())])


@lru_cache(maxsize=65536)
def close_time_index(tradedate: int | str) -> str:
    """16:00 America/New_York on ``tradedate`` (YYYYMMDD) as ISO 8601 UTC text: the bar's time_index."""
    text = str(tradedate)
    day = dt.datetime(int(text[:4]), int(text[4:6]), int(text[6:8]), 16, tzinfo=NEW_YORK)
    return day.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def trade_dates_valid(values: np.ndarray) -> np.ndarray:
    """Which YYYYMMDD integers are real calendar days (19000101 … 29991231), all at once."""
    values = values.astype(np.int64)
    year, month, day = values // 10000, values // 100 % 100, values % 100
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    last = _MONTH_DAYS[np.clip(month, 0, 12)] + (leap & (month == 2))
    in_range = (values >= 19000101) & (values <= 29991231)
    return in_range & (month >= 1) & (month <= 12) & (day >= 1) & (day <= last)


# -- header -----------------------------------------------------------------------------


def header_of(data: bytes, max_line_bytes: int) -> list[str]:
    end = data.find(b"\n", 0, max_line_bytes + 1)
    if end < 0 and len(data) > max_line_bytes:
        raise BadFileError(f"header line is longer than limits.max_line_bytes ({max_line_bytes})")
    line = data[: end if end >= 0 else len(data)].rstrip(b"\r")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise BadFileError("header is not UTF-8") from None
    return [c.strip() for c in text.split(",")]


def detect(header: list[str]) -> tuple[Dataset, list[str]]:
    """(dataset, extra columns) of a header; unknown or incomplete headers are refused."""
    if len(set(header)) != len(header):
        dupes = sorted({c for c in header if header.count(c) > 1})
        raise BadFileError(f"duplicate column(s) {', '.join(dupes)} in header")
    dataset = recognise(header)
    if dataset is None:
        shown = ",".join(header[:6])[:120]
        raise BadFileError(
            f"unknown schema: header '{shown}' is neither primary-exchange nor standard daily OHLC"
        )
    missing = [c for c in dataset.required if c not in header]
    if missing:
        raise BadFileError(f"missing required column(s) {', '.join(missing)} for the {dataset.name} dataset")
    known = dataset.by_source()
    return dataset, [c for c in header if c not in known]


def _check_line_lengths(data: bytes, max_line_bytes: int) -> None:
    """Arrow enforces the limit through its block size, which cannot go below 64 KiB; check smaller limits here."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0x0A)
    lengths = np.diff(np.concatenate(([-1], ends, [len(data)]))) - 1
    worst = int(lengths.argmax())
    if lengths[worst] > max_line_bytes:
        raise BadFileError(
            f"line {worst + 1} is {int(lengths[worst])} bytes, longer than limits.max_line_bytes ({max_line_bytes})"
        )


# -- reading ------------------------------------------------------------------------------


@dataclass
class _Rows:
    """Rows as read, with their file line numbers and what was skipped on the way."""

    table: pa.Table  # source column names
    lines: np.ndarray  # file line of each row (the header is line 1)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)
    exact: dict[int, dict[str, str]] = field(default_factory=dict)  # row → {column: exact text}


def _arrow_error(exc: Exception, max_line_bytes: int) -> BadFileError:
    text = str(exc).splitlines()[0]
    if "straddling" in text or "block" in text.lower():
        return BadFileError(f"a line is longer than limits.max_line_bytes ({max_line_bytes})")
    if "UTF8" in text:
        return BadFileError(f"not UTF-8 text: {text}")
    return BadFileError(f"cannot parse CSV: {text}")


BLANK = "blank line"


def _read(data: bytes, types: dict[str, pa.DataType], max_line_bytes: int, skipped: list) -> pa.Table:
    """Blank lines are read as (invalid) rows too, so every row's file line is known; they are skipped silently."""

    def invalid(row: pacsv.InvalidRow) -> str:
        reason = (
            BLANK if not row.text.strip() else f"{row.actual_columns} fields, expected {row.expected_columns}"
        )
        skipped.append((row.number or 0, reason))
        return "skip"

    return pacsv.read_csv(
        io.BytesIO(data),
        read_options=_read_options(max(max_line_bytes, ARROW_MIN_BLOCK)),
        parse_options=pacsv.ParseOptions(
            newlines_in_values=False, invalid_row_handler=invalid, ignore_empty_lines=False
        ),
        convert_options=_convert_options(tuple(types.items())),
    )


@lru_cache(maxsize=64)
def _read_options(block_size: int) -> pacsv.ReadOptions:
    return pacsv.ReadOptions(block_size=block_size, use_threads=False)


@lru_cache(maxsize=256)
def _convert_options(types: tuple[tuple[str, pa.DataType], ...]) -> pacsv.ConvertOptions:
    """One per header met (building it per file held the GIL longer than reading a small file's rows)."""
    return pacsv.ConvertOptions(
        column_types=dict(types),
        null_values=[""],  # tickers NA, NULL, NaN are tickers; "n/a" in a price is a bad number
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


def _line_numbers(rows: int, skipped: list[tuple[int, str]]) -> np.ndarray:
    """File line of each row read: the header is line 1, skipped lines (blank ones too) are left out."""
    lines = np.arange(2, 2 + rows + len(skipped), dtype=np.int64)
    if skipped:
        lines = np.setdiff1d(lines, np.array([n for n, _ in skipped], dtype=np.int64), assume_unique=True)
    skipped[:] = [(n, why) for n, why in skipped if why != BLANK]
    return lines[:rows]


def read_rows(data: bytes, header: list[str], dataset: Dataset, max_line_bytes: int) -> _Rows:
    """Typed read (fast path); a conversion error switches to a per-value read of that file."""
    known = dataset.by_source()
    types = {c: ARROW_TYPES[known[c].type] if c in known else pa.string() for c in header}
    skipped: list[tuple[int, str]] = []
    try:
        table = _read(data, types, max_line_bytes, skipped)
    except pa.ArrowInvalid as exc:
        if "conversion error" not in str(exc):
            raise _arrow_error(exc, max_line_bytes) from None
        skipped.clear()
        try:
            text = _read(data, dict.fromkeys(header, pa.string()), max_line_bytes, skipped)
        except (pa.ArrowInvalid, pa.ArrowException) as again:
            raise _arrow_error(again, max_line_bytes) from None
        return _convert(text, known, _line_numbers(text.num_rows, skipped), skipped)
    except pa.ArrowException as exc:
        raise _arrow_error(exc, max_line_bytes) from None
    return _Rows(table, _line_numbers(table.num_rows, skipped), skipped)


def _convert(text: pa.Table, known: dict[str, Column], lines: np.ndarray, skipped: list) -> _Rows:
    """Slow path, for files with a bad value: convert value by value, skip rows that do not convert."""
    bad: dict[int, str] = {}
    exact: dict[int, dict[str, str]] = {}
    arrays = []
    for name in text.column_names:
        column = known.get(name)
        values = text[name].to_pylist()
        if column is None or column.type in ("text", "time"):
            arrays.append(pa.array(values, pa.string()))
            continue
        out: list[object] = []
        for row, value in enumerate(values):
            out.append(_number(value, column, row, bad, exact))
        arrays.append(pa.array(out, ARROW_TYPES[column.type]))
    rows = _Rows(pa.Table.from_arrays(arrays, names=text.column_names), lines, skipped, exact)
    keep = np.ones(rows.table.num_rows, dtype=bool)
    for row, reason in bad.items():
        keep[row] = False
        skipped.append((int(lines[row]), reason))
    skipped.sort()
    _keep(rows, keep)
    return rows


def _number(value: str | None, column: Column, row: int, bad: dict, exact: dict) -> object:
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    try:
        if column.type == "float":
            return float(text)
        try:
            return int(text)
        except ValueError:
            number = float(text)
            if column.type == "date" or not np.isfinite(number):
                raise
            exact.setdefault(row, {})[column.source] = text
            return round(number)
    except ValueError:
        bad.setdefault(
            row, f"{column.source} {value!r} is not a {'date' if column.type == 'date' else 'number'}"
        )
        return None


# -- validation and de-duplication --------------------------------------------------------------


def _describe(lines: list[int]) -> str:
    shown = ", ".join(str(n) for n in lines[:SHOWN])
    return shown + (f" and {len(lines) - SHOWN} more" if len(lines) > SHOWN else "")


def _validate_keys(rows: _Rows) -> None:
    """Rows without a SecId or with a TradeDate that is no calendar day are skipped."""
    table = rows.table
    secids, dates = table["SecId"], table["TradeDate"]
    days = pc.unique(dates).drop_null().to_numpy()
    bad_dates = days[~trade_dates_valid(days)].tolist()
    if not (secids.null_count or dates.null_count or bad_dates):
        return
    no_secid = pc.is_null(secids).to_numpy(zero_copy_only=False)
    no_date = pc.is_null(dates)
    if bad_dates:
        no_date = pc.or_(no_date, pc.is_in(dates, pa.array(bad_dates, pa.int32())))
    no_date = no_date.to_numpy(zero_copy_only=False)
    bad = no_secid | no_date
    blank_line = no_secid.copy()  # Arrow reads a blank line as a row of nulls: skipped without a word
    for name in table.column_names:
        if blank_line.any():
            blank_line &= pc.is_null(table[name]).to_numpy(zero_copy_only=False)
    for line, blank in zip(rows.lines[bad & ~blank_line], no_secid[bad & ~blank_line], strict=True):
        rows.skipped.append((int(line), "blank SecId" if blank else "TradeDate is not a date"))
    rows.skipped.sort()
    _keep(rows, ~bad)


def _keep(rows: _Rows, keep: np.ndarray) -> None:
    """Keep the rows where ``keep`` is true (row numbers of ``exact`` follow)."""
    renumber = {int(old): new for new, old in enumerate(np.flatnonzero(keep))}
    rows.exact = {renumber[r]: v for r, v in rows.exact.items() if r in renumber}
    rows.table = rows.table.filter(pa.array(keep))
    rows.lines = rows.lines[keep]


def _deduplicate(rows: _Rows) -> list[Problem]:
    """Drop exact duplicates; for different rows of one (SecId, TradeDate) keep the last."""
    table = rows.table
    secid = table["SecId"].to_numpy().astype(np.int64)
    keys = secid * 100_000_000 + table["TradeDate"].to_numpy().astype(np.int64)
    if len(np.unique(keys)) == table.num_rows:
        return []
    index = pa.array(np.arange(table.num_rows, dtype=np.int64))
    with_index = table.append_column("__row", index)
    groups = with_index.group_by(["SecId", "TradeDate"], use_threads=False).aggregate([("__row", "list")])
    keep: list[int] = []
    exact_dupes: list[int] = []
    notes: list[Problem] = []
    columns = table.column_names
    for secid, date, members in zip(
        groups["SecId"].to_pylist(),
        groups["TradeDate"].to_pylist(),
        groups["__row_list"].to_pylist(),
        strict=True,
    ):
        members = sorted(members)
        keep.append(members[-1])
        if len(members) == 1:
            continue
        picked = table.take(pa.array(members)).to_pylist()
        last = picked[-1]
        for row, values in zip(members[:-1], picked[:-1], strict=True):
            if values == last and rows.exact.get(row) == rows.exact.get(members[-1]):
                exact_dupes.append(int(rows.lines[row]))
                continue
            differ = [c for c in columns if values[c] != last[c]]
            shown = "; ".join(f"{c} {values[c]!r} → {last[c]!r}" for c in differ[:4])
            notes.append(
                Problem(
                    "conflicting_rows",
                    f"SecId {secid} TradeDate {date}: line {int(rows.lines[row])} and line"
                    f" {int(rows.lines[members[-1]])} differ ({shown})",
                    f"kept line {int(rows.lines[members[-1]])} (the last one)",
                    secid=secid,
                    line=int(rows.lines[row]),
                )
            )
    if exact_dupes:
        notes.insert(
            0,
            Problem(
                "duplicate_rows",
                f"{len(exact_dupes)} exact duplicate row(s), line(s) {_describe(sorted(exact_dupes))}",
                "dropped",
                line=min(exact_dupes),
            ),
        )
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[keep] = True
    _keep(rows, mask)
    return notes


def _extra_column(rows: _Rows, extras: list[str]) -> pa.Array:
    """One JSON object per row with the extra columns' values and exact texts of rounded numbers."""
    n = rows.table.num_rows
    if not extras and not rows.exact:
        return pa.nulls(n, pa.string())
    values = {c: rows.table[c].to_pylist() for c in extras}
    out: list[str | None] = []
    for row in range(n):
        obj = {c: values[c][row] for c in extras if values[c][row] is not None}
        obj.update(rows.exact.get(row, {}))
        out.append(json.dumps(obj, sort_keys=True) if obj else None)
    return pa.array(out, pa.string())


def canonical_time(text: str) -> str | None:
    """``text`` as a canonical time of day (see :data:`CANONICAL_TIME`), or None when it is not one."""
    match = _TIME.match(text.strip())
    if not match:
        return None
    hours, minutes, seconds, fraction = match.groups()
    if int(hours) > 23 or int(minutes) > 59 or int(seconds) > 59:
        return None
    micros = int((fraction or "").ljust(6, "0"))
    out = f"{int(hours):02d}:{minutes}:{seconds}"
    if micros % 1000:
        return f"{out}.{micros:06d}"
    return f"{out}.{micros // 1000:03d}" if micros else out


def _times(rows: _Rows, dataset: Dataset) -> list[Problem]:
    """Time-of-day columns in canonical form; a value that is no time is kept only in ``extra``."""
    present = set(rows.table.column_names)
    names = [c.source for c in dataset.columns if c.type == "time" and c.source in present]
    if not names or rows.table.num_rows == 0:
        return []
    together = pa.chunked_array([chunk for name in names for chunk in rows.table[name].chunks], pa.string())
    canonical = pc.fill_null(pc.match_substring_regex(together, options=_CANONICAL), True)
    if pc.all(canonical).as_py():
        return []  # the common case: one regex over every time value of the file
    # the few values to rewrite, found in the same pass: position → (column, row)
    n = rows.table.num_rows
    positions = pc.indices_nonzero(pc.invert(canonical)).to_numpy()
    bad_cells = 0
    for column in np.unique(positions // n).tolist():
        name = names[column]
        row_numbers = positions[positions // n == column] - column * n
        values = rows.table[name].combine_chunks()
        texts = values.take(pa.array(row_numbers)).to_pylist()
        fixed = [canonical_time(text) for text in texts]
        for row, text, value in zip(row_numbers.tolist(), texts, fixed, strict=True):
            if value is None:
                rows.exact.setdefault(row, {})[name] = text
                bad_cells += 1
        mask = np.zeros(n, dtype=bool)
        mask[row_numbers] = True
        index = rows.table.column_names.index(name)
        replaced = pc.replace_with_mask(values, pa.array(mask), pa.array(fixed, pa.string()))
        rows.table = rows.table.set_column(index, name, replaced)
    if not bad_cells:
        return []
    return [
        Problem(
            "bad_rows",
            f"{bad_cells} time value(s) that are no time of day",
            "stored as empty; the exact text kept in the 'extra' column",
        )
    ]


def _notes(rows: _Rows, extras: list[str]) -> list[Problem]:
    notes = []
    if extras:
        notes.append(
            Problem(
                "extra_columns",
                f"column(s) {', '.join(extras)} are not in the schema",
                "known columns stored; the extra values kept in the 'extra' column",
            )
        )
    if rows.skipped:
        reasons: dict[str, list[int]] = {}
        for line, reason in rows.skipped:
            reasons.setdefault(reason, []).append(line)
        detail = "; ".join(f"{reason}: line(s) {_describe(lines)}" for reason, lines in reasons.items())
        notes.append(
            Problem(
                "bad_rows",
                f"{len(rows.skipped)} row(s) skipped: {detail}",
                "skipped",
                line=rows.skipped[0][0],
            )
        )
    if rows.exact:
        cells = sorted({c for v in rows.exact.values() for c in v})
        notes.append(
            Problem(
                "extra_columns",
                f"fractional value(s) in integer column(s) {', '.join(cells)} on {len(rows.exact)} row(s)",
                "rounded to the nearest integer; the exact text kept in the 'extra' column",
            )
        )
    return notes


# -- the whole file -------------------------------------------------------------------------


def parse_bars(data: bytes, *, max_line_bytes: int = 1 << 20) -> BarFile:
    """Parse one bar file (any dataset, either aggregation) under the row policy above."""
    header = header_of(data, max_line_bytes)
    if max_line_bytes < ARROW_MIN_BLOCK:
        _check_line_lengths(data, max_line_bytes)
    dataset, extras = detect(header)
    rows = read_rows(data, header, dataset, max_line_bytes)
    _validate_keys(rows)
    duplicates = _deduplicate(rows)
    if rows.table.num_rows == 0 and rows.skipped:
        first, reason = rows.skipped[0]
        raise BadFileError(f"no readable row ({len(rows.skipped)} skipped; line {first}: {reason})")
    notes = _notes(rows, extras)  # before _times: its exact texts are times, not rounded numbers
    if rows.table.num_rows == 0:  # a header and nothing else: stored as nothing, but said
        notes.append(Problem("empty_file", "a header and no rows", "nothing stored; the file is done"))
    times = _times(rows, dataset)
    table = conform(rows, dataset, extras)
    return BarFile(dataset, table, tuple(notes + duplicates + times), tuple(extras))


def conform(rows: _Rows, dataset: Dataset, extras: list[str]) -> pa.Table:
    """Source columns → the dataset's stored columns and types (absent optional columns are nulls)."""
    schema = arrow_schema(dataset)
    extra = _extra_column(rows, extras)
    if rows.table.schema.equals(source_schema(dataset)):  # every column, in order and type: most files
        return rows.table.append_column(EXTRA, extra).rename_columns(schema.names)  # no per-column checks
    n = rows.table.num_rows
    present = set(rows.table.column_names)
    arrays = []
    for column in dataset.columns:
        wanted = ARROW_TYPES[column.type]
        if column.source not in present:
            arrays.append(pa.nulls(n, wanted))
            continue
        array = rows.table[column.source]
        arrays.append(array if array.type == wanted else array.cast(wanted))
    return pa.Table.from_arrays([*arrays, extra], schema=schema)


def foreign_rows(bars: BarFile, expected_secid: int) -> Problem | None:
    """A SecId file whose rows carry other SecIds: they are stored under the rows' SecId, and reported."""
    others = [s for s in bars.secids if s != expected_secid]
    if not others:
        return None
    counts = {s: int(pc.sum(pc.equal(bars.table["secid"], s)).as_py() or 0) for s in others[:10]}
    shown = ", ".join(f"SecId {s} ({n} row(s))" for s, n in counts.items())
    return Problem(
        "foreign_secid",
        f"file named for SecId {expected_secid} holds rows of {shown}" + (" …" if len(others) > 10 else ""),
        "stored under the rows' own SecId",
        secid=others[0],
    )


def last_wins(tables: Sequence[pa.Table]) -> pa.Table | None:
    """Parsed tables of one dataset as one, sorted by (secid, tradedate), one row per key: a
    later table's row wins (a re-delivery replaces what it repeats). None when all are empty."""
    nonempty = [t for t in tables if t.num_rows]
    if not nonempty:
        return None
    table = pa.concat_tables(nonempty) if len(nonempty) > 1 else nonempty[0]
    secid, date = table["secid"].to_numpy(), table["tradedate"].to_numpy()
    order = np.lexsort((-np.arange(len(secid)), date, secid))
    secid, date = secid[order], date[order]
    first = np.r_[True, (secid[1:] != secid[:-1]) | (date[1:] != date[:-1])]
    return table.take(pa.array(order[first]))
