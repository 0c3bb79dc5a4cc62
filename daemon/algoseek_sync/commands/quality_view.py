"""``algoseek-sync quality`` output: findings as a table, CSV or JSON, in the one output style."""

from __future__ import annotations

from typing import Any

from algoseek_sync.commands.output import Field, render

#: every field of a finding, in output order; the table leaves out first/last seen (CSV and JSON have them)
FIELDS = (
    Field("severity"),
    Field("kind"),
    Field("dataset"),
    Field("secid", "int"),
    Field("unique_identifier"),
    Field("start_date", "day"),
    Field("end_date", "day"),
    Field("observed", "json"),
    Field("first_seen", "time", table=False),
    Field("last_seen", "time", table=False),
    Field("resolved_at", "time", header="resolved"),
)


def format_findings(rows: list[dict[str, Any]], fmt: str) -> str:
    return render(rows, FIELDS, fmt, empty="no findings")
