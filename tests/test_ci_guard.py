"""The CI guard in tests/conftest.py: under CI=true a skip is a failure that names its reason.

Runs pytest in a subprocess on a tiny tree of skipping tests, with tests/conftest.py as a plugin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

_GUARDED = """\
import pytest


def test_passes():
    pass


def test_skips_in_its_body():
    pytest.skip("no frobnicator here")


@pytest.mark.skipif(True, reason="no widget device")
def test_skipif():
    pass


def test_importorskip():
    pytest.importorskip("module_that_is_not_there_4711")


@pytest.fixture
def gizmo():
    pytest.skip("the fixture lacks a gizmo")


def test_skips_in_a_fixture(gizmo):
    pass


@pytest.mark.xfail(reason="a known bug", strict=True)
def test_xfail():
    raise AssertionError


@pytest.mark.slow
def test_deselected():
    pytest.skip("never runs: deselected by -m 'not slow'")
"""


def _pytest_with_the_guard(tmp_path: Path, ci: str | None) -> tuple[int, str]:
    """pytest with tests/conftest.py as a plugin on a tiny tree of skipping tests; (exit code, output)."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: long\n")
    (tmp_path / "test_guarded.py").write_text(_GUARDED)
    (tmp_path / "test_module_skip.py").write_text(
        "import pytest\n\npytest.importorskip('another_missing_module_4711')\n\n\ndef test_never():\n    pass\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), str(REPO / "daemon")])
    if ci is not None:
        env["CI"] = ci
    args = [
        "-p",
        "conftest",
        "-p",
        "no:cacheprovider",
        "-m",
        "not slow",
        "-rA",
        "--continue-on-collection-errors",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args, str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_ci_guard_turns_every_skip_into_a_failure_naming_its_reason(tmp_path: Path) -> None:
    code, out = _pytest_with_the_guard(tmp_path, "true")
    assert code == 1, out
    for line in [
        "FAILED test_guarded.py::test_skips_in_its_body - test skipped under CI=true: no frobnicator here",
        "FAILED test_guarded.py::test_importorskip - test skipped under CI=true: could not import"
        " 'module_that_is_not_there_4711'",
        "ERROR test_guarded.py::test_skipif - test skipped under CI=true: no widget device",
        "ERROR test_guarded.py::test_skips_in_a_fixture - test skipped under CI=true: the fixture lacks a gizmo",
        "ERROR test_module_skip.py - module skipped under CI=true: could not import 'another_missing_module_4711'",
    ]:
        assert line in out, f"expected {line!r} in:\n{out}"
    assert "PASSED test_guarded.py::test_passes" in out
    assert "XFAIL test_guarded.py::test_xfail - a known bug" in out  # xfail stays xfail
    assert "2 failed, 1 passed, 1 deselected, 1 xfailed, 3 errors" in out, out  # deselected is no skip
    assert "test_deselected" not in out


@pytest.mark.parametrize("ci", [None, "false"], ids=["unset", "false"])
def test_ci_guard_leaves_skips_alone_outside_ci(tmp_path: Path, ci: str | None) -> None:
    code, out = _pytest_with_the_guard(tmp_path, ci)
    assert code == 0, out
    assert "1 passed, 5 skipped, 1 deselected, 1 xfailed" in out, out
