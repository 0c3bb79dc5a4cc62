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
from dataclasses import asdict, dataclass
from pathlib import Path

from algoseek_sync.quality.kinds import Params
from algoseek_sync.synthetic.generate import DropManifest, DropSpec


@dataclass(frozen=True)
class Planted:
    kind: str
    secid: int | None
    start: int
    end: int
    how: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


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
    if spec.schema == "standard":
        return {"open": "Open", "high": "High", "low": "Low", "close": "Close", "volume": "MarketHoursVolume"}
    return {
        "open": "OpenPrice",
        "high": "HighPrice",
        "low": "LowPrice",
        "close": "ClosePrice",
        "volume": "ListedTotalVolume",
    }


def plant(root: Path, spec: DropSpec, manifest: DropManifest, seed: int = 0) -> list[Planted]:
    """Plant one problem of each kind into ``root`` (a secid or tradedate drop); return them."""
    rng = random.Random(seed)
    names = _names(spec)
    secids = list(manifest.secids)
    rng.shuffle(secids)
    planted: list[Planted] = []
    if spec.aggregation == "secid":
        files = {int(p.name.split(".")[0]): p for p in manifest.bar_paths}
        for planter in (_gap, _stale, _high_below_low, _weekend_row, _unexplained_split):
            planted += planter(files, secids, names, rng)
    else:
        planted += _missing_day_file(root, manifest, names)
    return planted


Planter = Callable[[dict[int, Path], list[int], dict[str, str], random.Random], list[Planted]]


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


def _high_below_low(
    files: dict[int, Path], secids: list[int], names: dict[str, str], rng: random.Random
) -> list[Planted]:
    secid = secids.pop()
    bars = _Csv(files[secid])
    rows = bars.rows()
    k = rng.randrange(1, len(rows) - 1)
    high, low = bars.col(names["high"]), bars.col(names["low"])
    rows[k][high], rows[k][low] = rows[k][low], rows[k][high]
    bars.save(rows)
    day = int(rows[k][bars.col("TradeDate")])
    return [Planted("high_below_low", secid, day, day, "High and Low swapped")]


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
