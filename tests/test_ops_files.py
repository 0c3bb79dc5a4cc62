"""Operations files: systemd units, Dockerfile, config examples, and config errors exiting 78."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from algoseek_sync.backends.mainsequence.env import parse_env_file
from algoseek_sync.config import default_toml, load_settings
from conftest import AAPL_SAMPLE, MASTER_SAMPLE

REPO = Path(__file__).resolve().parents[1]
SYSTEMD = REPO / "systemd"
SERVICE = SYSTEMD / "algoseek-sync.service"
REPROCESS = SYSTEMD / "algoseek-sync-reprocess@.service"
EXAMPLE = REPO / "config" / "algoseek-sync.example.toml"
SECRETS = REPO / "config" / "secrets.env.example"
EXEC = "/opt/algoseek-sync/venv/bin/algoseek-sync"


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ALGOSEEK_SYNC_", "MAINSEQUENCE", "PYTHON"))
    }
    env.update(extra)
    return env


# -- systemd ----------------------------------------------------------------------------------


def unit_directives(path: Path) -> dict[str, dict[str, list[str]]]:
    """section → key → values (systemd allows repeated keys such as Environment=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


HARDENING = {
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "SystemCallFilter": "@system-service",
    "CapabilityBoundingSet": "",
    "LockPersonality": "yes",
    "UMask": "0027",
    "DynamicUser": "yes",
    "StateDirectory": "algoseek-sync",
    "EnvironmentFile": "-/etc/algoseek-sync/secrets.env",
}


@pytest.mark.parametrize("unit", [SERVICE, REPROCESS], ids=lambda p: p.name)
def test_units_share_identity_and_hardening(unit: Path) -> None:
    service = unit_directives(unit)["Service"]
    for key, value in HARDENING.items():
        assert service.get(key) == [value], f"{unit.name}: {key}={service.get(key)}"
    assert "MemoryDenyWriteExecute" not in service  # pyarrow/numpy may need W+X pages
    assert "ALGOSEEK_SYNC_CONFIG=/etc/algoseek-sync/config.toml" in service["Environment"]
    ro = [p.lstrip("-") for v in service["ReadOnlyPaths"] for p in v.split()]
    drop = next(e.split("=", 1)[1] for e in service["Environment"] if e.startswith("ALGOSEEK_SYNC_DROP_DIR="))
    assert drop in ro  # the drop directory is read-only for the daemon
    assert service["User"] == unit_directives(SERVICE)["Service"]["User"]  # one UID for both units


def test_service_contract() -> None:
    units = unit_directives(SERVICE)
    service = units["Service"]
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "60",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "78",
        "TimeoutStopSec": "20",
        "ExecStart": f"{EXEC} run",
    }
    for key, value in expected.items():
        assert service.get(key) == [value], key
    assert units["Install"]["WantedBy"] == ["multi-user.target"]
    oneshot = unit_directives(REPROCESS)["Service"]
    assert oneshot["Type"] == ["oneshot"]
    assert shlex.split(oneshot["ExecStart"][0])[:5] == [EXEC, "reprocess", "--secid", "%i", "--wait"]


def _verify(tmp_path: Path, text_of: dict[str, str]) -> str:
    for name, text in text_of.items():
        (tmp_path / name).write_text(text.replace(EXEC, shutil.which("true") or "/bin/true"))
    proc = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / n) for n in text_of)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_COLOR": "0"},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 or "algoseek" not in out, out
    return "\n".join(line for line in out.splitlines() if "algoseek" in line)


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    units = {
        "algoseek-sync.service": SERVICE.read_text(),
        "algoseek-sync-reprocess@33449.service": REPROCESS.read_text(),  # a template verifies as an instance
    }
    assert _verify(tmp_path, units) == ""
    broken = tmp_path / "broken"
    broken.mkdir()
    typo = {"algoseek-sync.service": SERVICE.read_text().replace("WatchdogSec=", "WatchdogSecs=")}
    assert "Unknown key" in _verify(broken, typo)  # the check does look at the syntax


# -- Dockerfile -------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, buf = [], ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or not stripped:
            continue
        buf += stripped[:-1] + " " if stripped.endswith("\\") else stripped
        if not stripped.endswith("\\"):
            lines.append(buf)
            buf = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def stages() -> list[list[tuple[str, str]]]:
    out: list[list[tuple[str, str]]] = []
    for ins, args in dockerfile():
        if ins == "FROM":
            out.append([])
        if out:
            out[-1].append((ins, args))
    return out


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for ins, args in stage:
        if ins == "ENV":
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def test_dockerfile_rules() -> None:
    args = {a.split("=")[0]: a.split("=", 1)[1] for ins, a in dockerfile() if ins == "ARG" and "=" in a}
    all_stages = stages()
    assert len(all_stages) >= 2, "multi-stage build"
    for stage in all_stages:
        image = stage[0][1].split()[0]
        while "${" in image:  # PYTHON_IMAGE names PYTHON_VERSION: substitute until none is left
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        assert image == "python:3.11-slim"  # the default line; tests/test_container.py builds 3.13 too
    build_runs = " ".join(a for stage in all_stages[:-1] for ins, a in stage if ins == "RUN")
    assert 'pip install --no-cache-dir ".' in build_runs and "venv" in build_runs
    final = all_stages[-1]
    text = " ".join(f"{ins} {a}" for ins, a in final)
    for forbidden in ("gcc", "g++", "build-essential", "make ", "-dev ", "pip install"):
        assert forbidden not in text, f"final stage must not contain {forbidden!r}"
    copies = [a for ins, a in final if ins == "COPY"]
    assert copies and all(c.startswith("--from=") and "venv" in c for c in copies), (
        "final stage copies only the venv"
    )
    apt = [a for ins, a in final if ins == "RUN" and "apt-get install" in a]
    assert apt and all("--no-install-recommends" in a and "rm -rf /var/lib/apt/lists/*" in a for a in apt)
    assert "tini" in apt[0] and "10001" in apt[0]
    user = [a for ins, a in final if ins == "USER"]
    assert user and user[-1].split(":")[0] == "10001"
    entry = [json.loads(a) for ins, a in final if ins == "ENTRYPOINT"]
    assert entry == [["tini", "--", "algoseek-sync"]]
    assert [json.loads(a) for ins, a in final if ins == "CMD"] == [["run"]]
    assert [json.loads(a) for ins, a in final if ins == "VOLUME"] == [["/state"]]
    health = [a for ins, a in final if ins == "HEALTHCHECK"]
    assert len(health) == 1 and json.loads(health[0].split("CMD", 1)[1]) == [
        "algoseek-sync",
        "status",
        "--health",
    ]
    env = env_of(final)
    assert env["ALGOSEEK_SYNC_DROP_DIR"] == "/drop" and env["ALGOSEEK_SYNC_STATE_DIR"] == "/state"
    assert env["ALGOSEEK_SYNC_LOG_FORMAT"] == "json"


def build_context() -> list[str]:
    """Sources the build stage COPYs; each must exist and survive .dockerignore."""
    sources = []
    for stage in stages()[:-1]:
        for ins, args in stage:
            if ins == "COPY" and not args.startswith("--from"):
                sources += args.split()[:-1]
    return sources


def test_dockerignore_keeps_the_build_context() -> None:
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip()[:1] not in ("", "#")
    ]
    for needed in (".git", ".venv", "tests", "**/__pycache__"):
        assert needed in ignored
    for source in build_context():
        assert (REPO / source).exists(), source
        assert source.rstrip("/") not in ignored, f"{source} is needed by the build but ignored"


def test_install_like_the_image_and_start(tmp_path: Path) -> None:
    """The build stage's steps into a fresh venv (dependencies reused from the test venv), then run it."""
    context = tmp_path / "context"
    context.mkdir()
    for source in build_context():
        src = REPO / source
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copyfile(src, context / source)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    Path(purelib, "_reuse_test_deps.pth").write_text("\n".join(deps) + "\n")
    proc = subprocess.run(
        [python, "-m", "pip", "install", "--no-cache-dir", "--no-deps", "--quiet", "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    exe = venv / "bin" / "algoseek-sync"
    where = subprocess.run(
        [python, "-c", "import algoseek_sync; print(algoseek_sync.__file__)"],
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
    )
    assert where.stdout.startswith(str(venv)), where.stdout  # the installed copy, not the source tree

    drop, state = tmp_path / "drop", tmp_path / "state"
    drop.mkdir()
    env = {
        k: v.replace("/drop", str(drop)).replace("/state", str(state))
        for k, v in env_of(stages()[-1]).items()
    }
    env = clean_env(**{k: v for k, v in env.items() if k.startswith("ALGOSEEK_SYNC_")})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *args], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
        )

    helped = run("--help")
    assert helped.returncode == 0 and "reprocess" in helped.stdout and "check-config" in helped.stdout
    checked = run("check-config")
    assert checked.returncode == 0 and "configuration OK" in checked.stdout, checked.stderr
    shutil.copyfile(MASTER_SAMPLE, drop / "equity_security_master-sample.csv")
    shutil.copyfile(AAPL_SAMPLE, drop / "33449.csv")
    once = run("run", "--once")
    summary = (
        "processed 2 file version(s): done 2, unchanged 0, waiting 0, quarantined 0, skipped 0,"
        " superseded 0, deferred 0, failed 0; wrote 3342 row(s)"
    )
    assert once.returncode == 0 and summary in once.stderr, once.stderr[-2000:]
    assert json.loads(once.stderr.splitlines()[0])["level"]  # JSON logs, as the image sets
    health = run("status", "--health")
    assert health.returncode == 1 and health.stdout.startswith("stopped: no daemon running"), health.stdout


# -- configuration examples ---------------------------------------------------------------------


def dotted_keys(data: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(dotted_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_example_config_lists_every_key_with_its_default() -> None:
    example = dotted_keys(tomllib.loads(EXAMPLE.read_text()))
    defaults = dotted_keys(tomllib.loads(default_toml()))
    assert set(example) == set(defaults)
    differing = {k for k in defaults if example[k] != defaults[k]}
    assert differing == {"metrics.listen"} and example["metrics.listen"] == "127.0.0.1:9108"
    settings = load_settings(EXAMPLE, env={})
    assert settings.metrics.listen == "127.0.0.1:9108" and settings.source == str(EXAMPLE)
    lines = EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\w+\s*=", line):
            assert lines[i - 1].startswith("#"), f"key without a comment: {line}"


def test_secrets_example() -> None:
    text = SECRETS.read_text()
    values = parse_env_file(text)
    names = {
        "MAINSEQUENCE_ENDPOINT",
        "MAINSEQUENCE_ACCESS_TOKEN",
        "MAINSEQUENCE_REFRESH_TOKEN",
        "MAIN_SEQUENCE_PROJECT_ID",
        "MAINSEQUENCE_AUTH_MODE",
    }
    assert set(values) == names
    assert (
        not values["MAINSEQUENCE_ACCESS_TOKEN"] and not values["MAINSEQUENCE_REFRESH_TOKEN"]
    )  # no real secrets
    assert "chmod 600" in text or "-m 600" in text
    lines = text.splitlines()
    for name in names:
        index = next(i for i, line in enumerate(lines) if line.startswith(f"{name}="))
        assert lines[index - 1].startswith("#"), name


# -- configuration errors: exit 78, one line naming the key, no traceback -------------------------

BAD_CONFIGS = {
    "unknown-section-key": ("[watch]\nstabilty_seconds = 1\n", "watch.stabilty_seconds"),
    "unknown-table": ("[metric]\nlisten = ''\n", "'metric'"),
    "wrong-type": ('[watch]\nstability_seconds = "fast"\n', "watch.stability_seconds"),
    "bad-enum": ('[watch]\nobserver = "fsevents"\n', "watch.observer"),
    "negative": ("[watch]\nstability_seconds = -1\n", "watch.stability_seconds"),
    "invalid-toml": ("[watch\nobserver = 'auto'\n", "invalid TOML"),
    "listen-without-port": ('[metrics]\nlisten = "127.0.0.1"\n', "metrics.listen"),
    "health-bound": ("[health]\nfailed_cycles = 0\n", "health.failed_cycles"),
}


def _check_config(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    drop = tmp_path / "drop"
    drop.mkdir(exist_ok=True)
    full = clean_env(
        PYTHONPATH=str(REPO / "daemon"),
        ALGOSEEK_SYNC_DROP_DIR=str(drop),
        ALGOSEEK_SYNC_STATE_DIR=str(tmp_path / "state"),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "algoseek_sync", *args, "check-config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=full,
    )


def _assert_exit_78(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 78, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_configuration_errors_exit_78(tmp_path: Path) -> None:
    """Each bad file or variable: exit 78, one stderr line naming the key (or variable), no traceback."""
    cases: list[tuple[tuple[str, ...], dict[str, str], tuple[str, ...]]] = []
    for name, (text, needle) in BAD_CONFIGS.items():
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        if name == "invalid-toml":  # the file named by $ALGOSEEK_SYNC_CONFIG goes the same way
            cases.append(((), {"ALGOSEEK_SYNC_CONFIG": str(path)}, (needle, str(path))))
        else:
            cases.append((("--config", str(path)), {}, (needle, str(path))))
    env_needles = ("environment variable ALGOSEEK_SYNC_STABILITY_SECONDS", "watch.stability_seconds")
    cases.append(((), {"ALGOSEEK_SYNC_STABILITY_SECONDS": "abc"}, env_needles))
    listen_needles = ("environment variable ALGOSEEK_SYNC_METRICS_LISTEN", "metrics.listen", "host:port")
    cases.append(((), {"ALGOSEEK_SYNC_METRICS_LISTEN": "localhost"}, listen_needles))
    cases.append((("--config", str(tmp_path / "missing.toml")), {}, ("cannot read", "missing.toml")))
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    cases.append((("--config", str(not_a_dir / "config.toml")), {}, ("cannot read", "config.toml")))
    if os.geteuid() != 0:  # root reads mode-000 files anyway
        locked = tmp_path / "locked.toml"
        locked.write_text("[watch]\n")
        locked.chmod(0)
        cases.append((("--config", str(locked)), {}, ("cannot read", "locked.toml")))
    with ThreadPoolExecutor(2) as pool:  # each case is a Python start-up: use both cores
        procs = list(pool.map(lambda case: _check_config(tmp_path, *case[0], **case[1]), cases))
    for proc, (_, _, needles) in zip(procs, cases, strict=True):
        _assert_exit_78(proc, *needles)
    assert not (tmp_path / "state").exists()  # nothing created on a configuration error
    ok = _check_config(tmp_path, "--config", str(EXAMPLE))
    assert ok.returncode == 0 and "configuration OK" in ok.stdout, ok.stderr
