"""The 9.x SDK's own local data API, run for real, with minimal loopback fakes around it.

* :class:`FakePlatform`: the platform's identity endpoint (``GET /api/v1/users/me/``, all the
  local data API asks the platform) and OpenFIGI's mapping endpoint (FIGIs listed in
  ``unknown`` get OpenFIGI's "No identifier found."; ``rate_limited`` answers 429 first);
* :class:`LocalDataApi`: ``metatables serve --local`` (SQLite) as a subprocess in a scratch Git
  checkout, its system and markets migrations applied. ms-markets 2.2.12 creates one markets
  table (``ms_markets__interpolatedpricests``) that no model registers; the local server turns
  SQLite foreign-key checks on and its SQL authorizer allows only catalogued tables, and
  ``INSERT ... RETURNING`` into the asset table makes SQLite check every table referencing it,
  so asset writes are refused until that table is catalogued. The server's own
  ``import-from-data-source`` does that (the workaround a real PostgreSQL tenant should not need);
* :class:`FaultProxy`: a loopback proxy in front of the data API that passes requests through
  and injects the faults the hosted API can show: refused connections (an outage), 429 storms,
  a write that lands but whose answer is lost (the SDK's "outcome unknown"), and a refusal (400)
  of the rows of one asset.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

UID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")
USER_UID = "8a1c0e7e-1d2b-4c59-9d43-3f0c6c1f2a11"
LOCAL_TOKEN_HEADER = "X-MetaTables-Local-Token"
STARTUP_SECONDS = 240.0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = STARTUP_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.2)


def free_port() -> int:
    """A loopback port free now (the launcher takes a port number, not 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def jwt(seconds: int) -> str:
    """A well-formed JWT the SDK can read the expiry of (the fakes never verify it)."""
    import jwt as pyjwt

    return pyjwt.encode({"exp": int(time.time()) + seconds, "user_id": 1}, "k" * 32, algorithm="HS256")


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        """No access log on stderr."""

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


class FakePlatform:
    """The identity endpoint and OpenFIGI, on one loopback port."""

    def __init__(self) -> None:
        self.unknown: set[str] = set()
        self.rate_limited = 0
        self.requests: Counter[str] = Counter()
        self.mapped: list[str] = []
        fake = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                fake.requests[f"GET {self.path.split('?')[0]}"] += 1
                if self.path.startswith("/api/v1/users/me"):
                    self._json(
                        200,
                        {
                            "uid": USER_UID,
                            "is_active": True,
                            "is_organization_admin": True,
                            "active_team_uids": [],
                        },
                    )
                else:
                    self._json(404, {"detail": "not in this fake"})

            def do_POST(self) -> None:
                fake.requests[f"POST {self.path.split('?')[0]}"] += 1
                jobs = json.loads(self._body() or b"[]")
                if self.path != "/v3/mapping":
                    self._json(404, {"detail": "not in this fake"})
                    return
                if fake.rate_limited > 0:
                    fake.rate_limited -= 1
                    self._json(429, {"error": "Too Many Requests"}, {"Retry-After": "0"})
                    return
                self._json(200, [fake.answer(job["idValue"]) for job in jobs])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, figi: str) -> dict[str, object]:
        if figi in self.unknown:
            return {"error": "No identifier found."}
        self.mapped.append(figi)
        record = {"figi": figi, "ticker": f"T{figi[-4:]}", "name": f"Company {figi[-4:]}", "exchCode": "US"}
        return {
            "data": [
                record | {"compositeFIGI": figi, "securityType": "Common Stock", "marketSector": "Equity"}
            ]
        }

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FaultProxy:
    """Passes requests to ``upstream`` and injects faults; counts requests by method and route."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.down = False
        self.rate_limited = 0
        self.lose_write_answers = 0
        self.refuse_rows_of: set[str] = set()
        self.requests: Counter[str] = Counter()
        self.lock = threading.Lock()
        proxy = self

        class Handler(_Quiet):
            def _route(self) -> str:
                parts = [p for p in self.path.split("?")[0].split("/") if p]
                return "/".join("{uid}" if UID.fullmatch(p) else p for p in parts)

            def _handle(self) -> None:
                body = self._body()
                with proxy.lock:
                    proxy.requests[f"{self.command} /{self._route()}/"] += 1
                    down = proxy.down
                    limited = proxy.rate_limited > 0
                    if limited:
                        proxy.rate_limited -= 1
                if down:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if limited:
                    self._json(429, {"detail": "rate limited"}, {"Retry-After": "0"})
                    return
                is_write = self.path.endswith("/insert-data-into-table/")
                if is_write and proxy.refuse_rows_of and proxy.refused(body):
                    self._json(400, {"detail": "rows refused by the fault proxy"})
                    return
                status, headers, answer = proxy.forward(self.command, self.path, dict(self.headers), body)
                if is_write and proxy.take_lost_answer():
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def refused(self, body: bytes) -> bool:
        rows = json.loads(gzip.decompress(base64.b64decode(json.loads(body)["data"])))
        return any(row.get("asset_identifier") in self.refuse_rows_of for row in rows)

    def take_lost_answer(self) -> bool:
        with self.lock:
            if self.lose_write_answers > 0:
                self.lose_write_answers -= 1
                return True
        return False

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list, bytes]:
        connection = http.client.HTTPConnection(self.upstream, timeout=300)
        try:
            headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def reset(self) -> None:
        with self.lock:
            self.down = False
            self.rate_limited = self.lose_write_answers = 0
            self.refuse_rows_of = set()
            self.requests.clear()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


SETUP = """
import metatables, msm_migrations
from metatables.models import MetaTable
from metatables.transport import data_request
metatables.configure_local_client()
metatables.initialize_runtime()
metatables.upgrade_application(msm_migrations.migration)
source = metatables.get_runtime_status()["data_source"]["uid"]
answer = data_request(
    s=MetaTable.build_session(), loaders=MetaTable.LOADERS, r_type="POST",
    url=MetaTable.get_object_url() + "/import-from-data-source/",
    payload={"json": {"data_source_uid": source, "relation_names": ["ms_markets__interpolatedpricests"],
                      "dry_run": False, "follow_foreign_keys": False}},
)
assert answer.status_code == 200, answer.text
"""


class LocalDataApi:
    """``metatables serve --local`` in a scratch Git checkout under ``root``, ready for the markets."""

    def __init__(self, root: Path, platform: FakePlatform) -> None:
        self.root = root
        self.checkout = root / "deploy"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "metatables-serve.log"
        keys = root / "keys"
        keys.mkdir(mode=0o700)
        (root / "home").mkdir()
        self.env = {
            "HOME": str(root / "home"),
            "METATABLES_LOCAL_STORAGE_DIR": str(root / "store"),
            "MAINSEQUENCE_ENDPOINT": platform.url,
            "MAINSEQUENCE_AUTH_MODE": "jwt",
            "MAINSEQUENCE_ACCESS_TOKEN": jwt(30 * 86400),
            "MAINSEQUENCE_REFRESH_TOKEN": jwt(60 * 86400),
            "METATABLES_SEARCH_EMBEDDINGS": "off",
            "HF_HUB_OFFLINE": "1",
            "FIGI_API_URL": f"{platform.url}/v3/mapping",
            "OPENFIGI_API_KEY": "test-openfigi-key",
        }
        self._git_checkout(keys)
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""

    def _git_checkout(self, keys: Path) -> None:
        """A checkout the SDK accepts as the project: a branch, a commit, a remote (never contacted)."""
        self.checkout.mkdir()
        (self.checkout / "configuration.yaml").write_text(
            f"local_mode_available: true\nlocal_credentials:\n  provider: file\n  key_directory: {keys}\n"
        )
        git = ["git", "-C", str(self.checkout), "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
        for args in (
            ["init", "-q", "-b", "main"],
            ["remote", "add", "origin", "https://example.invalid/acme/algoseek-deploy.git"],
            ["add", "."],
            ["commit", "-qm", "deployment checkout"],
        ):
            subprocess.run([*git, *args], check=True, capture_output=True)

    def environ(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def start(self) -> LocalDataApi:
        serve = Path(sys.executable).with_name("metatables")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(serve), "serve", "--local", "--port", str(self.port), "--no-open-browser"],
                cwd=self.checkout,
                env=self.environ(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server_file = self.root / "store" / "server.json"
        wait_for(lambda: self._exited() or self._answers(server_file), "the local data API to answer")
        if self._exited():
            raise RuntimeError(f"metatables serve exited: {self.log.read_text()[-2000:]}")
        subprocess.run(
            [sys.executable, "-c", SETUP],
            cwd=self.checkout,
            env=self.environ(),
            check=True,
            capture_output=True,
            timeout=STARTUP_SECONDS,
        )
        return self

    def _exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def _answers(self, server_file: Path) -> bool:
        if not server_file.exists():
            return False
        try:
            self.token = json.loads(server_file.read_text())["token"]
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            connection.request("GET", "/runtime-context/", headers={LOCAL_TOKEN_HEADER: self.token})
            connection.getresponse().read()
            connection.close()
        except (OSError, ValueError, KeyError, http.client.HTTPException):
            return False
        return "MetaTables runtime ready" in self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=60)
