"""Helpers for the reliability suite (a plain module, not a conftest: tests/conftest.py is the lead's).

Imported by the test modules in this folder; ``conftest`` here means tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd

from algoseek_sync.backends.base import BarQuery
from algoseek_sync.backends.local import LocalBackend
from algoseek_sync.state.database import Database
from conftest import AAPL_FIGI, AAPL_SAMPLE, MASTER_SAMPLE, REPO, Sandbox
from helpers_daemon import stored_count

AAPL_ROWS = 3342
MSFT_SECID = 39827
MSFT_FIGI = "BBG000BPH459"

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE = 1
CAP_DAC_READ_SEARCH = 2
CAP_SETPCAP = 8
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18


def deliver_samples(box: Sandbox) -> None:
    """The real master sample and the AAPL bars as ``33449.csv`` (the originals are only copied)."""
    box.put("equity_security_master.csv", MASTER_SAMPLE)
    box.put("33449.csv", AAPL_SAMPLE)


def msft_lines(rows: int = 200) -> list[str]:
    """Real AAPL sample lines relabelled as MSFT (SecId 39827, in the master sample): header + rows."""
    lines = AAPL_SAMPLE.read_text().splitlines()
    body = [
        line.replace("33449,", f"{MSFT_SECID},", 1).replace(",AAPL,", ",MSFT,", 1)
        for line in lines[1 : rows + 1]
    ]
    return [lines[0], *body]


def msft_text(rows: int = 200, newline: str = "\n") -> str:
    return newline.join(msft_lines(rows)) + newline


def query(box: Sandbox, sql: str, params: tuple = ()) -> list[tuple]:
    """Read the state database read-only, as another process would."""
    db = box.state / "state.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def store_rows(box: Sandbox, secid: int) -> int:
    """Bar rows the store holds for ``secid`` (stored once per SecId, whatever its FIGIs)."""
    return stored_count(box.state / "state.db", secid)


def read_uid(box: Sandbox, uid: str, dataset: str = "standard-adjusted") -> pd.DataFrame:
    """What ``bars --figi uid`` reads: the store's rows routed to ``uid`` at read time."""
    db = Database(box.state / "state.db", readonly=True)
    try:
        return LocalBackend(db).read_bars(BarQuery(dataset, [uid]))
    finally:
        db.close()


def routed_uids(box: Sandbox, secid: int) -> set[str]:
    """The identifiers a SecId's bars are read under (the applied master's routing)."""
    rows = query(box, "SELECT unique_identifier FROM secid_assets WHERE secid = ? AND active = 1", (secid,))
    return {r[0] for r in rows}


def status(box: Sandbox) -> dict:
    return json.loads(box.cli("status", "--json").out)


def problems_of(data: dict, rel: str, kind: str | None = None) -> list[dict]:
    """The contained problems ``status --json`` lists for ``rel`` (of one ``kind`` if given)."""
    return [p for p in data["problems"]["recent"] if p["path"] == rel and (kind is None or p["kind"] == kind)]


def problem(data: dict, rel: str) -> dict:
    """The status entry (quarantined, skipped or waiting_master) of ``rel``; fails if there is none."""
    for key in ("quarantined", "skipped", "waiting_master"):
        for entry in data[key]:
            if entry["path"] == rel:
                return entry
    raise AssertionError(f"{rel} is not listed as a problem in status --json: {json.dumps(data, indent=1)}")


def versions(box: Sandbox, rel: str) -> list[tuple[str, str | None]]:
    """(state, last_error) of every ledger version of ``rel``, oldest first."""
    return query(box, "SELECT state, last_error FROM files WHERE path = ? ORDER BY id", (rel,))


def assert_good_ingested(box: Sandbox, data: dict | None = None) -> None:
    """The real samples in the drop were ingested whole: the master applied, AAPL's 3,342 days stored."""
    data = data or status(box)
    assert data["files"]["master"].get("done", 0) >= 1, data["files"]
    assert versions(box, "33449.csv")[-1][0] == "done", versions(box, "33449.csv")
    assert store_rows(box, 33449) == AAPL_ROWS
    assert routed_uids(box, 33449) == {AAPL_FIGI}
    assert len(read_uid(box, AAPL_FIGI)) == AAPL_ROWS


def assert_refused(box: Sandbox, rel: str, state: str, *words: str) -> dict:
    """``rel`` is listed as ``state`` with a reason holding ``words``, and the good files landed all the same."""
    data = status(box)
    entry = problem(data, rel)
    assert entry["state"] == state, entry
    reason = entry["last_error"] or ""
    for word in words:
        assert word.lower() in reason.lower(), f"{rel}: reason {reason!r} does not mention {word!r}"
    assert_good_ingested(box, data)
    return entry


def write_config(box: Sandbox, text: str) -> dict[str, str]:
    """A TOML config file in the sandbox; returns the env to pass to ``box.cli``."""
    path = box.root / "test.toml"
    path.write_text(text)
    return {"ALGOSEEK_SYNC_CONFIG": str(path)}


def _libc_check(result: int, what: str) -> None:
    """A libc call's -1 as an OSError naming the call (errno kept)."""
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def drop_dac_capabilities() -> None:
    """preexec_fn: remove root's permission bypass (CAP_DAC_*) from the bounding set before exec.

    The suite runs as root, for whom chmod 000 means nothing; after this, an exec'd root
    process is subject to file permissions like any user (it keeps uid 0, so the state
    directory, owned by root, stays writable). Raises when not permitted.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        _libc_check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"prctl(PR_CAPBSET_DROP, {cap})")


def _effective_caps() -> int:
    """This process's effective capability set, as a bit mask."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return 0


def dac_drop_refusal() -> str | None:
    """Why :func:`drop_dac_capabilities` would fail here (None when it works): dropping a capability
    from the bounding set takes CAP_SETPCAP."""
    if not _effective_caps() >> CAP_SETPCAP & 1:
        return "CAP_SETPCAP is not in this process's effective set (run as root)"
    return None


@contextlib.contextmanager
def private_mount_namespace() -> Iterator[None]:
    """Run the block, and every process it starts, in a mount namespace of its own (private propagation).

    Mounts made inside never reach the host's mount table and vanish with the namespace, even if
    the test is killed. Only the calling thread moves (pytest runs tests in its main thread); it
    returns to the host's namespace at the end, which the kernel allows only while no thread
    started inside still shares its file-system context. Raises OSError where it is not permitted
    (it takes CAP_SYS_ADMIN).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    cwd = os.getcwd()
    home = os.open("/proc/thread-self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _libc_check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        try:
            _libc_check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
            yield
        finally:
            _libc_check(libc.setns(home, CLONE_NEWNS), "setns back to the host's mount namespace")
            os.chdir(cwd)  # setns moves the thread to the namespace's root
    finally:
        os.close(home)


def drop_entries(box: Sandbox, limit: int = 12) -> str:
    """The drop's entries besides the real samples, each with its kind: what a hung run was given."""
    kinds = {stat.S_IFIFO: "FIFO", stat.S_IFCHR: "character device", stat.S_IFLNK: "symbolic link"}
    entries = []
    for path in sorted(box.drop.rglob("*")):  # rglob does not follow symbolic links to directories
        rel = path.relative_to(box.drop).as_posix()
        if rel in ("equity_security_master.csv", "33449.csv"):
            continue
        info = path.lstat()
        kind = "directory" if stat.S_ISDIR(info.st_mode) else kinds.get(stat.S_IFMT(info.st_mode))
        kind = kind or f"{info.st_size} bytes"
        entries.append(f"{rel} ({kind})")
    more = f" and {len(entries) - limit} more" if len(entries) > limit else ""
    return ", ".join(entries[:limit]) + more if entries else "only the real samples"


def run_cli(
    box: Sandbox,
    *args: str,
    timeout: float = 120,
    shim: tuple[str, ...] = (),
    preexec_fn: Callable[[], None] | None = None,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """``algoseek-sync *args`` on the sandbox (through ``shim`` if given); a run that outlives ``timeout``
    is killed with all it started and fails the test naming the command and the drop's entries."""
    cmd = [*shim, sys.executable, "-m", "algoseek_sync", *args]
    with subprocess.Popen(
        cmd,
        env=box.env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec_fn,
        start_new_session=True,  # its own process group: a timeout kills the CLI under a shim too
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            raise AssertionError(
                f"`algoseek-sync {' '.join(args)}` did not finish within {timeout:g} s (killed) on a drop"
                f" holding {drop_entries(box)}; its stderr ended:\n{err[-2000:]}"
            ) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def cli_unprivileged(box: Sandbox, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The CLI without root's permission bypass (see :func:`dac_drop_refusal` for where it works)."""
    return run_cli(box, *args, timeout=timeout, preexec_fn=drop_dac_capabilities)


# A small interpreter that runs a command and reports its ru_maxrss: a child forked straight
# from pytest would count pytest's own memory (Linux keeps pre-exec usage in ru_maxrss).
_RSS_SHIM = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:])\n"
    "_, st, ru = os.wait4(p.pid, 0)\n"
    "sys.stderr.write('\\nMAXRSS %d\\n' % (ru.ru_maxrss * 1024))\n"
    "sys.exit(os.waitstatus_to_exitcode(st))\n"
)


def cli_peak_rss(box: Sandbox, *args: str, timeout: float = 120, **env: str) -> tuple[int, int, str]:
    """(exit code, peak RSS bytes, stderr) of one CLI run."""
    proc = run_cli(box, *args, timeout=timeout, shim=(sys.executable, "-c", _RSS_SHIM), **env)
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("MAXRSS "), proc.stderr
    return proc.returncode, int(last.split()[1]), proc.stderr


def open_app_for(box: Sandbox):
    """The daemon's own wiring, in-process (to record versions before mutating files)."""
    sys.path.insert(0, str(REPO / "daemon"))
    from algoseek_sync.app import open_app
    from algoseek_sync.config import load_settings

    env = {k: v for k, v in box.env().items() if k.startswith("ALGOSEEK_SYNC_")}
    return open_app(load_settings(None, env=env))
