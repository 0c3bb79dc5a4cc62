"""The container images, one per Main Sequence SDK line: built from the repository's Dockerfile
with podman (its build args PYTHON_VERSION and SDK_EXTRA pick the line), then started.

* the 3.x line: Python 3.11 (Debian bookworm), the ``mainsequence3`` extra (SDK 3.21);
* today's line: Python 3.13 (Debian trixie), the ``mainsequence`` extra (SDK 9.x, MetaTables and
  ms-markets); in the started image the backend selection must choose the 9.x adapter.

Offline, like an air-gapped build farm: the dependencies come from a wheelhouse (``make
wheelhouse`` or ``make wheelhouse-sdk9``, cached per dependency set), so pip runs with
``--no-index``; the base image is ``python:3.x-slim`` when an image registry answers, otherwise a
Debian of that Python made with ``debootstrap --variant=minbase --include=...,tini`` and ``podman
import`` (cached). When the base image has ``tini`` (the debootstrap one does) the build runs in a
network namespace of its own with no interface but loopback (``unshare --net`` and ``--network
none``), which proves it needs no network; ``python:3.x-slim`` has no ``tini``, so its runtime
stage takes it from the Debian mirror and that build is left its network (the test says which).

Podman's layer cache keeps the build fast: the project layer is rebuilt on every run (a fresh
``SOURCE_REVISION``), the layers below it are reused. Every name a run makes is its own
(``:run-<id>`` images, container, volume), so two runs on one machine never touch each other's;
the reusable layers are kept alive by ``:cache-<key>`` images, keyed by what those layers are
made of, tagged once by the first run that builds them and never moved or removed by a test.

Started one of two ways, whichever the machine allows, and the test prints which:

* ``podman run``: no network, the drop mounted read-only, the state in a named volume;
* where the OCI runtime cannot start containers (some sandboxes refuse its ``setrlimit``), the
  image is still built by podman (``--isolation chroot``), but its entrypoint (``tini --
  algoseek-sync run``) runs with ``chroot`` in the image's mounted root file system, as the
  image's user (uid 10001), with the image's environment and working directory, the drop
  bind-mounted read-only, and in the host's network: there its metrics listen on
  ``127.0.0.1:0`` (a port the kernel picks free), not the image's ``0.0.0.0:9108``.

Caches live in ``${XDG_CACHE_HOME:-~/.cache}/algoseek-sync`` and in podman's image store.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "algoseek"
AAPL_SAMPLE = DATA / "standard-adjusted-secid-33449.csv"
MASTER_SAMPLE = DATA / "equity_security_master-sample.csv"
AAPL_FIGI = "BBG000B9XRY4"
AAPL_ROWS = 3342
IMAGE_UID = 10001

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "algoseek-sync"
REGISTRY_PROBE = "https://registry-1.docker.io/v2/"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
# tini in the base image: the Dockerfile then has nothing to fetch from the Debian mirror
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates", "tini")
BASE_CONFIG = (
    "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV=LANG=C.UTF-8",
    'CMD=["python3"]',
)
IMAGE = "localhost/algoseek-sync-test"  # :run-<id> per run; :cache-<key> keep the reusable layers
STOP_TIMEOUT = 20  # seconds: the README's `--stop-timeout 20`; a container still running then is killed (137)
CHROOT_METRICS = "127.0.0.1:0"  # the host's network: a port the kernel picks free, never a busy 9108
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
TOOLS = ("podman", "debootstrap", "chroot", "mount", "umount", "tar", "make", "unshare")


@dataclass(frozen=True)
class Line:
    """One SDK line's image: the Dockerfile's build args, where its base and wheels come from, and
    what the started image must choose (``platform_adapter().line``) and import."""

    name: str
    python: str  # PYTHON_VERSION
    extra: str  # SDK_EXTRA
    suite: str  # the Debian suite whose python3 is that Python
    wheelhouse: str  # the make target
    adapter: str  # the line `platform_adapter()` must choose in the started image
    modules: tuple[str, ...]  # what must import there: the SDK's packages and its PostgreSQL driver
    image_env: str  # names an image to use instead (or `local`: the debootstrap one)

    @property
    def registry_image(self) -> str:
        return f"docker.io/library/python:{self.python}-slim"


LINES = (
    Line(
        "sdk3",
        "3.11",
        "mainsequence3",
        "bookworm",
        "wheelhouse",
        "3.x",
        ("mainsequence",),
        "ALGOSEEK_SYNC_TEST_PYTHON_IMAGE",
    ),
    Line(
        "sdk9",
        "3.13",
        "mainsequence",
        "trixie",
        "wheelhouse-sdk9",
        "9.x",
        ("mainsequence", "metatables", "msm", "psycopg2"),
        "ALGOSEEK_SYNC_TEST_PYTHON313_IMAGE",
    ),
)


def sh(
    cmd: Sequence[object], *, timeout: float = 300, check: bool = True, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run a host command; with ``check``, a failure names the command and shows its output."""
    argv = [str(c) for c in cmd]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{shlex.join(argv)} exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-4000:]}"
        )
    return proc


def wait_for(cond: Callable[[], bool], timeout: float, what: str, last: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last()}")
        time.sleep(1.0)


def digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def cache_lock() -> Iterator[None]:
    """One test run at a time fills or names the shared caches (two suites may run on one machine)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def image_exists(ref: str) -> bool:
    return sh(["podman", "image", "exists", ref], check=False).returncode == 0


def image_id(ref: str) -> str:
    return sh(["podman", "image", "inspect", "--format", "{{.Id}}", ref]).stdout.strip()


def has_tini(image: str) -> bool:
    """Whether the Dockerfile's runtime stage would find ``tini`` in ``image`` (else it fetches it)."""
    root = Path(sh(["podman", "image", "mount", image]).stdout.strip())
    try:
        return any(
            os.path.lexists(root / d / "tini") for d in ("usr/bin", "usr/local/bin", "bin", "usr/sbin")
        )
    finally:
        sh(["podman", "image", "unmount", image], check=False)


def cache_anchors(base: str, wheels: Path, line: Line) -> tuple[str, str]:
    """The names that keep the reusable layers (runtime image, build stage) of builds from these inputs.

    Keyed by what those layers are made of, so runs of other checkouts or revisions use names of
    their own; a test tags them once and never moves or removes them (``podman rmi`` by hand).
    """
    key = digest(
        image_id(base),
        line.python,
        line.extra,
        (REPO / "Dockerfile").read_text(),
        (REPO / "pyproject.toml").read_text(),
        sorted(wheel.name for wheel in wheels.glob("*.whl")),
    )[:12]
    return f"{IMAGE}:cache-{key}", f"{IMAGE}:cache-{key}-build"


# -- the base image -----------------------------------------------------------------------------


def registry_reachable() -> bool:
    try:
        urllib.request.urlopen(REGISTRY_PROBE, timeout=5)
    except urllib.error.HTTPError:
        return True  # 401: the registry answers
    except OSError:
        return False
    return True


def unmount_below(root: Path) -> None:
    """An interrupted debootstrap leaves proc/sys mounted in its target: never delete through them."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(f"{root}/")), key=len, reverse=True):
        sh(["umount", "-l", point], check=False)


def local_base_image(suite: str) -> tuple[str, str]:
    """The Debian suite (bookworm: Python 3.11, trixie: 3.13) from debootstrap, imported into podman;
    cached twice over."""
    key = digest(suite, DEBIAN_MIRROR, "minbase", BASE_PACKAGES, BASE_CONFIG)
    tag = f"localhost/algoseek-sync-base:{suite}-{key[:12]}"
    if image_exists(tag):
        return tag, f"{tag} (cached)"
    cache = CACHE / "base"
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"{suite}-minbase-{key}.tar"
    note = "cached tarball, imported"
    if not tarball.exists():
        for old in cache.glob(f"{suite}-minbase-*.tar"):
            old.unlink()
        target = cache / f"rootfs-{key}"
        if target.exists():
            unmount_below(target)
            shutil.rmtree(target)
        started = time.monotonic()
        sh(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                suite,
                target,
                DEBIAN_MIRROR,
            ],
            timeout=1800,
            env={**os.environ, "PATH": SBIN},
        )
        unmount_below(target)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (target / junk).glob("*"):
                if path.is_file():
                    path.unlink()
        partial = tarball.with_suffix(".partial")
        sh(["tar", "-C", target, "--numeric-owner", "-cf", partial, "."], timeout=600)
        partial.rename(tarball)
        shutil.rmtree(target)
        note = f"debootstrap in {time.monotonic() - started:.0f} s"
    changes = [arg for change in BASE_CONFIG for arg in ("--change", change)]
    sh(["podman", "import", *changes, tarball, tag], timeout=600)
    return tag, f"{tag} ({note})"


def python_image(line: Line) -> tuple[str, str]:
    """The line's ``image_env`` variable (an image, or ``local``), else the registry's, else local."""
    chosen = os.environ.get(line.image_env, "")
    if chosen and chosen != "local":
        return chosen, f"{chosen} ({line.image_env})"
    if not chosen:
        if image_exists(line.registry_image):
            return line.registry_image, f"{line.registry_image} (cached)"
        if registry_reachable():
            pulled = sh(["podman", "pull", "--quiet", line.registry_image], check=False, timeout=900)
            if pulled.returncode == 0:
                return line.registry_image, f"{line.registry_image} (pulled)"
    return local_base_image(line.suite)


# -- the wheelhouse and the build context ------------------------------------------------------


def wheelhouse(line: Line) -> tuple[Path, str]:
    """The line's ``make wheelhouse`` into the cache, keyed by the dependencies, the recipe and the locks."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    recipe = [text for text in (REPO / "Makefile").read_text().splitlines() if "WHEEL" in text]
    locks = sorted((p.name, p.read_text()) for p in (REPO / "constraints").glob("*.txt"))
    needs = project["project"]["dependencies"] + project["project"]["optional-dependencies"][line.extra]
    key = digest(needs, project["build-system"]["requires"], recipe, locks)
    home = CACHE / f"wheelhouse-{line.name}"  # apart from other lines and from older layouts
    target = home / key
    if any(target.glob("*.whl")):
        return target, f"{sum(1 for _ in target.glob('*.whl'))} wheels (cached)"
    if home.exists():
        shutil.rmtree(home)
    partial = home / f"{key}.partial"
    partial.mkdir(parents=True)
    started = time.monotonic()
    sh(
        [
            "make",
            "--no-print-directory",
            "-C",
            REPO,
            "-o",
            ".venv/.installed",  # the test's own environment runs pip; never rebuild the venv here
            line.wheelhouse,
            f"WHEELS={partial}",
            f"BIN={Path(sys.executable).parent}",
        ],
        timeout=900,
    )
    assert any(partial.glob("*.whl")), "make wheelhouse wrote no wheels"
    partial.rename(target)
    count = sum(1 for _ in target.glob("*.whl"))
    return target, f"{count} wheels (make wheelhouse, {time.monotonic() - started:.0f} s)"


def ignored(directory: str, names: list[str]) -> set[str]:
    """What a clean clone does not have (the wheelhouse is added from the cache)."""
    skip = {".git", ".venv", "venv", "var", "build", "dist", "wheels", "__pycache__"}
    skip |= {".pytest_cache", ".ruff_cache", ".mypy_cache"}
    out = {n for n in names if n in skip or n.startswith(".venv") or n.endswith(".egg-info")}
    if Path(directory) == REPO / "bench":
        out.add("work")
    return out


def build_context(context: Path, wheels: Path) -> Path:
    shutil.copytree(REPO, context, ignore=ignored, symlinks=True)
    (context / "wheels").mkdir()
    if (REPO / "wheels" / "README.md").exists():
        shutil.copyfile(REPO / "wheels" / "README.md", context / "wheels" / "README.md")
    for wheel in wheels.glob("*.whl"):
        try:
            os.link(wheel, context / "wheels" / wheel.name)
        except OSError:
            shutil.copyfile(wheel, context / "wheels" / wheel.name)
    return context


# -- looking inside the image ------------------------------------------------------------------

COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "clang++", "tcc")
BIN_DIRS = ("usr/bin", "usr/local/bin", "bin", "usr/sbin", "usr/local/sbin", "opt/algoseek-sync/venv/bin")


def image_problems(rootfs: Path) -> list[str]:
    """No compiler, no pip cache, none of the repository's tests or benchmarks."""
    problems = []
    for directory in BIN_DIRS:
        for name in COMPILERS:
            if os.path.lexists(rootfs / directory / name):
                problems.append(f"compiler /{directory}/{name}")
        for pattern in ("*-linux-gnu-gcc*", "*-linux-gnu-g++*", "gcc-[0-9]*", "g++-[0-9]*"):
            for path in (rootfs / directory).glob(pattern):
                problems.append(f"compiler /{path.relative_to(rootfs)}")
    theirs = {}  # size -> sha256 of every file of tests/ and bench/ big enough to be telling
    for folder in ("tests", "bench"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.stat().st_size >= 100:
                theirs.setdefault(path.stat().st_size, set()).add(
                    hashlib.sha256(path.read_bytes()).hexdigest()
                )
    for top, dirs, files in os.walk(rootfs):
        rel = Path(top).relative_to(rootfs)
        if rel.parts[:1] in (("proc",), ("sys",), ("dev",)):
            dirs[:] = []
            continue
        third_party = ("site-packages" in rel.parts or "dist-packages" in rel.parts) and (
            "algoseek_sync" not in rel.parts
        )
        for name in dirs:
            if name in ("tests", "bench") and not third_party:
                problems.append(f"directory /{rel / name}")
            if name == "pip" and rel.name == ".cache":
                problems.append(f"pip cache /{rel / name}")
        for name in files:
            path = Path(top, name)
            with contextlib.suppress(OSError):
                info = path.lstat()
                regular = stat.S_ISREG(info.st_mode) and info.st_size in theirs
                if regular and hashlib.sha256(path.read_bytes()).hexdigest() in theirs[info.st_size]:
                    problems.append(f"a copy of a repository test/bench file: /{rel / name}")
    return problems


def owned_by_root(state: Path) -> list[str]:
    paths = [state, *state.rglob("*")]
    return [
        f"{p} ({p.lstat().st_uid}:{p.lstat().st_gid})"
        for p in paths
        if 0 in (p.lstat().st_uid, p.lstat().st_gid)
    ]


# -- two ways to start the image ---------------------------------------------------------------


class Started:
    """The running image: run a command in it, stop it, look at its state directory."""

    how: str  # what ran, in words: printed, and the junit XML's `container_started_via` property
    state: Path  # the host's view of /state

    def exec(self, *args: str) -> subprocess.CompletedProcess[str]:
        raise NotImplementedError

    def stop(self) -> int:
        """SIGTERM (the image's STOPSIGNAL), SIGKILL after STOP_TIMEOUT s as the runtime would: the exit code."""
        raise NotImplementedError

    def log(self) -> str:
        """All the daemon wrote (its JSON log)."""
        raise NotImplementedError


class PodmanRun(Started):
    def __init__(self, container: str, volume: str) -> None:
        self.container, self.volume = container, volume
        self.how = "podman run (no network, drop mounted read-only, state in a named volume)"
        sh(["podman", "start", container], timeout=120)
        mountpoint = sh(["podman", "volume", "inspect", "--format", "{{.Mountpoint}}", volume]).stdout
        self.state = Path(mountpoint.strip())

    def exec(self, *args: str) -> subprocess.CompletedProcess[str]:
        return sh(["podman", "exec", self.container, *args], check=False, timeout=120)

    def stop(self) -> int:
        sh(["podman", "stop", "--time", STOP_TIMEOUT, self.container], timeout=STOP_TIMEOUT + 120)
        return int(sh(["podman", "wait", self.container], timeout=120).stdout.strip().splitlines()[-1])

    def log(self) -> str:
        logs = sh(["podman", "logs", self.container], check=False)
        return logs.stdout + logs.stderr


def home_of(rootfs: Path, user: str) -> str:
    """The home directory the runtime would set: the user's entry in the image's /etc/passwd."""
    for line in (rootfs / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 6 and user in (fields[0], fields[2]):
            return fields[5]
    return "/"


DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9), "tty": (5, 0)}


class Chroot(Started):
    """What the runtime would do, with ``chroot``: the image's user, environment and directory.

    Not a container: no namespaces, so the daemon shares the host's network, and its metrics
    listen on CHROOT_METRICS instead of the image's 0.0.0.0:9108 (which anything on the host,
    another run of this test included, may hold).
    """

    def __init__(
        self, rootfs: Path, config: dict, drop: Path, logfile: Path, mounts: list[Path], refused: str
    ) -> None:
        self.rootfs, self.config, self.logfile = rootfs, config, logfile
        self.how = (
            f"chroot, not a container (podman run refused: {refused}): the image built by podman, its "
            f"entrypoint started with chroot in the image's root file system as uid {IMAGE_UID}, with the "
            f"image's environment, in the host's network (metrics on {CHROOT_METRICS}), "
            "the drop bind-mounted read-only"
        )
        self.state = rootfs / config["WorkingDir"].lstrip("/")
        for name, (major, minor) in DEVICES.items():
            node = rootfs / "dev" / name
            if not os.path.lexists(node):
                node.parent.mkdir(exist_ok=True)
                os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
                node.chmod(0o666)
        (rootfs / "proc").mkdir(exist_ok=True)
        sh(["mount", "-t", "proc", "proc", rootfs / "proc"])
        mounts.append(rootfs / "proc")
        (rootfs / "drop").mkdir(exist_ok=True)
        sh(["mount", "--bind", drop, rootfs / "drop"])
        mounts.append(rootfs / "drop")
        sh(["mount", "-o", "remount,bind,ro", drop, rootfs / "drop"])
        user, _, group = config["User"].partition(":")
        self.prefix = [
            "chroot",
            f"--userspec={user}:{group or user}",
            f"--groups={group or user}",
            rootfs,
            "/usr/bin/env",
            "-i",
            "-C",
            config["WorkingDir"],
            *config["Env"],
            f"HOME={home_of(rootfs, user)}",
        ]
        # env(1) applies its assignments in order: these two override the image's environment
        daemon_env = ["TINI_SUBREAPER=1", f"ALGOSEEK_SYNC_METRICS_LISTEN={CHROOT_METRICS}"]
        with logfile.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(c) for c in [*self.prefix, *daemon_env, *config["Entrypoint"], *config["Cmd"]]],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "PATH": SBIN},
            )

    def exec(self, *args: str) -> subprocess.CompletedProcess[str]:
        return sh([*self.prefix, *args], check=False, timeout=120, env={**os.environ, "PATH": SBIN})

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # chroot and env exec: this pid is tini
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        return 128 - code if code < 0 else code  # killed by a signal: the runtime's 128 + signal

    def log(self) -> str:
        return self.logfile.read_text(errors="replace")


# -- the test ----------------------------------------------------------------------------------

SCRAPE = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=60).read().decode())"


def stored_bars(started: Started) -> list[dict[str, str]]:
    out = started.exec("algoseek-sync", "bars", "--figi", AAPL_FIGI, "--format", "csv")
    return list(csv.DictReader(io.StringIO(out.stdout))) if out.returncode == 0 else []


def sample_by_day() -> dict[str, tuple[float, ...]]:
    with AAPL_SAMPLE.open(newline="") as fh:
        return {
            r["TradeDate"]: tuple(float(r[c]) for c in ("Open", "High", "Low", "Close", "MarketHoursVolume"))
            for r in csv.DictReader(fh)
        }


def metrics_address(log: str) -> str | None:
    """Where the daemon says its metrics listen: the kernel's port when it was asked for port 0."""
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("event") == "metrics_listening":
                return str(entry["address"])
    return None


def rows_written(exposition: str) -> float:
    for line in exposition.splitlines():
        if line.startswith("algoseek_sync_rows_written_total "):
            return float(line.split()[1])
    return -1.0


SDK_CHECK = (
    "import importlib, json, sys\n"
    "from algoseek_sync.backends import installed_versions, platform_adapter\n"
    "adapter = platform_adapter()\n"
    "getattr(importlib.import_module(adapter.module), adapter.cls)\n"
    "for name in sys.argv[1:]:\n"
    "    importlib.import_module(name)\n"
    "print(json.dumps({'line': adapter.line, 'versions': installed_versions()}))"
)


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("line", LINES, ids=[line.name for line in LINES])
def test_image_builds_offline_starts_ingests_and_stops(
    line: Line,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    record_testsuite_property: Callable[[str, object], None],
) -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool, path=SBIN) is None]
    assert not missing, f"missing host tools {missing}: `make container-tools` installs them"
    timings: dict[str, float] = {}
    begun = time.monotonic()

    with cache_lock():
        base, base_note = python_image(line)
        wheels, wheels_note = wheelhouse(line)
        # the wheels are linked into this run's context before another run could replace them
        context = build_context(tmp_path / "context", wheels)
        anchors = cache_anchors(base, wheels, line)
    timings["caches"] = time.monotonic() - begun
    offline = has_tini(base)
    probe = sh(["podman", "run", "--rm", "--network", "none", base, "true"], check=False, timeout=300)
    runtime_ok = probe.returncode == 0
    runtime_note = "" if runtime_ok else (probe.stderr.strip().splitlines() or ["?"])[-1]

    # -- build: the repository's Dockerfile and .dockerignore, the cached wheelhouse ---------------
    run_id = uuid.uuid4().hex[:12]
    tag, build_tag = f"{IMAGE}:run-{run_id}", f"{IMAGE}:run-{run_id}-build"
    build = [
        # no network where nothing needs it: a namespace with only loopback (chroot isolation's RUN
        # steps share it; the OCI runtime's get --network none)
        *(["unshare", "--net"] if offline else []),
        "podman",
        "build",
        "--format=docker",  # keeps HEALTHCHECK
        "--layers",
        "--pull=never",
        *(["--network", "none"] if offline and runtime_ok else []),
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        "--build-arg",
        f"PYTHON_VERSION={line.python}",
        "--build-arg",
        f"SDK_EXTRA={line.extra}",
        "--build-arg",
        f"SOURCE_REVISION=test-{run_id}",  # the project layer is rebuilt on every run
        *([] if runtime_ok else ["--isolation", "chroot"]),
        "--file",
        context / "Dockerfile",
    ]
    network_note = (
        f"without network (unshare --net{', --network none' if runtime_ok else ''})"
        if offline
        else f"with network ({base} has no tini: the runtime stage fetches it from the Debian mirror)"
    )
    container, volume = f"algoseek-sync-test-{run_id}", f"algoseek-sync-test-{run_id}"
    mounts: list[Path] = []
    built = time.monotonic()
    try:
        log = sh([*build, "--tag", tag, context], timeout=2400, check=False)
        (tmp_path / "build.log").write_text(log.stdout + log.stderr)
        if log.returncode != 0:
            raise AssertionError(
                f"podman build {network_note} failed ({log.returncode}):\n{(log.stdout + log.stderr)[-5000:]}"
            )
        # the build stage again (all cached) under a name of its own: it holds that stage's layers
        sh([*build, "--target", "build", "--tag", build_tag, context], timeout=600)
        timings["build"] = time.monotonic() - built
        assert "Looking in links: /wheels" in log.stdout, "pip did not install from the wheelhouse"
        with cache_lock():  # the first run to build these layers names them; no run moves a name
            for name, anchor in ((tag, anchors[0]), (build_tag, anchors[1])):
                if not image_exists(anchor):
                    sh(["podman", "tag", name, anchor])

        inspected = json.loads(sh(["podman", "image", "inspect", tag]).stdout)[0]
        config = inspected["Config"]
        assert config["Entrypoint"] == ["tini", "--", "algoseek-sync"] and config["Cmd"] == ["run"]
        assert config["User"].split(":")[0] == str(IMAGE_UID) and config["WorkingDir"] == "/state"
        health = inspected["Healthcheck"]["Test"]
        assert health[0] == "CMD", health
        health = health[1:]

        # -- a container of the image: its file system, then start it ---------------------------
        drop = tmp_path / "drop"
        drop.mkdir(mode=0o755)
        drop.chmod(0o755)
        shutil.copyfile(AAPL_SAMPLE, drop / "33449.csv")
        shutil.copyfile(MASTER_SAMPLE, drop / "equity_security_master.csv")
        for path in drop.iterdir():
            path.chmod(0o644)
        create = ["podman", "create", "--name", container, "--no-healthcheck"]
        if runtime_ok:
            sh(["podman", "volume", "create", volume])
            create += ["--network", "none", "-v", f"{drop}:/drop:ro,z", "-v", f"{volume}:/state"]
        sh([*create, tag])
        rootfs = Path(sh(["podman", "mount", container]).stdout.strip())
        problems = image_problems(rootfs)
        assert not problems, "the image holds what it should not:\n" + "\n".join(problems)

        started_at = time.monotonic()
        if runtime_ok:
            started: Started = PodmanRun(container, volume)
        else:
            started = Chroot(rootfs, config, drop, tmp_path / "daemon.log", mounts, runtime_note)
        record_testsuite_property("container_started_via", started.how)
        with capsys.disabled():
            print(f"\ncontainer test: started via {started.how}")
        try:
            checks: list[subprocess.CompletedProcess[str]] = []

            def healthy() -> bool:
                checks.append(started.exec(*health))
                return checks[-1].returncode == 0

            wait_for(
                healthy, 120, "status --health to say healthy", lambda: checks[-1].stdout + checks[-1].stderr
            )
            rows: list[dict[str, str]] = []

            def ingested() -> bool:
                rows[:] = stored_bars(started)
                return len(rows) >= AAPL_ROWS

            wait_for(
                ingested,
                180,
                f"{AAPL_ROWS} stored rows",
                lambda: f"{len(rows)} rows\n{started.log()[-6000:]}",
            )
            timings["ready"] = time.monotonic() - started_at
            assert len(rows) == AAPL_ROWS
            stored = {
                r["tradedate"].replace("-", ""): tuple(
                    float(r[c]) for c in ("open", "high", "low", "close", "volume")
                )
                for r in rows
            }
            assert stored == sample_by_day()
            assert {r["unique_identifier"] for r in rows} == {AAPL_FIGI}
            verdict = started.exec(*health)
            assert verdict.returncode == 0, verdict.stdout + verdict.stderr
            assert verdict.stdout.split()[0].strip(":,.").lower() == "healthy", verdict.stdout

            # -- the metrics listener, scraped from inside (the same network as the daemon's) ----
            wait_for(
                lambda: metrics_address(started.log()) is not None,
                60,
                "the metrics_listening log line",
                lambda: started.log()[-6000:],
            )
            address = metrics_address(started.log()) or ""
            host, _, port = address.rpartition(":")
            image_env = dict(entry.split("=", 1) for entry in config["Env"])
            listen = (
                CHROOT_METRICS if isinstance(started, Chroot) else image_env["ALGOSEEK_SYNC_METRICS_LISTEN"]
            )
            want_host, _, want_port = listen.rpartition(":")
            assert host == want_host and int(port) > 0 and want_port in ("0", port), (address, listen)
            url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}/metrics"
            scrapes: list[subprocess.CompletedProcess[str]] = []

            def counted() -> bool:
                scrapes.append(started.exec("python", "-c", SCRAPE, url))
                return rows_written(scrapes[-1].stdout) >= AAPL_ROWS

            wait_for(
                counted,
                60,
                f"{url} to count {AAPL_ROWS} rows written",
                lambda: (scrapes[-1].stdout + scrapes[-1].stderr)[-3000:],
            )
            assert rows_written(scrapes[-1].stdout) == AAPL_ROWS

            # -- the platform backend this image is for: its SDK line chosen by version, importable
            # (HOME=/tmp: the SDK's import writes its config directories there, not into /state)
            sdk = started.exec("env", "HOME=/tmp", "python", "-c", SDK_CHECK, *line.modules)
            assert sdk.returncode == 0, sdk.stdout + sdk.stderr
            chosen = json.loads(sdk.stdout.strip().splitlines()[-1])
            assert chosen["line"] == line.adapter, chosen
            sdk_note = f"SDK {chosen['versions']['mainsequence']} -> the {chosen['line']} adapter"
        finally:
            code = started.stop()
        assert code == 0, (
            f"exit {code} after SIGTERM (137: still running {STOP_TIMEOUT} s later, killed):\n"
            f"{started.log()[-6000:]}"
        )
        assert (started.state / "state.db").exists(), sorted(p.name for p in started.state.iterdir())
        root_owned = owned_by_root(started.state)
        assert not root_owned, "owned by root in /state:\n" + "\n".join(root_owned)
    finally:
        for point in reversed(mounts):
            if sh(["umount", point], check=False).returncode != 0:
                sh(["umount", "-l", point], check=False)
        sh(["podman", "rm", "--force", "--volumes", container], check=False)
        sh(["podman", "volume", "rm", "--force", volume], check=False)
        for name in (tag, build_tag):  # untags an anchored image, else removes this run's own layers
            if image_exists(name):
                sh(["podman", "rmi", name], check=False)

    total = time.monotonic() - begun
    with capsys.disabled():
        print(
            f"container test ({line.name}): base {base_note}; wheelhouse {wheels_note}; {sdk_note}; "
            f"caches {timings['caches']:.0f} s; "
            f"podman build{'' if runtime_ok else ' --isolation chroot'} {network_note} "
            f"{timings['build']:.0f} s (layers kept by {anchors[0]}); "
            f"started via {'podman run' if runtime_ok else 'chroot, not a container'}; "
            f"{AAPL_ROWS} rows stored {timings['ready']:.0f} s after start, metrics on {address} count them; "
            f"SIGTERM -> exit 0 (before the {STOP_TIMEOUT} s stop timeout); total {total:.0f} s"
        )
