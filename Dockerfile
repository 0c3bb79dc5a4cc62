# syntax=docker/dockerfile:1
# algoseek-sync as a sidecar next to an SFTP server:
#   docker build -t algoseek-sync .
#   docker run -d --name algoseek-sync -v /srv/sftp/algoseek:/drop:ro -v algoseek-state:/state algoseek-sync
# One image per Main Sequence SDK line, chosen by two build args (README.md, "Install"):
#   - the 3.x line (the default): PYTHON_VERSION=3.11, SDK_EXTRA=mainsequence3 (SDK 3.19-3.21);
#   - today's line: --build-arg PYTHON_VERSION=3.13 --build-arg SDK_EXTRA=mainsequence (SDK 9.x; its
#     wheelhouse: `make wheelhouse-sdk9`);
#   - SDK_EXTRA= (empty): the embedded store only, no SDK.
# What needs the network, and what does not:
#   - pip: `make wheelhouse` (or wheelhouse-sdk9) first; with wheels in wheels/ every pip install runs with
#     --no-index from them and contacts no package index (without wheels it uses PyPI).
#   - the base image: without an image registry, --build-arg PYTHON_IMAGE=<a local Debian image
#     with Python PYTHON_VERSION>; podman/docker use it from the local image store.
#   - tini: taken from the base image when it has one (a base made with
#     `debootstrap --include=...,tini` does); python:3.x-slim has none, so the runtime stage
#     then fetches it with apt-get from the Debian mirror, the one step that needs the network.
#   With a wheelhouse and a local base image that has tini, the build uses no network at all
#   (tests/test_container.py builds it that way in a network namespace with only loopback).
# See README.md, "Operations guide".

ARG PYTHON_VERSION=3.11
ARG PYTHON_IMAGE=python:${PYTHON_VERSION}-slim

# --- build: a virtualenv with the project and its dependencies ------------------------
FROM ${PYTHON_IMAGE} AS build
ARG PYTHON_VERSION
# the pyproject.toml extra of the SDK line; its markers would install nothing on another Python, so
# the base must have PYTHON_VERSION, and the install below must leave that line's adapter chosen
ARG SDK_EXTRA=mainsequence3
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -c 'import sys; v = "%d.%d" % sys.version_info[:2]; sys.exit(None if v == sys.argv[1] else \
        f"the base image has Python {v}, PYTHON_VERSION is {sys.argv[1]}")' "${PYTHON_VERSION}" \
 && python -m venv /opt/algoseek-sync/venv
WORKDIR /src
# The wheelhouse: only a README, or the wheels `make wheelhouse` downloaded. With wheels, every
# pip below installs from it alone (PIP_NO_INDEX) and never contacts a package index.
COPY wheels/ /wheels/
# Dependencies first: this layer is reused until pyproject.toml or the wheelhouse changes.
COPY pyproject.toml ./
RUN if ls /wheels/*.whl >/dev/null 2>&1; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels; fi \
 && python -c 'import sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
        extra = p["optional-dependencies"][sys.argv[1]] if sys.argv[1] else []; \
        print("\n".join(p["dependencies"] + extra))' "${SDK_EXTRA}" > /tmp/requirements.txt \
 && /opt/algoseek-sync/venv/bin/pip install --no-cache-dir --requirement /tmp/requirements.txt
# Then the project. A new SOURCE_REVISION (e.g. `git describe --always --dirty`, or any fresh
# value) re-runs this install even when the sources are unchanged.
ARG SOURCE_REVISION=unknown
COPY README.md ./
COPY daemon/ daemon/
RUN if ls /wheels/*.whl >/dev/null 2>&1; then export PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheels; fi \
 && echo "algoseek-sync sources: ${SOURCE_REVISION}" \
 && /opt/algoseek-sync/venv/bin/pip install --no-cache-dir ".${SDK_EXTRA:+[${SDK_EXTRA}]}" \
 && /opt/algoseek-sync/venv/bin/algoseek-sync --version \
 && if [ -n "${SDK_EXTRA}" ]; then /opt/algoseek-sync/venv/bin/python -c 'import sys; \
        from algoseek_sync.backends import platform_adapter; a = platform_adapter(); \
        sys.exit(None if a.extra == sys.argv[1] else f"SDK_EXTRA {sys.argv[1]} installed the {a.line} line")' \
        "${SDK_EXTRA}"; fi

# --- runtime: the venv, tini and a non-root user; no compilers, no pip caches ---------
FROM ${PYTHON_IMAGE} AS runtime
# tini: the base image's own when it has one (no network); otherwise from the Debian mirror.
RUN if ! command -v tini >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends tini; \
    fi \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 algoseek \
 && useradd --system --uid 10001 --gid 10001 --home-dir /state --no-create-home --shell /usr/sbin/nologin algoseek \
 && mkdir -p /state /drop \
 && chown 10001:10001 /state
COPY --from=build /opt/algoseek-sync/venv /opt/algoseek-sync/venv

# Configuration: packaged defaults, then a TOML file (mount one and set
# ALGOSEEK_SYNC_CONFIG=/etc/algoseek-sync/config.toml), then these variables.
# Secrets (MAINSEQUENCE_*) come from the environment (--env-file), never the image.
ENV PATH=/opt/algoseek-sync/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ALGOSEEK_SYNC_DROP_DIR=/drop \
    ALGOSEEK_SYNC_STATE_DIR=/state \
    ALGOSEEK_SYNC_LOG_FORMAT=json \
    ALGOSEEK_SYNC_METRICS_LISTEN=0.0.0.0:9108

# The drop is mounted read-only at /drop; the state (state.db + worker.lock) lives in /state.
VOLUME ["/state"]
WORKDIR /state
EXPOSE 9108
USER 10001:10001

# tini is PID 1: it forwards SIGTERM (docker stop) to the daemon and reaps children.
# The daemon exits 0 within 10 s of SIGTERM; keep `docker stop -t` at 20 s or more.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["algoseek-sync", "status", "--health"]
ENTRYPOINT ["tini", "--", "algoseek-sync"]
CMD ["run"]
