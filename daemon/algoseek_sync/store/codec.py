"""One chunk of bars (one SecId, one period) ↔ one compressed blob. Pure; no SQL here.

Why chunks and not a row per bar: binding ~30 Python values per row into SQLite costs
several times the CSV parse itself, while a chunk is one compressed slice of a numpy
record array (see the README's "Embedded store" section for the measurements). Records
are row-major so reading many chunks is one ``b"".join`` and one ``np.frombuffer``, and
a cross-section (one day of every SecId) picks one record per chunk without decoding
columns one by one.

Blob = :data:`HEADER` + zstd (records byte-shuffled, then ``extra`` as JSON when any row has
one). Byte-shuffling (byte k of every record together, as Blosc does) puts the similar
high bytes of prices and volumes next to each other: chunks come out about 20 % smaller.
A record holds a null bitmap and one fixed-width field per column: integers and floats
as themselves, dates as YYYYMMDD ``int32``, times of day as microseconds ``int64``, text
as an ``int32`` id into the store's string table (text repeats: tickers, names, ISINs).
The layout id in the header names the column list, so a later release can add columns
and still read old chunks.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

FORMAT = 1
HEADER = struct.Struct("<BBHII")  # format, codec, layout id, rows, raw bytes
CODEC_ZSTD = 2
NULL_ID = -1
_ZSTD = pa.Codec("zstd", compression_level=1)

#: column kind → numpy field type
FIELD_TYPES = {"int": "<i8", "float": "<f8", "date": "<i4", "time": "<i8", "text": "<i4"}


@dataclass(frozen=True)
class Layout:
    """The columns of a chunk's records, in order: (name, kind) with kind a key of FIELD_TYPES."""

    id: int
    columns: tuple[tuple[str, str], ...]

    @cached_property
    def dtype(self) -> np.dtype:
        fields = [("__nulls", "<u8")] + [(name, FIELD_TYPES[kind]) for name, kind in self.columns]
        return np.dtype(fields)

    @cached_property
    def text_columns(self) -> list[str]:
        return [name for name, kind in self.columns if kind == "text"]


@dataclass
class Records:
    """Rows as a record array (plus sparse ``extra`` texts by row), ready to slice into chunks."""

    layout: Layout
    array: np.ndarray
    extra: dict[int, str]

    def __len__(self) -> int:
        return len(self.array)


def records(
    layout: Layout, columns: Mapping[str, tuple[np.ndarray, np.ndarray | None]], extra: dict[int, str]
) -> Records:
    """Build the record array from per-column (values, null mask); missing columns are null."""
    n = len(next(iter(columns.values()))[0]) if columns else 0
    array = np.zeros(n, dtype=layout.dtype)
    nulls = np.zeros(n, dtype=np.uint64)
    for bit, (name, _) in enumerate(layout.columns):
        if name not in columns:
            nulls |= np.uint64(1 << bit)
            continue
        values, mask = columns[name]
        array[name] = values
        if mask is not None and mask.any():
            nulls[mask] |= np.uint64(1 << bit)
    array["__nulls"] = nulls
    return Records(layout, array, extra)


#: A chunk as :func:`decode` makes it: its records' bytes (row-major) and its ``extra`` by row.
Plain = tuple[bytes, dict[int, str]]


def encode(recs: Records, start: int, stop: int) -> tuple[bytes, Plain]:
    """The blob of rows ``start:stop``, and what :func:`decode` will make of it."""
    part = recs.array[start:stop]
    raw = _shuffle(part.view(np.uint8).reshape(len(part), part.dtype.itemsize))
    extra = {i - start: text for i, text in recs.extra.items() if start <= i < stop}
    if extra:
        raw += json.dumps({str(i): text for i, text in extra.items()}, separators=(",", ":")).encode()
    body = _ZSTD.compress(raw, asbytes=True)
    blob = HEADER.pack(FORMAT, CODEC_ZSTD, recs.layout.id, stop - start, len(raw)) + body
    return blob, (part.tobytes(), extra)


def _shuffle(matrix: np.ndarray) -> bytes:
    return matrix.T.tobytes()


def _unshuffle(raw: bytes | memoryview, rows: int, width: int) -> bytes:
    return np.frombuffer(raw, dtype=np.uint8, count=rows * width).reshape(width, rows).T.tobytes()


def decode(
    blobs: Iterable[bytes], layouts: Mapping[int, Layout], known: Mapping[bytes, Plain] | None = None
) -> list[Records]:
    """Records of many chunks, one :class:`Records` per layout met (usually one).

    ``known`` maps blobs to their decoded form (from :func:`encode`): a blob found there is
    not decompressed. Matching by the whole blob keeps this exact whatever the caller kept.
    """
    parts: dict[int, tuple[list[bytes], dict[int, str]]] = {}
    counts: dict[int, int] = {}
    for blob in blobs:
        fmt, codec, layout_id, rows, size = HEADER.unpack_from(blob)
        if fmt != FORMAT or codec != CODEC_ZSTD:
            raise ValueError(f"chunk format {fmt}/codec {codec} is not known to this release")
        chunks, extra = parts.setdefault(layout_id, ([], {}))
        offset = counts.get(layout_id, 0)
        counts[layout_id] = offset + rows
        plain = known.get(blob) if known else None
        if plain is not None:
            chunks.append(plain[0])
            extra.update({offset + i: text for i, text in plain[1].items()})
            continue
        raw = _ZSTD.decompress(memoryview(blob)[HEADER.size :], decompressed_size=size, asbytes=True)
        layout = layouts[layout_id]
        width = rows * layout.dtype.itemsize
        chunks.append(_unshuffle(raw, rows, layout.dtype.itemsize))
        if len(raw) > width:
            for key, text in json.loads(raw[width:]).items():
                extra[offset + int(key)] = text
    return [
        Records(layouts[lid], np.frombuffer(b"".join(chunks), dtype=layouts[lid].dtype), extra)
        for lid, (chunks, extra) in parts.items()
    ]


def pack_ids(values: np.ndarray) -> bytes:
    """Sorted integers (SecIds) as zstd of their int64 differences: a few bytes per thousand."""
    return _ZSTD.compress(np.diff(values.astype(np.int64), prepend=0).astype("<i8").tobytes(), asbytes=True)


def unpack_ids(blob: bytes, count: int) -> np.ndarray:
    """The inverse of :func:`pack_ids`."""
    raw = _ZSTD.decompress(blob, decompressed_size=count * 8, asbytes=True)
    return np.cumsum(np.frombuffer(raw, dtype="<i8"))


def null_mask(recs: Records, name: str) -> np.ndarray:
    bit = [n for n, _ in recs.layout.columns].index(name)
    return (recs.array["__nulls"] & np.uint64(1 << bit)) != 0


def take(recs: Records, rows: np.ndarray) -> Records:
    """The records at ``rows`` (sorted positions), extras renumbered."""
    if not recs.extra:  # the common case: no per-row mapping to build
        return Records(recs.layout, recs.array[rows], {})
    position = {int(old): new for new, old in enumerate(rows)}
    extra = {position[i]: text for i, text in recs.extra.items() if i in position}
    return Records(recs.layout, recs.array[rows], extra)


def concat(parts: Sequence[Records]) -> Records:
    """One record array from several of the same layout."""
    extra: dict[int, str] = {}
    offset = 0
    for part in parts:
        extra.update({offset + i: text for i, text in part.extra.items()})
        offset += len(part)
    return Records(parts[0].layout, np.concatenate([p.array for p in parts]), extra)


# -- times of day ----------------------------------------------------------------------------


def time_to_micros(text: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Canonical ``HH:MM:SS[.fff|.ffffff]`` texts → (microseconds since midnight, null mask)."""

    def part(start: int, stop: int) -> pa.Array:
        return pc.cast(pc.utf8_slice_codeunits(text, start, stop), pa.int64())

    fraction = pc.cast(pc.utf8_rpad(pc.utf8_slice_codeunits(text, 9, 15), 6, "0"), pa.int64())
    seconds = pc.add(pc.multiply(pc.add(pc.multiply(part(0, 2), 60), part(3, 5)), 60), part(6, 8))
    micros = pc.add(pc.multiply(seconds, 1_000_000), fraction)
    mask = pc.is_null(micros).to_numpy(zero_copy_only=False)
    return pc.fill_null(micros, 0).to_numpy(zero_copy_only=False), mask


def micros_to_time(micros: np.ndarray, mask: np.ndarray) -> pa.Array:
    """The inverse of :func:`time_to_micros` (canonical text: no fraction, .fff or .ffffff).

    The digits are written into one fixed-width byte matrix and the Arrow array is made from its
    buffers: a cross-section converts four time columns of 10,000 rows, and arrow's string
    kernels took several times as long.
    """
    values = np.ascontiguousarray(micros, dtype=np.int64)
    seconds, fraction = np.divmod(values, 1_000_000)
    hours, rest = np.divmod(seconds, 3600)
    minutes, secs = np.divmod(rest, 60)
    text = np.empty((len(values), 15), dtype=np.uint8)  # HH:MM:SS.ffffff
    for at, part in enumerate((hours, minutes, secs)):
        text[:, 3 * at] = 48 + part // 10 % 10
        text[:, 3 * at + 1] = 48 + part % 10
    text[:, 2] = text[:, 5] = ord(":")
    text[:, 8] = ord(".")
    for k in range(6):
        text[:, 9 + k] = 48 + fraction // 10 ** (5 - k) % 10
    lengths = np.where(fraction == 0, 8, np.where(fraction % 1000 == 0, 12, 15))
    lengths[mask] = 0
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = text[np.arange(15) < lengths[:, None]].tobytes()
    validity = pa.py_buffer(np.packbits(~mask, bitorder="little")) if mask.any() else None
    return pa.StringArray.from_buffers(
        len(values), pa.py_buffer(offsets), pa.py_buffer(data), validity, int(mask.sum())
    )
