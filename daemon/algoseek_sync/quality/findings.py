"""The ``findings`` table: open, re-seen and resolved data-quality findings.

Re-checking a SecId replaces its findings of the kinds checked: a finding found again
is kept (``last_seen`` moves), one no longer found is resolved (``resolved_at``), a new one
is opened. So a re-delivery that fills a gap resolves the gap's finding, and the history
of what was wrong stays queryable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from algoseek_sync.quality.kinds import SEVERITY, Finding

if TYPE_CHECKING:
    from algoseek_sync.state.database import Database

NO_SECID = -1  # dataset-level findings (late delivery)
NO_DATE = 0


@dataclass(frozen=True)
class Filter:
    secids: Sequence[int] = ()
    kind: str | None = None
    severity: str | None = None
    since: int | None = None  # YYYYMMDD: findings ending on or after
    dataset: str | None = None
    include_resolved: bool = False


class Findings:
    """Writes join any open transaction."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def replace(
        self,
        dataset: str,
        secids: Iterable[int],
        kinds: Sequence[str],
        found: Sequence[Finding],
        uids: dict[int, str],
        *,
        start: int | None = None,
    ) -> tuple[int, int]:
        """Make ``found`` the open findings of ``kinds`` for ``secids`` (and ``start``, when given).

        Returns (opened, resolved).
        """
        now = self.clock()
        wanted = [NO_SECID if s is None else s for s in secids]
        found_keys = {
            (f.kind, NO_SECID if f.secid is None else f.secid, f.start or NO_DATE): f for f in found
        }
        kind_marks = ",".join("?" * len(kinds))
        where_start = " AND start_date = ?" if start is not None else ""
        existing: dict[tuple[str, int, int], tuple[int, bool]] = {}
        for fid, kind, secid, start_date, resolved in self.db.select_in(
            f"SELECT id, kind, secid, start_date, resolved_at IS NOT NULL FROM findings WHERE dataset = ?"
            f" AND kind IN ({kind_marks}){where_start} AND secid IN ({{marks}})",
            wanted,
            (dataset, *kinds, *([start] if start is not None else [])),
        ):
            existing[(kind, secid, start_date)] = (fid, bool(resolved))
        opened = resolved_count = 0
        with self.db.transaction() as conn:
            gone = [
                fid for key, (fid, resolved) in existing.items() if key not in found_keys and not resolved
            ]
            if gone:
                self.db.update_in("UPDATE findings SET resolved_at = ? WHERE id IN ({marks})", gone, (now,))
                resolved_count = len(gone)
            for key, finding in found_keys.items():
                observed = json.dumps(finding.observed, sort_keys=True)
                if key in existing:
                    fid, was_resolved = existing[key]
                    conn.execute(
                        "UPDATE findings SET last_seen = ?, observed = ?, end_date = ?, resolved_at = NULL,"
                        " first_seen = CASE WHEN ? THEN ? ELSE first_seen END WHERE id = ?",
                        (now, observed, finding.end, was_resolved, now, fid),
                    )
                    opened += was_resolved
                    continue
                conn.execute(
                    "INSERT INTO findings (kind, severity, dataset, secid, unique_identifier, start_date, end_date,"
                    " observed, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        finding.kind,
                        SEVERITY[finding.kind],
                        dataset,
                        key[1],
                        uids.get(key[1]),
                        key[2],
                        finding.end,
                        observed,
                        now,
                        now,
                    ),
                )
                opened += 1
        return opened, resolved_count

    # -- reads ---------------------------------------------------------------------------
    def query(self, chosen: Filter, limit: int | None = None) -> list[dict[str, Any]]:
        """Findings newest first (by trade date), as dicts."""
        sql = "SELECT * FROM findings WHERE 1 = 1"
        params: list[object] = []
        if not chosen.include_resolved:
            sql += " AND resolved_at IS NULL"
        for column, value in (
            ("kind", chosen.kind),
            ("severity", chosen.severity),
            ("dataset", chosen.dataset),
        ):
            if value:
                sql += f" AND {column} = ?"
                params.append(value)
        if chosen.since is not None:
            sql += " AND (end_date >= ? OR end_date IS NULL)"
            params.append(chosen.since)
        if chosen.secids:
            sql += f" AND secid IN ({','.join('?' * len(chosen.secids))})"
            params += list(chosen.secids)
        sql += " ORDER BY start_date DESC, secid, kind"
        if limit:
            sql += f" LIMIT {int(limit)}"
        rows = []
        for row in self.db.execute(sql, params):
            item = dict(row)
            item["observed"] = json.loads(item["observed"] or "{}")
            item["secid"] = None if item["secid"] == NO_SECID else item["secid"]
            item["start_date"] = None if item["start_date"] == NO_DATE else item["start_date"]
            rows.append(item)
        return rows

    def of_secids(self, secids: Sequence[int]) -> list[dict[str, Any]]:
        """Every finding (open and resolved) of ``secids``: what the platform's table is rebuilt from."""
        rows = []
        for row in self.db.select_in("SELECT * FROM findings WHERE secid IN ({marks})", list(secids)):
            item = dict(row)
            item["observed"] = json.loads(item["observed"] or "{}")
            rows.append(item)
        return rows

    def counts(self) -> dict[tuple[str, str], int]:
        """(kind, severity) → open findings."""
        rows = self.db.execute(
            "SELECT kind, severity, count(*) FROM findings WHERE resolved_at IS NULL GROUP BY kind, severity"
        )
        return {(r[0], r[1]): r[2] for r in rows}
