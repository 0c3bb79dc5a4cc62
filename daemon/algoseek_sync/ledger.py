"""The durable record of file versions and their states (the truth; events are hints).

A version is one (path, size, mtime) of a file under the drop root; its sha256 is
filled in when the worker reads it. States follow docs/architecture: ``pending`` →
``processing`` → ``done`` | ``quarantined`` | ``waiting_master``; ``superseded`` when
a newer version of the same path arrived first; ``skipped`` for entries that are not
ours to read (links, FIFOs, unrelated names, files that vanished).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from algoseek_sync.db import Database

ACTIVE_STATES = ("pending", "processing", "waiting_master")
ALL_STATES = ("pending", "processing", "done", "waiting_master", "quarantined", "superseded", "skipped")


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


def _version(row: object) -> Version:
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

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- discovery (watcher / scan) ------------------------------------------------
    def record(self, path: str, size: int, mtime_ns: int, kind: str, *, skip_reason: str = "") -> bool:
        """Record a version if it is new; return True when it was. Older queued versions are superseded."""
        now = time.time()
        state = "skipped" if skip_reason else "pending"
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT OR IGNORE INTO files (path, size, mtime_ns, kind, state, last_error, discovered_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (path, size, mtime_ns, kind, state, skip_reason or None, now, now),
            )
            if not cur.rowcount:
                return False
            conn.execute(
                "UPDATE files SET state = 'superseded', last_error = 'a newer version of this file arrived',"
                " updated_at = ? WHERE path = ? AND id != ? AND state IN ('pending', 'waiting_master')",
                (now, path, cur.lastrowid),
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

    # -- worker --------------------------------------------------------------------
    def recover(self) -> int:
        """After a crash: versions left ``processing`` go back to ``pending``."""
        with self.db.transaction() as conn:
            return conn.execute(
                "UPDATE files SET state = 'pending', updated_at = ? WHERE state = 'processing'",
                (time.time(),),
            ).rowcount

    def _claim(self, rows: Iterable[object]) -> list[Version]:
        versions = [_version(r) for r in rows]
        now = time.time()
        for v in versions:
            self.db.execute(
                "UPDATE files SET state = 'processing', attempts = attempts + 1, updated_at = ? WHERE id = ?",
                (now, v.id),
            )
        return versions

    def claim_master(self) -> Version | None:
        """The newest pending master. Older ones stay pending until it is applied (it may be broken)."""
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM files WHERE kind = 'master' AND state = 'pending' AND next_attempt_at <= ?"
                " ORDER BY mtime_ns DESC, id DESC LIMIT 1",
                (time.time(),),
            ).fetchall()
            return self._claim(rows)[0] if rows else None

    def supersede_older_masters(self, applied: Version) -> int:
        """``applied`` is in force: pending masters delivered before it will never be applied."""
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT id FROM files WHERE kind = 'master' AND state = 'pending' AND id != ?"
                " AND (mtime_ns < ? OR (mtime_ns = ? AND id < ?))",
                (applied.id, applied.mtime_ns, applied.mtime_ns, applied.id),
            ).fetchall()
            for row in rows:
                self._finish(row["id"], "superseded", "a newer security master was applied")
        return len(rows)

    def claim_bars(self, limit: int) -> list[Version]:
        """Up to ``limit`` due pending bar versions, oldest delivery first."""
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM files WHERE kind = 'bars' AND state = 'pending' AND next_attempt_at <= ?"
                " ORDER BY mtime_ns, id LIMIT ?",
                (time.time(), limit),
            ).fetchall()
            return self._claim(rows)

    def _finish(self, version_id: int, state: str, error: str | None, **extra: object) -> None:
        sets = ", ".join(f"{k} = :{k}" for k in extra)
        now = time.time()
        self.db.execute(
            f"UPDATE files SET state = :state, last_error = :error, updated_at = :now,"
            f" done_at = CASE WHEN :state = 'done' THEN :now ELSE done_at END, force = 0"
            f"{', ' + sets if sets else ''} WHERE id = :id",
            {"state": state, "error": error, "now": now, "id": version_id, **extra},
        )

    def mark_done(
        self, version_id: int, *, sha256: str, rows: int, secids: str, note: str | None = None
    ) -> None:
        self._finish(version_id, "done", note, sha256=sha256, rows=rows, secids=secids)

    def mark_waiting(self, version_id: int, reason: str, *, sha256: str, rows: int, secids: str) -> None:
        self._finish(version_id, "waiting_master", reason, sha256=sha256, rows=rows, secids=secids)

    def mark_quarantined(self, version_id: int, reason: str, *, sha256: str | None = None) -> None:
        self._finish(version_id, "quarantined", reason, sha256=sha256)

    def mark_superseded(self, version_id: int, reason: str) -> None:
        self._finish(version_id, "superseded", reason)

    def mark_skipped(self, version_id: int, reason: str) -> None:
        self._finish(version_id, "skipped", reason)

    def defer(self, version_id: int, reason: str, delay: float) -> None:
        """Back to ``pending`` after a transient failure (backend outage), not before ``delay`` s."""
        self.db.execute(
            "UPDATE files SET state = 'pending', last_error = ?, next_attempt_at = ?, updated_at = ? WHERE id = ?",
            (reason, time.time() + delay, time.time(), version_id),
        )

    def release_waiting(self) -> int:
        """A master was applied: parked versions are tried again."""
        return self.db.execute(
            "UPDATE files SET state = 'pending', next_attempt_at = 0, updated_at = ? WHERE state = 'waiting_master'",
            (time.time(),),
        ).rowcount

    def last_done_sha(self, path: str) -> str | None:
        row = self.db.execute(
            "SELECT sha256 FROM files WHERE path = ? AND state = 'done' ORDER BY done_at DESC, id DESC LIMIT 1",
            (path,),
        ).fetchone()
        return row[0] if row else None

    def applied_master_sha(self) -> str | None:
        row = self.db.execute(
            "SELECT sha256 FROM files WHERE kind = 'master' AND state = 'done' AND sha256 IS NOT NULL"
            " ORDER BY done_at DESC, id DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else None

    # -- reprocess -------------------------------------------------------------------
    def requeue(self, version_ids: Iterable[int]) -> int:
        """Queue versions again, bypassing the 'same bytes already done' check."""
        count = 0
        with self.db.transaction() as conn:
            for vid in version_ids:
                count += conn.execute(
                    "UPDATE files SET state = 'pending', force = 1, next_attempt_at = 0, updated_at = ?"
                    " WHERE id = ?",
                    (time.time(), vid),
                ).rowcount
        return count

    # -- status ------------------------------------------------------------------------
    def depth(self) -> int:
        return self.db.execute(
            "SELECT count(*) FROM files WHERE state IN ('pending', 'processing')"
        ).fetchone()[0]

    def oldest_pending_age(self) -> float:
        row = self.db.execute(
            "SELECT min(discovered_at) FROM files WHERE state IN ('pending', 'processing')"
        ).fetchone()
        return time.time() - row[0] if row and row[0] else 0.0

    def counts(self) -> dict[str, dict[str, int]]:
        """kind → state → number of versions."""
        out: dict[str, dict[str, int]] = {}
        for kind, state, n in self.db.execute("SELECT kind, state, count(*) FROM files GROUP BY kind, state"):
            out.setdefault(kind, {})[state] = n
        return out

    def listing(self, states: Iterable[str], limit: int = 50) -> list[dict[str, object]]:
        """Paths whose newest version is in one of ``states`` (a fixed re-delivery hides the old problem)."""
        marks = ",".join("?" for _ in states)
        rows = self.db.execute(
            f"SELECT path, kind, state, attempts, last_error, updated_at FROM files f WHERE state IN ({marks})"
            " AND id = (SELECT max(id) FROM files g WHERE g.path = f.path)"
            " ORDER BY updated_at DESC LIMIT ?",
            (*states, limit),
        )
        return [dict(r) for r in rows]

    def last_success(self) -> float | None:
        row = self.db.execute("SELECT max(done_at) FROM files WHERE state = 'done'").fetchone()
        return row[0] if row else None

    def versions_for(
        self,
        *,
        paths: Iterable[str] = (),
        secids: Iterable[int] = (),
        since_ns: int | None = None,
        everything: bool = False,
    ) -> list[Version]:
        """Newest done/quarantined/waiting version of each selected path (for ``reprocess``)."""
        rows = self.db.execute(
            "SELECT * FROM files f WHERE state IN ('done', 'quarantined', 'waiting_master', 'pending')"
            " AND id = (SELECT max(id) FROM files g WHERE g.path = f.path AND g.state != 'superseded')"
            " ORDER BY mtime_ns, id"
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
