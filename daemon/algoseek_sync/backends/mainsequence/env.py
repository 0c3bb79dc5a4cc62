"""The SDK's environment: env-file loading, required variables, secret redaction.

The ``mainsequence`` SDK reads its endpoint and tokens from environment variables at
import time, so these must be settled before the first import; secrets must never leak
into logs or messages, so every text we build from an SDK exception goes through
:func:`redact`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from algoseek_sync.errors import ConfigError

ENDPOINT = "MAINSEQUENCE_ENDPOINT"
ACCESS_TOKEN = "MAINSEQUENCE_ACCESS_TOKEN"
REFRESH_TOKEN = "MAINSEQUENCE_REFRESH_TOKEN"
PROJECT_ID = "MAIN_SEQUENCE_PROJECT_ID"
SECRET_VARIABLES = (
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    "MAINSEQUENCE_RUNTIME_CREDENTIAL_SECRET",
)
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_TOKEN_FIELD = re.compile(
    r"""(["']?(?:access|refresh|token|credential_secret)["']?\s*[:=]\s*["']?)[^"',\s}]+"""
)


def parse_env_file(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines; ``#`` comments and blank lines skipped; one level of quotes removed."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            continue
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def load_env_file(path: str, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Copy the file's variables into ``environ`` without overriding ones already set; return the keys set."""
    environ = os.environ if environ is None else environ
    if not path:
        return []
    try:
        text = Path(path).expanduser().read_text("utf-8")
    except OSError as exc:
        raise ConfigError(
            f"configuration error: 'mainsequence.env_file': cannot read {path}: {exc.strerror}"
        ) from None
    added = []
    for key, value in parse_env_file(text).items():
        if key not in environ:
            environ[key] = value
            added.append(key)
    return added


def require_variables(environ: Mapping[str, str] | None = None) -> str:
    """Raise ConfigError naming every missing or malformed variable at once; return the endpoint."""
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    endpoint = (environ.get(ENDPOINT) or "").strip()
    if not endpoint:
        problems.append(f"{ENDPOINT} is not set")
    elif not endpoint.startswith(("http://", "https://")):
        problems.append(f"{ENDPOINT} must be an http(s) URL")
    if not (environ.get(ACCESS_TOKEN) or "").strip() and not (environ.get(REFRESH_TOKEN) or "").strip():
        problems.append(f"{ACCESS_TOKEN} (or {REFRESH_TOKEN}) is not set")
    project = (environ.get(PROJECT_ID) or "").strip()
    if not project:
        problems.append(f"{PROJECT_ID} is not set")
    elif not project.isdigit():
        problems.append(f"{PROJECT_ID} must be an integer project id")
    if problems:
        raise ConfigError(f"configuration error: environment variable {'; '.join(problems)}")
    return endpoint.rstrip("/")


def redact(text: object, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every configured secret, bearer token and token-looking field masked."""
    environ = os.environ if environ is None else environ
    result = str(text)
    for name in SECRET_VARIABLES:
        secret = (environ.get(name) or "").strip()
        if len(secret) >= 4:
            result = result.replace(secret, "***")
    result = _BEARER.sub(r"\1***", result)
    return _TOKEN_FIELD.sub(r"\1***", result)
