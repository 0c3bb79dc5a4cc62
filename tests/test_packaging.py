"""Packaging (issue 19): the core needs no Main Sequence SDK, and `backend.kind = "mainsequence"`
picks the adapter of the installed SDK line or says in one line (exit 78) which extra to install.

Runs in every environment the Makefile has: the main ``.venv`` (Python 3.11, SDK 3.21) and
``.venv-core`` (Python 3.13, no SDK; `make test` sets ``ALGOSEEK_SYNC_TEST_SDK=none`` there). The
assertions that depend on the environment read it first and check against what it holds.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib

import pytest

from algoseek_sync.backends import ADAPTERS, Adapter, choose_adapter, installed_versions, platform_adapter
from algoseek_sync.errors import ConfigError
from conftest import AAPL_FIGI, REPO, Sandbox

SDK9 = next(a for a in ADAPTERS if a.line == "9.x")
SDK3 = next(a for a in ADAPTERS if a.line == "3.x")
AAPL_ROWS = 3342


def sdk_version() -> str | None:
    try:
        return importlib.metadata.version("mainsequence")
    except importlib.metadata.PackageNotFoundError:
        return None


# -- the version -> adapter decision, as a pure function ------------------------------------------

FULL9 = {"mainsequence": "9.0.33", "mainsequence-metatable": "0.1.57", "ms-markets": "2.2.12"}


@pytest.mark.parametrize(
    ("installed", "adapter"),
    [
        ({"mainsequence": "3.19.17"}, SDK3),
        ({"mainsequence": "3.20.1"}, SDK3),
        ({"mainsequence": "3.21.0"}, SDK3),
        (FULL9, SDK9),
        ({**FULL9, "mainsequence": "9.0.40"}, SDK9),
        ({**FULL9, "mainsequence": "9.0.34.dev79"}, SDK9),
    ],
)
def test_the_installed_sdk_version_picks_the_adapter(installed: dict[str, str], adapter: Adapter) -> None:
    assert choose_adapter(installed, (3, 13)) == adapter


@pytest.mark.parametrize(
    ("installed", "python", "says"),
    [
        ({}, (3, 13), "no Main Sequence SDK is installed: pip install 'algoseek-sync[mainsequence]'"),
        ({}, (3, 11), "no Main Sequence SDK is installed: pip install 'algoseek-sync[mainsequence3]'"),
        ({"mainsequence": "3.19.16"}, (3, 11), "mainsequence 3.19.16 is outside"),
        ({"mainsequence": "3.22.0"}, (3, 11), "mainsequence 3.22.0 is outside"),
        ({"mainsequence": "4.4.32"}, (3, 12), "mainsequence 4.4.32 is outside"),
        ({**FULL9, "mainsequence": "9.0.32"}, (3, 13), "mainsequence 9.0.32 is outside"),
        ({**FULL9, "mainsequence": "9.1.0"}, (3, 13), "mainsequence 9.1.0 is outside"),
        ({"mainsequence": "garbage"}, (3, 13), "mainsequence garbage is outside"),
        (
            {"mainsequence": "9.0.33", "ms-markets": "2.2.12"},
            (3, 13),
            "mainsequence 9.0.33 is installed, but not mainsequence-metatable",
        ),
    ],
)
def test_no_or_an_unsupported_sdk_is_one_line_naming_version_and_extra(
    installed: dict[str, str], python: tuple[int, int], says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        choose_adapter(installed, python)
    message = str(caught.value)
    assert says in message and "\n" not in message
    extra = SDK9.extra if python >= SDK9.python else SDK3.extra
    assert f"'algoseek-sync[{extra}]'" in message


def test_the_adapters_bounds_are_the_extras_ranges() -> None:
    """The decision and pyproject.toml must not drift apart: each extra pins its line's range."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("mainsequence")], "the core needs no SDK"
    extras = project["optional-dependencies"]
    for adapter in ADAPTERS:
        wanted = f">={'.'.join(map(str, adapter.low))},<{'.'.join(map(str, adapter.high))}"
        pins = {re.match(r"[A-Za-z0-9_.-]+", r).group(): r for r in extras[adapter.extra]}
        assert set(pins) == set(adapter.distributions), (adapter.extra, pins)
        assert pins["mainsequence"].split(";")[0] == f"mainsequence{wanted}", pins
        python = f"{adapter.python[0]}.{adapter.python[1]}"
        assert all(python in r for r in pins.values()) or adapter.python == (3, 11), pins


# -- this environment ---------------------------------------------------------------------------


def test_this_environment_holds_the_sdk_it_should() -> None:
    """`import mainsequence` works exactly when its metadata is installed (what the choice reads)."""
    version = sdk_version()
    expected = os.environ.get("ALGOSEEK_SYNC_TEST_SDK")
    if expected is not None:  # set by the Makefile for the environment it runs this file in
        assert (version or "none") == expected
    probe = subprocess.run(
        [sys.executable, "-c", "import mainsequence"], capture_output=True, text=True, timeout=120
    )
    if version is None:
        assert probe.returncode != 0 and "No module named 'mainsequence'" in probe.stderr, probe.stderr
    else:
        assert probe.returncode == 0, probe.stderr
    assert installed_versions()["mainsequence"] == version


def test_the_core_ingests_and_reads_in_this_environment(sandbox: Sandbox, samples) -> None:
    """The embedded store end to end through the CLI, whatever SDK (none included) is installed."""
    samples(sandbox)
    ran = sandbox.cli("run", "--once")
    assert ran.code == 0
    rows = sandbox.cli("bars", "--figi", AAPL_FIGI, "--format", "csv").csv()
    assert len(rows) == AAPL_ROWS
    assert {r["unique_identifier"] for r in rows} == {AAPL_FIGI}


@pytest.mark.parametrize("command", [("check-config",), ("run", "--once")])
def test_the_platform_backend_without_its_sdk_fails_in_one_line(
    sandbox: Sandbox, samples, command: tuple[str, ...]
) -> None:
    """No SDK: exit 78 and the line `choose_adapter` gives; an SDK of a supported line: its adapter
    is built and fails for its own reason (no credentials here), still one line and exit 78."""
    samples(sandbox)
    result = sandbox.cli(*command, check=False, ALGOSEEK_SYNC_BACKEND="mainsequence")
    lines = result.err.strip().splitlines()
    assert result.code == 78 and len(lines) == 1, result.err
    try:
        adapter = platform_adapter()
    except ConfigError as exc:
        assert lines == [f"algoseek-sync: {exc}"]
        if sdk_version() is None:
            assert "no Main Sequence SDK is installed" in lines[0]
    else:
        assert adapter.line in ("3.x", "9.x") and "SDK is installed" not in lines[0], lines
        assert "MAINSEQUENCE" in lines[0], lines  # the adapter's own check of its credentials
    assert "Traceback" not in result.err
