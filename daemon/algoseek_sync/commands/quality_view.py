"""``algoseek-sync quality`` output: findings as a table, CSV or JSON."""

from __future__ import annotations

import json
from typing import Any

from algoseek_sync.commands.output import csv_text, table_text

COLUMNS = ["severity", "kind", "dataset", "secid", "unique_identifier", "start_date", "end_date", "observed"]
DATES = ("start_date", "end_date")


def _day(value: object) -> str:
    text = str(value or "")
    return f"{text[:4]}-{text[4:6]}-{text[6:]}" if len(text) == 8 else text


def _cell(column: str, value: object) -> str:
    if value is None:
        return ""
    if column in DATES:
        return _day(value)
    if column == "observed":
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def format_findings(rows: list[dict[str, Any]], fmt: str) -> str:
    columns = [*COLUMNS, "first_seen", "last_seen", "resolved_at"]
    if fmt == "json":
        return json.dumps([{c: r.get(c) for c in columns} for r in rows])
    if fmt == "csv":
        return csv_text(columns, [[_cell(c, r.get(c)) for c in columns] for r in rows])
    if not rows:
        return "no findings"
    return table_text(COLUMNS, [[_cell(c, r.get(c)) for c in COLUMNS] for r in rows])
