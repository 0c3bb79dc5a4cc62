"""One output style in every command: ISO dates and timestamps in every format, prices at the vendor's
precision in tables (full precision in CSV and JSON), text left- and numbers right-aligned, one JSON
layout (a list of records keyed like the CSV header), resolution and active/inactive shown."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from algoseek_sync.commands.output import Field, decimals_of, format_assets, iso_document, render
from algoseek_sync.commands.quality_view import format_findings
from conftest import Sandbox, planted_drop

DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

PRICES = (Field("ticker"), Field("close", "number"), Field("volume", "int"))


def columns_of(table: str) -> list[list[str]]:
    return [line.split() for line in table.splitlines()]


# -- in process: the rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "places"),
    [
        ([244.0, 240.32, 13.1], 2),  # cents, as delivered: 244.0 shows as 244.00
        ([17.985, 36.1], 3),
        ([270.1234, 1.5], 4),  # the vendor's finest: VWAPs
        ([83.84327084584541, 81.2], 6),  # computed (adjusted): a sensible number of decimals
        ([None, 5.0], 2),
    ],
)
def test_a_price_column_shows_the_fewest_decimals_that_are_exact(values: list, places: int) -> None:
    assert decimals_of(values) == places


def test_tables_round_and_align_while_csv_and_json_keep_full_precision() -> None:
    rows = [
        {"ticker": "AAPL", "close": 83.84327084584541, "volume": 73249560.99999994},
        {"ticker": "BRK.A", "close": 244.0, "volume": 12.0},
    ]
    table = render(rows, PRICES, "table").splitlines()
    assert table == [
        "ticker       close    volume",
        "AAPL     83.843271  73249561",
        "BRK.A   244.000000        12",
    ]
    assert json.loads(render(rows, PRICES, "json")) == rows  # every digit, as stored
    assert render(rows, PRICES, "csv").splitlines()[1] == "AAPL,83.84327084584541,73249560.99999994"
    for fmt in ("table", "csv", "json"):  # a DataFrame (converted a column at a time) reads the same
        assert render(pd.DataFrame(rows), PRICES, fmt) == render(rows, PRICES, fmt)
    assert render([], PRICES, "table") == "ticker  close  volume"  # the header alone
    assert render([], PRICES, "table", empty="no rows") == "no rows"
    with pytest.raises(ValueError, match="unknown output format"):
        render(rows, PRICES, "xml")


def test_dates_and_timestamps_read_the_same_in_every_format() -> None:
    fields = (Field("tradedate", "day"), Field("first_seen", "time"), Field("resolved_at", "time"))
    rows = [{"tradedate": 20200210, "first_seen": 1796598168.25, "resolved_at": None}]
    expected = {"tradedate": "2020-02-10", "first_seen": "2026-12-06T23:02:48Z", "resolved_at": None}
    assert json.loads(render(rows, fields, "json")) == [expected]
    assert list(csv.DictReader(io.StringIO(render(rows, fields, "csv")))) == [{**expected, "resolved_at": ""}]
    assert columns_of(render(rows, fields, "table"))[1] == ["2020-02-10", "2026-12-06T23:02:48Z"]
    document = {"datasets": {"x": {"first": 20240102, "last": 20240108}}, "skipped": [{"updated_at": 0.0}]}
    assert iso_document(document) == {
        "datasets": {"x": {"first": "2024-01-02", "last": "2024-01-08"}},
        "skipped": [{"updated_at": "1970-01-01T00:00:00Z"}],
    }


ASSETS = pd.DataFrame(
    {
        "unique_identifier": ["BBG000B9XRY4", "SECID-555"],
        "secid": [33449, 555],
        "kind": ["figi", "custom"],
        "ticker": ["AAPL", "X"],
        "name": ["Apple Inc", "Delisted Holdings Corporation"],
        "active": [True, False],
    }
)


def test_assets_show_active_or_inactive_with_text_left_and_numbers_right() -> None:
    lines = format_assets(ASSETS, "table").splitlines()
    assert lines == [
        "unique_identifier  secid  kind    ticker  name                           status",
        "BBG000B9XRY4       33449  figi    AAPL    Apple Inc                      active",
        "SECID-555            555  custom  X       Delisted Holdings Corporation  inactive",
    ]
    records = json.loads(format_assets(ASSETS, "json"))
    assert records == [
        {
            "unique_identifier": "BBG000B9XRY4",
            "secid": 33449,
            "kind": "figi",
            "ticker": "AAPL",
            "name": "Apple Inc",
            "active": True,
        },
        {
            "unique_identifier": "SECID-555",
            "secid": 555,
            "kind": "custom",
            "ticker": "X",
            "name": "Delisted Holdings Corporation",
            "active": False,
        },
    ]
    rows = list(csv.DictReader(io.StringIO(format_assets(ASSETS, "csv"))))
    assert [list(r) for r in rows] == [list(records[0])] * 2  # the CSV header is the JSON keys
    assert [r["active"] for r in rows] == ["true", "false"]
    assert format_assets(ASSETS.iloc[:0], "table") == "no assets"
    assert json.loads(format_assets(ASSETS.iloc[:0], "json")) == []


def test_the_quality_table_shows_resolution() -> None:
    finding = {
        "severity": "warning",
        "kind": "missing_session",
        "dataset": "primary",
        "secid": 7,
        "unique_identifier": "BBG000000007",
        "start_date": 20240105,
        "end_date": 20240105,
        "observed": {"sessions": 1},
        "first_seen": 1796598168.25,
        "last_seen": 1796598170.0,
        "resolved_at": 1796598200.0,
    }
    header, row = format_findings([finding, {**finding, "resolved_at": None}], "table").splitlines()[:2]
    assert header.split()[-1] == "resolved" and row.split()[-1] == "2026-12-06T23:03:20Z"
    assert format_findings([], "table") == "no findings"


# -- the CLI on a real generated drop ------------------------------------------------------------


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    """A generated drop with every plantable problem, ingested once for the module's tests."""
    root = tmp_path_factory.mktemp("style")
    box = Sandbox(root, root / "drop", root / "state")
    box.drop.mkdir()
    planted_drop(box, root / "planted.json", "--secids", "12", "--days", "25")
    return box


def test_bars_use_iso_dates_and_one_record_layout_in_every_format(drop: Sandbox) -> None:
    as_json = json.loads(drop.cli("bars", "--secid", "10000", "--format", "json").out)
    as_csv = drop.cli("bars", "--secid", "10000", "--format", "csv").csv()
    assert len(as_json) == len(as_csv) >= 25
    assert [list(r) for r in as_json] == [list(r) for r in as_csv]  # JSON keys = CSV header, in order
    assert all(DAY.match(r["tradedate"]) for r in as_json)
    assert [r["tradedate"] for r in as_json] == [r["tradedate"] for r in as_csv]
    assert all(r["time_index"].endswith("Z") for r in as_json)
    table = drop.cli("bars", "--secid", "10000").out.splitlines()
    assert table[0].split()[:2] == ["trade", "date"] and len(table) == len(as_json) + 1
    dates = [line.split()[0] for line in table[1:]]
    assert dates == [r["tradedate"] for r in as_json]
    prices = [line.split()[-5:-1] for line in table[1:]]  # open high low close: cents, as delivered
    assert all(re.fullmatch(r"\d+\.\d{2}", p) for row in prices for p in row)
    widths = {len(line) for line in table[1:]}
    assert len(widths) == 1  # numbers right-aligned: every row ends in the same column


def test_quality_uses_iso_dates_and_timestamps_in_every_format(drop: Sandbox) -> None:
    as_json = json.loads(drop.cli("quality", "--format", "json").out)
    as_csv = drop.cli("quality", "--format", "csv").csv()
    assert len(as_json) == len(as_csv) > 5
    assert [list(r) for r in as_json] == [list(r) for r in as_csv]
    for record in as_json:
        assert DAY.match(record["start_date"]) and DAY.match(record["end_date"])
        assert STAMP.match(record["first_seen"]) and STAMP.match(record["last_seen"])
        assert record["resolved_at"] is None and isinstance(record["observed"], dict)
    assert all(STAMP.match(r["first_seen"]) for r in as_csv)
    header = drop.cli("quality").out.splitlines()[0].split()
    assert header[-1] == "resolved" and header[:3] == ["severity", "kind", "dataset"]


def test_status_uses_iso_dates_and_timestamps(drop: Sandbox) -> None:
    data = json.loads(drop.cli("status", "--json").out)
    (extent,) = data["datasets"].values()
    assert DAY.match(extent["first"]) and DAY.match(extent["last"])
    assert STAMP.match(data["last_success"]) and DAY.match(str(data["quality"]["last_delivered"]))
    text = drop.cli("status").out
    assert f"{extent['first']}..{extent['last']}" in text


def test_top_level_help_shows_each_commands_first_sentence_whole(tmp_path: Path) -> None:
    box = Sandbox(tmp_path, tmp_path, tmp_path)
    commands = " ".join(box.cli("--help").out.split("Commands:")[1].split())
    assert "..." not in commands  # click's mark of a description it cut
    for sentence in (
        "Every identifier a master linked to a SecId (FIGIs, custom ids), marked active or not.",
        "Validate the configuration and check that the drop is readable and the backend answers.",
        "Data-quality findings of the stored bars: gaps, impossible bars, stale prices, jumps, deliveries.",
        "Daemon, file counts by state, parked/quarantined files, problems, assets, last success.",
    ):
        assert sentence in commands
