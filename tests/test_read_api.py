"""The Python read API and the CLI on the same store: point in time and survivorship-free.

Each test builds a real store with the CLI (`run --once` on a generated drop), then changes the
master the way vendors do (a partial master, a SecId that stops trading, a ticker that moves)
and reads the past through ``algoseek_sync.open_store`` and through ``bars``/``assets``.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pandas as pd
import pytest

import algoseek_sync
from algoseek_sync.errors import AmbiguousQueryError, ConfigError, UnknownIdentifierError, UserInputError
from algoseek_sync.synthetic.generate import DropSpec, generate_drop
from conftest import Sandbox

MASTER = "equity_security_master.csv"
SPEC = DropSpec(secids=12, days=10, schema="primary-adjusted", seed=3, ticker_change_fraction=0.0)


def iso(day: str) -> str:
    return f"{day[:4]}-{day[4:6]}-{day[6:]}"


@pytest.fixture
def drop(sandbox: Sandbox) -> tuple[Sandbox, list[str]]:
    """A generated drop ingested by the CLI; returns the trade dates (YYYY-MM-DD)."""
    manifest = generate_drop(sandbox.drop, SPEC)
    sandbox.cli("run", "--once")
    return sandbox, [iso(d) for d in manifest.trade_dates]


def master_frame(box: Sandbox) -> pd.DataFrame:
    return pd.read_csv(box.drop / MASTER, dtype=str, keep_default_na=False)


def deliver_master(box: Sandbox, frame: pd.DataFrame) -> None:
    box.put(MASTER, frame.to_csv(index=False))
    box.cli("run", "--once")


def store(box: Sandbox) -> algoseek_sync.Store:
    return algoseek_sync.open_store(box.state)


def test_a_partial_master_loses_no_history(drop: tuple[Sandbox, list[str]]) -> None:
    box, days = drop
    master = master_frame(box)
    gone = [int(s) for s in master["SecId"][:3]]
    with store(box) as s:
        section = s.cross_section(days[4])
        histories = {secid: s.bars(secid=secid) for secid in gone}
        figi = histories[gone[0]]["unique_identifier"].iloc[0]
        by_figi = s.bars(figi=figi)
        listed = s.universe(days[4])
    assert set(gone) <= set(section["secid"]) and all(
        h["tradedate"].nunique() == 10 for h in histories.values()
    )
    cli_before = box.cli("bars", "--date", days[4], "--format", "csv").out

    deliver_master(box, master[~master["SecId"].astype(int).isin(gone)])  # an "active only" master

    with store(box) as s:
        pd.testing.assert_frame_equal(s.cross_section(days[4]), section)
        for secid, history in histories.items():
            pd.testing.assert_frame_equal(s.bars(secid=secid), history)
        pd.testing.assert_frame_equal(s.bars(figi=figi), by_figi)
        universe = s.universe(days[4]).set_index("secid")
        assets = s.assets()
        current = s.assets(current=True)
    assert list(universe.index) == list(listed["secid"])  # still listed on that day: the spans stay
    assert not universe.loc[gone, "in_current_master"].any() and universe["in_current_master"].sum() == 9
    assert figi in set(assets["unique_identifier"]) and figi not in set(current["unique_identifier"])
    assert not assets.set_index("unique_identifier").loc[figi, "active"]
    assert box.cli("bars", "--date", days[4], "--format", "csv").out == cli_before
    assert (
        box.cli("bars", "--figi", figi, "--format", "csv").out.strip().count("\n") == 10
    )  # header + 10 rows


def test_tickers_and_names_resolve_on_the_date_asked(drop: tuple[Sandbox, list[str]]) -> None:
    box, days = drop
    master = master_frame(box).set_index("SecId", drop=False)
    first = days[0].replace("-", "")
    old, new, stopped = master.index[3], master.index[4], master.index[5]
    moved = master.loc[old, "Tickers"]
    cut, after = days[4].replace("-", ""), days[5].replace("-", "")
    master.loc[old, "TickersStartToEndDate"] = f"{first}:{cut}"  # the ticker leaves SecId old ...
    master.loc[new, ["Tickers", "TickersStartToEndDate"]] = [
        f"{master.loc[new, 'Tickers']};{moved}",
        f"{first}:{cut};{after}:29991231",  # ... and SecId new takes it the next day
    ]
    master.loc[stopped, "TickersStartToEndDate"] = f"{first}:{cut}"  # stops trading after days[4]
    master.loc[stopped, ["Name", "NameStartToEndDate"]] = [
        "Old Name Co;New Name Inc",
        f"{first}:{cut};{after}:29991231",
    ]
    deliver_master(box, master.reset_index(drop=True))

    with store(box) as s:
        assert s.resolve(moved, days[2]) == int(old) and s.resolve(
            moved, dt.date.fromisoformat(days[7])
        ) == int(new)
        with pytest.raises(UnknownIdentifierError, match="SecId"):
            s.resolve(moved, "2023-01-02")
        before = s.bars(moved, on=days[2])
        assert set(before["secid"]) == {int(old)} and len(before) == 10
        assert set(s.bars(moved)["secid"]) == {int(new)}  # no day given: its most recent carrier
        with pytest.raises(AmbiguousQueryError, match=f"SecId {old}.*SecId {new}|SecId {new}.*SecId {old}"):
            s.bars(moved, start=days[0], end=days[9])
        early, late = s.universe(days[2]).set_index("secid"), s.universe(days[7]).set_index("secid")
    assert int(stopped) in early.index and int(stopped) not in late.index
    assert early.loc[int(stopped), "name"] == "Old Name Co"
    assert early.loc[int(old), "ticker"] == moved and late.loc[int(new), "ticker"] == moved
    on_cli = box.cli("bars", "--ticker", moved, "--on", days[2], "--format", "csv").out
    assert set(pd.read_csv(io.StringIO(on_cli))["secid"]) == {int(old)}
    # the SecId that stopped trading keeps its bars in every past cross-section
    with store(box) as s:
        assert int(stopped) in set(s.cross_section(days[3])["secid"])


def test_the_api_and_the_cli_return_the_same_rows(drop: tuple[Sandbox, list[str]]) -> None:
    box, days = drop
    with store(box) as s:
        secid = int(s.assets()["secid"].iloc[-1])
        api = s.bars(secid=secid, start=pd.Timestamp(days[2]), end=dt.date.fromisoformat(days[6]))
        arrow = s.cross_section(days[3], output_format="arrow")
        section = s.cross_section(days[3])
    cli = pd.read_csv(
        io.StringIO(
            box.cli(
                "bars", "--secid", str(secid), "--start", days[2], "--end", days[6], "--format", "csv"
            ).out
        )
    )
    assert len(api) == len(cli) == 5 * api["unique_identifier"].nunique()
    for column in ("unique_identifier", "secid", "open", "close", "volume", "ticker"):
        assert cli[column].tolist() == api[column].tolist(), column
    assert [str(d)[:10] for d in cli["tradedate"]] == api["tradedate"].dt.strftime("%Y-%m-%d").tolist()
    assert str(api["tradedate"].dtype).startswith("datetime64") and str(api["time_index"].dt.tz) == "UTC"
    assert arrow.num_rows == len(section) and arrow.column_names == list(section.columns)


def test_errors_name_the_thing_before_asking_for_a_dataset(drop: tuple[Sandbox, list[str]]) -> None:
    box, days = drop
    with store(box) as s:
        secid = int(s.assets()["secid"].iloc[0])
        held_once = int(s.assets()["secid"].iloc[1])
    # a second dataset holding one SecId: reads of that SecId must name the dataset, the others need not
    frame = s_bars_csv(box, secid)
    box.put(f"primary/{secid}.csv", to_primary(frame))
    box.cli("run", "--once")
    with store(box) as s:
        assert s.datasets() == ["primary", "primary-adjusted"]
        with pytest.raises(UnknownIdentifierError, match="'NOPE'"):
            s.bars(figi="NOPE")
        with pytest.raises(UnknownIdentifierError, match="99"):
            s.bars(secid=99)
        with pytest.raises(UnknownIdentifierError, match="no SecId ever carried"):
            s.bars("ZZZZ")
        with pytest.raises(AmbiguousQueryError, match="primary, primary-adjusted"):
            s.bars(secid=secid)
        assert len(s.bars(secid=secid, dataset="primary")) == 1
        assert set(s.bars(secid=held_once)["dataset"]) == {"primary-adjusted"}  # the only one holding it
        with pytest.raises(UserInputError, match="holds no bars"):
            s.bars(secid=secid, dataset="standard-adjusted")
        with pytest.raises(UserInputError, match="after end"):
            s.bars(secid=held_once, start=days[5], end=days[1])
        with pytest.raises(UserInputError, match="not a date"):
            s.bars(secid=held_once, start="2024/01/02")
        empty = s.bars(secid=held_once, start="2030-01-01")
        assert (
            empty.empty
            and "no bars" in empty.attrs["note"]
            and list(empty.columns)[:3] == ["dataset", "time_index", "tradedate"]
        )
    unknown = box.cli("bars", "--figi", "NOPE", check=False)
    assert (
        unknown.code == 2
        and unknown.err.strip() == "algoseek-sync: unknown FIGI 'NOPE': no applied security master listed it"
    )
    quiet = box.cli("bars", "--secid", str(held_once), "--start", "2030-01-01", "--format", "csv")
    assert quiet.code == 0 and "no bars" in quiet.err
    findings = box.cli("quality", "--since", "2030-01-01", "--format", "json")
    assert findings.out.strip() == "[]" and "no open findings matching these filters" in findings.err


def s_bars_csv(box: Sandbox, secid: int) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(box.cli("bars", "--secid", str(secid), "--format", "csv").out)).head(1)


def to_primary(frame: pd.DataFrame) -> str:
    """One bar of ``frame`` as a primary-dataset file (the vendor's header)."""
    from algoseek_sync.formats.datasets import DATASETS

    dataset = DATASETS["primary"]
    row = frame.iloc[0]
    values = []
    for column in dataset.columns:
        name = column.name
        if name == "tradedate":
            values.append(str(row["tradedate"]).replace("-", "")[:8])
        else:
            values.append("" if pd.isna(row.get(name)) else str(row.get(name)))
    return ",".join(c.source for c in dataset.columns) + "\n" + ",".join(values) + "\n"


def test_open_store_refuses_a_directory_without_a_store(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no state database"):
        algoseek_sync.open_store(tmp_path)


def test_a_store_open_beside_the_daemon_sees_whole_batches(sandbox: Sandbox, tmp_path: Path) -> None:
    """One long-lived reader while the daemon ingests: never an error, never a partial day."""
    from helpers_daemon import Daemon, wait_for

    staging = tmp_path / "staging"
    manifest = generate_drop(staging, SPEC)
    day = iso(manifest.trade_dates[3])
    sandbox.put(MASTER, staging / MASTER)
    daemon = Daemon(sandbox).start().wait_ready()
    try:
        wait_for(lambda: (sandbox.state / "state.db").exists() and daemon.settled(1), 60, "the master")
        seen: list[int] = []
        with store(sandbox) as s:
            for path in sorted(p for p in staging.iterdir() if p.name != MASTER):
                sandbox.put(path.name, path)
                section = s.cross_section(day) if s.datasets() else None
                if section is not None:
                    assert (
                        section["close"].notna().all() and (section["tradedate"] == pd.Timestamp(day)).all()
                    )
                    seen.append(section["secid"].nunique())
            wait_for(lambda: daemon.settled(len(manifest.bar_paths) + 1), 120, "every bar file")
            final = s.cross_section(day)
        assert seen == sorted(seen)  # grows batch by batch, never shrinks or tears
        assert final["secid"].nunique() == SPEC.secids
    finally:
        assert daemon.stop() == 0
