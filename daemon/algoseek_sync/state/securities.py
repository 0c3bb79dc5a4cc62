"""SecId → asset mapping with its history, ticker history and pending registrations.

This is pipeline state (it routes bars), so it lives in the state database whatever
the backend is. A SecId's bars go to its *active* (in the newest master) and
*registered* (the backend has it) identifiers.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from algoseek_sync.backends.base import AssetReport, AssetSpec
from algoseek_sync.formats.tickers import TickerSpan
from algoseek_sync.state.database import Database

if TYPE_CHECKING:
    from algoseek_sync.formats.master import SecurityMaster


def asset_specs(master: SecurityMaster) -> list[AssetSpec]:
    """What the backend must hold for ``master``: one spec per (SecId, identifier)."""
    frame = master.assets
    current: dict[int, str] = {}
    for span in master.tickers:
        if span.secid not in current or span.end >= current[span.secid][1]:
            current[span.secid] = (span.ticker, span.end)  # type: ignore[assignment]

    def column(name: str) -> list[object]:
        return frame[name].tolist() if name in frame.columns else [None] * len(frame)

    def last(value: object) -> str:
        return str(value or "").split(";")[-1]

    specs = []
    for secid, uid, kind, name, isin, exchange in zip(  # column-wise: no per-row dicts of every column
        column("secid"),
        column("unique_identifier"),
        column("kind"),
        column("name"),
        column("isin"),
        column("primaryexchange"),
        strict=True,
    ):
        specs.append(
            AssetSpec(
                unique_identifier=str(uid),
                secid=int(secid),  # type: ignore[call-overload]
                kind=str(kind),
                ticker=current.get(int(secid), ("", ""))[0],  # type: ignore[call-overload]
                name=last(name),
                isin=last(isin),
                exchange=last(exchange),
            )
        )
    return specs


class Securities:
    """Reads and writes of the mapping tables. Writes join any open transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def routes(self, secids: Iterable[int]) -> dict[int, list[str]]:
        """SecId → identifiers bars are written to (active and registered)."""
        wanted = list(secids)
        out: dict[int, list[str]] = {}
        for secid, uid in self.db.select_in(
            "SELECT secid, unique_identifier FROM secid_assets WHERE active = 1 AND registered = 1"
            " AND secid IN ({marks}) ORDER BY secid, is_latest, unique_identifier",
            wanted,
        ):
            out.setdefault(secid, []).append(uid)
        return out

    def known_secids(self, secids: Iterable[int]) -> set[int]:
        """SecIds present in the newest master (registered or not)."""
        wanted = list(secids)
        return {
            row[0]
            for row in self.db.select_in(
                "SELECT DISTINCT secid FROM secid_assets WHERE active = 1 AND secid IN ({marks})", wanted
            )
        }

    def routed_figis(self) -> dict[str, int]:
        """FIGI → SecId for the routing in force (a conflicting master row never moves these)."""
        return {
            r[0]: r[1]
            for r in self.db.execute(
                "SELECT unique_identifier, secid FROM secid_assets WHERE active = 1 AND kind = 'figi'"
            )
        }

    def has_master(self) -> bool:
        return self.db.execute("SELECT 1 FROM masters LIMIT 1").fetchone() is not None

    def registered_uids(self) -> set[str]:
        return {
            r[0] for r in self.db.execute("SELECT unique_identifier FROM secid_assets WHERE registered = 1")
        }

    def history_sources(self, targets: dict[int, list[str]]) -> dict[int, tuple[str, list[str]]]:
        """For SecIds gaining identifiers: an identifier that already holds their history."""
        copies: dict[int, tuple[str, list[str]]] = {}
        for secid, new_uids in targets.items():
            row = self.db.execute(
                "SELECT unique_identifier FROM secid_assets WHERE secid = ? AND registered = 1"
                " ORDER BY active DESC, is_latest DESC LIMIT 1",
                (secid,),
            ).fetchone()
            if row and new_uids:
                copies[secid] = (row[0], new_uids)
        return copies

    def plan_new_links(self, master: SecurityMaster, ready: set[str]) -> dict[int, list[str]]:
        """Identifiers that become writable with this master, for SecIds already known."""
        have = {
            (r[0], r[1])
            for r in self.db.execute("SELECT secid, unique_identifier FROM secid_assets WHERE registered = 1")
        }
        known_secids = {s for s, _ in have}
        gains: dict[int, list[str]] = {}
        for secid, uids in master.uids_by_secid().items():
            if secid not in known_secids:
                continue
            new = [u for u in uids if u in ready and (secid, u) not in have]
            if new:
                gains[secid] = new
        return gains

    def apply_master(
        self,
        master: SecurityMaster,
        report: AssetReport,
        specs: Sequence[AssetSpec],
        *,
        file_id: int,
        sha256: str,
    ) -> int:
        """Record a master as the current one (links, history, tickers, registrations), all or nothing."""
        now = time.time()
        with self.db.transaction() as conn:
            master_id = conn.execute(
                "INSERT INTO masters (file_id, sha256, applied_at, secids, assets, invalid_figis)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (file_id, sha256, now, master.secid_count, len(master.assets), master.invalid_figis),
            ).lastrowid
            conn.execute("UPDATE secid_assets SET active = 2 WHERE active = 1")
            ready = report.ready() | self.registered_uids()
            assets = master.assets
            conn.executemany(
                "INSERT INTO secid_assets (secid, unique_identifier, kind, is_latest, active, registered,"
                " added_master, added_at) VALUES (?, ?, ?, ?, 1, ?, ?, ?)"
                " ON CONFLICT (secid, unique_identifier) DO UPDATE SET active = 1, is_latest = excluded.is_latest,"
                " registered = max(registered, excluded.registered), removed_master = NULL, removed_at = NULL",
                [
                    (int(secid), uid, kind, int(uid == latest), int(uid in ready), master_id, now)
                    for secid, uid, kind, latest in zip(
                        assets["secid"],
                        assets["unique_identifier"],
                        assets["kind"],
                        assets["latest_figi"],
                        strict=True,
                    )
                ],
            )
            conn.execute(
                "UPDATE secid_assets SET active = 0, removed_master = ?, removed_at = ? WHERE active = 2",
                (master_id, now),
            )
            listed = sorted({int(s) for s in assets["secid"]})
            for table, spans in (("tickers", master.tickers), ("names", master.names)):
                # only the SecIds this master lists: the others keep the history of the last one that did
                self.db.update_in(f"DELETE FROM {table} WHERE secid IN ({{marks}})", listed)
                conn.executemany(
                    f"INSERT INTO {table} VALUES (?, ?, ?, ?)",
                    [(s.secid, s.ticker, s.start, s.end) for s in spans],
                )
            self.record_registrations(report, {s.unique_identifier: s for s in specs})
        assert master_id is not None
        return master_id

    # -- registrations ----------------------------------------------------------------
    def record_registrations(self, report: AssetReport, specs: dict[str, AssetSpec]) -> None:
        """Persist outcomes: ready ones become writable, failures wait for their next attempt."""
        with self.db.transaction() as conn:
            self._record(conn, report, specs)

    @staticmethod
    def _record(conn: Any, report: AssetReport, specs: dict[str, AssetSpec]) -> None:
        for outcome in report.outcomes:
            uid = outcome.unique_identifier
            if outcome.status in ("existing", "registered"):
                conn.execute("UPDATE secid_assets SET registered = 1 WHERE unique_identifier = ?", (uid,))
                conn.execute("DELETE FROM registrations WHERE unique_identifier = ?", (uid,))
                continue
            spec = specs[uid]
            state = "refused" if outcome.status == "refused" else "retry"
            conn.execute(
                "INSERT INTO registrations (unique_identifier, secid, kind, state, attempts, last_error,"
                " next_attempt_at) VALUES (?, ?, ?, ?, 1, ?, ?) ON CONFLICT (unique_identifier) DO UPDATE SET"
                " state = excluded.state, attempts = attempts + 1, last_error = excluded.last_error,"
                " next_attempt_at = excluded.next_attempt_at",
                (uid, spec.secid, spec.kind, state, outcome.message, outcome.retry_at or 0),
            )

    def refuse(self, refused: dict[str, str]) -> None:
        """The backend refused to write these assets: hold their bars until an operator acts."""
        with self.db.transaction() as conn:
            for uid, reason in refused.items():
                conn.execute("UPDATE secid_assets SET registered = 0 WHERE unique_identifier = ?", (uid,))
                conn.execute(
                    "INSERT INTO registrations (unique_identifier, secid, kind, state, attempts, last_error,"
                    " next_attempt_at) SELECT unique_identifier, secid, kind, 'refused', 1, ?, 0 FROM secid_assets"
                    " WHERE unique_identifier = ? ORDER BY active DESC LIMIT 1"
                    " ON CONFLICT (unique_identifier) DO UPDATE SET state = 'refused',"
                    " attempts = attempts + 1, last_error = excluded.last_error",
                    (reason, uid),
                )

    def due_registrations(self, now: float) -> list[AssetSpec]:
        rows = self.db.execute(
            "SELECT unique_identifier, secid, kind FROM registrations WHERE state = 'retry' AND next_attempt_at <= ?",
            (now,),
        )
        return [AssetSpec(unique_identifier=r[0], secid=r[1], kind=r[2]) for r in rows]

    def registration_problems(self) -> list[dict[str, object]]:
        rows = self.db.execute(
            "SELECT unique_identifier, secid, state, attempts, last_error, next_attempt_at FROM registrations"
            " ORDER BY secid"
        )
        return [dict(r) for r in rows]

    # -- reads for the CLI -------------------------------------------------------------
    def uids_of(self, secid: int) -> list[str]:
        return [
            r[0]
            for r in self.db.execute(
                "SELECT unique_identifier FROM secid_assets WHERE secid = ? ORDER BY active DESC, unique_identifier",
                (secid,),
            )
        ]

    def listing(self, secids: Sequence[int]) -> dict[int, list[tuple[int, int]]]:
        """SecId → its listing periods (the master's ticker date ranges) as YYYYMMDD pairs."""
        out: dict[int, list[tuple[int, int]]] = {}
        for secid, start, end in self.db.select_in(
            "SELECT secid, start_date, end_date FROM tickers WHERE secid IN ({marks})", list(secids)
        ):
            out.setdefault(secid, []).append((int(start.replace("-", "")), int(end.replace("-", ""))))
        return out

    def listed_on(self, day: int) -> set[int]:
        """SecIds of the master in force listed on ``day`` (YYYYMMDD): a ticker span covers it."""
        iso = f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"
        rows = self.db.execute(
            "SELECT DISTINCT t.secid FROM tickers t WHERE ? BETWEEN t.start_date AND t.end_date"
            " AND EXISTS (SELECT 1 FROM secid_assets a WHERE a.secid = t.secid AND a.active = 1)",
            (iso,),
        )
        return {r[0] for r in rows}

    def latest_uids(self, secids: Sequence[int]) -> dict[int, str]:
        """SecId → its current identifier (the latest FIGI, or its custom id)."""
        out: dict[int, str] = {}
        for secid, uid in self.db.select_in(
            "SELECT secid, unique_identifier FROM secid_assets WHERE active = 1 AND secid IN ({marks})"
            " ORDER BY is_latest",
            list(secids),
        ):
            out[secid] = uid  # ordered by is_latest: the latest one comes last and wins
        return out

    def ticker_spans(self, ticker: str) -> list[TickerSpan]:
        rows = self.db.execute(
            "SELECT secid, ticker, start_date, end_date FROM tickers WHERE ticker = ?", (ticker,)
        )
        return [TickerSpan(*r) for r in rows]

    def asset_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for kind, active, n in self.db.execute(
            "SELECT kind, active, count(*) FROM secid_assets GROUP BY kind, active"
        ):
            out[f"{kind}{'' if active else '_inactive'}"] = n
        return out

    def secids_with_uids(self, uids: Sequence[str]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for secid, uid in self.db.select_in(
            "SELECT secid, unique_identifier FROM secid_assets WHERE unique_identifier IN ({marks})",
            list(uids),
        ):
            out.setdefault(secid, []).append(uid)
        return out

    def tickers_like(self, ticker: str) -> list[str]:
        """Tickers equal to ``ticker`` but for case (for a hint when an exact lookup finds nothing)."""
        rows = self.db.execute(
            "SELECT DISTINCT ticker FROM tickers WHERE ticker = ? COLLATE NOCASE AND ticker != ? ORDER BY ticker",
            (ticker, ticker),
        )
        return [r[0] for r in rows]
