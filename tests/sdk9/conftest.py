"""The SDK 9.x backend's tests: collected only where the 9.x SDK is installed (``make test`` runs
them in ``.venv-sdk9`` on Python 3.13); elsewhere they are not collected at all, so nothing skips.

One local data API (``metatables serve --local``) serves the whole session; tests keep apart by
using identifiers of their own.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

if importlib.util.find_spec("metatables") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    from sdk9.local_platform import FakePlatform, FaultProxy, LocalDataApi


@pytest.fixture(scope="session")
def fake_platform() -> Iterator[FakePlatform]:
    platform = FakePlatform()
    yield platform
    platform.stop()


@pytest.fixture(scope="session")
def data_api(tmp_path_factory: pytest.TempPathFactory, fake_platform: FakePlatform) -> Iterator[LocalDataApi]:
    """The local data API, its address and the SDK's variables in this process's environment."""
    api = LocalDataApi(tmp_path_factory.mktemp("metatables"), fake_platform)
    saved = {k: os.environ.get(k) for k in [*api.env, "METATABLES_API_URL", "METATABLES_LOCAL_TOKEN"]}
    try:
        api.start()
        os.environ.update({k: v for k, v in api.env.items() if k != "HOME"})
        os.environ.update({"METATABLES_API_URL": api.url, "METATABLES_LOCAL_TOKEN": api.token})
        yield api
    finally:
        api.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def proxy(data_api: LocalDataApi) -> Iterator[FaultProxy]:
    fault = FaultProxy(data_api.url)
    yield fault
    fault.stop()


@pytest.fixture()
def via_proxy(proxy: FaultProxy, data_api: LocalDataApi, monkeypatch: pytest.MonkeyPatch) -> FaultProxy:
    """This test's data API traffic goes through the fault proxy (reset: no faults, no counts)."""
    proxy.reset()
    monkeypatch.setenv("METATABLES_API_URL", proxy.url)
    return proxy


@pytest.fixture()
def in_checkout(data_api: LocalDataApi, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory is the deployment checkout (``mainsequence.checkout``'s default)."""
    monkeypatch.chdir(data_api.checkout)
    return data_api.checkout
