"""Errors and usage in the order a user needs them: --config after the subcommand, enum values named,
unknown finding kinds refused, header-only files reported, every plantable finding kind planted."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from algoseek_sync.config import load_settings
from algoseek_sync.errors import ConfigError
from algoseek_sync.quality.kinds import SEVERITY
from algoseek_sync.synthetic.generate import DropSpec, generate_drop
from algoseek_sync.synthetic.plant import not_planted, plant
from conftest import MASTER_SAMPLE, STANDARD_HEADER, Sandbox

EX_USAGE, EX_CONFIG = 2, 78


def test_config_is_accepted_after_the_subcommand_and_wins_over_the_one_before(sandbox: Sandbox) -> None:
    good, bad = sandbox.root / "good.toml", sandbox.root / "bad.toml"
    good.write_text("[quality]\nstale_sessions = 6\n")
    bad.write_text('[backend]\nkind = "postgres"\n')
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    sandbox.cli("run", "--once", "--config", str(good))
    after = sandbox.cli("status", "--config", str(bad), check=False)
    assert after.code == EX_CONFIG and f"configuration error in {bad}" in after.err
    assert sandbox.cli("--config", str(bad), "status", "--config", str(good)).code == 0
    last = sandbox.cli("--config", str(good), "status", "--json", "--config", str(bad), check=False)
    assert last.code == EX_CONFIG and str(bad) in last.err
    from_env = sandbox.cli("status", "--config", str(good), ALGOSEEK_SYNC_CONFIG=str(bad))
    assert from_env.code == 0  # the option given beats the environment, as before the subcommand
    assert "--config PATH" in sandbox.cli("quality", "--help").out


def test_an_invalid_enum_value_names_the_valid_ones(sandbox: Sandbox) -> None:
    config = sandbox.root / "x.toml"
    config.write_text('[backend]\nkind = "postgres"\n')
    result = sandbox.cli("check-config", "--config", str(config), check=False)
    assert result.code == EX_CONFIG
    assert result.err.strip() == (
        f"algoseek-sync: configuration error in {config}: 'backend.kind': must be one of 'local',"
        " 'mainsequence' (got 'postgres')"
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(env={"ALGOSEEK_SYNC_LOG_LEVEL": "loud"})
    assert str(raised.value) == (
        "configuration error in environment variable ALGOSEEK_SYNC_LOG_LEVEL: 'logging.level': must be one of"
        " 'debug', 'info', 'warning', 'error' (got 'loud')"
    )
    config.write_text("[watch]\nobserver = 3\n")  # the wrong type for an enum: the choices help too
    with pytest.raises(
        ConfigError, match=r"'watch\.observer': must be one of 'auto', 'inotify', 'polling' \(got 3\)"
    ):
        load_settings(config, env={})
    config.write_text("[watch]\nstability_seconds = -1\n")  # other keys keep msgspec's own words
    with pytest.raises(ConfigError, match=r"'watch\.stability_seconds': Expected `float` >= 0"):
        load_settings(config, env={})


def test_an_unknown_finding_kind_is_a_usage_error_and_a_future_since_is_not(sandbox: Sandbox) -> None:
    wrong = sandbox.cli("quality", "--kind", "nope", check=False)
    assert wrong.code == EX_USAGE and "'nope' is not one of" in wrong.err
    assert all(f"'{kind}'" in wrong.err for kind in SEVERITY)
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    sandbox.cli("run", "--once")
    later = sandbox.cli("quality", "--since", "2999-01-01", "--format", "json")
    assert json.loads(later.out) == []
    assert sandbox.cli("quality", "--kind", "missing_session").out == "no findings\n"


def test_a_header_only_bar_file_is_a_problem_status_shows(sandbox: Sandbox) -> None:
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    sandbox.put("33449.csv", STANDARD_HEADER + "\n")
    sandbox.put("20200413.csv.gz", gzip.compress((STANDARD_HEADER + "\n").encode()))
    sandbox.cli("run", "--once")
    data = json.loads(sandbox.cli("status", "--json").out)
    assert data["files"]["bars"] == {"done": 2}  # nothing to store is not a failure
    assert data["problems"]["counts"] == {"empty_file": 2}
    assert {(p["path"], p["kind"]) for p in data["problems"]["recent"]} == {
        ("33449.csv", "empty_file"),
        ("20200413.csv.gz", "empty_file"),
    }
    text = sandbox.cli("status").out
    assert "[empty_file] 33449.csv: a header and no rows -> nothing stored; the file is done" in text
    # a re-delivery with rows replaces the file's problems
    sandbox.put("33449.csv", f"{STANDARD_HEADER}\n33449,20200413,AAPL,268,274,265,273.25,100,1,1,,\n")
    sandbox.cli("run", "--once")
    assert json.loads(sandbox.cli("status", "--json").out)["problems"]["counts"] == {"empty_file": 1}


@pytest.mark.parametrize("aggregation", ["secid", "tradedate"])
def test_plant_problems_plants_every_kind_it_can_and_says_why_not_the_others(
    tmp_path: Path, aggregation: str
) -> None:
    spec = DropSpec(secids=30, days=25, aggregation=aggregation, open_quirks=0.0)  # type: ignore[arg-type]
    manifest = generate_drop(tmp_path, spec)
    planted = plant(tmp_path, spec, manifest)
    kinds = {p.kind for p in planted}
    missing = not_planted(spec, planted)
    assert kinds.isdisjoint(missing) and kinds | set(missing) == set(SEVERITY)
    if aggregation == "secid":
        assert set(missing) == {"late_delivery", "not_delivered", "not_listed"}
    else:  # a jump only when the file left out carried an event row
        assert set(missing) - {"unexplained_jump"} == {"late_delivery", "stale_price", "non_session_row"}
    assert all(why for why in missing.values())


def test_plant_problems_on_the_command_line_lists_what_it_could_not_plant(sandbox: Sandbox) -> None:
    listed = sandbox.root / "planted.json"
    out = sandbox.cli("generate", str(sandbox.drop), "--secids", "30", "--plant-problems", str(listed)).out
    planted = json.loads(listed.read_text())
    assert f"planted {len(planted)} expected finding(s) of 10 kind(s), listed in {listed}" in out
    assert "not planted: late_delivery: found on the running daemon's clock" in out
    assert {p["kind"] for p in planted} == set(SEVERITY) - {"late_delivery", "not_delivered", "not_listed"}
    assert all(len(p["start_date"]) == len(p["end_date"]) == 10 for p in planted)
