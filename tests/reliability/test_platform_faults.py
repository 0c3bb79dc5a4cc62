"""Platform faults under `algoseek-sync run` on the Main Sequence backend (real SDK, local test server).

* a 2-minute outage in the middle of a drop (1 min of 503s, then 1 min of refused
  connections): every file lands after recovery, nothing is lost, and the request rate
  during the outage stays bounded;
* a 429 storm with ``Retry-After``: the client waits as told and every file lands.

Slow (`make reliability`). The rates measured are printed (run with ``-s``).
"""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import Sandbox
from helpers_daemon import FAST_CONFIG, Daemon, query, stored_tables, wait_for

pytestmark = pytest.mark.slow

platform_server = pytest.importorskip("platform_server")
pytest.importorskip("algoseek_sync.backends.mainsequence")

TOKEN = "reliability-token"
RETRY_ATTEMPTS = 3
RETRIES = f"""
[mainsequence]
retry_attempts = {RETRY_ATTEMPTS}
retry_initial_seconds = 0.5
retry_max_seconds = 5.0
retry_total_seconds = 10.0
registration_retry_seconds = 5.0
"""


#: the generated drops are primary-adjusted: the platform table their bars are published in
DATASET = "primary-adjusted"


def make_drop(root: Path, secids: int, days: int) -> tuple[Path, list[Path]]:
    from algoseek_sync.synthetic.generate import DropSpec, generate_drop

    manifest = generate_drop(root, DropSpec(secids=secids, days=days, seed=5, blank_figi_fraction=0.0))
    return manifest.master_path, list(manifest.bar_paths)


def reference_keys(tmp_path: Path, src: Path) -> set[tuple[str, str]]:
    """(time_index, unique_identifier) of every bar a clean embedded `run --once` serves: each
    stored (SecId, day) row under every identifier the master routes the SecId to."""
    from algoseek_sync.formats.bars import close_time_index

    ref = Sandbox(tmp_path / "ref", src, tmp_path / "ref" / "state")
    ref.root.mkdir(exist_ok=True)
    ref.cli("run", "--once", timeout=300)
    db = ref.state / "state.db"
    routes: dict[int, list[str]] = {}
    for secid, uid in query(db, "SELECT secid, unique_identifier FROM secid_assets WHERE active = 1"):
        routes.setdefault(secid, []).append(uid)
    table = stored_tables(db)[DATASET]
    days = zip(table["secid"].to_pylist(), table["tradedate"].to_pylist(), strict=True)
    return {(close_time_index(day), uid) for secid, day in days for uid in routes[secid]}


def platform_keys(server) -> set[tuple[str, str]]:
    from algoseek_sync.formats.datasets import DATASETS

    out = set()
    for row in server.state.table_rows(DATASETS[DATASET].identifier):
        when = pd.Timestamp(row["time_index"]).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
        out.add((when, row["unique_identifier"]))
    return out


def start_daemon(box: Sandbox, server) -> Daemon:
    daemon = Daemon(
        box,
        stability="0.2",
        ALGOSEEK_SYNC_BACKEND="mainsequence",
        MAINSEQUENCE_ENDPOINT=server.url,
        MAINSEQUENCE_ACCESS_TOKEN=TOKEN,
        MAIN_SEQUENCE_PROJECT_ID="1",
    )
    (box.root / "fast.toml").write_text(FAST_CONFIG + RETRIES)  # the helper's config, with quick retries
    return daemon.start()


def newest_done(db: Path) -> int:
    rows = query(
        db,
        "SELECT count(*) FROM files f WHERE state = 'done'"
        " AND id = (SELECT max(id) FROM files g WHERE g.path = f.path)",
    )
    return rows[0][0] if rows else 0


def staged_drop(tmp_path: Path, secids: int, days: int) -> tuple[Sandbox, list[Path], set[tuple[str, str]]]:
    """A sandbox whose drop holds only the master, the bar files to deliver, and the expected keys."""
    src = tmp_path / "src"
    master, bars = make_drop(src, secids=secids, days=days)
    expected = reference_keys(tmp_path, src)
    box = Sandbox(tmp_path, tmp_path / "drop", tmp_path / "state")
    box.drop.mkdir()
    shutil.copyfile(master, box.drop / master.name)
    return box, bars, expected


def requests_between(server, start: float, end: float) -> list[dict]:
    with server.state.lock:
        return [e for e in server.state.log if start <= e["t"] < end]


@pytest.mark.timeout(900)
def test_two_minute_outage_mid_drop(tmp_path: Path) -> None:
    box, bars, expected = staged_drop(tmp_path, secids=40, days=15)
    first, second = bars[:20], bars[20:]
    for path in first:
        shutil.copyfile(path, box.drop / path.name)
    server = platform_server.PlatformServer().start()
    daemon = start_daemon(box, server)
    try:
        daemon.wait_ready()
        wait_for(lambda: newest_done(daemon.db) == 21, 180, "the first half on the platform")
        # outage part 1: every request answered 503
        server.fault("/", status=503, count=10**9)
        t503 = time.monotonic()
        for path in second[:10]:
            shutil.copyfile(path, box.drop / path.name)
        time.sleep(60)
        t_refused = time.monotonic()
        during_503 = requests_between(server, t503, t_refused)
        # outage part 2: nothing listens (connections refused), on the address the daemon knows
        server.take_down()
        for path in second[10:]:
            shutil.copyfile(path, box.drop / path.name)
        time.sleep(60)
        assert daemon.proc is not None and daemon.proc.poll() is None, daemon.log()[-3000:]
        done_during = newest_done(daemon.db)
        server.clear_faults()
        server.bring_up()
        recovered = time.monotonic()
        wait_for(lambda: newest_done(daemon.db) == 41, 420, "every file after the outage")
        landed_after = time.monotonic() - recovered
        states = dict(query(daemon.db, "SELECT state, count(*) FROM files GROUP BY state"))
    finally:
        daemon.stop(timeout=30)
        server.stop()
    rate = len(during_503) / (t_refused - t503)
    print(
        f"\noutage: {len(during_503)} requests in {t_refused - t503:.0f}s of 503s ({rate:.2f}/s);"
        f" files done during the outage {done_during}; all landed {landed_after:.0f}s after recovery;"
        f" ledger {states}"
    )
    assert rate < 2.0, f"{rate:.2f} requests/s during the outage"
    assert done_during == 21  # nothing claimed done while the platform was down
    assert states == {"done": 41}
    assert platform_keys(server) == expected


@pytest.fixture(scope="module")
def storm(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One 429 storm (15 answers with ``Retry-After: 2``) while a 20-file drop is ingested."""
    tmp_path = tmp_path_factory.mktemp("storm")
    box, bars, expected = staged_drop(tmp_path, secids=20, days=10)
    server = platform_server.PlatformServer().start()
    server.fault("/orm/api", status=429, retry_after=2, count=15)
    began = time.monotonic()
    for path in bars:
        shutil.copyfile(path, box.drop / path.name)
    daemon = start_daemon(box, server)
    try:
        daemon.wait_ready()
        wait_for(lambda: newest_done(daemon.db) == 21, 420, "every file through the 429 storm")
        took = time.monotonic() - began
    finally:
        daemon.stop(timeout=30)
        server.stop()
    retries = daemon.events("platform_retry")
    with server.state.lock:
        limited = [e for e in server.state.log if e.get("status") == 429]
    by_path: dict[str, list[float]] = {}
    for entry in limited:
        by_path.setdefault(entry["path"], []).append(entry["t"])
    gaps = {p: [b - a for a, b in itertools.pairwise(ts)] for p, ts in by_path.items()}
    print(
        f"\n429 storm: {len(limited)} throttled requests; per path: "
        + "; ".join(f"{p} n={len(ts)} min gap {min(gaps[p], default=0):.2f}s" for p, ts in by_path.items())
        + f"; all files in {took:.0f}s"
    )
    return {"expected": expected, "keys": platform_keys(server), "limited": limited, "retries": retries}


@pytest.mark.timeout(600)
def test_429_storm_every_file_lands(storm: dict) -> None:
    assert len(storm["limited"]) == 15
    assert storm["keys"] == storm["expected"]


@pytest.mark.timeout(600)
def test_429_storm_retry_after_honoured_on_every_path(storm: dict) -> None:
    """Every retry the daemon makes after a ``Retry-After: 2`` waits at least 2 s, whatever the call.

    Measured on the client (its ``platform_retry`` log lines): the server cannot tell apart
    two callers (the worker and the readiness probe) throttled on the same path.

    How many retries to expect: the live backend check (``[health] backend_check_seconds``)
    is one attempt, never retried, and may take some of the 15 throttled answers on the
    project path; asset registration is the worker's alone. A call is tried at most
    ``retry_attempts`` times, so at least (attempts - 1) of every ``attempts`` throttled
    answers on the asset path are followed by a retry.
    """
    hinted = [r for r in storm["retries"] if r.get("retry_after") == 2.0]
    on_assets = [e for e in storm["limited"] if "/assets/" in e["path"]]
    floor = -(-len(on_assets) * (RETRY_ATTEMPTS - 1) // RETRY_ATTEMPTS)
    assert on_assets and len(hinted) >= floor, (len(on_assets), storm["retries"])
    assert all(r["wait_s"] >= 2.0 for r in hinted), hinted
