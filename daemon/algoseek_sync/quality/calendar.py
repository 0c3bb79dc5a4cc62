"""Exchange trading sessions (``exchange_calendars``), as sorted YYYYMMDD integers.

Building a calendar takes about a second, so the sessions are cached in the state
database (``calendar_sessions``) and rebuilt once a day or when the library's version
changes: a ``run --once`` on one file reads ~10,000 integers instead.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from algoseek_sync.errors import ConfigError

if TYPE_CHECKING:
    from algoseek_sync.state.database import Database

FIRST_YEAR = 1990
REFRESH_SECONDS = 86_400.0


@dataclass(frozen=True)
class Sessions:
    """The sessions of one exchange calendar, with their closes (UTC epoch seconds)."""

    name: str
    dates: np.ndarray  # int64 YYYYMMDD, sorted
    closes: np.ndarray  # float64 epoch seconds of each session's close (early closes included)

    @cached_property
    def _index(self) -> dict[int, int]:
        return {int(d): i for i, d in enumerate(self.dates.tolist())}

    def is_session(self, dates: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(self.dates, dates)
        pos = np.minimum(pos, len(self.dates) - 1)
        return self.dates[pos] == dates

    def between(self, first: int, last: int) -> np.ndarray:
        """Sessions with first <= date <= last."""
        lo = np.searchsorted(self.dates, first, side="left")
        hi = np.searchsorted(self.dates, last, side="right")
        return self.dates[lo:hi]

    def count_between(self, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Number of sessions in each [first, last] (vectorised over many ranges)."""
        return np.searchsorted(self.dates, last, side="right") - np.searchsorted(
            self.dates, first, side="left"
        )

    def last_completed(self, now: float) -> int | None:
        """The newest session whose close is in the past."""
        pos = int(np.searchsorted(self.closes, now, side="right")) - 1
        return int(self.dates[pos]) if pos >= 0 else None

    def close_of(self, session: int) -> float:
        return float(self.closes[self._index[session]])


def build(name: str, years_ahead: int = 1) -> Sessions:
    """Sessions from the library (slow: about a second)."""
    import exchange_calendars as xc
    import pandas as pd

    end = dt.date.today().replace(month=12, day=31) + dt.timedelta(days=365 * years_ahead)
    try:
        calendar = xc.get_calendar(name, start=f"{FIRST_YEAR}-01-01", end=end.isoformat())
    except xc.errors.InvalidCalendarName:
        raise ConfigError(
            f"configuration error: 'quality.calendar' {name!r} is not an exchange_calendars calendar (e.g. XNYS)"
        ) from None
    sessions = calendar.sessions
    dates = (sessions.year * 10000 + sessions.month * 100 + sessions.day).to_numpy(dtype=np.int64)
    closes = pd.DatetimeIndex(calendar.schedule["close"]).as_unit("s").asi8.astype(np.float64)
    return Sessions(name, dates, closes)


def library_version() -> str:
    from importlib.metadata import version

    return version("exchange_calendars")


def load(db: Database, name: str, *, now: float | None = None) -> Sessions:
    """Sessions of ``name``, from the state database's cache when it is fresh."""
    now = time.time() if now is None else now
    row = db.execute(
        "SELECT built_at, version, dates, closes FROM calendar_sessions WHERE name = ?", (name,)
    ).fetchone()
    if row is not None and now - row[0] < REFRESH_SECONDS and row[1] == library_version():
        return Sessions(name, np.frombuffer(row[2], dtype=np.int64), np.frombuffer(row[3], dtype=np.float64))
    sessions = build(name)
    if not db.readonly:
        with db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO calendar_sessions (name, built_at, version, dates, closes)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, now, library_version(), sessions.dates.tobytes(), sessions.closes.tobytes()),
            )
    return sessions


def due_time(session: int, expected_by: tuple[dt.time, ZoneInfo]) -> float:
    """When the delivery of ``session`` is due: its date at the configured local time (epoch seconds)."""
    clock, zone = expected_by
    day = dt.date(session // 10000, session // 100 % 100, session % 100)
    return dt.datetime.combine(day, clock, tzinfo=zone).timestamp()
