"""`algoseek-sync export DIR`: the store as hive-partitioned Parquet, read back exactly, kept up to date
incrementally, and safe while the daemon writes.

Every test builds a real store with the CLI (`run --once` on a generated drop spanning two years) and
runs `export` as a subprocess; the files are read back with pyarrow's dataset API (hive partitioning)
and compared with the Python read API (`Store.bars`, `Store.cross_section`) on the same store.
"""

from __future__ import annotations

import csv
import fcntl
import gzip
import io
import os
import threading

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import algoseek_sync
from algoseek_sync.synthetic.generate import (
    DropSpec,
    generate_drop,
    make_figi,
    secid_path,
    write_bars,
    write_master,
)
from conftest import Sandbox
from helpers_daemon import Daemon, wait_for

#: 30 sessions from 2023-12-01: every SecId has rows in two years (two partitions per bucket)
SPEC = DropSpec(secids=12, days=30, start="20231201", schema="primary-adjusted", seed=3)
#: the same universe grown to 80 SecIds (the first 12 keep their identifiers and bars)
MORE = DropSpec(secids=80, days=30, start="20231201", schema="primary-adjusted", seed=3)
ORDER = ["dataset", "time_index", "unique_identifier"]
MASTER = "equity_security_master.csv"


@pytest.fixture
def drop(sandbox: Sandbox) -> Sandbox:
    generate_drop(sandbox.drop, SPEC)
    sandbox.cli("run", "--once")
    return sandbox


def export(box: Sandbox, *args: str, check: bool = True) -> str:
    """Run the command; its one-line summary (or, with ``check=False``, its one-line error)."""
    result = box.cli("export", str(box.root / "export"), *args, check=check)
    lines = (result.out if result.code == 0 else result.err).strip().splitlines()
    assert len(lines) == 1, result
    return lines[0] if check else f"{result.code} {lines[0]}"


def read_export(box: Sandbox, tree: str = "bars") -> pd.DataFrame:
    """The export as DuckDB/Polars/pandas users read it: one hive-partitioned dataset."""
    table = ds.dataset(box.root / "export" / tree, format="parquet", partitioning="hive").to_table()
    frame = table.to_pandas().drop(columns="year")
    return frame.sort_values(ORDER, kind="stable").reset_index(drop=True)


def api_bars(box: Sandbox, adjusted: bool = False) -> pd.DataFrame:
    """Every identifier's history through the read API, each dataset in its own columns order."""
    with algoseek_sync.open_store(box.state) as store:
        parts = [
            store.bars(figi=uid, dataset=name, adjusted=adjusted)
            for name in store.datasets()
            for uid in store.assets(dataset=name)["unique_identifier"].unique()  # a row per link
        ]
    frame = pd.concat(parts, ignore_index=True)
    return frame.sort_values(ORDER, kind="stable").reset_index(drop=True)


def part_files(box: Sandbox, tree: str = "bars") -> dict[str, tuple[int, int]]:
    """Each Parquet file of a tree → (inode, mtime): a rewrite (a rename over it) changes both."""
    root = box.root / "export" / tree
    return {
        p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in root.rglob("*.parquet")
    }


def test_export_reads_back_exactly_as_the_api(drop: Sandbox) -> None:
    summary = export(drop)
    assert "files written" in summary and "0 unchanged" in summary

    got = read_export(drop)
    want = api_bars(drop)
    pd.testing.assert_frame_equal(got[list(want.columns)], want)
    assert list(got.columns) == list(want.columns)  # the same columns, in the API's order
    assert set(got["tradedate"].dt.year) == {2023, 2024} and len(got) > SPEC.secids * SPEC.days
    with algoseek_sync.open_store(drop.state) as store:
        for day in sorted(set(got["tradedate"]))[::7]:
            section = store.cross_section(day.date())
            pd.testing.assert_frame_equal(got[got["tradedate"] == day].reset_index(drop=True), section)

    files = part_files(drop)
    assert files and all(k.startswith("dataset=primary-adjusted/year=20") for k in files)
    again = export(drop)
    assert again.startswith(f"exported {drop.root / 'export' / 'bars'}: 0 files written")
    assert part_files(drop) == files  # nothing changed, nothing rewritten


def test_adjusted_export_is_its_own_tree(drop: Sandbox) -> None:
    export(drop, "--adjusted")
    assert not (drop.root / "export" / "bars").exists()
    got = read_export(drop, "bars-adjusted")
    want = api_bars(drop, adjusted=True)
    pd.testing.assert_frame_equal(got[list(want.columns)], want)
    assert got["volume"].dtype == "float64"  # adjusted volumes are not whole numbers


def test_a_redelivered_secid_rewrites_only_its_partitions(drop: Sandbox) -> None:
    export(drop)
    before = part_files(drop)
    secid = SPEC.first_secid + 5
    path = secid_path(drop.drop, SPEC, secid)
    rows = list(csv.reader(io.StringIO(gzip.decompress(path.read_bytes()).decode())))
    close = rows[0].index("ClosePrice")
    rows[-1][close] = f"{float(rows[-1][close]) + 0.01:.2f}"  # a correction of its last day
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    drop.put(path.name, gzip.compress(text.getvalue().encode()))
    drop.cli("run", "--once")

    summary = export(drop)
    after = part_files(drop)
    got = read_export(drop)
    pd.testing.assert_frame_equal(got, api_bars(drop)[list(got.columns)])
    touched = {
        key
        for key in after
        if secid
        in set(pq.read_table(drop.root / "export" / "bars" / key, columns=["secid"])["secid"].to_pylist())
    }
    rewritten = {key for key in after if before.get(key) != after[key]}
    assert touched and rewritten == touched and len(rewritten) < len(after)
    assert summary.split(": ", 1)[1].startswith(f"{len(rewritten)} files written")
    assert got[got["secid"] == secid]["close"].iloc[-1] == pytest.approx(float(rows[-1][close]))


def test_export_while_the_daemon_writes_never_shows_a_partial_file(sandbox: Sandbox) -> None:
    generate_drop(sandbox.drop, SPEC)
    sandbox.cli("run", "--once")
    export(sandbox)
    tree = sandbox.root / "export" / "bars"
    failures: list[str] = []
    stop = threading.Event()

    def read_continuously() -> None:
        """Every visible Parquet file is whole, however the export and the daemon interleave.

        Each file is opened once, as DuckDB and Polars do (``pq.read_table(path)`` opens a path twice,
        schema then data, and may pair an old footer with a new file: see the README)."""
        while not stop.is_set():
            for path in tree.rglob("*.parquet"):
                try:
                    with path.open("rb") as handle:
                        pq.read_table(handle)
                except Exception as exc:  # any failure to read is the finding
                    failures.append(f"{path.name}: {exc}")
                if not path.name.startswith("part-"):
                    failures.append(f"visible temporary file {path}")

    def exported_and_applied() -> bool:
        """One more export while the daemon applies the late files; True once it has applied them all."""
        export(sandbox)
        assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()
        return daemon.states().get("done", 0) >= SPEC.secids + len(late) + 2  # and both masters

    reader = threading.Thread(target=read_continuously, daemon=True)
    reader.start()
    daemon = Daemon(sandbox).start().wait_ready()
    try:
        write_master(sandbox.drop, MORE)
        late = list(range(SPEC.first_secid + SPEC.secids, SPEC.first_secid + MORE.secids))
        for group in (
            late[k::4] for k in range(4)
        ):  # an export after each delivery, as the daemon applies it
            write_bars(sandbox.drop / "late", MORE, secids=group)
            export(sandbox)
        wait_for(exported_and_applied, 180, "the daemon to apply the late files")
    finally:
        assert daemon.stop() == 0
        stop.set()
        reader.join(30)
    assert not failures, failures[:5]
    export(sandbox)  # catches up with everything the daemon applied
    got = read_export(sandbox)
    pd.testing.assert_frame_equal(got, api_bars(sandbox)[list(got.columns)])
    assert got["secid"].nunique() == 80
    assert not [p for p in tree.rglob("*") if p.name.startswith(".")]


def test_a_second_concurrent_export_is_refused(drop: Sandbox) -> None:
    out = drop.root / "export"
    out.mkdir()
    fd = os.open(out / ".export.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running export holds it
        assert (
            export(drop, check=False)
            == f"75 algoseek-sync: another export is writing {out}: try again when it is done"
        )
    finally:
        os.close(fd)
    assert "files written" in export(drop)


def test_errors_are_one_line(drop: Sandbox) -> None:
    assert export(drop, "--dataset", "primary", check=False).startswith(
        "2 algoseek-sync: dataset primary holds no bars in this store (stored: primary-adjusted)"
    )
    box = Sandbox(drop.root / "empty", drop.drop, drop.root / "empty" / "state")
    assert export(box, check=False).startswith("78 algoseek-sync: no state database at")


def test_a_master_rewrites_only_the_files_of_the_identifiers_it_reroutes(drop: Sandbox) -> None:
    """A FIGI added to a SecId reads that SecId's history; a FIGI moved to another SecId reads the
    new one's row wherever both have one. Only the files of these identifiers are rewritten: a SecId
    the master leaves out keeps its rows under its FIGI, unchanged (survivorship-free)."""
    export(drop)
    before = part_files(drop)
    master = pd.read_csv(drop.drop / MASTER, dtype=str, keep_default_na=False).set_index("SecId")
    gone, grown, left, taker = (str(SPEC.first_secid + k) for k in (0, 3, 1, 4))
    added, moved, renamed = make_figi(999_999), master.at[left, "FIGI"], make_figi(999_998)
    master.at[grown, "FIGI"] += f";{added}"
    master.at[taker, "FIGI"] += f";{moved}"
    master.at[left, "FIGI"] = renamed
    drop.put(MASTER, master.drop(index=gone).reset_index().to_csv(index=False))
    drop.cli("run", "--once")

    export(drop)
    after = part_files(drop)
    got = read_export(drop)
    pd.testing.assert_frame_equal(got, api_bars(drop)[list(got.columns)])
    secids = got.groupby("unique_identifier")["secid"].unique()
    assert list(secids[added]) == [int(grown)] and list(secids[moved]) == [int(taker)]
    assert int(gone) in set(got["secid"])
    day = got["tradedate"].iloc[-1]
    with algoseek_sync.open_store(drop.state) as store:  # the cross-section agrees, point in time
        pd.testing.assert_frame_equal(
            got[got["tradedate"] == day].reset_index(drop=True), store.cross_section(day)
        )
    holding = {
        key
        for key in after
        if {added, moved, renamed}
        & set(pq.read_table(drop.root / "export" / "bars" / key)["unique_identifier"].to_pylist())
    }
    assert {key for key in after if before.get(key) != after[key]} == holding
    assert 0 < len(holding) < len(after)
