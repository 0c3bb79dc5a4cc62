"""Read and parse claimed file versions: the step between the ledger and the worker's write.

Nothing here touches the database or the backend, so the next batch is prepared on the
parse-ahead threads while the worker writes the one before it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from algoseek_sync.config import Settings
from algoseek_sync.errors import BadFileError, FileGoneError, Problem
from algoseek_sync.formats.names import classify
from algoseek_sync.formats.read import FileContent, read_file
from algoseek_sync.state.ledger import FileState, Mark, Version

if TYPE_CHECKING:
    from algoseek_sync.formats.bars import BarFile

Outcome = Literal[
    "done", "unchanged", "quarantined", "waiting_master", "superseded", "skipped", "deferred", "failed"
]


@dataclass(frozen=True)
class FileResult:
    """What happened to one file version; hooks (metrics, progress, heartbeat) receive these."""

    path: str
    kind: str
    outcome: Outcome
    rows: int = 0
    written: int = 0
    seconds: float = 0.0
    reason: str = ""
    secids: tuple[int, ...] = ()
    figis: tuple[str, ...] = ()


@dataclass
class Parsed:
    """A bar file read and parsed, with what to write and how it ends."""

    version: Version
    sha256: str  # of the file as delivered (its bytes are not kept once parsed)
    bars: BarFile
    started: float
    notes: list[Problem]
    writable: BarFile | None = None  # the rows of SecIds the master routes
    waiting: str = ""  # why some SecIds' rows wait for a master (empty: none wait)
    error: Exception | None = None  # reading or parsing failed unexpectedly

    @property
    def rows(self) -> int:
        return self.bars.table.num_rows


@dataclass
class Final:
    """A claimed version that ends without writing (unchanged, refused, gone)."""

    mark: Mark
    result: FileResult
    notes: list[Problem] = field(default_factory=list)


Prepared = tuple[list[Final], list[Parsed]]


@dataclass(frozen=True)
class Reader:
    """What reading a vendor file needs from the settings."""

    drop_dir: Path
    max_file_bytes: int
    max_decompressed_bytes: int
    max_line_bytes: int
    master_globs: tuple[str, ...]

    @classmethod
    def of(cls, settings: Settings) -> Reader:
        limits = settings.limits
        return cls(
            settings.drop.dir,
            limits.max_file_bytes,
            limits.max_decompressed_bytes,
            limits.max_line_bytes,
            tuple(settings.drop.master_glob),
        )

    def read(self, version: Version) -> FileContent:
        """The version's bytes, or FileGoneError when the file is no longer the version queued."""
        content = read_file(
            self.drop_dir,
            version.path,
            max_file_bytes=self.max_file_bytes,
            max_decompressed_bytes=self.max_decompressed_bytes,
        )
        if (content.size, content.mtime_ns) != (version.size, version.mtime_ns):
            raise FileGoneError("file changed after it was queued; its new version is queued instead")
        return content

    def prepare_bars(self, versions: Sequence[Version], applied: Mapping[str, str]) -> Prepared:
        """Read and parse each bar version; ``applied`` maps a path to the sha256 already stored."""
        from algoseek_sync.formats.bars import foreign_rows, parse_bars

        finals: list[Final] = []
        parsed: list[Parsed] = []
        for version in versions:
            started = time.monotonic()
            try:
                content = self.read(version)
                same = unchanged(version, content, applied.get(version.path), started)
                if same is not None:
                    finals.append(same)
                    continue
                bars = parse_bars(content.data, max_line_bytes=self.max_line_bytes)
            except (BadFileError, FileGoneError) as exc:
                finals.append(refused(version, exc, started))
                continue
            except Exception as exc:  # a parser bug: only this file fails (see Worker._write)
                parsed.append(Parsed(version, "", None, started, [], error=exc))  # type: ignore[arg-type]
                continue
            notes = list(bars.notes)
            name = classify(version.path, self.master_globs)
            if name.aggregation == "secid" and (foreign := foreign_rows(bars, int(name.key))) is not None:
                notes.append(foreign)
            parsed.append(Parsed(version, content.sha256, bars, started, notes))
        return finals, parsed


def unchanged(
    version: Version, content: FileContent, applied_sha: str | None, started: float
) -> Final | None:
    """The same bytes as the version already applied: record it done, write nothing."""
    if version.force or content.sha256 != applied_sha:
        return None
    note = "same content as the applied version"
    return Final(
        Mark(version.id, FileState.DONE, note, sha256=content.sha256, rows=0, secids=""),
        FileResult(version.path, version.kind, "unchanged", seconds=time.monotonic() - started),
    )


def refused(version: Version, exc: Exception, started: float) -> Final:
    """A file that cannot be taken: gone (superseded/skipped) or bad content (quarantined)."""
    reason = str(exc)
    state = FileState.QUARANTINED
    if isinstance(exc, FileGoneError):
        state = FileState.SUPERSEDED if "changed" in reason else FileState.SKIPPED
    return Final(
        Mark(version.id, state, reason),
        FileResult(
            version.path, version.kind, state.value, seconds=time.monotonic() - started, reason=reason
        ),  # type: ignore[arg-type]
    )
