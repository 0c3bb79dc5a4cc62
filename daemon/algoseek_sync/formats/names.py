"""What a path in the drop directory is, from its name alone (no I/O)."""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Kind = Literal["master", "bars", "other"]
Aggregation = Literal["secid", "tradedate", ""]

TEMP_SUFFIXES = (".part", ".filepart", ".tmp")
_BAR_NAME = re.compile(r"^(\d+)_?\.csv(\.gz)?$")


@dataclass(frozen=True)
class FileName:
    kind: Kind
    aggregation: Aggregation = ""
    key: str = ""  # the SecId or the YYYYMMDD of a bar file
    reason: str = ""  # why an ``other`` file is not ingested


def is_temporary(rel_path: str) -> bool:
    """Upload temp names (leading '.', .part, .filepart, .tmp), in any path component."""
    if rel_path.startswith(".") or "/." in rel_path:  # a component that starts with '.'
        return True
    return rel_path.lower().endswith(TEMP_SUFFIXES)  # the suffixes hold no '/': the name's own


def _as_trade_date(digits: str) -> bool:
    if len(digits) != 8 or digits[:2] not in ("19", "20"):
        return False
    try:
        dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return False
    return True


def classify(rel_path: str, master_globs: Sequence[str]) -> FileName:
    """Classify a non-temporary relative path: master, bar file (secid/tradedate) or other."""
    name = rel_path.rsplit("/", 1)[-1]
    if any(fnmatch.fnmatchcase(name, g) for g in master_globs):
        return FileName("master")
    match = _BAR_NAME.match(name)
    if match:
        digits = match.group(1)
        if _as_trade_date(digits):
            return FileName("bars", "tradedate", digits)
        return FileName("bars", "secid", str(int(digits)))
    return FileName(
        "other",
        reason="name is neither a security master nor <SecId>.csv[.gz] / YYYYMMDD.csv[.gz]",
    )
