"""What operators and supervisors read: exit codes, summaries, health verdicts, check-config.

Every test starts the CLI as a subprocess, as cron, systemd or a container runtime would.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import site
import socket
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import AAPL_SAMPLE, MASTER_SAMPLE, REPO, Sandbox
from helpers_daemon import refused_port

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@contextlib.contextmanager
def lock_held(sandbox: Sandbox) -> Iterator[subprocess.Popen]:
    """Another process holding the state directory's worker lock, as a running daemon does."""
    sandbox.state.mkdir(parents=True, exist_ok=True)
    code = (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(sandbox.state / 'worker.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def set_meta(box: Sandbox, **values: object) -> None:
    db = sqlite3.connect(box.state / "state.db")
    with db:
        for key, value in values.items():
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))
    db.close()


def health(box: Sandbox) -> tuple[int, dict]:
    result = box.cli("status", "--health", "--json", check=False)
    return result.code, json.loads(result.out)


def test_run_once_counts_every_outcome_and_exits_as_documented(sandbox: Sandbox) -> None:
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    sandbox.put("33449.csv", AAPL_SAMPLE)
    clean = sandbox.cli("run", "--once")
    assert clean.err.splitlines()[-1] == (
        "processed 2 file version(s): done 2, unchanged 0, waiting 0, quarantined 0, skipped 0,"
        " superseded 0, deferred 0, failed 0; wrote 3342 row(s)"
    )
    sandbox.put("1.csv", "not,a,bar,file\n1,2,3,4\n")
    sandbox.put(
        "777.csv", "SecId,TradeDate,Ticker,Open,High,Low,Close,MarketHoursVolume\n777,20240102,X,1,1,1,1,1\n"
    )
    bad = sandbox.cli("run", "--once", check=False)
    assert bad.code == 1, bad.err  # a file of this run was quarantined: cron must notice
    assert "quarantined 1" in bad.err.splitlines()[-1] and "waiting 1" in bad.err.splitlines()[-1]
    again = sandbox.cli("run", "--once", check=False)
    assert again.code == 0 and "processed 0 file version(s)" in again.err  # nothing new: nothing wrong


def test_run_once_while_a_daemon_holds_the_state_directory_exits_75(sandbox: Sandbox) -> None:
    with lock_held(sandbox):
        result = sandbox.cli("run", "--once", check=False)
    assert result.code == 75 and "already running" in result.err and "Traceback" not in result.err


def test_health_without_a_daemon_says_stopped(sandbox: Sandbox) -> None:
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    sandbox.cli("run", "--once")
    code, verdict = health(sandbox)
    assert code == 1 and verdict["state"] == "stopped" and "no daemon running" in verdict["reasons"][0]


def test_health_turns_unhealthy_or_degraded_when_work_stops_moving(sandbox: Sandbox) -> None:
    sandbox.put("equity_security_master.csv", MASTER_SAMPLE)
    sandbox.put("33449.csv", AAPL_SAMPLE)
    sandbox.cli("run", "--once")
    now = time.time()
    with lock_held(sandbox):
        set_meta(sandbox, heartbeat=now, failed_cycles=0, backend_down_since=0)
        code_, verdict = health(sandbox)
        assert (code_, verdict["state"]) == (0, "healthy")
        assert sandbox.cli("status", "--health").out.strip() == "healthy"

        db = sqlite3.connect(sandbox.state / "state.db")
        with db:
            db.execute(
                "UPDATE files SET state = 'processing', claimed_at = ? WHERE path = '33449.csv'",
                (now - 2000,),
            )
        code_, verdict = health(sandbox)
        assert code_ == 1 and verdict["state"] == "unhealthy"
        assert "33449.csv has been processing for" in verdict["reasons"][0]
        with db:
            db.execute("UPDATE files SET state = 'done', claimed_at = NULL")
        db.close()

        set_meta(sandbox, failed_cycles=4, last_error="RuntimeError: boom")
        code_, verdict = health(sandbox)
        assert code_ == 1 and "the last 4 worker cycles failed: RuntimeError: boom" in verdict["reasons"]
        set_meta(sandbox, failed_cycles=0, backend_down_since=now - 900, backend_error="connection refused")
        code_, verdict = health(sandbox)
        assert (code_, verdict["state"]) == (1, "degraded")
        assert (
            "backend unreachable for" in verdict["reasons"][0]
            and "connection refused" in verdict["reasons"][0]
        )
        set_meta(sandbox, backend_down_since=0, heartbeat=now - 3600, busy_until=0)
        code_, verdict = health(sandbox)
        assert code_ == 1 and "worker made no progress" in verdict["reasons"][0]
        # a long backend call announced how long it may take: not hung yet
        set_meta(sandbox, heartbeat=now - 90, busy_until=now + 60)
        assert health(sandbox)[1]["state"] == "healthy"
        text = sandbox.cli("status").out
        assert "running (pid " in text and "heartbeat" in text


def test_a_busy_metrics_port_is_a_temporary_failure(sandbox: Sandbox) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = sandbox.cli("run", check=False, timeout=60, ALGOSEEK_SYNC_METRICS_LISTEN=f"127.0.0.1:{port}")
    assert result.code == 75, result.err  # systemd restarts 75 (not 78): the old process may still hold it
    assert "metrics_listen_failed" in result.err


def test_check_config_validates_what_run_validates(sandbox: Sandbox) -> None:
    result = sandbox.cli("check-config", check=False, ALGOSEEK_SYNC_METRICS_LISTEN="localhost")
    assert result.code == 78 and "'metrics.listen'" in result.err and "host:port" in result.err
    assert len(result.err.strip().splitlines()) == 1
    ok = sandbox.cli("check-config", ALGOSEEK_SYNC_METRICS_LISTEN="127.0.0.1:9108")  # parsed, not bound
    assert "configuration OK" in ok.out and "metrics:   http://127.0.0.1:9108/metrics" in ok.out


def test_check_config_names_every_missing_credential_at_once(sandbox: Sandbox) -> None:
    result = sandbox.cli("check-config", check=False, ALGOSEEK_SYNC_BACKEND="mainsequence")
    assert result.code == 78
    for name in ("MAINSEQUENCE_ENDPOINT", "MAINSEQUENCE_ACCESS_TOKEN", "MAIN_SEQUENCE_PROJECT_ID"):
        assert name in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_check_config_says_connection_refused(sandbox: Sandbox) -> None:
    with refused_port() as port:
        result = sandbox.cli(
            "check-config",
            check=False,
            ALGOSEEK_SYNC_BACKEND="mainsequence",
            MAINSEQUENCE_ENDPOINT=f"http://127.0.0.1:{port}",
            MAINSEQUENCE_ACCESS_TOKEN="token-for-a-closed-port",
            MAIN_SEQUENCE_PROJECT_ID="1",
        )
    assert result.code == 69, result.err
    assert "connection refused" in result.err and "token-for-a-closed-port" not in result.err


@pytest.fixture
def open_box() -> Iterator[Sandbox]:
    """A sandbox another user can enter (tmp_path is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="algoseek-nobody-"))
    root.chmod(0o777)
    box = Sandbox(root, root / "drop", root / "state")
    for directory in (box.drop, box.state):
        directory.mkdir()
        directory.chmod(0o777)
    yield box
    for path in root.rglob("*"):
        if path.is_dir():
            path.chmod(0o777)
    shutil.rmtree(root)


@dataclass(frozen=True)
class NobodyPython:
    """A Python that user nobody can run wherever this checkout lives: this interpreter, its standard
    library, the venv's packages and the package source, mirrored into a directory every user can read.

    Why not the venv: a clone under a private directory (``mktemp -d``, a home of mode 0700) holds the
    venv and the source where nobody cannot look, and the venv's base interpreter may live under such a
    directory too (pyenv under /root): nobody then gets another Python's standard library, or none.
    """

    python: Path
    env: dict[str, str]


def _place(source: str, target: Path) -> None:
    """A hard link (cheap) when the file is readable by all; else a copy made readable, since a link
    shares the original's mode and a chmod of it would change the original."""
    mode = os.stat(source).st_mode
    wanted = 0o005 if mode & 0o100 else 0o004
    if mode & wanted == wanted:
        with contextlib.suppress(OSError):  # another filesystem, or links refused: copy
            os.link(source, target)
            return
    shutil.copyfile(source, target)
    target.chmod(0o755 if mode & 0o100 else 0o644)


def _mirror(source: Path, target: Path, skip: Callable[[str], bool] = lambda name: False) -> None:
    """``source``'s tree under ``target``, every directory and file readable by all; symlinks as they are."""
    for top, dirs, files in os.walk(source):
        here = target / os.path.relpath(top, source)
        here.mkdir(exist_ok=True)
        here.chmod(0o755)
        for name in [*dirs, *files]:
            path = os.path.join(top, name)
            if skip(name):
                continue
            if os.path.islink(path):
                os.symlink(os.readlink(path), here / name)
            elif name in files:
                _place(path, here / name)
        dirs[:] = [d for d in dirs if not skip(d) and not os.path.islink(os.path.join(top, d))]


def _open_dirs(root: Path, path: Path) -> None:
    """``path`` and the folders between it and ``root`` exist and every user may enter them."""
    path.mkdir(parents=True, exist_ok=True)
    while path != root:
        path.chmod(0o755)
        path = path.parent


def _not_needed_to_run(name: str) -> bool:
    """Parts of a standard library the CLI never imports (and other installs' packages)."""
    return name in ("site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo") or (
        name.startswith("config-")
    )


def _mirror_python(root: Path) -> NobodyPython:
    """This interpreter (binary, shared library, standard library), the site directories and the package
    source under ``root``, laid out as an installation, so the binary finds its own library there."""
    base = Path(os.path.realpath(sys.base_prefix))
    executable = Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))
    stdlib = Path(os.path.realpath(sysconfig.get_paths()["stdlib"]))
    if not (executable.is_relative_to(base) and stdlib.is_relative_to(base)):
        pytest.fail(f"{executable} or {stdlib} is not under {base}: cannot mirror it", pytrace=False)
    python = root / executable.relative_to(base)
    _open_dirs(root, python.parent)
    _place(str(executable), python)
    _open_dirs(root, (root / stdlib.relative_to(base)).parent)
    _mirror(stdlib, root / stdlib.relative_to(base), _not_needed_to_run)
    libs = root / "shared-libs"
    _open_dirs(root, libs)
    shared = Path(str(sysconfig.get_config_var("LIBDIR")), str(sysconfig.get_config_var("INSTSONAME")))
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and shared.is_file():
        _place(str(shared), libs / shared.name)
    paths = [root / "src"]
    _open_dirs(root, paths[0])
    _mirror(REPO / "daemon" / "algoseek_sync", paths[0] / "algoseek_sync", lambda name: name == "__pycache__")
    for site_dir in dict.fromkeys(os.path.realpath(d) for d in site.getsitepackages() if os.path.isdir(d)):
        paths.append(root / f"site-{len(paths)}")
        _mirror(Path(site_dir), paths[-1])
    env = {
        "PYTHONPATH": os.pathsep.join(map(str, paths)),
        "LD_LIBRARY_PATH": str(libs),  # searched before the binary's runpath, which nobody may not enter
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return NobodyPython(python, env)


@pytest.fixture(scope="module")
def nobody_python() -> Iterator[NobodyPython]:
    """The mirror, proven: nobody runs it as this very Python, with the package; else one line says why."""
    root = Path(tempfile.mkdtemp(prefix="algoseek-nobody-python-")).resolve()
    root.chmod(0o755)
    try:
        runtime = _mirror_python(root)
        probe = subprocess.run(
            [
                *NOBODY,
                str(runtime.python),
                "-c",
                "import sys, algoseek_sync.commands.cli; print(sys.version, sys.prefix)",
            ],
            env={"PATH": os.environ.get("PATH", os.defpath), **runtime.env},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=root,
        )
        if probe.returncode != 0 or probe.stdout.strip() != f"{sys.version} {root}":
            said = (probe.stderr.strip() or probe.stdout.strip() or f"exit {probe.returncode}").splitlines()
            pytest.fail(
                f"user nobody cannot run Python {sys.version.split()[0]} from {root} (can every user enter"
                f" {tempfile.gettempdir()} and each folder above it?): {said[-1]}",
                pytrace=False,
            )
        yield runtime
    finally:
        shutil.rmtree(root)


def as_nobody(box: Sandbox, runtime: NobodyPython, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NOBODY, str(runtime.python), "-m", "algoseek_sync", *args],
        env=box.env(**runtime.env),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=box.root,
    )


def test_unreadable_directories_are_named_not_skipped_silently(
    open_box: Sandbox, nobody_python: NobodyPython
) -> None:
    open_box.put("equity_security_master.csv", MASTER_SAMPLE)
    open_box.put("ok/33449.csv", AAPL_SAMPLE)
    open_box.put("locked/39827.csv", AAPL_SAMPLE.read_text().replace("33449,", "39827,"))
    for path in open_box.drop.rglob("*"):
        path.chmod(0o777 if path.is_dir() else 0o644)
    (open_box.drop / "locked").chmod(0o000)
    run = as_nobody(open_box, nobody_python, "run", "--once")
    assert run.returncode == 1, run.stderr  # files of the drop were not taken
    assert "1 unreadable director(ies)" in run.stderr.splitlines()[-1]
    data = json.loads(as_nobody(open_box, nobody_python, "status", "--json").stdout)
    unreadable = [p for p in data["problems"]["recent"] if p["kind"] == "unreadable"]
    assert unreadable and unreadable[0]["path"] == "locked" and "Permission denied" in unreadable[0]["detail"]
    assert data["files"]["bars"] == {"done": 1}

    open_box.drop.chmod(0o700)  # now the drop itself is unreadable for the service user
    checked = as_nobody(open_box, nobody_python, "check-config")
    assert checked.returncode == 78 and "drop.dir" in checked.stderr and "not readable" in checked.stderr
    os.chmod(open_box.drop, 0o777)
