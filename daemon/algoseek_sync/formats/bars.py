"""Daily OHLC bar files → one frame per file, ready to copy to each FIGI.

Pure: bytes in, DataFrame out. Schema is detected from the header, columns are mapped
by name (secid and tradedate aggregations order them differently), and every value
is checked so a bad file is refused whole, with a reason naming the problem.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from algoseek_sync.errors import BadFileError

Schema = Literal["primary", "standard"]
NEW_YORK = ZoneInfo("America/New_York")

TEXT = pa.string()
NUM = pa.float64()

#: source column → (output column, arrow type), per schema. Order = output order.
PRIMARY_COLUMNS: dict[str, tuple[str, pa.DataType]] = {
    "SecId": ("secid", pa.int64()),
    "TradeDate": ("tradedate", TEXT),
    "Ticker": ("ticker", TEXT),
    "Name": ("name", TEXT),
    "PrimaryExchange": ("primaryexchange", TEXT),
    "ISIN": ("isin", TEXT),
    "OpenPrice": ("open", NUM),
    "OpenSize": ("opensize", NUM),
    "OpenTime": ("opentime", TEXT),
    "HighPrice": ("high", NUM),
    "HighTime": ("hightime", TEXT),
    "LowPrice": ("low", NUM),
    "LowTime": ("lowtime", TEXT),
    "ClosePrice": ("close", NUM),
    "CloseSize": ("closesize", NUM),
    "CloseTime": ("closetime", TEXT),
    "ListedMarketHoursVolume": ("listedmarkethoursvolume", NUM),
    "ListedMarketHoursTrades": ("listedmarkethourstrades", NUM),
    "ListedTotalVolume": ("volume", NUM),
    "ListedTotalTrades": ("listedtotaltrades", NUM),
    "FinraMarketHoursVolume": ("finramarkethoursvolume", NUM),
    "FinraMarketHoursTrades": ("finramarkethourstrades", NUM),
    "FinraTotalVolume": ("finratotalvolume", NUM),
    "FinraTotalTrades": ("finratotaltrades", NUM),
    "CumulativePriceFactor": ("cumulativepricefactor", NUM),
    "CumulativeVolumeFactor": ("cumulativevolumefactor", NUM),
    "AdjustmentFactor": ("adjustmentfactor", NUM),
    "AdjustmentReason": ("adjustmentreason", TEXT),
    "MarketVWAP": ("vwap", NUM),
    "DailyVWAP": ("dailyvwap", NUM),
}
PRIMARY_REQUIRED = ("SecId", "TradeDate", "Ticker", "OpenPrice", "HighPrice", "LowPrice", "ClosePrice")
PRIMARY_REQUIRED += ("CloseTime", "ListedTotalVolume")

STANDARD_COLUMNS: dict[str, tuple[str, pa.DataType]] = {
    "SecId": ("secid", pa.int64()),
    "TradeDate": ("tradedate", TEXT),
    "Ticker": ("ticker", TEXT),
    "Open": ("open", NUM),
    "High": ("high", NUM),
    "Low": ("low", NUM),
    "Close": ("close", NUM),
    "MarketHoursVolume": ("volume", NUM),
    "CumulativePriceFactor": ("cumulativepricefactor", NUM),
    "CumulativeVolumeFactor": ("cumulativevolumefactor", NUM),
    "AdjustmentFactor": ("adjustmentfactor", NUM),
    "AdjustmentReason": ("adjustmentreason", TEXT),
}
STANDARD_REQUIRED = ("SecId", "TradeDate", "Ticker", "Open", "High", "Low", "Close", "MarketHoursVolume")

SCHEMAS: dict[Schema, tuple[dict[str, tuple[str, pa.DataType]], tuple[str, ...]]] = {
    "primary": (PRIMARY_COLUMNS, PRIMARY_REQUIRED),
    "standard": (STANDARD_COLUMNS, STANDARD_REQUIRED),
}

#: Every column a bars frame can carry, in output order (the embedded store's table).
KEY_COLUMNS = ["time_index", "unique_identifier"]
VALUE_COLUMNS = ["open", "high", "low", "close", "volume", "secid", "ticker"]
OUTPUT_COLUMNS = (
    KEY_COLUMNS + VALUE_COLUMNS + [out for out, _ in PRIMARY_COLUMNS.values() if out not in VALUE_COLUMNS]
)
TEXT_OUTPUT = {out for out, typ in PRIMARY_COLUMNS.values() if typ == TEXT} | {
    "time_index",
    "unique_identifier",
}


def detect_schema(header: list[str]) -> Schema:
    """Which bar schema a header belongs to; unknown or incomplete headers are refused."""
    present = set(header)
    if len(present) != len(header):
        dupes = sorted({c for c in header if header.count(c) > 1})
        raise BadFileError(f"duplicate column(s) {', '.join(dupes)} in header")
    if "OpenPrice" in present or "ClosePrice" in present:
        schema: Schema = "primary"
    elif "Open" in present or "Close" in present:
        schema = "standard"
    else:
        shown = ",".join(header[:6])[:120]
        raise BadFileError(
            f"unknown schema: header '{shown}' is neither primary-exchange nor standard daily OHLC"
        )
    columns, required = SCHEMAS[schema]
    missing = [c for c in required if c not in present]
    if missing:
        raise BadFileError(f"missing required column(s) {', '.join(missing)} for the {schema} schema")
    unknown = [c for c in header if c not in columns]
    if unknown:
        raise BadFileError(f"unknown column(s) {', '.join(unknown)} for the {schema} schema")
    return schema


@lru_cache(maxsize=65536)
def close_time_index(tradedate: str) -> str:
    """16:00 America/New_York on ``tradedate`` (YYYYMMDD) as ISO 8601 UTC text."""
    day = dt.datetime(int(tradedate[:4]), int(tradedate[4:6]), int(tradedate[6:8]), 16, tzinfo=NEW_YORK)
    return day.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_date(text: str) -> bool:
    try:
        dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return False
    return True


def _header(data: bytes, max_line_bytes: int) -> list[str]:
    end = data.find(b"\n", 0, max_line_bytes + 1)
    if end < 0 and len(data) > max_line_bytes:
        raise BadFileError(f"header line is longer than limits.max_line_bytes ({max_line_bytes})")
    line = data[: end if end >= 0 else len(data)].rstrip(b"\r")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise BadFileError("header is not UTF-8") from None
    return [c.strip() for c in text.split(",")]


def _arrow_error(exc: Exception, max_line_bytes: int) -> BadFileError:
    text = str(exc).splitlines()[0]
    if "straddling" in text or "block" in text.lower():
        return BadFileError(f"a line is longer than limits.max_line_bytes ({max_line_bytes})")
    if "invalid UTF8" in text or "UTF8" in text:
        return BadFileError(f"not UTF-8 text: {text}")
    return BadFileError(f"cannot parse CSV: {text}")


ARROW_MIN_BLOCK = 1 << 16


def _check_line_lengths(data: bytes, max_line_bytes: int) -> None:
    """Arrow enforces the limit through its block size, which cannot go below 64 KiB; check smaller limits here."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 0x0A)
    lengths = np.diff(np.concatenate(([-1], ends, [len(data)]))) - 1
    worst = int(lengths.argmax())
    if lengths[worst] > max_line_bytes:
        raise BadFileError(
            f"line {worst + 1} is {int(lengths[worst])} bytes, longer than limits.max_line_bytes ({max_line_bytes})"
        )


def read_table(data: bytes, max_line_bytes: int) -> tuple[Schema, pa.Table]:
    """Parse bar CSV bytes with Arrow's reader into a table with *source* column names."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    header = _header(data, max_line_bytes)
    if max_line_bytes < ARROW_MIN_BLOCK:
        _check_line_lengths(data, max_line_bytes)
    schema = detect_schema(header)
    columns, _ = SCHEMAS[schema]
    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(
                block_size=max(max_line_bytes, ARROW_MIN_BLOCK), use_threads=False
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={c: columns[c][1] for c in header},
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException) as exc:
        raise _arrow_error(exc, max_line_bytes) from None
    return schema, table


def _first_line(mask: pa.ChunkedArray | pa.Array) -> int:
    """1-based file line of the first true value (line 1 is the header)."""
    return int(pc.index(mask, True).as_py()) + 2


def normalise(schema: Schema, raw: pa.Table) -> pa.Table:
    """Validate rows and rename to output columns, adding ``time_index`` first."""
    columns, _ = SCHEMAS[schema]
    if raw.num_rows == 0:
        return _empty_output(raw, columns)
    secid = raw["SecId"]
    if secid.null_count:
        raise BadFileError(f"blank SecId on line {_first_line(pc.is_null(secid))}")
    dates = raw["TradeDate"]
    bad = pc.or_kleene(pc.is_null(dates), pc.invert(pc.match_substring_regex(dates, r"^\d{8}$")))
    bad = pc.fill_null(bad, True)
    if pc.any(bad).as_py():
        line = _first_line(bad)
        raise BadFileError(f"unparsable TradeDate {dates[line - 2].as_py()!r} on line {line}")
    keys = raw.group_by(["SecId", "TradeDate"]).aggregate([("SecId", "count")])
    if keys.num_rows != raw.num_rows:
        worst = keys.filter(pc.greater(keys["SecId_count"], 1)).slice(0, 1).to_pylist()[0]
        raise BadFileError(
            f"duplicate TradeDate {worst['TradeDate']} for SecId {worst['SecId']} "
            f"({worst['SecId_count']} rows in one file)"
        )
    uniq = pc.unique(dates)
    try:
        times = pa.array([close_time_index(d) for d in uniq.to_pylist()], pa.string())
    except ValueError:
        bad_date = next(d for d in uniq.to_pylist() if not _is_date(d))
        line = _first_line(pc.equal(dates, bad_date))
        raise BadFileError(f"unparsable TradeDate {bad_date!r} on line {line}") from None
    time_index = pc.take(times, pc.index_in(dates, uniq))
    out = raw.rename_columns([columns[c][0] for c in raw.column_names])
    return out.add_column(0, "time_index", time_index)


def _empty_output(raw: pa.Table, columns: dict[str, tuple[str, pa.DataType]]) -> pa.Table:
    out = raw.rename_columns([columns[c][0] for c in raw.column_names])
    return out.add_column(0, "time_index", pa.array([], pa.string()))


@dataclass(frozen=True)
class BarFile:
    schema: Schema
    table: pa.Table  # output columns, no unique_identifier yet

    @property
    def secids(self) -> list[int]:
        return sorted(pc.unique(self.table["secid"]).to_pylist())


def parse_bars(data: bytes, *, max_line_bytes: int = 1 << 20) -> BarFile:
    """Parse and validate one bar file (either schema, either aggregation)."""
    schema, raw = read_table(data, max_line_bytes)
    return BarFile(schema, normalise(schema, raw))


def output_schema() -> pa.Schema:
    """The full bars schema every frame is conformed to before writing."""
    fields = [pa.field("time_index", pa.string()), pa.field("unique_identifier", pa.string())]
    types = {out: typ for out, typ in PRIMARY_COLUMNS.values()}
    fields += [pa.field(c, types[c]) for c in OUTPUT_COLUMNS[2:]]
    return pa.schema(fields)


OUTPUT_SCHEMA = output_schema()


def fan_out(tables: list[pa.Table], uids_by_secid: dict[int, list[str]]) -> pa.Table:
    """Copy each SecId's rows to every one of its identifiers, conformed to :data:`OUTPUT_SCHEMA`.

    Rows keep the order of ``tables`` (later files win over earlier ones for the same
    (time_index, unique_identifier) when a store applies them in order). SecIds without
    identifiers are left out.
    """
    if not tables:
        return OUTPUT_SCHEMA.empty_table()
    table = _conform(pa.concat_tables(tables, promote_options="permissive"))
    secids = table["secid"].to_numpy()
    take: list[np.ndarray] = []
    uids: list[str] = []
    for secid in np.unique(secids).tolist():
        rows = np.flatnonzero(secids == secid)
        for uid in uids_by_secid.get(secid, []):
            take.append(rows)
            uids.extend([uid] * len(rows))
    if not take:
        return OUTPUT_SCHEMA.empty_table()
    order = np.concatenate(take)
    picked = table.take(pa.array(order)).set_column(1, "unique_identifier", pa.array(uids, pa.string()))
    return picked.take(pa.array(np.argsort(order, kind="stable")))


def _conform(table: pa.Table) -> pa.Table:
    """Cast to :data:`OUTPUT_SCHEMA`, adding absent columns as nulls."""
    arrays = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in OUTPUT_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=OUTPUT_SCHEMA)
