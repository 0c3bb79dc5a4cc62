"""What the state database knows about securities and datasets, as frames: pure SQL reads.

The universe on a day comes from the dated spans (``tickers``, ``names``) each SecId kept from the
newest master that listed it, and identifiers from every link a master made (removed ones too).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from algoseek_sync.state.database import Database

if TYPE_CHECKING:
    import pandas as pd

UNIVERSE_COLUMNS = ["secid", "ticker", "name", "unique_identifier", "identifiers", "in_current_master"]
ASSET_COLUMNS = ["unique_identifier", "secid", "kind", "ticker", "name", "active"]


def _on(db: Database, table: str, column: str, day: str) -> dict[int, str]:
    """SecId → its value of ``table`` on ``day`` (``;``-joined in the rare case two spans cover it)."""
    out: dict[int, list[str]] = {}
    rows = db.execute(
        f"SELECT secid, {column} FROM {table} WHERE ? BETWEEN start_date AND end_date ORDER BY secid, start_date",
        (day,),
    )
    for secid, value in rows:
        out.setdefault(secid, []).append(value)
    return {s: ";".join(dict.fromkeys(v)) for s, v in out.items()}


def identifiers(db: Database, secids: Sequence[int]) -> dict[int, list[str]]:
    """SecId → every identifier that routed it, its current one first."""
    out: dict[int, list[str]] = {}
    for secid, uid in db.select_in(
        "SELECT secid, unique_identifier FROM secid_assets WHERE secid IN ({marks})"
        " ORDER BY secid, active = 1 DESC, is_latest DESC, added_master DESC, unique_identifier",
        list(secids),
    ):
        out.setdefault(secid, []).append(uid)
    return out


def universe_frame(db: Database, day: str) -> pd.DataFrame:
    """SecIds listed on ``day`` with their ticker, name and identifiers."""
    import pandas as pd

    tickers = _on(db, "tickers", "ticker", day)
    names = _on(db, "names", "name", day)
    secids = sorted(tickers)
    uids = identifiers(db, secids)
    current = {
        r[0]
        for r in db.select_in(
            "SELECT DISTINCT secid FROM secid_assets WHERE active = 1 AND secid IN ({marks})", secids
        )
    }
    frame = pd.DataFrame(
        {
            "secid": pd.array(secids, dtype="Int64"),
            "ticker": [tickers[s] for s in secids],
            "name": [names.get(s) for s in secids],
            "unique_identifier": [uids.get(s, [None])[0] for s in secids],
            "identifiers": [";".join(uids.get(s, [])) for s in secids],
            "in_current_master": [s in current for s in secids],
        },
        columns=UNIVERSE_COLUMNS,
    )
    return frame


def assets_frame(db: Database, *, current: bool, secids: Collection[int] | None) -> pd.DataFrame:
    """Every identifier a master linked to a SecId; ``active``: the current master lists the link."""
    import pandas as pd

    latest = "SELECT {c} FROM {t} x WHERE x.secid = a.secid ORDER BY end_date DESC, start_date DESC LIMIT 1"
    rows = db.execute(
        "SELECT a.unique_identifier, a.secid, a.kind,"
        f" coalesce(({latest.format(c='ticker', t='tickers')}), s.ticker),"
        f" coalesce(({latest.format(c='name', t='names')}), s.name), a.active = 1"
        " FROM secid_assets a LEFT JOIN assets s ON s.unique_identifier = a.unique_identifier"
        + (" WHERE a.active = 1" if current else "")
        + " ORDER BY a.secid, a.unique_identifier"
    ).fetchall()
    if secids is not None:
        rows = [r for r in rows if r[1] in secids]
    frame = pd.DataFrame([tuple(r) for r in rows], columns=ASSET_COLUMNS)
    frame["secid"] = frame["secid"].astype("Int64")
    frame["active"] = frame["active"].astype(bool)
    return frame


def datasets_holding(db: Database, secids: Sequence[int]) -> list[str]:
    """Datasets of the embedded store with at least one bar of ``secids``."""
    held = []
    for dataset_id, name in db.execute("SELECT id, name FROM datasets ORDER BY name").fetchall():
        hit = next(
            db.select_in(
                "SELECT 1 FROM bar_chunks WHERE dataset = ? AND secid IN ({marks}) LIMIT 1",
                list(secids),
                (dataset_id,),
            ),
            None,
        )
        if hit is not None:
            held.append(name)
    return held


def datasets_on(db: Database, day: int) -> list[str]:
    """Datasets of the embedded store with a bar on ``day`` (YYYYMMDD; daily chunks are per month)."""
    rows = db.execute(
        "SELECT name FROM datasets d WHERE EXISTS (SELECT 1 FROM bar_chunks c WHERE c.dataset = d.id"
        " AND c.period = ? AND c.first_date <= ? AND c.last_date >= ?) ORDER BY name",
        (day // 100, day, day),
    )
    return [r[0] for r in rows]
