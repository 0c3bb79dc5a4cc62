"""Writes that never lose a day, whatever the 9.x server's range overwrite does.

The data API writes every chunk with overwrite: for each asset in the chunk it deletes every
stored row between the asset's first and last time in the chunk, then inserts the chunk. A
frame holding corrected days 2 and 6 of an asset would delete its days 3-5. So each asset's
frame is made *range-complete* before it is sent: every row the store holds for that asset
between the first and last new time, with the new rows replacing stored ones of the same time.
Sending that union deletes and re-inserts exactly what was there plus the change; sending it
twice leaves the same rows, so a crash between the platform write and the ledger commit
repeats harmlessly.

Any time-ordered slice of a range-complete frame is range-complete for the assets in it (the
SDK sorts by time and cuts chunks of at most 10,000 rows, halving on 413), and so is a split
by asset (:func:`split`), which keeps each upload inside the SDK's 60-second deadline.

Frames here are node frames of :mod:`..mainsequence.frames` (index ``time_index`` UTC,
``unique_identifier``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from algoseek_sync.backends.mainsequence.frames import INDEX, changed_rows

UID = INDEX[1]


def ranges(frame: pd.DataFrame) -> pd.DataFrame:
    """Per identifier, the first and last time of ``frame`` (columns ``start``, ``end``)."""
    times = frame.index.get_level_values(INDEX[0])
    uids = frame.index.get_level_values(UID)
    spans = pd.DataFrame({"t": times, UID: uids}).groupby(UID)["t"].agg(["min", "max"])
    return spans.rename(columns={"min": "start", "max": "end"})


def within_ranges(stored: pd.DataFrame, spans: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``stored`` inside their identifier's span (identifiers without a span are left out)."""
    if stored.empty or spans.empty:
        return stored.iloc[0:0]
    uids = stored.index.get_level_values(UID)
    times = stored.index.get_level_values(INDEX[0])
    start = spans["start"].reindex(uids).to_numpy()
    end = spans["end"].reindex(uids).to_numpy()
    known = pd.notna(start)
    keep = known.copy()
    keep[known] = (times[known] >= start[known]) & (times[known] <= end[known])
    return stored[keep]


def range_complete(new: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """``new`` plus every stored row inside each identifier's span of ``new`` that ``new`` does not replace.

    ``stored`` columns ``new`` lacks are dropped (the write carries ``new``'s columns only; a
    column the frame omits is written empty, as a column the delivery did not carry).
    """
    if new.empty:
        return new
    kept = within_ranges(stored, ranges(new))
    kept = kept[~kept.index.isin(new.index)]
    if kept.empty:
        return new.sort_index()
    kept = kept.reindex(columns=new.columns)
    return pd.concat([new, kept.astype(new.dtypes.to_dict(), errors="ignore")]).sort_index()


def unchanged(new: pd.DataFrame, stored: pd.DataFrame) -> bool:
    """True when the store already holds every row of ``new`` with the same values (nothing to send)."""
    return changed_rows(new, stored).empty


def split(frame: pd.DataFrame, max_rows: int) -> Iterator[pd.DataFrame]:
    """Frames of at most ``max_rows`` rows (more only for one identifier's run), each whole per identifier.

    An identifier with more rows than ``max_rows`` is cut into consecutive time slices, each of
    which is range-complete for it on its own.
    """
    if frame.empty:
        return
    uids = frame.index.get_level_values(UID)
    counts = pd.Series(uids).value_counts(sort=False)
    batch: list[str] = []
    size = 0
    for uid, count in counts.items():
        if count > max_rows:
            own = frame[uids == uid]
            for start in range(0, len(own), max_rows):
                yield own.iloc[start : start + max_rows]
            continue
        if batch and size + count > max_rows:
            yield frame[uids.isin(batch)]
            batch, size = [], 0
        batch.append(str(uid))
        size += int(count)
    if batch:
        yield frame[uids.isin(batch)]
