"""Which Parquet files of an export a run must (re)write: pure reads of the state database.

An export file holds the rows of one (dataset, year, identifier bucket): the bars of the SecIds its
identifiers route to, in route order. So a file changes only when one of those SecIds was written
(a bar file applied since the last export: ``files.done_at`` above the export's high-water mark)
or when its routes changed (a master linked or re-ranked an identifier: :meth:`Snapshot.digest`
differs from the one the manifest kept). A master that only drops links changes no file: the
identifiers keep routing their SecIds' history (survivorship-free). Every read here runs in the
caller's read transaction: one snapshot.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from algoseek_sync.state.database import Database

#: identifier buckets per (dataset, year): a re-delivered SecId rewrites about 1/BUCKETS of a year
BUCKETS = 8


def bucket_of(uid: str) -> int:
    """A stable bucket (not Python's salted ``hash``): the same identifier lands in the same file."""
    return zlib.crc32(uid.encode()) % BUCKETS


@dataclass(frozen=True, order=True)
class Part:
    """One Parquet file of an export tree."""

    dataset: str
    year: int
    bucket: int

    @property
    def key(self) -> str:
        """Its path under the tree, hive-style (``dataset=…/year=…/part-N.parquet``)."""
        return f"dataset={self.dataset}/year={self.year}/part-{self.bucket}.parquet"


@dataclass
class Snapshot:
    """What the state database says, in one read transaction, about the datasets being exported."""

    marks: dict[str, float]  # dataset → the newest ``done_at`` of its bar files: what this export covers
    routes: dict[str, list[int]]  # identifier → its SecIds, the one whose row wins first
    links: dict[int, list[str]]  # SecId → every identifier a master ever linked to it
    years: dict[str, dict[int, set[int]]]  # dataset → SecId → years holding bars
    expected: dict[Part, list[str]] = field(default_factory=dict)  # part → its identifiers, sorted

    def secids_of(self, uids: Iterable[str]) -> list[int]:
        return sorted({s for u in uids for s in self.routes.get(u, [])})

    def digest(self, part: Part) -> str:
        """The routes a part's rows follow: equal digests and unwritten SecIds mean equal rows."""
        text = "\n".join(f"{u}:{','.join(map(str, self.routes[u]))}" for u in self.expected[part])
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def snapshot(db: Database, datasets: list[str]) -> Snapshot:
    """Routes, years and marks of ``datasets``; the caller holds the read transaction."""
    marks = {}
    for name in datasets:
        row = db.execute(
            "SELECT max(done_at) FROM files WHERE kind = 'bars' AND state = 'done' AND dataset = ?", (name,)
        ).fetchone()
        marks[name] = float(row[0] or 0.0)
    routes: dict[str, list[int]] = {}
    links: dict[int, list[str]] = {}
    # the order LocalBackend.read_bars ranks an identifier's SecIds in (active first, newest link first)
    for uid, secid in db.execute(
        "SELECT unique_identifier, secid FROM secid_assets"
        " ORDER BY unique_identifier, active DESC, added_master DESC, secid"
    ):
        routes.setdefault(uid, []).append(secid)
        links.setdefault(secid, []).append(uid)
    years: dict[str, dict[int, set[int]]] = {name: {} for name in datasets}
    for name, secid, year in db.execute(
        "SELECT d.name, c.secid, c.period / 100 FROM bar_chunks c JOIN datasets d ON d.id = c.dataset"
        " GROUP BY c.dataset, c.secid, c.period / 100"
    ):
        if name in years:
            years[name].setdefault(secid, set()).add(year)
    snap = Snapshot(marks, routes, links, years)
    members: dict[Part, set[str]] = {}
    for name, held in years.items():
        for secid, secid_years in held.items():
            for uid in links.get(secid, []):
                for year in secid_years:
                    members.setdefault(Part(name, year, bucket_of(uid)), set()).add(uid)
    snap.expected = {part: sorted(uids) for part, uids in sorted(members.items())}
    return snap


def changed_parts(
    db: Database, snap: Snapshot, since: dict[str, float], digests: dict[str, str]
) -> set[Part]:
    """Parts whose rows may differ from an export made at ``since`` with routes ``digests`` (by key).

    A dataset missing from ``since``, and a part missing from ``digests``, is exported whole.
    """
    out = {p for p in snap.expected if digests.get(p.key) != snap.digest(p)}
    for name in snap.marks:
        if name not in since:
            out.update(p for p in snap.expected if p.dataset == name)
            continue
        held = snap.years[name]
        for secid in _written_since(db, name, since[name], snap):  # its rows changed, in its years only
            for uid in snap.links.get(secid, []):
                out.update(Part(name, year, bucket_of(uid)) for year in held.get(secid, ()))
    return out


def _written_since(db: Database, dataset: str, done_at: float, snap: Snapshot) -> set[int]:
    """SecIds of the bar files of ``dataset`` applied after ``done_at``.

    A file recorded before the ledger kept its SecIds (``secids`` NULL) may have touched any of them.
    """
    out: set[int] = set()
    for (held,) in db.execute(
        "SELECT secids FROM files WHERE kind = 'bars' AND state = 'done' AND done_at > ?"
        " AND (dataset = ? OR dataset IS NULL)",
        (done_at, dataset),
    ):
        if held is None:
            return set(snap.years[dataset])
        out.update(int(s) for s in held.split(",") if s)
    return out
