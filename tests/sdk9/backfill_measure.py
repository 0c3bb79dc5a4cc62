"""Measure bringing a 9.x deployment up from the drop: a fresh state directory backfills the platform.

Not a test (timings belong to measurements, not assertions): run it in ``.venv-sdk9``::

    PYTHONPATH=daemon:tests .venv-sdk9/bin/python tests/sdk9/backfill_measure.py --secids 1000 --days 20

It starts the SDK's local data API (SQLite) with the loopback fakes of :mod:`local_platform`,
migrates the tables, generates a drop, runs the real worker once over it with the 9.x backend,
and prints the wall time and every request by route (data API, through a pass-through proxy;
platform and OpenFIGI, at the fakes). Numbers are for the local SQLite runtime on this machine;
a hosted tenant adds network round trips per request.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from algoseek_sync import app as app_module
from algoseek_sync.backends.mainsequence9 import MainSequence9Backend
from algoseek_sync.config import load_settings
from algoseek_sync.synthetic.generate import DropSpec, generate_drop
from sdk9.local_platform import FakePlatform, FaultProxy, LocalDataApi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secids", type=int, default=1000)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--schema", default="primary-adjusted")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sdk9-backfill-") as tmp:
        root = Path(tmp)
        platform = FakePlatform()
        (root / "api").mkdir()
        api = LocalDataApi(root / "api", platform).start()
        proxy = FaultProxy(api.url)
        os.environ.update({k: v for k, v in api.env.items() if k != "HOME"})
        os.environ.update({"METATABLES_API_URL": proxy.url, "METATABLES_LOCAL_TOKEN": api.token})
        os.chdir(api.checkout)
        try:
            drop = root / "drop"
            generate_drop(drop, DropSpec(secids=args.secids, days=args.days, schema=args.schema))
            env = {
                "ALGOSEEK_SYNC_STATE_DIR": str(root / "state"),
                "ALGOSEEK_SYNC_DROP_DIR": str(drop),
                "ALGOSEEK_SYNC_BACKEND": "mainsequence",
            }
            settings = load_settings(env=env)
            started = time.perf_counter()
            backend = MainSequence9Backend(settings, None)
            print(backend.migrate())
            backend.close()
            migrated = time.perf_counter() - started
            proxy.requests.clear()
            platform.requests.clear()
            app_module.open_backend = lambda s, db: MainSequence9Backend(s, db)  # type: ignore[assignment]
            started = time.perf_counter()
            app = app_module.open_app(settings)
            stats = app_module.run_once(app)
            backfill = time.perf_counter() - started
            data_api, platform_calls = dict(proxy.requests), dict(platform.requests)
            rows = sum(app.backend.read_bars(q).shape[0] for q in _queries(app))
            app.close()
            report = {
                "secids": args.secids,
                "days": args.days,
                "schema": args.schema,
                "migrate_seconds": round(migrated, 1),
                "backfill_seconds": round(backfill, 1),
                "error": stats.error,
                "outcomes": dict(stats.outcomes),
                "rows_read_back": rows,
                "data_api_requests": sum(data_api.values()),
                "platform_and_openfigi_requests": sum(platform_calls.values()),
                "by_route": dict(sorted((data_api | platform_calls).items(), key=lambda kv: -kv[1])),
            }
            print(json.dumps(report, indent=2))
        finally:
            proxy.stop()
            api.stop()
            platform.stop()


def _queries(app: app_module.App) -> list:
    from algoseek_sync.backends.base import BarQuery

    uids = app.backend.read_assets()["unique_identifier"].tolist()
    return [BarQuery(dataset, uids) for dataset in app.backend.datasets()]


if __name__ == "__main__":
    main()
