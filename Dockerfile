# syntax=docker/dockerfile:1
# algoseek-sync as a sidecar next to an SFTP server:
#   docker build -t algoseek-sync .
#   docker run -d --name algoseek-sync -v /srv/sftp/algoseek:/drop:ro -v algoseek-state:/state algoseek-sync
# See README.md, "Operations guide".

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a virtualenv with the project and its dependencies ------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/algoseek-sync/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY daemon/ daemon/
RUN /opt/algoseek-sync/venv/bin/pip install --no-cache-dir . \
 && /opt/algoseek-sync/venv/bin/algoseek-sync --version

# --- runtime: the venv, tini and a non-root user; no compilers, no pip caches ---------
FROM ${PYTHON_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
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
