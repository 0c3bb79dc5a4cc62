"""Shared fixtures: real sample files, a drop/state pair, and the CLI as a subprocess."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path

import pytest
import structlog

from algoseek_sync.state.database import Database

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "tests" / "data" / "algoseek"  # copies of the real vendor samples (see its README)
MASTER_SAMPLE = SAMPLES / "equity_security_master-sample.csv"
AAPL_SAMPLE = SAMPLES / "standard-adjusted-secid-33449.csv"
AAPL_FIGI = "BBG000B9XRY4"
#: the vendor headers of the standard adjusted and the primary-exchange daily OHLC files
STANDARD_HEADER = (
    "SecId,TradeDate,Ticker,Open,High,Low,Close,MarketHoursVolume,"
    "CumulativePriceFactor,CumulativeVolumeFactor,AdjustmentFactor,AdjustmentReason"
)
PRIMARY_HEADER = (
    "SecId,TradeDate,Ticker,Name,PrimaryExchange,ISIN,OpenPrice,OpenSize,OpenTime,HighPrice,HighTime,LowPrice,"
    "LowTime,ClosePrice,CloseSize,CloseTime,ListedMarketHoursVolume,ListedMarketHoursTrades,ListedTotalVolume,"
    "ListedTotalTrades,FinraMarketHoursVolume,FinraMarketHoursTrades,FinraTotalVolume,FinraTotalTrades,"
    "MarketVWAP,DailyVWAP"
)


#: values of the CI environment variable that mean "this is CI" (CI services set CI=true)
CI_TRUE = frozenset({"1", "true", "yes", "on"})


def ci_is_set() -> bool:
    """True in CI: there every capability a test needs must be present, so nothing may skip."""
    return os.environ.get("CI", "").strip().lower() in CI_TRUE


def _skip_reason(longrepr: object) -> str:
    """The reason of a skipped report (its longrepr is (path, line, reason) for skips)."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail_skip_under_ci(report: pytest.TestReport | pytest.CollectReport, what: str) -> None:
    """A skip (pytest.skip, importorskip, skipif) under CI becomes a failure that names its reason."""
    if report.skipped and not hasattr(report, "wasxfail") and ci_is_set():
        reason = _skip_reason(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (
            f"{what} skipped under CI={os.environ['CI']}: {reason}\n"
            "In CI nothing may skip for a missing capability: provide it, or fix the test."
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport() -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Under CI a skipped test fails (xfail stays xfail; deselected tests never run, so never report)."""
    report = yield
    _fail_skip_under_ci(report, "test")
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report() -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Under CI a module that skips as a whole (a module-level importorskip) is a collection error."""
    report = yield
    _fail_skip_under_ci(report, "module")
    return report


@pytest.fixture(autouse=True)
def _fresh_structlog():
    """In-process tests that configure logging bind pytest's captured stderr; do not leak it onward."""
    yield
    structlog.reset_defaults()


@dataclass
class Result:
    code: int
    out: str
    err: str

    def csv(self) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(self.out)))


@dataclass
class Sandbox:
    """A drop directory and a state directory, and a way to run the CLI on them."""

    root: Path
    drop: Path
    state: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ALGOSEEK_SYNC_", "MAINSEQUENCE", "MAIN_SEQUENCE"))
        }
        env.update(
            PYTHONPATH=str(REPO / "daemon"),
            ALGOSEEK_SYNC_DROP_DIR=str(self.drop),
            ALGOSEEK_SYNC_STATE_DIR=str(self.state),
            ALGOSEEK_SYNC_LOG_FORMAT="json",
        )
        env.update(extra)
        return env

    def cli(self, *args: str, check: bool = True, timeout: float = 120, **env: str) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "algoseek_sync", *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"algoseek-sync {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
        return result

    def put(self, rel: str, data: bytes | str | Path) -> Path:
        """Deliver a file into the drop directory (bytes, text, or a copy of a path)."""
        target = self.drop / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Path):
            shutil.copyfile(data, target)
        else:
            target.write_bytes(data.encode() if isinstance(data, str) else data)
        return target


@pytest.fixture
def db(tmp_path: Path) -> Generator[Database, None, None]:
    """A fresh state database (the embedded store's tables included), closed after the test."""
    database = Database(tmp_path / "state.db")
    yield database
    database.close()


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    drop, state = tmp_path / "drop", tmp_path / "state"
    drop.mkdir()
    return Sandbox(tmp_path, drop, state)


@pytest.fixture
def samples() -> Callable[[Sandbox], None]:
    """Deliver the real master sample and the AAPL bars (as 33449.csv) into a sandbox."""

    def deliver(box: Sandbox) -> None:
        box.put("equity_security_master.csv", MASTER_SAMPLE)
        box.put("33449.csv", AAPL_SAMPLE)

    return deliver


def planted_drop(box: Sandbox, planted_file: Path, *options: str) -> list[dict[str, object]]:
    """Generate a drop with one data-quality problem of each kind, ingest it, return the planted findings."""
    import json

    box.cli("generate", str(box.drop), *options, "--plant-problems", str(planted_file))
    box.cli("run", "--once")
    return json.loads(planted_file.read_text())
