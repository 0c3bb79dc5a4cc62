"""One HTTP attempt per SDK request, failures turned into answers the SDK passes back up.

The SDK's shared ``requests`` session retries 429/5xx three times through urllib3, and its
``make_request`` loops 60 x 0.25 s on connection errors before inventing a 500. Neither is
bounded the way the daemon needs, and both hide what happened. Mounting
:class:`BoundedAdapter` on that session (for ``http://`` and ``https://``) makes every SDK
request exactly one attempt with a capped timeout; a refused, dropped or timed-out
connection comes back as a synthetic 503 marked with :data:`TRANSPORT_HEADER`, which
``make_request`` returns instead of looping. :mod:`.retry` then decides what to repeat.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

TRANSPORT_HEADER = "X-Algoseek-Sync-Transport-Error"


@dataclass
class TrafficCounters:
    """Requests seen by the adapter, so callers can tell a platform outage from a bug."""

    requests: int = 0
    transport_failures: int = 0
    server_errors: int = 0
    rate_limited: int = 0
    #: raw ``Retry-After`` of the latest refused response (None when it sent none)
    retry_after: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, status: int | None, retry_after: str | None = None) -> None:
        with self._lock:
            self.requests += 1
            if status is None or status == 429 or status >= 500:
                self.retry_after = retry_after
            if status is None:
                self.transport_failures += 1
            elif status == 429:
                self.rate_limited += 1
            elif status >= 500:
                self.server_errors += 1

    def snapshot(self) -> tuple[int, int, int, int]:
        with self._lock:
            return (self.requests, self.transport_failures, self.server_errors, self.rate_limited)


class BoundedAdapter(HTTPAdapter):
    """No urllib3 retries, a timeout cap, and transport failures as synthetic 503 responses."""

    def __init__(self, connect_timeout: float, read_timeout: float, counters: TrafficCounters) -> None:
        super().__init__(
            max_retries=Retry(total=0, connect=0, read=0, status=0, redirect=0, raise_on_status=False)
        )
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.counters = counters

    def _cap(self, timeout: object) -> tuple[float, float]:
        connect, read = self.connect_timeout, self.read_timeout
        if isinstance(timeout, (int, float)):
            connect, read = min(connect, float(timeout)), min(read, float(timeout))
        elif isinstance(timeout, tuple) and len(timeout) == 2:
            connect = min(connect, float(timeout[0] or connect))
            read = min(read, float(timeout[1] or read))
        return connect, read

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:  # type: ignore[override]
        kwargs["timeout"] = self._cap(kwargs.get("timeout"))
        try:
            response = super().send(request, **kwargs)  # type: ignore[arg-type]
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            self.counters.record(None)
            return transport_failure_response(request, exc)
        self.counters.record(response.status_code, response.headers.get("Retry-After"))
        return response


def transport_failure_response(request: requests.PreparedRequest, exc: BaseException) -> requests.Response:
    """A 503 the SDK treats like any server error, marked so the daemon knows nobody answered."""
    response = requests.Response()
    response.status_code = 503
    response.reason = "Service Unavailable"
    response.url = request.url or ""
    response.request = request
    response.encoding = "utf-8"
    response.headers["Content-Type"] = "application/json"
    response.headers[TRANSPORT_HEADER] = type(exc).__name__
    response._content = json.dumps({"detail": f"platform unreachable: {why_unreachable(exc)}"}).encode()
    return response


def why_unreachable(exc: BaseException) -> str:
    """A few words an operator recognises: connection refused, timed out, name not resolved."""
    text = str(exc).lower()
    if isinstance(exc, requests.Timeout) or "timed out" in text:
        return "timed out"
    if "refused" in text:
        return "connection refused"
    if "name or service not known" in text or "nodename nor servname" in text or "resolve" in text:
        return "host name not resolved"
    if "reset" in text:
        return "connection reset"
    return type(exc).__name__


def install(session: requests.Session, adapter: BoundedAdapter) -> None:
    """Replace the session's adapters (closing the old pools) with ``adapter``."""
    for prefix in ("https://", "http://"):
        old = session.adapters.get(prefix)
        if old is not None and old is not adapter:
            old.close()
        session.mount(prefix, adapter)
