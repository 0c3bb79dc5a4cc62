"""The durable record of file versions and their states (the truth; events are hints).

A version is one (path, size, mtime) of a file under the drop root; its sha256 is
filled in when the worker reads it. Every SQL statement on the ``files`` table lives
here. States (:class:`FileState`)::

    pending ─▶ processing ─▶ done | quarantined | waiting_master | superseded | skipped
       ▲            │
       └────────────┘  released: a failure the next attempt may not have (with a backoff)

A version is finished only from ``processing``: when ``reprocess`` queues a version
while the worker holds it, the reprocess wins and the version is processed again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from algoseek_sync.state.database import Database


class FileState(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    WAITING_MASTER = "waiting_master"
    QUARANTINED = "quarantined"
    SUPERSEDED = "superseded"
    SKIPPED = "skipped"


#: States a version leaves only when something new happens (a master, a re-delivery, a reprocess).
FINISHED = frozenset(
    {FileState.DONE, FileState.WAITING_MASTER, FileState.QUARANTINED, FileState.SUPERSEDED, FileState.SKIPPED}
)
#: Finished states that mean "this file's data was not taken" (exit 1 for a run).
PROBLEM_STATES = frozenset({FileState.QUARANTINED, FileState.SKIPPED})


@dataclass(frozen=True)
class Version:
    id: int
    path: str
    size: int
    mtime_ns: int
    kind: str
    attempts: int
    force: bool
    sha256: str | None


@dataclass(frozen=True)
class Mark:
    """How one claimed version ends; ``None`` fields keep what the ledger has."""

    version_id: int
    state: FileState
    reason: str | None = None
    sha256: str | None = None
    rows: int | None = None
    secids: str | None = None
    dataset: str | None = None


@dataclass(frozen=True)
class Tracked:
    """A version as ``reprocess --wait`` follows it."""

    path: str
    state: FileState
    rows: int
    error: str


def _version(row: Any) -> Version:
    return Version(
        id=row["id"],
        path=row["path"],
        size=row["size"],
        mtime_ns=row["mtime_ns"],
        kind=row["kind"],
        attempts=row["attempts"],
        force=bool(row["force"]),
        sha256=row["sha256"],
    )


class Ledger:
    """File versions in the state database. Methods that write join any open transaction."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    # -- discovery (watcher / scan) ------------------------------------------------
    def record(self, path: str, size: int, mtime_ns: int, kind: str, *, skip_reason: str = "") -> bool:
        """Record a version if it is new; return True when it was. Older queued versions are superseded."""
        now = self.clock()
        state = FileState.SKIPPED if skip_reason else FileState.PENDING
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO files (path, size, mtime_ns, kind, state, last_error, discovered_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (path, size, mtime_ns, kind, state, skip_reason or None, now, now),
            )
            if not cur.rowcount:
                return False
            conn.execute(
                "UPDATE files SET state = ?, last_error = 'a newer version of this file arrived',"
                " updated_at = ? WHERE path = ? AND id != ? AND state IN (?, ?)",
                (FileState.SUPERSEDED, now, path, cur.lastrowid, FileState.PENDING, FileState.WAITING_MASTER),
            )
        return True

    def known_versions(self, paths: Sequence[str]) -> dict[str, set[tuple[int, int]]]:
        """path → {(size, mtime_ns)} recorded for ``paths``: reconcile asks a batch at a time."""
        known: dict[str, set[tuple[int, int]]] = {}
        for path, size, mtime_ns in self.db.select_in(
            "SELECT path, size, mtime_ns FROM files WHERE path IN ({marks})", paths
        ):
            known.setdefault(path, set()).add((size, mtime_ns))
        return known

    def is_known(self, path: str, size: int, mtime_ns: int) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM files WHERE path = ? AND size = ? AND mtime_ns = ?", (path, size, mtime_ns)
        ).fetchone()
        return row is not None

    # -- worker: claim -------------------------------------------------------------
    def recover(self) -> int:
        """At start (the only writer is us): versions left ``processing`` by a crash go back to ``pending``."""
        with self.db.transaction() as conn:
            return conn.execute(
                "UPDATE files SET state = ?, claimed_at = NULL, next_attempt_at = 0, updated_at = ? WHERE state = ?",
                (FileState.PENDING, self.clock(), FileState.PROCESSING),
            ).rowcount

    def due_now(self) -> int:
        """Pending versions waiting out a backoff become due: ``run --once`` is asked to try everything now."""
        return self.db.execute(
            "UPDATE files SET next_attempt_at = 0 WHERE state = ? AND next_attempt_at > 0",
            (FileState.PENDING,),
        ).rowcount

    def _claim(self, where: str, order: str, limit: int, params: tuple[object, ...]) -> list[Version]:
        """One statement: the selected due versions become ``processing`` (attempts counted)."""
        now = self.clock()
        with self.db.transaction() as conn:
            rows = conn.execute(
                "UPDATE files SET state = ?, attempts = attempts + 1, claimed_at = ?, updated_at = ?"
                f" WHERE id IN (SELECT id FROM files WHERE state = ? AND next_attempt_at <= ? AND {where}"
                f" ORDER BY {order} LIMIT ?) RETURNING *",
                (FileState.PROCESSING, now, now, FileState.PENDING, now, *params, limit),
            ).fetchall()
        versions = [_version(r) for r in rows]
        return sorted(versions, key=lambda v: (v.mtime_ns, v.id), reverse=order.endswith("DESC"))

    def claim_master(self) -> Version | None:
        """The newest due master. Older ones stay pending until it is applied (it may be broken)."""
        claimed = self._claim("kind = 'master'", "mtime_ns DESC, id DESC", 1, ())
        return claimed[0] if claimed else None

    def supersede_older_masters(self, applied: Version) -> int:
        """``applied`` is in force: pending masters delivered before it will never be applied."""
        with self.db.transaction() as conn:
            return conn.execute(
                "UPDATE files SET state = ?, last_error = 'a newer security master was applied',"
                " updated_at = ? WHERE kind = 'master' AND state = ? AND id != ?"
                " AND (mtime_ns < ? OR (mtime_ns = ? AND id < ?))",
                (
                    FileState.SUPERSEDED,
                    self.clock(),
                    FileState.PENDING,
                    applied.id,
                    applied.mtime_ns,
                    applied.mtime_ns,
                    applied.id,
                ),
            ).rowcount

    def claim_bars(self, limit: int) -> list[Version]:
        """Up to ``limit`` due pending bar versions, oldest delivery first."""
        return self._claim("kind = 'bars'", "mtime_ns, id", limit, ())

    # -- worker: finish ------------------------------------------------------------
    def finish(self, marks: Iterable[Mark]) -> None:
        """Record how claimed versions ended, in one statement; versions no longer ``processing`` are left as they are."""
        now = self.clock()
        with self.db.transaction() as conn:
            self._finish(conn, marks, now)

    @staticmethod
    def _finish(conn: Any, marks: Iterable[Mark], now: float) -> None:
        conn.executemany(
            "UPDATE files SET state = :state, last_error = :reason, updated_at = :now, claimed_at = NULL,"
            " done_at = CASE WHEN :state = 'done' THEN :now ELSE done_at END, force = 0,"
            " sha256 = coalesce(:sha256, sha256), rows = coalesce(:rows, rows),"
            " secids = coalesce(:secids, secids), dataset = coalesce(:dataset, dataset)"
            " WHERE id = :id AND state = 'processing'",
            [
                {
                    "state": m.state,
                    "reason": m.reason,
                    "now": now,
                    "sha256": m.sha256,
                    "rows": m.rows,
                    "secids": m.secids,
                    "dataset": m.dataset,
                    "id": m.version_id,
                }
                for m in marks
            ],
        )

    def release(
        self, versions: Iterable[Version], reason: str | None, delay: Callable[[Version], float]
    ) -> int:
        """Claimed versions that did not finish go back to ``pending``, each after its ``delay``."""
        now = self.clock()
        with self.db.transaction() as conn:
            cur = conn.executemany(
                "UPDATE files SET state = ?, last_error = coalesce(?, last_error), next_attempt_at = ?,"
                " claimed_at = NULL, updated_at = ? WHERE id = ? AND state = ?",
                [
                    (FileState.PENDING, reason, now + delay(v), now, v.id, FileState.PROCESSING)
                    for v in versions
                ],
            )
            return cur.rowcount

    def fail(
        self, version: Version, error: str, *, max_failures: int, delay: float, final_reason: str
    ) -> FileState:
        """An unexpected error while processing ``version``: retry after ``delay``, or quarantine it.

        Returns the state the version is in now (``pending`` when a reprocess took it meanwhile).
        """
        now = self.clock()
        with self.db.transaction() as conn:
            row = conn.execute(
                "UPDATE files SET failures = failures + 1 WHERE id = ? AND state = ? RETURNING failures",
                (version.id, FileState.PROCESSING),
            ).fetchone()
            if row is None:
                return FileState.PENDING
            if row[0] >= max_failures:
                self._finish(conn, [Mark(version.id, FileState.QUARANTINED, final_reason)], now)
                return FileState.QUARANTINED
            conn.execute(
                "UPDATE files SET state = ?, last_error = ?, next_attempt_at = ?, claimed_at = NULL,"
                " updated_at = ? WHERE id = ?",
                (FileState.PENDING, error, now + delay, now, version.id),
            )
        return FileState.PENDING

    def release_waiting(self) -> int:
        """A master was applied (or an asset registered): parked versions are tried again."""
        return self.db.execute(
            "UPDATE files SET state = ?, next_attempt_at = 0, updated_at = ? WHERE state = ?",
            (FileState.PENDING, self.clock(), FileState.WAITING_MASTER),
        ).rowcount

    def done_shas(self, paths: Sequence[str]) -> dict[str, str]:
        """path → sha256 of its most recently applied version (the "same bytes again" check)."""
        out: dict[str, tuple[float, int, str]] = {}
        for path, sha, done_at, vid in self.db.select_in(
            "SELECT path, sha256, done_at, id FROM files WHERE state = 'done' AND sha256 IS NOT NULL"
            " AND path IN ({marks})",
            paths,
        ):
            if path not in out or (done_at, vid) > out[path][:2]:
                out[path] = (done_at, vid, sha)
        return {path: sha for path, (_, _, sha) in out.items()}

    def applied_master_sha(self) -> str | None:
        row = self.db.execute(
            "SELECT sha256 FROM files WHERE kind = 'master' AND state = 'done' AND sha256 IS NOT NULL"
            " ORDER BY done_at DESC, id DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else None

    # -- reprocess -------------------------------------------------------------------
    def requeue(self, version_ids: Iterable[int]) -> int:
        """Queue versions again, bypassing the 'same bytes already done' check (also while processing)."""
        with self.db.transaction():
            return self.db.update_in(
                "UPDATE files SET state = ?, force = 1, failures = 0, next_attempt_at = 0, updated_at = ?"
                " WHERE id IN ({marks})",
                list(version_ids),
                (FileState.PENDING, self.clock()),
            )

    def versions_for(
        self,
        *,
        paths: Iterable[str] = (),
        secids: Iterable[int] = (),
        since_ns: int | None = None,
        everything: bool = False,
    ) -> list[Version]:
        """Newest non-superseded version of each selected path (for ``reprocess``)."""
        rows = self.db.execute(
            "SELECT * FROM files f WHERE state NOT IN (?, ?)"
            " AND id = (SELECT max(id) FROM files g WHERE g.path = f.path AND g.state != ?)"
            " ORDER BY mtime_ns, id",
            (FileState.SUPERSEDED, FileState.SKIPPED, FileState.SUPERSEDED),
        ).fetchall()
        path_set, secid_set = set(paths), {str(s) for s in secids}
        picked = []
        for row in rows:
            held = set((row["secids"] or "").split(",")) - {""}
            if (
                everything
                or row["path"] in path_set
                or (secid_set and held & secid_set)
                or (since_ns is not None and row["mtime_ns"] >= since_ns)
            ):
                picked.append(_version(row))
        return picked

    def track(self, version_ids: Iterable[int]) -> dict[int, Tracked]:
        """id → where each version stands now (``reprocess --wait`` polls this)."""
        out: dict[int, Tracked] = {}
        for row in self.db.select_in(
            "SELECT id, path, state, coalesce(rows, 0), coalesce(last_error, '') FROM files"
            " WHERE id IN ({marks})",
            list(version_ids),
        ):
            out[row[0]] = Tracked(row[1], FileState(row[2]), row[3], row[4])
        return out

    # -- status and health -----------------------------------------------------------
    def depth(self) -> int:
        return self.db.execute(
            "SELECT count(*) FROM files WHERE state IN (?, ?)", (FileState.PENDING, FileState.PROCESSING)
        ).fetchone()[0]

    def oldest_pending_age(self) -> float:
        row = self.db.execute(
            "SELECT min(discovered_at) FROM files WHERE state IN (?, ?)",
            (FileState.PENDING, FileState.PROCESSING),
        ).fetchone()
        return self.clock() - row[0] if row and row[0] else 0.0

    def processing_age(self) -> tuple[float, str]:
        """(seconds, path) of the version held ``processing`` longest; (0, '') when none is."""
        row = self.db.execute(
            "SELECT claimed_at, path FROM files WHERE state = ? ORDER BY claimed_at LIMIT 1",
            (FileState.PROCESSING,),
        ).fetchone()
        return (self.clock() - row[0], row[1]) if row and row[0] else (0.0, "")

    def stalled_age(self) -> tuple[float, str]:
        """(seconds, path): how long the oldest due pending version has waited without moving."""
        now = self.clock()
        row = self.db.execute(
            "SELECT updated_at, path FROM files WHERE state = ? AND next_attempt_at <= ?"
            " ORDER BY updated_at LIMIT 1",
            (FileState.PENDING, now),
        ).fetchone()
        return (now - row[0], row[1]) if row else (0.0, "")

    def counts(self) -> dict[str, dict[str, int]]:
        """kind → state → number of versions."""
        out: dict[str, dict[str, int]] = {}
        for kind, state, n in self.db.execute("SELECT kind, state, count(*) FROM files GROUP BY kind, state"):
            out.setdefault(kind, {})[state] = n
        return out

    def newest_in(self, state: FileState) -> int:
        """Paths whose newest version is in ``state`` (a fixed re-delivery hides the old problem)."""
        return self.db.execute(
            "SELECT count(*) FROM files f WHERE state = ?"
            " AND id = (SELECT max(id) FROM files g WHERE g.path = f.path)",
            (state,),
        ).fetchone()[0]

    def listing(self, states: Iterable[str], limit: int = 50) -> list[dict[str, object]]:
        """Paths whose newest version is in one of ``states``, most recent first."""
        chosen = list(states)
        marks = ",".join("?" for _ in chosen)
        rows = self.db.execute(
            f"SELECT path, kind, state, attempts, last_error, updated_at FROM files f WHERE state IN ({marks})"
            " AND id = (SELECT max(id) FROM files g WHERE g.path = f.path)"
            " ORDER BY updated_at DESC LIMIT ?",
            (*chosen, limit),
        )
        return [dict(r) for r in rows]

    def deferred(self, limit: int = 50) -> list[dict[str, object]]:
        """Pending versions that failed before and wait for their next attempt."""
        rows = self.db.execute(
            "SELECT path, kind, state, attempts, last_error, updated_at, next_attempt_at FROM files"
            " WHERE state = ? AND last_error IS NOT NULL AND attempts > 0 ORDER BY updated_at DESC LIMIT ?",
            (FileState.PENDING, limit),
        )
        return [dict(r) for r in rows]

    def datasets(self) -> dict[str, int]:
        """dataset → bar files applied (the datasets a store holds, known without asking it)."""
        rows = self.db.execute(
            "SELECT dataset, count(*) FROM files WHERE state = ? AND dataset IS NOT NULL GROUP BY dataset",
            (FileState.DONE,),
        )
        return dict(rows.fetchall())

    def secids_of_dataset(self, dataset: str) -> set[int]:
        """SecIds of the applied bar files of ``dataset``."""
        out: set[int] = set()
        for (held,) in self.db.execute(
            "SELECT secids FROM files WHERE state = ? AND dataset = ? AND secids != ''",
            (FileState.DONE, dataset),
        ):
            out.update(int(s) for s in held.split(","))
        return out

    def last_success(self) -> float | None:
        row = self.db.execute("SELECT max(done_at) FROM files WHERE state = ?", (FileState.DONE,)).fetchone()
        return row[0] if row else None
