"""Pure pandas conversions between the worker's plain frames and DataNode frames.

DataNodes want a (time_index UTC ns, unique_identifier) MultiIndex, lower-case column names
of at most 63 characters and no datetime columns; the worker and the CLI want plain columns
with ISO text times. Comparing against what the platform already holds keeps re-runs from
rewriting identical rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from algoseek_sync.formats.bars import close_time_index, last_wins
from algoseek_sync.formats.datasets import Dataset

INDEX = ["time_index", "unique_identifier"]
MAX_COLUMN = 63
ISO_SECONDS = "%Y-%m-%dT%H:%M:%SZ"


def column_name(name: object) -> str:
    return str(name).strip().lower()[:MAX_COLUMN]


def to_node_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain worker frame → DataNode frame; later duplicates of a key win."""
    if frame.empty:
        return empty_node_frame()
    out = frame.rename(columns=column_name)
    out = out.loc[:, ~out.columns.duplicated(keep="first")].copy()
    out["time_index"] = pd.to_datetime(out["time_index"], utc=True).dt.as_unit("ns")
    out["unique_identifier"] = out["unique_identifier"].astype(str)
    for col in out.columns:
        if col not in INDEX and pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = pd.to_datetime(out[col], utc=True).dt.strftime(ISO_SECONDS)
    out = out.drop_duplicates(subset=INDEX, keep="last").set_index(INDEX).sort_index()
    return out


def empty_node_frame() -> pd.DataFrame:
    index = pd.MultiIndex.from_arrays(
        [pd.DatetimeIndex([], tz="UTC").as_unit("ns"), pd.Index([], dtype=object)], names=INDEX
    )
    return pd.DataFrame(index=index)


def records_to_node_frame(records: pd.DataFrame) -> pd.DataFrame:
    """Rows as the platform returns them (plain columns, ISO time text) → DataNode frame."""
    if records.empty:
        return empty_node_frame()
    out = records.copy()
    out["time_index"] = pd.to_datetime(out["time_index"], utc=True, format="ISO8601").dt.as_unit("ns")
    return out.drop_duplicates(subset=INDEX, keep="last").set_index(INDEX).sort_index()


def to_plain_frame(node_frame: pd.DataFrame, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """DataNode frame → plain columns with ``time_index`` as ``YYYY-MM-DDTHH:MM:SSZ`` text, sorted."""
    if node_frame.empty:
        return pd.DataFrame(columns=INDEX + list(columns or []))
    out = node_frame.reset_index()
    out["time_index"] = out["time_index"].dt.tz_convert("UTC").dt.strftime(ISO_SECONDS)
    out = out.sort_values(["time_index", "unique_identifier"], kind="stable").reset_index(drop=True)
    if columns is not None:
        out = out[[c for c in INDEX + list(columns) if c in out.columns]]
    return out


def _same(new: pd.Series, old: pd.Series) -> np.ndarray:
    """Element-wise equality that treats missing == missing and compares numbers numerically."""
    new_num = pd.to_numeric(new, errors="coerce")
    old_num = pd.to_numeric(old, errors="coerce")
    both_numeric = new_num.notna() & old_num.notna()
    numeric_equal = np.isclose(
        new_num.fillna(0).to_numpy(dtype=float), old_num.fillna(0).to_numpy(dtype=float), rtol=1e-12, atol=0
    )
    both_missing = new.isna().to_numpy() & old.isna().to_numpy()
    text_equal = (new.astype(str) == old.astype(str)).to_numpy()
    return np.where(both_numeric.to_numpy(), numeric_equal, both_missing | text_equal)


def changed_rows(new: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``new`` that ``stored`` lacks or holds with different values (on ``new``'s columns)."""
    if new.empty or stored.empty:
        return new
    common = new.index.intersection(stored.index)
    if common.empty:
        return new
    keep = pd.Series(True, index=new.index)
    old = stored.reindex(common)
    fresh = new.loc[common]
    same = np.ones(len(common), dtype=bool)
    for col in new.columns:
        if col not in old.columns:
            same &= fresh[col].isna().to_numpy()
            continue
        same &= _same(fresh[col], old[col])
    keep.loc[common] = ~same
    return new[keep.to_numpy()]


def published(tables: Sequence[pa.Table], routes: dict[int, list[str]]) -> pd.DataFrame:
    """Parsed bar tables (one dataset, in delivery order) → one plain row per (time_index, identifier).

    A later table's row wins for the same (SecId, trade date); each SecId's rows are copied
    to every identifier in ``routes`` (SecIds without one are left out). Integer columns stay
    integers (pandas ``Int64``), so the table's column types do not depend on the delivery.
    """
    table = last_wins(tables)
    if table is None:
        return pd.DataFrame(columns=INDEX)
    take: list[np.ndarray] = []
    uids: list[str] = []
    secids = table["secid"].to_numpy()
    for sid in np.unique(secids).tolist():
        rows = np.flatnonzero(secids == sid)
        for uid in routes.get(sid, []):
            take.append(rows)
            uids.extend([uid] * len(rows))
    if not take:
        return pd.DataFrame(columns=INDEX)
    picked = table.take(pa.array(np.concatenate(take))).replace_schema_metadata(None)
    frame = picked.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype()}.get)
    frame.insert(0, "unique_identifier", uids)
    frame.insert(0, "time_index", [close_time_index(d) for d in picked["tradedate"].to_pylist()])
    return frame


def to_bars_frame(node_frame: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """A bars table as the platform returns it → the ``bars`` columns of the embedded store, sorted."""
    columns = ["dataset", *INDEX, *dataset.names]
    if node_frame.empty:
        return pd.DataFrame(columns=columns)
    out = to_plain_frame(node_frame)
    out.insert(0, "dataset", dataset.name)
    for column in dataset.columns:
        if column.name not in out.columns:
            out[column.name] = pd.NA
        elif column.type in ("int", "date"):
            out[column.name] = pd.to_numeric(out[column.name], errors="coerce").round().astype("Int64")
    if "extra" not in out.columns:
        out["extra"] = None
    return out[columns]


SEVERITY_ORDER = {"error": 3, "warning": 2, "info": 1}


def findings_frame(findings: Sequence[dict[str, object]]) -> pd.DataFrame:
    """Findings → one row per (trade date, identifier): open ones listed, resolved days with none."""
    import json

    days: dict[tuple[int, str], dict[str, object]] = {}
    for item in findings:
        uid, day = item.get("unique_identifier"), int(item.get("start_date") or 0)  # type: ignore[call-overload]
        if not uid or not day:
            continue  # dataset-level findings (late delivery) have no asset row
        row = days.setdefault((day, str(uid)), {"secid": item["secid"], "open": []})
        if item.get("resolved_at") is None:
            row["open"].append(item)  # type: ignore[attr-defined]
    if not days:
        return pd.DataFrame(columns=INDEX)
    records = []
    for (day, uid), row in sorted(days.items()):
        opened = sorted(row["open"], key=lambda f: (str(f["kind"]), str(f["dataset"])))  # type: ignore[arg-type]
        worst = max((str(f["severity"]) for f in opened), key=SEVERITY_ORDER.get, default="")
        records.append(
            {
                "time_index": close_time_index(day),
                "unique_identifier": uid,
                "secid": int(row["secid"]),  # type: ignore[call-overload]
                "open_findings": len(opened),
                "worst_severity": worst,
                "kinds": ",".join(dict.fromkeys(str(f["kind"]) for f in opened)),
                "findings": json.dumps(
                    [
                        {k: f[k] for k in ("kind", "severity", "dataset", "end_date", "observed")}
                        for f in opened
                    ],
                    sort_keys=True,
                ),
            }
        )
    return pd.DataFrame.from_records(records)
