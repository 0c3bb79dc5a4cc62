"""What both platform lines' tables are: identifiers, column labels and descriptions. SDK-free.

The 3.x DataNodes (``mainsequence/nodes.py``) and the 9.x MetaTables (``mainsequence9/tables.py``)
declare the same tables in two SDKs' shapes; the words and types live here once.
"""

from __future__ import annotations

import datetime as dt

from algoseek_sync.formats.datasets import EXTRA, ColumnType, Dataset

#: the security master is a static snapshot: every row carries this one time
MASTER_TIME = dt.datetime(1970, 1, 1, 0, 1, tzinfo=dt.UTC)
MASTER_TABLE = "algoseek_security_master"
QUALITY_TABLE = "algoseek_data_quality"
ADJUSTED_SUFFIX = "_adjusted"

#: column → (label, description, type)
Columns = dict[str, tuple[str, str, ColumnType]]

EXTRA_COLUMN: tuple[str, str, ColumnType] = (
    "Extra vendor columns",
    "Columns the schema does not know, and exact texts of rounded values, as JSON",
    "text",
)
MASTER_COLUMNS: Columns = {
    "secid": ("SecId", "Algoseek security id, stable across ticker changes", "int"),
    "kind": ("Asset kind", "'figi' for a FIGI asset, 'custom' for a FIGI-less SecId's custom asset", "text"),
    "latest_figi": ("Latest FIGI", "The SecId's current FIGI (last token of the master's FIGI list)", "text"),
    "tickers": ("Tickers", "';'-separated tickers over time", "text"),
    "name": ("Name", "Security name", "text"),
    "isin": ("ISIN", "International Securities Identification Number", "text"),
    "figi": ("FIGIs", "';'-separated FIGIs of the SecId as delivered", "text"),
}
QUALITY_COLUMNS: Columns = {
    "secid": ("SecId", "Algoseek security id the findings are about", "int"),
    "open_findings": (
        "Open findings",
        "Data-quality findings open for this asset and trade date (0: all resolved)",
        "int",
    ),
    "worst_severity": ("Worst severity", "error, warning or info: the most severe open finding", "text"),
    "kinds": ("Kinds", "Kinds of the open findings, comma-separated (see algoseek-sync quality)", "text"),
    "findings": (
        "Findings",
        "The open findings as JSON: kind, severity, dataset, end date, observed values",
        "text",
    ),
}


def bar_columns(dataset: Dataset) -> Columns:
    """Every column of a dataset's table (the vendor dictionary, our words), the extra one last."""
    out: Columns = {c.name: (c.label, c.description, c.type) for c in dataset.columns}
    out[EXTRA] = EXTRA_COLUMN
    return out


def described(columns: Columns) -> dict[str, tuple[str, str]]:
    """(label, description) only: what the 3.x SDK's column metadata takes."""
    return {name: (label, text) for name, (label, text, _) in columns.items()}
