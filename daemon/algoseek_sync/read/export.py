"""``algoseek-sync export DIR``: the embedded store as hive-partitioned Parquet that any engine reads.

Layout: ``DIR/bars/dataset=<name>/year=<YYYY>/part-<bucket>.parquet`` (``bars-adjusted`` for
``--adjusted``, so one glob never mixes raw and adjusted values), with the columns and types of
``Store.bars``: one row per (trade date, identifier) for every identifier that ever routed a
SecId. A file holds one bucket of identifiers (:mod:`~algoseek_sync.read.export_plan`), so a
re-delivered SecId rewrites the few files its identifiers live in, not the year.

Why it is safe to run while the daemon writes and to read while it runs: everything comes from
one read transaction (one SQLite WAL snapshot); each file is written to a hidden temporary name,
fsynced and renamed over the old one (readers see the old file or the new one, never a part);
the manifest with the high-water marks (``DIR/bars.manifest.json``) is written last, the same
way, so an interrupted export is redone by the next one. A lock file in DIR refuses a second
export of the same DIR.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from algoseek_sync.errors import TemporaryFailure, UserInputError
from algoseek_sync.formats.datasets import DATASETS, Dataset
from algoseek_sync.read import frames
from algoseek_sync.read.export_plan import BUCKETS, Part, Snapshot, changed_parts, snapshot
from algoseek_sync.read.store import choose_dataset

if TYPE_CHECKING:
    import pyarrow as pa

    from algoseek_sync.store.chunks import Chunks

TREES = {False: "bars", True: "bars-adjusted"}
#: beside its tree (``DIR/bars.manifest.json``), not in it: a tree holds Parquet files only, so that a
#: reader may name the directory itself (Polars refuses a directory of mixed file types)
MANIFEST = "{tree}.manifest.json"
LOCK = ".export.lock"
#: bump when the layout or the columns change: an export of another format is rewritten whole
FORMAT = 1


@dataclass(frozen=True)
class Summary:
    """What one export did, for its one-line report."""

    tree: Path
    written: int
    unchanged: int
    removed: int
    rows_written: int
    rows: int
    seconds: float

    def line(self) -> str:
        return (
            f"exported {self.tree}: {self.written} files written ({self.rows_written:,} rows),"
            f" {self.unchanged} unchanged, {self.removed} removed; {self.rows:,} rows in all;"
            f" {self.seconds:.2f} s"
        )


def export(state: Path, out: Path, *, dataset: str | None = None, adjusted: bool = False) -> Summary:
    """Bring the export tree under ``out`` up to date with the store at ``state`` (see the module doc)."""
    from algoseek_sync.read.store import open_store
    from algoseek_sync.store.chunks import Chunks

    started = time.monotonic()
    tree = out / TREES[adjusted]
    with open_store(state) as store, _locked(out):
        db = store.db
        chunks = Chunks(db)
        db.execute("BEGIN")  # deferred: the first read takes the WAL snapshot every later read sees
        try:
            names = _datasets(chunks.datasets(), dataset, adjusted)
            snap = snapshot(db, names)
            previous = _manifest(tree)
            parts: dict[str, list[Any]] = previous.get("parts", {})  # key → [rows, routes digest]
            on_disk = _on_disk(tree, names)
            expected = {p.key: p for p in snap.expected}
            digests = {key: entry[1] for key, entry in parts.items() if key in on_disk}
            todo = {
                p for p in changed_parts(db, snap, previous.get("datasets", {}), digests) if p.key in expected
            }
            written_rows = 0
            for part in sorted(todo):
                table = part_table(chunks, snap, part, adjusted)
                _write_atomic(tree / part.key, partial(_write_parquet, table))
                parts[part.key] = [table.num_rows, snap.digest(part)]
                written_rows += table.num_rows
            stale = sorted(on_disk - expected.keys())
            for key in stale:
                (tree / key).unlink()
            parts = {k: v for k, v in parts.items() if k in expected or _dataset_of(k) not in names}
            _write_manifest(tree, previous, snap, parts)
        finally:
            db.execute("COMMIT")
    rows = sum(v[0] for k, v in parts.items() if _dataset_of(k) in names)
    return Summary(
        tree,
        len(todo),
        len(expected) - len(todo),
        len(stale),
        written_rows,
        rows,
        time.monotonic() - started,
    )


def _datasets(stored: list[str], requested: str | None, adjusted: bool) -> list[str]:
    """The datasets to export: the one asked for (it must be stored), else every stored one."""
    if requested is not None:
        choose_dataset(requested, [], stored, "")  # an unknown or unstored one: the reads' own message
        if adjusted and not DATASETS[requested].has_factors:
            raise UserInputError(
                f"dataset {requested} carries no adjustment factors: --adjusted needs one that does"
            )
        return [requested]
    if adjusted:
        with_factors = [d for d in stored if DATASETS[d].has_factors]
        if stored and not with_factors:
            raise UserInputError(
                f"no stored dataset carries adjustment factors ({', '.join(stored)}): --adjusted needs one"
            )
        return with_factors
    return stored


# -- rows ---------------------------------------------------------------------------------------
def part_table(chunks: Chunks, snap: Snapshot, part: Part, adjusted: bool) -> pa.Table:
    """One file's rows, as ``Store.bars`` reads them: each identifier's bars from its SecIds
    (on a day several hold, the first-ranked SecId's row), sorted by (time_index, unique_identifier)."""
    import numpy as np
    import pyarrow as pa

    from algoseek_sync.backends.local import first_secid_wins, identifier_frame

    dataset = DATASETS[part.dataset]
    uids = snap.expected[part]
    table = chunks.read(dataset, snap.secids_of(uids), part.year * 10000 + 101, part.year * 10000 + 1231)
    if adjusted:
        from algoseek_sync.formats.adjust import backward_adjusted

        latest = chunks.latest_factors(dataset, sorted(set(table["secid"].to_pylist())))
        table = backward_adjusted(table, latest)
    secids = table["secid"].to_numpy()  # sorted: chunks are read in (secid, tradedate) order
    pieces: list[pa.Table] = []
    names: list[str] = []
    for uid in uids:
        route = snap.routes[uid]
        if len(route) == 1:
            lo, hi = np.searchsorted(secids, route[0], "left"), np.searchsorted(secids, route[0], "right")
            rows = table.slice(int(lo), int(hi - lo))
        else:
            rows = first_secid_wins(table, route)
        pieces.append(rows)
        names += [uid] * rows.num_rows
    frame = identifier_frame(dataset, pa.concat_tables(pieces), names)
    frame = frame.sort_values(["time_index", "unique_identifier"], kind="stable")
    return _typed(pa.Table.from_pandas(frames.bars_frame(frame, dataset.name), preserve_index=False), dataset)


def _typed(table: pa.Table, dataset: Dataset) -> pa.Table:
    """Every file has one schema: a column that is empty in this file (all null) keeps its real type,
    and text is ``string``, the type readers give the hive key ``dataset`` (pandas makes ``large_string``)."""
    import pyarrow as pa

    from algoseek_sync.formats.bars import arrow_schema

    intended = arrow_schema(dataset)
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type):
            kind = intended.field(field.name).type if field.name in intended.names else pa.string()
            table = table.set_column(i, field.name, pa.nulls(table.num_rows, kind))
        elif pa.types.is_large_string(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.string()))
    return table


# -- files --------------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One export of ``out`` at a time (an advisory ``flock``, released when the process ends)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise UserInputError(f"cannot write the export directory {out}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TemporaryFailure(f"another export is writing {out}: try again when it is done") from None
        yield
    finally:
        os.close(fd)


def _write_parquet(table: pa.Table, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path, compression="zstd")


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a hidden name beside ``path`` (no glob picks it up), fsync, rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)


def _dataset_of(key: str) -> str:
    return key.split("/", 1)[0].removeprefix("dataset=")


def _on_disk(tree: Path, names: list[str]) -> set[str]:
    """Keys of the part files of ``names`` in ``tree``; temporary files a killed export left are removed."""
    found = set()
    for name in names:
        base = tree / f"dataset={name}"
        for leftover in base.glob("year=*/.part-*.tmp-*"):
            leftover.unlink(missing_ok=True)
        found |= {p.relative_to(tree).as_posix() for p in base.glob("year=*/part-*.parquet")}
    return found


def _manifest(tree: Path) -> dict[str, Any]:
    """The previous export's manifest; empty (export everything) when missing, unreadable or of another format."""
    try:
        data = json.loads((tree.parent / MANIFEST.format(tree=tree.name)).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("buckets") != BUCKETS:
        return {}
    if not all(isinstance(v, float | int) for v in data.get("datasets", {}).values()):
        return {}
    return data


def _write_manifest(
    tree: Path, previous: dict[str, Any], snap: Snapshot, parts: dict[str, list[Any]]
) -> None:
    """Marks per dataset (``done_at`` high-water) and per part ([rows, routes digest]); last, atomically."""
    datasets = {**previous.get("datasets", {}), **snap.marks}
    text = json.dumps(
        {"format": FORMAT, "buckets": BUCKETS, "datasets": datasets, "parts": dict(sorted(parts.items()))},
        indent=1,
    )
    _write_atomic(tree.parent / MANIFEST.format(tree=tree.name), lambda path: path.write_text(text))
