"""The Main Sequence Algoseek tutorial's update strategy, as a baseline for the benchmarks.

What the tutorial's daily-bars node does on every run (see the SDK notes, "The Main
Sequence Algoseek tutorial's two nodes"):

* read the security master with every column as a string, one (SecId, FIGI) per FIGI
  token (split on ``;``, empties dropped, order kept, de-duplicated); SecIds without a
  FIGI are silently skipped;
* glob **every** bar file in the directory and read it;
* map each file's SecId to its FIGIs through the master (a SecId missing from the
  master raises: the whole run stops);
* copy the rows to every FIGI and hand the whole frame to the store.

To compare strategies rather than parsers, the baseline uses the daemon's own pieces
wherever it can: the same bounded reader (``formats.read.read_file``), the same CSV
parser (``formats.bars.parse_bars``), the platform backend's fan-out to FIGIs
(``backends.mainsequence.frames.published``, one call over all files, which is cheaper
than the tutorial's per-file frames) and the same store (``LocalBackend.write_bars``,
one chunk per SecId and month) in its own, fresh state database of the same schema.
Every advantage therefore goes to the baseline; only the strategy differs.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from algoseek_sync.backends.base import BarBatch, FileBars
from algoseek_sync.backends.local import LocalBackend
from algoseek_sync.backends.mainsequence.frames import published
from algoseek_sync.formats.bars import BarFile, parse_bars
from algoseek_sync.formats.read import read_file
from algoseek_sync.state.database import Database

MASTER_GLOBS = ("*security_master*.csv", "*security_master*.csv.gz")
LIMIT = 1 << 30


@dataclass
class CycleReport:
    files: int
    rows_read: int
    rows_published: int  # FIGI rows of the fanned-out frame (what the tutorial hands its store)
    rows_written: int  # rows the store wrote (once per SecId)
    seconds: float


def figis_by_secid(master_path: Path) -> dict[int, list[str]]:
    """SecId → FIGIs as the tutorial's master node explodes them (no validation)."""
    frame = pd.read_csv(master_path, dtype=str, keep_default_na=False)
    out: dict[int, list[str]] = {}
    for secid, figi in zip(frame["SecId"], frame["FIGI"], strict=True):
        tokens = list(dict.fromkeys(t.strip() for t in figi.split(";") if t.strip()))
        if tokens:
            out[int(secid)] = tokens
    return out


class TutorialBaseline:
    """One store, updated by re-reading the whole drop on every cycle."""

    def __init__(self, drop: Path, state_dir: Path) -> None:
        self.drop = Path(drop)
        state_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(state_dir / "state.db")
        self.backend = LocalBackend(self.db)

    def _files(self) -> tuple[Path, list[Path]]:
        masters, bars = [], []
        for path in sorted(self.drop.rglob("*")):
            name = path.name
            if name.startswith(".") or not path.is_file() or path.is_symlink():
                continue
            if any(fnmatch.fnmatch(name, g) for g in MASTER_GLOBS):
                masters.append(path)
            elif name.endswith((".csv", ".csv.gz")):
                bars.append(path)
        if not masters:
            raise FileNotFoundError(f"no security master in {self.drop}")
        return max(masters, key=lambda p: p.stat().st_mtime_ns), bars

    def cycle(self) -> CycleReport:
        """Read everything, write everything (as the tutorial's ``update()`` does)."""
        began = time.perf_counter()
        master_path, paths = self._files()
        routes = figis_by_secid(master_path)
        known = set(routes)
        files: list[FileBars] = []
        for path in paths:
            rel = str(path.relative_to(self.drop))
            content = read_file(self.drop, rel, max_file_bytes=LIMIT, max_decompressed_bytes=LIMIT)
            files.append(FileBars(len(files), rel, parse_bars(content.data)))
        tables = [f.bars.table for f in files]
        # The tutorial raises on a SecId missing from the master (the whole run stops).
        master_frame = pd.read_csv(master_path, dtype=str, usecols=["SecId"])
        in_master = {int(s) for s in master_frame["SecId"]}
        for table in tables:
            for secid in set(table["secid"].to_pylist()):
                if secid not in in_master:
                    raise KeyError(f"SecId {secid} not in the security master")
        routed = {s: routes[s] for s in known}
        frame = published(tables, routed)
        keep = pa.array(sorted(known), pa.int64())
        receipt = self.backend.write_bars(BarBatch([_routed(f, keep) for f in files], routed))
        rows_read = sum(t.num_rows for t in tables)
        return CycleReport(
            len(paths), rows_read, len(frame), receipt.rows_written, time.perf_counter() - began
        )

    def close(self) -> None:
        self.backend.close()
        self.db.close()


def _routed(item: FileBars, keep: pa.Array) -> FileBars:
    """The file's rows of SecIds with a FIGI (the tutorial skips the others)."""
    table = item.bars.table
    rows = table.filter(pc.is_in(table["secid"], keep))
    return FileBars(item.version_id, item.path, BarFile(item.bars.dataset, rows))
