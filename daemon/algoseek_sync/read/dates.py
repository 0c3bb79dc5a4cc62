"""The dates a reader may pass: ``"YYYY-MM-DD"``, ``datetime.date``/``datetime``, ``pandas.Timestamp``.

Pure. One place decides what a date is, so the API and the CLI accept and refuse the same values.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, TypeAlias

from algoseek_sync.errors import UserInputError

#: a trade date as a reader may give it (pandas.Timestamp is a datetime.datetime)
DateLike: TypeAlias = "str | dt.date | Any"


def iso_day(value: DateLike | None, what: str) -> str | None:
    """``value`` as ``YYYY-MM-DD`` (``None`` stays ``None``); anything else is a one-line error."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            try:
                return dt.date.fromisoformat(text).isoformat()
            except ValueError:
                pass
    if type(value).__name__ == "datetime64":  # numpy, without importing it
        return iso_day(str(value)[:10], what)
    raise UserInputError(f"{what}: {value!r} is not a date (YYYY-MM-DD, datetime.date or pandas.Timestamp)")


def day_number(iso: str) -> int:
    """``YYYY-MM-DD`` → ``YYYYMMDD``, the store's integer trade date."""
    return int(iso.replace("-", ""))


def date_range(start: DateLike | None, end: DateLike | None) -> tuple[str | None, str | None]:
    """A checked ``[start, end]``: a start after the end can match nothing, so it is a usage error."""
    first, last = iso_day(start, "start"), iso_day(end, "end")
    if first and last and first > last:
        raise UserInputError(f"start {first} is after end {last}: the range holds no trade date")
    return first, last
