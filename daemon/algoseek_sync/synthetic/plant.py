"""Plant known data-quality problems into a generated drop, and list the findings they must cause.

For tests, benchmarks and demos of ``algoseek-sync quality`` and ``report``: each planted
problem edits the generated files the way a vendor's mistake would, and comes with the
exact finding the checks must report (kind, SecId, first and last trade date). Generate
with ``open_quirks=0`` so that every expected finding is a planted one.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from algoseek_sync.quality.kinds import SEVERITY, Params
from algoseek_sync.synthetic.generate import DropManifest, DropSpec


@dataclass(frozen=True)
class Planted:
    kind: str
    secid: int | None
    start: int
    end: int
    how: str

    def as_dict(self) -> dict[str, object]:
        """The record ``quality --format json`` shows for it: the same keys, ISO dates."""
        return {
            "kind": self.kind,
            "secid": self.secid,
            "start_date": _iso(self.start),
            "end_date": _iso(self.end),
            "how": self.how,
        }


def _iso(day: int) -> str:
    return f"{day // 10000:04d}-{day // 100 % 100:02d}-{day % 100:02d}"


class _Csv:
    """A bar file's lines, edited in place (gzip or plain, kept as delivered)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        raw = path.read_bytes()
        self.gz = path.name.endswith(".gz")
        text = (gzip.decompress(raw) if self.gz else raw).decode()
        self.header, *self._rows = list(csv.reader(io.StringIO(text)))

    def col(self, name: str) -> int:
        return self.header.index(name)

    def rows(self) -> list[list[str]]:
        return [list(r) for r in self._rows]

    def save(self, rows: list[list[str]]) -> None:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([self.header, *rows])
        text = out.getvalue()
        self.path.write_bytes(gzip.compress(text.encode(), mtime=0) if self.gz else text.encode())


def _names(spec: DropSpec) -> dict[str, str]:
    if spec.schema == "standard-adjusted":
        return {"open": "Open", "high": "High", "low": "Low", "close": "Close", "volume": "MarketHoursVolume"}
    return {
        "open": "OpenPrice",
        "high": "HighPrice",
        "low": "LowPrice",
        "close": "ClosePrice",
        "volume": "ListedTotalVolume",
    }


Planter = Callable[[dict[int, Path], list[int], dict[str, str], random.Random], list[Planted]]
#: edits one bar row in place (column names as in :func:`_names`); returns how, for the planted list
RowEdit = Callable[[_Csv, list[str], dict[str, str]], str]


def plant(root: Path, spec: DropSpec, manifest: DropManifest, seed: int = 0) -> list[Planted]:
    """Plant one problem of each kind a drop like ``root``'s can show; return the findings they must
    cause (:func:`not_planted` says which kinds are missing, and why)."""
    rng = random.Random(seed)
    names = _names(spec)
    secids = list(manifest.secids)
    rng.shuffle(secids)
    planted: list[Planted] = []
    if spec.aggregation == "secid":
        files = {int(p.name.split(".")[0]): p for p in manifest.bar_paths}
        planters: list[Planter] = [_gap, _stale, _weekend_row]
        if spec.schema != "primary":
            planters.append(_unexplained_split)
        for planter in planters:
            planted += planter(files, secids, names, rng)
        for kind, edit in ROW_EDITS.items():
            secid = secids.pop()
            planted.append(_edit_row(files[secid], secid, kind, edit, names, rng))
        return planted
    days = sorted(manifest.bar_paths)
    planted += _missing_day_file(root, manifest, names)
    used = {p.secid for p in planted if p.kind != "missing_session"}
    secids = [s for s in secids if s not in used]
    victim = days[len(days) // 2]
    kept = [d for d in days if d != victim]
    planted += _not_delivered(days, victim, secids, names, rng)
    planted += _not_listed(manifest, days[0], secids)
    for kind, edit in ROW_EDITS.items():
        secid = secids.pop()
        planted.append(_edit_row(rng.choice(kept[1:]), secid, kind, edit, names, rng))
    return planted


def not_planted(spec: DropSpec, planted: list[Planted]) -> dict[str, str]:
    """Finding kinds missing from ``planted`` (a :func:`plant` of ``spec``), and why."""
    tradedate_only = "compares tradedate files with the master's universe: plant into a tradedate drop"
    secid_only = "planted into SecId files only: use --aggregation secid"
    reasons = {
        "late_delivery": "found on the running daemon's clock (quality.expected_by), not in files",
        "not_delivered": tradedate_only if spec.aggregation == "secid" else "",
        "not_listed": tradedate_only if spec.aggregation == "secid" else "",
        "stale_price": secid_only if spec.aggregation == "tradedate" else "",
        "non_session_row": secid_only if spec.aggregation == "tradedate" else "",
        "unexplained_jump": "the primary dataset has no corporate-event columns, so no jump is checked"
        if spec.schema == "primary"
        else "in a tradedate drop only when the file left out carried an event row (none did)"
        if spec.aggregation == "tradedate"
        else "",
    }
    done = {p.kind for p in planted}
    return {
        kind: reasons.get(kind) or "no SecId or day of this drop fits: generate more SecIds or days"
        for kind in SEVERITY
        if kind not in done
    }


def _gap(
    files: dict[int, Path], secids: list[int], names: dict[str, str], rng: random.Random
) -> list[Planted]:
    secid = secids.pop()
    bars = _Csv(files[secid])
    rows = bars.rows()
    k = rng.randrange(2, len(rows) - 2)
    day = int(rows[k][bars.col("TradeDate")])
    bars.save(rows[:k] + rows[k + 1 :])
    return [Planted("missing_session", secid, day, day, "a row removed from its SecId file")]


def _stale(
    files: dict[int, Path], secids: list[int], names: dict[str, str], rng: random.Random
) -> list[Planted]:
    secid = secids.pop()
    bars = _Csv(files[secid])
    rows = bars.rows()
    length, first = 6, rng.randrange(1, len(rows) - 7)
    close = rows[first - 1][bars.col(names["close"])]
    for row in rows[first : first + length]:
        for key in ("open", "high", "low", "close"):
            row[bars.col(names[key])] = close
        for column, name in enumerate(bars.header):
            if "Volume" in name or "Trades" in name or name in ("OpenSize", "CloseSize"):
                row[column] = "0"
    bars.save(rows)
    day = bars.col("TradeDate")
    start, end = int(rows[first][day]), int(rows[first + length - 1][day])
    return [
        Planted("stale_price", secid, start, end, f"{length} days at the previous close with zero volume")
    ]


def _weekend_row(
    files: dict[int, Path], secids: list[int], names: dict[str, str], rng: random.Random
) -> list[Planted]:
    import datetime as dt

    secid = secids.pop()
    bars = _Csv(files[secid])
    rows = bars.rows()
    day_col = bars.col("TradeDate")
    for k in range(1, len(rows)):
        friday = dt.datetime.strptime(rows[k - 1][day_col], "%Y%m%d").date()
        if friday.weekday() == 4 and (rows[k][day_col] > (friday + dt.timedelta(days=1)).strftime("%Y%m%d")):
            saturday = (friday + dt.timedelta(days=1)).strftime("%Y%m%d")
            extra = list(rows[k - 1])
            extra[day_col] = saturday
            bars.save([*rows[:k], extra, *rows[k:]])
            return [Planted("non_session_row", secid, int(saturday), int(saturday), "a Saturday row added")]
    raise ValueError(f"no Friday in SecId {secid}'s file to add a Saturday after")


def _unexplained_split(
    files: dict[int, Path], secids: list[int], names: dict[str, str], rng: random.Random
) -> list[Planted]:
    """Prices halve and volumes double from one day on, with no event row: an unexplained jump."""
    secid = secids.pop()
    bars = _Csv(files[secid])
    rows = bars.rows()
    k = rng.randrange(2, len(rows) - 1)
    prices = [bars.col(names[key]) for key in ("open", "high", "low", "close")]
    for row in rows[k:]:
        for column in prices:
            row[column] = f"{float(row[column]) / 2:.4f}"
        row[bars.col(names["volume"])] = str(int(row[bars.col(names["volume"])]) * 2)
    bars.save(rows)
    day = int(rows[k][bars.col("TradeDate")])
    return [Planted("unexplained_jump", secid, day, day, "a 2:1 split without its event row")]


def _missing_day_file(root: Path, manifest: DropManifest, names: dict[str, str]) -> list[Planted]:
    """A whole tradedate file not delivered: every SecId misses that session, and a SecId
    whose corporate-event row goes with it shows its move across the gap as unexplained."""
    paths = sorted(manifest.bar_paths)
    k = len(paths) // 2
    victim = paths[k]
    day = int(victim.name.split(".")[0])
    planted = [
        Planted("missing_session", secid, day, day, f"{victim.name} not delivered")
        for secid in manifest.secids
    ]
    if 0 < k < len(paths) - 1:
        planted += _lost_events(paths[k - 1], victim, paths[k + 1], names["close"])
    victim.unlink()
    return planted


def _lost_events(before: Path, victim: Path, after: Path, close: str) -> list[Planted]:
    """Moves from ``before`` to ``after`` beyond the threshold whose event row was in ``victim``."""
    lost = _events(_Csv(victim))
    prev, nxt = _Csv(before), _Csv(after)
    closes = {int(r[prev.col("SecId")]): float(r[prev.col(close)]) for r in prev.rows() if r[prev.col(close)]}
    explained = _events(nxt)
    out = []
    for row in nxt.rows():
        secid, price = int(row[nxt.col("SecId")]), row[nxt.col(close)]
        if secid not in lost or secid in explained or secid not in closes or not price:
            continue
        if abs(float(price) / closes[secid] - 1.0) > Params().jump_threshold:  # checked with the defaults
            day = int(row[nxt.col("TradeDate")])
            out.append(Planted("unexplained_jump", secid, day, day, f"its event row went with {victim.name}"))
    return out


def _events(bars: _Csv) -> set[int]:
    """SecIds with a corporate-event row (an adjustment factor or reason) in a bar file."""
    columns = [bars.col(name) for name in ("AdjustmentFactor", "AdjustmentReason") if name in bars.header]
    return {int(row[bars.col("SecId")]) for row in bars.rows() if any(row[c] for c in columns)}


# -- one impossible or odd bar: the row checks ---------------------------------------------------


def _price(bars: _Csv, row: list[str], names: dict[str, str], key: str) -> float:
    return float(row[bars.col(names[key])])


def _swap_high_low(bars: _Csv, row: list[str], names: dict[str, str]) -> str:
    high, low = bars.col(names["high"]), bars.col(names["low"])
    row[high], row[low] = row[low], row[high]
    return "High and Low swapped"


def _close_above_high(bars: _Csv, row: list[str], names: dict[str, str]) -> str:
    row[bars.col(names["close"])] = f"{_price(bars, row, names, 'high') + 0.01:.2f}"
    return "Close set a cent above High"


def _zero_low(bars: _Csv, row: list[str], names: dict[str, str]) -> str:
    row[bars.col(names["low"])] = "0"
    return "Low set to 0"


def _negative_volume(bars: _Csv, row: list[str], names: dict[str, str]) -> str:
    column = bars.col(names["volume"])
    row[column] = str(-max(1, abs(int(row[column]))))
    return "volume made negative"


def _missing_open(bars: _Csv, row: list[str], names: dict[str, str]) -> str:
    row[bars.col(names["open"])] = ""
    column = bars.col(names["volume"])
    row[column] = str(max(1, abs(int(row[column]))))
    return "Open left empty on a day with volume"


def _open_above_high(bars: _Csv, row: list[str], names: dict[str, str]) -> str:
    row[bars.col(names["open"])] = f"{_price(bars, row, names, 'high') + 0.01:.2f}"
    return "Open set a cent above High"


ROW_EDITS: dict[str, RowEdit] = {
    "high_below_low": _swap_high_low,
    "close_outside_range": _close_above_high,
    "non_positive_price": _zero_low,
    "negative_volume": _negative_volume,
    "missing_price_with_volume": _missing_open,
    "open_outside_range": _open_above_high,
}


def _edit_row(
    path: Path, secid: int, kind: str, edit: RowEdit, names: dict[str, str], rng: random.Random
) -> Planted:
    """Edit one of ``secid``'s rows in ``path`` (not its first or last in a SecId file)."""
    bars = _Csv(path)
    rows = bars.rows()
    own = [k for k, r in enumerate(rows) if int(r[bars.col("SecId")]) == secid]
    k = rng.choice(own[1:-1] if len(own) > 2 else own)
    how = edit(bars, rows[k], names)
    bars.save(rows)
    day = int(rows[k][bars.col("TradeDate")])
    return Planted(kind, secid, day, day, f"{how} in {path.name}")


# -- tradedate files against the master -------------------------------------------------------------


def _not_delivered(
    days: list[Path], victim: Path, secids: list[int], names: dict[str, str], rng: random.Random
) -> list[Planted]:
    """One SecId's row left out of a tradedate file two or more sessions away from the missing file
    (so its missing session is a finding of its own), on a row without an event whose move across
    the gap stays under the jump threshold."""
    far = [k for k in range(1, len(days) - 1) if abs(k - days.index(victim)) >= 2]
    for k in rng.sample(far, len(far)):
        before, day, after = _Csv(days[k - 1]), _Csv(days[k]), _Csv(days[k + 1])
        events = _events(day)
        closes = [_closes(before, names), _closes(after, names)]
        for secid in reversed(secids):
            a, b = closes[0].get(secid), closes[1].get(secid)
            if secid in events or not a or not b or abs(b / a - 1.0) > Params().jump_threshold / 2:
                continue
            rows = day.rows()
            day.save([r for r in rows if int(r[day.col("SecId")]) != secid])
            secids.remove(secid)
            date = int(days[k].name.split(".")[0])
            how = f"its row left out of {days[k].name}"
            return [
                Planted("not_delivered", secid, date, date, how),
                Planted("missing_session", secid, date, date, how),
            ]
    return []


def _closes(bars: _Csv, names: dict[str, str]) -> dict[int, float]:
    close = bars.col(names["close"])
    return {int(r[bars.col("SecId")]): float(r[close]) for r in bars.rows() if r[close]}


def _not_listed(manifest: DropManifest, first: Path, secids: list[int]) -> list[Planted]:
    """A SecId whose ticker span in the master starts one session late: delivered, not listed, on the
    first day. Only a SecId with one ticker and one ticker span qualifies."""
    master = _Csv(manifest.master_path)
    rows = master.rows()
    spans, tickers = master.col("TickersStartToEndDate"), master.col("Tickers")
    date = first.name.split(".")[0]
    present = {int(r[_Csv(first).col("SecId")]) for r in _Csv(first).rows()}
    for row in rows:
        secid = int(row[master.col("SecId")])
        if (
            secid in secids
            and secid in present
            and ";" not in row[tickers]
            and row[spans].startswith(f"{date}:")
        ):
            row[spans] = row[spans].replace(f"{date}:", f"{_next_day(date)}:")
            master.save(rows)
            secids.remove(secid)
            return [Planted("not_listed", secid, int(date), int(date), "its ticker span starts a day late")]
    return []


def _next_day(day: str) -> str:
    import datetime as dt

    return (dt.datetime.strptime(day, "%Y%m%d") + dt.timedelta(days=1)).strftime("%Y%m%d")
