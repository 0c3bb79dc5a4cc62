"""Runs the checks after each stored batch, on the affected SecIds only, and watches deliveries.

Never in the way of ingestion: the worker calls :meth:`Quality.after_batch` once the batch
is committed, and any failure in here is logged and contained. Time-driven checks (a
late delivery) run on the daemon's clock through :meth:`Quality.tick`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from algoseek_sync.quality.findings import Findings
from algoseek_sync.quality.kinds import HISTORY_KINDS, Finding, Params

if TYPE_CHECKING:
    from algoseek_sync.backends.base import Backend
    from algoseek_sync.config import QualityConfig
    from algoseek_sync.quality.calendar import Sessions
    from algoseek_sync.state.database import Database
    from algoseek_sync.state.securities import Securities

log = structlog.get_logger("algoseek_sync.quality")
DELIVERY_KINDS = ("not_delivered", "not_listed")
#: what the checks read of a SecId's history (besides secid and tradedate)
CHECKED_COLUMNS = ("open", "high", "low", "close", "volume", "adjustmentfactor", "adjustmentreason")


@dataclass
class Delivery:
    """One tradedate file of a batch: which SecIds it delivered for its day."""

    dataset: str
    day: int
    secids: set[int]


@dataclass
class Affected:
    """What a committed batch touched."""

    secids: dict[str, set[int]] = field(default_factory=dict)  # dataset → SecIds written
    last_day: dict[str, int] = field(default_factory=dict)  # dataset → newest trade date written
    deliveries: list[Delivery] = field(default_factory=list)

    def add(self, dataset: str, secids: Iterable[int], last_day: int) -> None:
        self.secids.setdefault(dataset, set()).update(secids)
        self.last_day[dataset] = max(self.last_day.get(dataset, 0), last_day)


class Quality:
    """Checks, findings and delivery monitoring for one state database."""

    def __init__(
        self,
        db: Database,
        config: QualityConfig,
        securities: Securities,
        backend: Backend,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.config = config
        self.securities = securities
        self.backend = backend
        self.findings = Findings(db, clock)
        self.clock = clock
        self.params = Params(config.stale_sessions, config.jump_threshold)
        self._sessions: Sessions | None = None
        self._seen: dict[str, set[int]] = {}  # dataset → SecIds that ever came in it (see _seen_in)

    @property
    def sessions(self) -> Sessions:
        if self._sessions is None:
            from algoseek_sync.quality import calendar

            self._sessions = calendar.load(self.db, self.config.calendar, now=self.clock())
        return self._sessions

    def validate(self) -> None:
        """Load the calendar now: a wrong name stops the daemon at start (exit 78), not every batch."""
        if self.config.enabled:
            _ = self.sessions

    # -- after each batch ---------------------------------------------------------------
    def after_batch(self, affected: Affected) -> None:
        """Re-check the affected SecIds (whole stored history) and the batch's tradedate deliveries."""
        if not self.config.enabled:
            return
        from algoseek_sync.formats.datasets import DATASETS
        from algoseek_sync.quality.checks import check

        for dataset, secids in affected.secids.items():
            ordered = sorted(secids)
            history = self.backend.history(dataset, ordered, self.securities.routes(ordered), CHECKED_COLUMNS)
            found = check(
                history,
                self.sessions,
                self.securities.listing(ordered),
                self.params,
                has_events=DATASETS[dataset].has_factors,
            )
            uids = self.securities.latest_uids(ordered)
            opened, resolved = self.findings.replace(dataset, ordered, HISTORY_KINDS, found, uids)
            if self.backend.publishes_findings:
                self.backend.write_findings(self.findings.of_secids(ordered))
            if opened or resolved:
                log.info(
                    "quality_checked", dataset=dataset, secids=len(ordered), opened=opened, resolved=resolved
                )
        for dataset, written in affected.secids.items():
            self._seen_in(dataset).update(written)
        for delivery in affected.deliveries:
            self._completeness(delivery)
        self._remember_last_days(affected.last_day)

    def _seen_in(self, dataset: str) -> set[int]:
        """SecIds that ever came in ``dataset``: read from the ledger once, then kept up to date."""
        if dataset not in self._seen:
            from algoseek_sync.state.ledger import Ledger

            self._seen[dataset] = Ledger(self.db).secids_of_dataset(dataset)
        return self._seen[dataset]

    def _completeness(self, delivery: Delivery) -> None:
        """A tradedate file against its dataset's universe on its day: the SecIds listed that day that
        come in this dataset (a SecId delivered only in another dataset is not missing from this one).
        Any SecId delivered and not listed is a ``not_listed``."""
        listed = self.securities.listed_on(delivery.day)
        universe = listed & self._seen_in(delivery.dataset)
        found = [
            Finding("not_delivered", secid, delivery.day, delivery.day, {"file_secids": len(delivery.secids)})
            for secid in sorted(universe - delivery.secids)
        ] + [
            Finding("not_listed", secid, delivery.day, delivery.day, {"listed_secids": len(listed)})
            for secid in sorted(delivery.secids - listed)
        ]
        secids = sorted(listed | delivery.secids)
        uids = self.securities.latest_uids(secids)
        self.findings.replace(delivery.dataset, secids, DELIVERY_KINDS, found, uids, start=delivery.day)

    def _remember_last_days(self, last_day: dict[str, int]) -> None:
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT INTO quality_state (dataset, last_session) VALUES (?, ?)"
                " ON CONFLICT (dataset) DO UPDATE SET last_session = max(last_session, excluded.last_session)",
                list(last_day.items()),
            )

    # -- on the daemon's clock ----------------------------------------------------------------
    def last_delivered(self) -> int | None:
        row = self.db.execute("SELECT max(last_session) FROM quality_state").fetchone()
        return int(row[0]) if row and row[0] else None

    def tick(self) -> bool | None:
        """Open or resolve the late-delivery finding; True while the last completed session is late.

        None when late deliveries are not checked (``quality.expected_by`` empty).
        """
        from algoseek_sync.config import parse_expected_by
        from algoseek_sync.quality.calendar import due_time

        expected_by = parse_expected_by(self.config.expected_by) if self.config.enabled else None
        if expected_by is None:
            return None
        now = self.clock()
        session = self.sessions.last_completed(now)
        if session is None:
            return False
        if now < due_time(session, expected_by):
            candidates = self.sessions.dates[self.sessions.dates < session]
            session = int(candidates[-1]) if len(candidates) else session  # today's is not due yet
        delivered = self.last_delivered() or 0
        late = delivered < session
        found = (
            [Finding("late_delivery", None, session, session, {"last_delivered": delivered or None})]
            if late
            else []
        )
        self.findings.replace("*", [None], ("late_delivery",), found, {}, start=None)  # type: ignore[list-item]
        return late
