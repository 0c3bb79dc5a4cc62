"""Stat-only walks of the drop directory (reconcile): find versions the events missed.

Never reads file contents and never follows links; known (path, size, mtime) triples
are recognised without hashing, so a reconcile of 100,000 known files is a directory
walk and an index lookup per file, in batches: memory does not grow with the drop.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from algoseek_sync.errors import Problem
from algoseek_sync.formats.names import classify, is_temporary
from algoseek_sync.state.ledger import FileState, Ledger

_OURS = (".csv", ".csv.gz")
RECONCILE_BATCH = 2000


class Entry(NamedTuple):
    """One non-temporary name under the drop root, as ``lstat`` saw it (a tuple: a walk makes
    one per file, and a 100,000-file drop is walked at every reconcile)."""

    path: str  # relative, '/'-separated
    size: int
    mtime_ns: int
    regular: bool
    link: bool


def walk(root: Path, unreadable: list[Problem] | None = None) -> Iterator[Entry]:
    """Every non-temporary, non-directory entry below ``root`` (links reported, never followed).

    A directory that cannot be listed is appended to ``unreadable``, never skipped silently.
    """
    stack = [(str(root), "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            entries = os.scandir(directory)  # lazily: a flat 100,000-file folder is never held in memory
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            if unreadable is not None:
                where = prefix.rstrip("/") or "."
                unreadable.append(
                    Problem(
                        "unreadable",
                        f"directory {where} cannot be listed: {exc.strerror or exc}",
                        "its files are not seen until it is readable",
                        path=where,
                    )
                )
            continue
        with entries:
            yield from _entries(entries, prefix, stack)


def _entries(
    entries: Iterator[os.DirEntry[str]], prefix: str, stack: list[tuple[str, str]]
) -> Iterator[Entry]:
    """One directory's entries; sub-directories go on ``stack`` for later."""
    for entry in entries:
        rel = f"{prefix}{entry.name}"
        if is_temporary(rel):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISDIR(st.st_mode):
            stack.append((entry.path, f"{rel}/"))
            continue
        yield Entry(rel, st.st_size, st.st_mtime_ns, stat.S_ISREG(st.st_mode), stat.S_ISLNK(st.st_mode))


def record_entry(ledger: Ledger, entry: Entry, master_globs: list[str]) -> FileState | None:
    """Record one entry's current version in the ledger: its state when it is new, else None."""
    name = classify(entry.path, master_globs)
    if entry.link:
        skip = "symbolic link; links are never followed"
    elif not entry.regular:
        skip = "not a regular file (FIFO, device or socket); never opened"
    elif name.kind == "other":
        skip = name.reason
    else:
        skip = ""
    if skip and not entry.path.lower().endswith(_OURS):
        return None  # unrelated names (README.txt …) are not worth a ledger row
    if not ledger.record(entry.path, entry.size, entry.mtime_ns, name.kind, skip_reason=skip):
        return None
    return FileState.SKIPPED if skip else FileState.PENDING


@dataclass
class Reconciled:
    """What one walk of the drop found."""

    seen: int = 0
    recorded: int = 0
    skipped: int = 0  # of the recorded: links, FIFOs, devices, unrelated ``.csv`` names
    problems: list[Problem] = field(default_factory=list)  # directories that could not be listed


def reconcile(
    root: Path,
    ledger: Ledger,
    master_globs: list[str],
    *,
    accept: Callable[[Entry], bool] = lambda entry: True,
) -> Reconciled:
    """Walk the drop root and record unknown versions that ``accept`` lets through.

    ``accept`` is where the daemon's stability gate plugs in; ``run --once`` takes files
    as they are.
    """
    result = Reconciled()
    seen = recorded = 0
    for batch in batched(walk(root, result.problems), RECONCILE_BATCH):
        known = ledger.known_versions([entry.path for entry in batch])
        with ledger.db.transaction():  # one commit per batch of entries, not one per new file
            for entry in batch:
                seen += 1
                if (entry.size, entry.mtime_ns) in known.get(entry.path, ()):
                    continue
                state = record_entry(ledger, entry, master_globs) if accept(entry) else None
                recorded += state is not None
                result.skipped += state == FileState.SKIPPED
    result.seen, result.recorded = seen, recorded
    return result


def batched(entries: Iterator[Entry], size: int) -> Iterator[list[Entry]]:
    """Lists of up to ``size`` entries (memory stays flat however large the drop is)."""
    batch: list[Entry] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
