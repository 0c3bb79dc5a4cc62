"""Rows as CSV or as an aligned text table: the one place the CLI's tabular output is shaped."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence


def csv_text(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """CSV with a header; ``None`` as an empty field."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return out.getvalue().rstrip("\n")


def table_text(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, header first."""
    table = [list(columns), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in table)
