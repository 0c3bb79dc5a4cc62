"""A local stand-in for the Main Sequence API, enough for the real SDK's assets and DataNode runs.

Standard library only, in-memory state, a request log and fault injection, so backend tests
can run the real ``mainsequence`` client offline. Use it in-process (:class:`PlatformServer`)
or as a subprocess (``python tests/platform_server.py`` prints its URL); in both cases the
``/_control/`` endpoints read the log, inject faults and reset the state over HTTP.

It always binds a port the kernel picks and keeps it until it stops: an outage is simulated on
that same address (:meth:`PlatformServer.take_down`), never by a restart that would have to
win the port back, and each test gets fresh state from :meth:`PlatformServer.reset`.

It speaks the API generation of the installed SDK (:func:`sdk_api`), because the SDK's models
forbid unknown fields and each line drops fields the previous one required:

- 3.19: integer ids in paths and bodies; ``SourceTableConfiguration.table_partition``;
  reads filtered by ``unique_identifier_list``.
- 3.20: no ``table_partition``; progress stats as ``_GLOBAL_``/``index_progress``/``index_min``;
  reads filtered by ``dimension_filters={"unique_identifier": [...]}``.
- 3.21: public string ``uid`` instead of ``id`` for tables, updaters, schedulers and source
  table configs, in paths, bodies and responses.

State stays keyed by integer ids whatever the generation; only the wire format changes.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import gzip
import importlib.metadata
import json
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

API = "/orm/api"
DATA_SOURCE: dict[str, Any] = {
    "id": 1,
    "related_resource": {
        "id": 1,
        "display_name": "test-timescale",
        "organization": 1,
        "class_type": "timescale_db",
        "status": "AVAILABLE",
        "extra_arguments": None,
    },
    "related_resource_class_type": "timescale_db",
}
CONSTANTS = {
    "DATA_SOURCE_TYPE_TIMESCALEDB": "timescale_db",
    "DATA_SOURCE_TYPE_LOCAL_DISK_LAKE": "local_disk_lake",
    "SCHEDULER_HEART_BEAT_FREQUENCY_SECONDS": 30,
}
PAGE_ROWS = 5000
UID_PREFIX = "00000000-0000-4000-8000-"


def sdk_api() -> tuple[int, int]:
    """(major, minor) of the installed ``mainsequence``: the API generation to speak."""
    try:
        major, minor = importlib.metadata.version("mainsequence").split(".")[:2]
        return int(major), int(minor)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return (3, 19)


@dataclass
class Fault:
    """One injected failure: answer ``status`` (or drop / delay) for ``count`` matching requests."""

    path: str
    status: int = 503
    count: int = 1
    method: str = ""
    retry_after: float | None = None
    drop: bool = False
    delay: float = 0.0
    body: dict[str, Any] = field(default_factory=lambda: {"detail": "injected fault"})


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _iso(value: Any) -> str:
    """Canonical key for a time value (ISO text, epoch seconds or datetime)."""
    if isinstance(value, (int, float)):
        stamp = dt.datetime.fromtimestamp(value, tz=dt.UTC)
    else:
        stamp = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        stamp = stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class PlatformState:
    """Everything the fake platform stores, guarded by one lock."""

    def __init__(self, project_id: int = 1, api: tuple[int, int] | None = None, first_id: int = 0) -> None:
        self.lock = threading.RLock()
        self.project_id = project_id
        self.api = api or sdk_api()
        self.uids = self.api >= (3, 21)
        self.invalid_figis: set[str] = set()
        self.assets: dict[str, dict[str, Any]] = {}
        self.tables: dict[int, dict[str, Any]] = {}
        self.updates: dict[int, dict[str, Any]] = {}
        self.stcs: dict[int, dict[str, Any]] = {}
        self.rows: dict[int, dict[tuple[str, str], dict[str, Any]]] = {}
        self.dependencies: dict[int, set[int]] = {}
        self.schedulers: dict[int, dict[str, Any]] = {}
        self.log: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.refused_uids: set[str] = (
            set()
        )  # inserts holding one of these answer 400 (an asset the platform refuses)
        self.row_writes = 0
        self.last_id = first_id

    def next_id(self) -> int:
        self.last_id += 1
        return self.last_id

    def add_asset(self, uid: str, *, figi: str | None = None, custom: bool = False, **snap: Any) -> dict:
        with self.lock:
            if uid in self.assets:
                snapshot = self.assets[uid]["current_snapshot"]
                snapshot.update({k: v for k, v in snap.items() if k in ("name", "ticker") and v})
                return self.assets[uid]
            asset_id = self.next_id()
            asset = {
                "id": asset_id,
                "unique_identifier": uid,
                "figi": figi,
                "is_custom_by_organization": custom,
                "current_snapshot": {
                    "id": asset_id,
                    "asset": asset_id,
                    "effective_from": _now(),
                    "name": snap.get("name") or uid,
                    "ticker": snap.get("ticker") or None,
                },
            }
            self.assets[uid] = asset
            return asset

    def table_rows(self, identifier: str) -> list[dict[str, Any]]:
        """Stored rows of the table published under ``identifier`` (for assertions)."""
        with self.lock:
            for table_id, table in self.tables.items():
                if table.get("identifier") == identifier:
                    return [dict(r) for _, r in sorted(self.rows.get(table_id, {}).items())]
        return []

    def requests(self, contains: str = "", method: str = "") -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.log if contains in e["path"] and (not method or e["method"] == method)]

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()

    # --- references (int ids up to 3.20, string uids from 3.21) --------------------------------

    def ref(self, pk: int) -> int | str:
        """How the wire refers to object ``pk``."""
        return f"{UID_PREFIX}{pk:012d}" if self.uids else pk

    def pk(self, ref: object) -> int:
        """The object a path or body reference names; KeyError (404) if it is not this generation's form."""
        text = str(ref)
        if self.uids and text.startswith(UID_PREFIX) and text[len(UID_PREFIX) :].isdigit():
            return int(text[len(UID_PREFIX) :])
        if not self.uids and text.isdigit():
            return int(text)
        raise KeyError(text)

    def _public(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``obj`` with its ``id`` as this generation spells it (``uid`` from 3.21)."""
        out = dict(obj)
        if self.uids:
            out["uid"] = self.ref(out.pop("id"))
        return out

    # --- serialisers -------------------------------------------------------------------------

    def storage_json(self, table_id: int) -> dict[str, Any]:
        table = self._public(self.tables[table_id])
        table["sourcetableconfiguration"] = self.stc_json(table_id)
        return table

    def stc_json(self, table_id: int) -> dict[str, Any] | None:
        stc = self.stcs.get(table_id)
        if stc is None:
            return None
        stc = dict(stc)
        if self.api < (3, 20):
            stc["table_partition"] = {}
        if self.uids:
            stc.pop("id")
            stc["related_table_uid"] = self.ref(stc.pop("related_table"))
        return stc

    def update_json(self, update_id: int) -> dict[str, Any]:
        update = self._public(self.updates[update_id])
        update["data_node_storage"] = self.storage_json(self.updates[update_id]["data_node_storage"])
        return update

    def scheduler_json(self, scheduler_id: int) -> dict[str, Any]:
        return self._public(self.schedulers[scheduler_id])

    def stats(self, table_id: int) -> dict[str, str]:
        last: dict[str, str] = {}
        for ti, uid in self.rows.get(table_id, {}):
            if uid not in last or ti > last[uid]:
                last[uid] = ti
        return last

    def index_stats(self, table_id: int) -> dict[str, Any] | None:
        """Per-asset progress under the 3.19 key and the 3.20+ canonical keys (None when empty)."""
        last = self.stats(table_id)
        if not last:
            return None
        first: dict[str, str] = {}
        for ti, uid in self.rows.get(table_id, {}):
            if uid not in first or ti < first[uid]:
                first[uid] = ti
        return {
            "max_per_asset_symbol": last,
            "_GLOBAL_": {"min": min(first.values()), "max": max(last.values())},
            "index_progress": last,
            "index_min": first,
        }


class Handler(BaseHTTPRequestHandler):
    """Routes requests to ``PlatformState``; one instance per connection (kept alive across requests)."""

    server: _Server
    state: PlatformState  # the server's state when the current request came in
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        state = self.state = self.server.state
        parts = urlsplit(self.path)
        path, query = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        if path.startswith("/_control/"):
            self._control(method, path, body)
            return
        entry = {"t": time.monotonic(), "method": method, "path": path, "query": query, "json": body}
        fault = self._take_fault(method, path)
        with state.lock:
            state.log.append(entry)
        if fault is not None:
            if fault.delay:
                entry["delayed"] = fault.delay  # marked now: the client may give up before the answer
                time.sleep(fault.delay)
            if fault.drop:
                entry["status"] = "dropped"
                self.close_connection = True
                self.connection.close()
                return
            if fault.status:
                headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                entry["status"] = fault.status
                self._send(fault.status, fault.body, headers)
                return
        try:
            status, payload = self._route(method, path, query, body, entry)
        except KeyError as exc:
            status, payload = 404, {"detail": f"not found: {exc}"}
        entry["status"] = status
        self._send(status, payload)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        state = self.state
        with state.lock:
            for fault in state.faults:
                if fault.count > 0 and fault.path in path and (not fault.method or fault.method == method):
                    fault.count -= 1
                    return fault
        return None

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if status == 204 else json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _control(self, method: str, path: str, body: dict[str, Any]) -> None:
        state = self.state
        with state.lock:
            if path == "/_control/log":
                self._send(200, state.log)
            elif path == "/_control/fault" and method == "POST":
                state.faults.append(Fault(**body))
                self._send(200, {"ok": True})
            elif path == "/_control/reset" and method == "POST":
                self.server.reset()
                self._send(200, {"ok": True})
            elif path == "/_control/invalid_figi" and method == "POST":
                state.invalid_figis.add(body["figi"])
                self._send(200, {"ok": True})
            elif path == "/_control/rows":
                self._send(200, state.table_rows(body.get("identifier", "")))
            else:
                self._send(404, {"detail": "unknown control"})

    # --- routing ------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict, body: Any, entry: dict) -> tuple[int, Any]:
        state = self.state
        if not path.startswith(API):
            return 404, {"detail": "not found"}
        path = path[len(API) :]
        with state.lock:
            if path.startswith("/assets/"):
                return self._assets(method, path, query, body)
            if path == "/ts_manager/api/constants" or path == "/assets/api/constants":
                return 200, CONSTANTS
            match = re.fullmatch(r"/pods/projects/(\d+)/", path)
            if match:
                if int(match.group(1)) != state.project_id:
                    return 404, {"detail": "Not found."}
                project = {"id": state.project_id, "project_name": "algoseek-test", "is_initialized": True}
                return 200, project | {"data_source": DATA_SOURCE}
            if path.startswith("/ts_manager/"):
                return self._ts_manager(method, path[len("/ts_manager") :], query, body, entry)
        return 404, {"detail": f"no route {method} {path}"}

    def _assets(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        state = self.state
        if path == "/assets/asset/query/" and method == "POST":
            wanted = [u for u in str(body.get("unique_identifier__in", "")).split(",") if u]
            found = [state.assets[u] for u in wanted if u in state.assets]
            limit = int(query.get("limit") or 100)
            offset = int(query.get("offset") or 0)
            nxt = None
            if offset + limit < len(found):
                host = self.headers.get("Host")
                nxt = f"http://{host}{API}/assets/asset/query/?limit={limit}&offset={offset + limit}"
            return 200, {"results": found[offset : offset + limit], "next": nxt}
        if path == "/assets/asset/" and method == "GET":
            items = list(state.assets.values())
            if "unique_identifier" in query:
                items = [a for a in items if a["unique_identifier"] == query["unique_identifier"]]
            if "unique_identifier__in" in query:
                wanted = set(query["unique_identifier__in"].split(","))
                items = [a for a in items if a["unique_identifier"] in wanted]
            if "is_custom_by_organization" in query:
                flag = query["is_custom_by_organization"].lower() == "true"
                items = [a for a in items if a["is_custom_by_organization"] == flag]
            return 200, {"results": items, "next": None}
        if path == "/assets/asset/register_asset_from_figi/" and method == "POST":
            figi = body.get("figi", "")
            if figi in state.invalid_figis or not re.fullmatch(r"[A-Z0-9]{12}", figi):
                return 400, {"detail": f"FIGI {figi} not found in OpenFIGI"}
            if figi in state.assets:
                return 200, state.assets[figi]
            return 201, state.add_asset(figi, figi=figi)
        if path == "/assets/asset/get_or_register_custom_asset/" and method == "POST":
            return 201, self._custom(body)
        if path == "/assets/asset/batch_get_or_register_custom_assets/" and method == "POST":
            return 200, [self._custom(item) for item in body]
        return 404, {"detail": f"no asset route {method} {path}"}

    def _custom(self, item: dict[str, Any]) -> dict[str, Any]:
        snap = item.get("snapshot") or {}
        return self.state.add_asset(item["unique_identifier"], custom=True, **snap)

    def _ts_manager(self, method: str, path: str, query: dict, body: Any, entry: dict) -> tuple[int, Any]:
        state = self.state
        if path == "/local_time_serie/" and method == "GET":
            found = [
                state.update_json(i)
                for i, u in state.updates.items()
                if u["update_hash"] == query.get("update_hash")
            ]
            return 200, found
        if path == "/dynamic_table/" and method == "GET":
            found = [
                state.storage_json(i)
                for i, t in state.tables.items()
                if all(str(t.get(k)) == v for k, v in query.items() if k in ("identifier", "storage_hash"))
            ]
            return 200, found
        if path == "/dynamic_table/get_or_create/" and method == "POST":
            return self._table_get_or_create(body)
        if path == "/local_time_serie/get_or_create/" and method == "POST":
            return self._update_get_or_create(body)
        if path == "/scheduler/build_and_assign_to_update_nodes/" and method == "POST":
            sid = state.next_id()
            state.schedulers[sid] = {
                "id": sid,
                "name": body.get("scheduler_name", f"s{sid}"),
                "is_running": False,
                "running_process_pid": None,
                "running_in_debug_mode": True,
                "updates_halted": False,
                "host": None,
                "api_address": None,
                "api_port": None,
                "last_heart_beat": None,
            }
            return 201, state.scheduler_json(sid)
        match = re.fullmatch(r"/scheduler/([^/]+)/(in-active-tree/)?", path)
        if match:
            sid = state.pk(match.group(1))
            scheduler = state.schedulers[sid]
            if not match.group(2):
                scheduler.update({k: v for k, v in body.items() if k not in ("last_heart_beat", "id", "uid")})
            return 200, state.scheduler_json(sid)
        if path == "/local_time_serie/get_metadatas_and_set_updates/":
            ids = [state.pk(n["uid" if state.uids else "id"]) for n in body.get("update_nodes", [])]
            related = "related_table_uid" if state.uids else "related_table"
            return 200, {
                "source_table_config_map": {
                    str(state.ref(i)): state.stc_json(state.updates[i]["data_node_storage"]) for i in ids
                },
                "state_data": {str(state.ref(i)): {related: state.ref(i)} for i in ids},
                "all_index_stats": {str(state.ref(i)): None for i in ids},
                "local_metadatas": [state.update_json(i) for i in ids],
            }
        match = re.fullmatch(r"/local_time_serie/([^/]+)/(.*)", path)
        if match:
            return self._update_action(state.pk(match.group(1)), match.group(2), method, body, entry)
        if path == "/source_table_config/" and method == "POST":
            table_id = state.pk(body["metadata_uid" if state.uids else "metadata_id"])
            state.stcs[table_id] = {
                "id": table_id,
                "related_table": table_id,
                "time_index_name": body["time_index_name"],
                "column_dtypes_map": body["column_dtypes_map"],
                "index_names": body["index_names"],
                "last_time_index_value": None,
                "earliest_index_value": None,
                "open_for_everyone": False,
                "columns_metadata": [],
            }
            return 201, state.stc_json(table_id)
        match = re.fullmatch(
            r"/source_table_config/([^/]+)/(get_stats|set_or_update_columns_metadata)/", path
        )
        if match:
            table_id = state.pk(match.group(1))
            if match.group(2) == "get_stats":
                return 200, {"multi_index_stats": state.index_stats(table_id), "multi_index_column_stats": {}}
            state.stcs[table_id]["columns_metadata"] = body.get("columns_metadata", [])
            return 200, state.stcs[table_id]["columns_metadata"]
        match = re.fullmatch(r"/dynamic_table/([^/]+)/(.*)", path)
        if match:
            return self._table_action(state.pk(match.group(1)), match.group(2), method, body)
        return 404, {"detail": f"no ts_manager route {method} {path}"}

    def _table_get_or_create(self, body: dict[str, Any]) -> tuple[int, Any]:
        state = self.state
        for table_id, table in state.tables.items():
            if table["storage_hash"] == body["storage_hash"]:
                return 200, state.storage_json(table_id)
        table_id = state.next_id()
        state.tables[table_id] = {
            "id": table_id,
            "storage_hash": body["storage_hash"],
            "namespace": body.get("namespace"),
            "build_configuration_json_schema": body.get("build_configuration_json_schema"),
            "identifier": None,
            "protect_from_deletion": False,
            "description": None,
            "labels": [],
            "creation_date": _now(),
            "created_by_user": 1,
            "organization_owner": 1,
            "open_for_everyone": False,
            "data_source_open_for_everyone": False,
            "build_configuration": body.get("build_configuration"),
            "time_serie_source_code_git_hash": body.get("time_serie_source_code_git_hash"),
            "time_serie_source_code": None,
            "data_source": DATA_SOURCE,
            "source_class_name": body["storage_hash"].split("_")[0],
            "table_index_names": None,
            "compression_policy_config": None,
            "retention_policy_config": None,
            "data_frequency_id": None,
        }
        state.rows[table_id] = {}
        return 201, state.storage_json(table_id)

    def _update_get_or_create(self, body: dict[str, Any]) -> tuple[int, Any]:
        state = self.state
        for update_id, update in state.updates.items():
            if update["update_hash"] == body["update_hash"]:
                return 200, state.update_json(update_id)
        table_id = next(
            i for i, t in state.tables.items() if t["storage_hash"] == body["remote_table__hash_id"]
        )
        update_id = state.next_id()
        state.updates[update_id] = {
            "id": update_id,
            "update_hash": body["update_hash"],
            "build_configuration": body.get("build_configuration") or {},
            "ogm_dependencies_linked": False,
            "data_node_storage": table_id,
            "tags": [],
            "labels": [],
            "description": None,
            "update_details": None,
            "run_configuration": None,
            "open_for_everyone": False,
        }
        state.dependencies[update_id] = set()
        return 201, state.update_json(update_id)

    def _update_action(
        self, update_id: int, action: str, method: str, body: Any, entry: dict
    ) -> tuple[int, Any]:
        state = self.state
        update = state.updates[update_id]
        table_id = update["data_node_storage"]
        if action == "" and method == "PATCH":
            update.update({k: v for k, v in body.items() if k in update and k != "id"})
            return 200, state.update_json(update_id)
        if action == "" and method == "GET":
            return 200, state.update_json(update_id)
        if action == "depends_on_connect/":
            target = body["target_update_node_uid"] if state.uids else body["target_time_serie_id"]
            state.dependencies[update_id].add(state.pk(target))
            return 204, None
        if action == "get_all_dependencies_update_priority/":
            deps = []
            for dep in sorted(state.dependencies[update_id]):
                dep_update = state.updates[dep]
                ref = (
                    {"uid": state.ref(dep), "update_node_uid": state.ref(dep)}
                    if state.uids
                    else {
                        "id": dep,
                        "update_node_id": dep,
                    }
                )
                deps.append(
                    ref
                    | {
                        "update_hash": dep_update["update_hash"],
                        "remote_table_hash_id": state.tables[dep_update["data_node_storage"]]["storage_hash"],
                        "node_type": "local_time_serie",
                        "data_source_id": 1,
                        "update_priority": 0,
                        "number_of_upstreams": 0,
                        "source_class_name": "Node",
                    }
                )
            return 200, deps
        if action == "set_start_of_execution/":
            last = state.stats(table_id)
            last_value = max(last.values()) if last else None
            deps = [state.ref(d) for d in sorted(state.dependencies[update_id])]
            related = (
                {"related_table_uid": state.ref(update_id)} if state.uids else {"related_table": update_id}
            )
            return 201, {
                "historical_update": {"id": state.next_id(), "update_time_start": _now()} | related,
                "last_time_index_value": _epoch(last_value) if last_value else None,
                "asset_time_statistics": last or None,
                "multi_index_stats": state.index_stats(table_id),
                "multi_index_column_stats": None,
                "must_update": True,
                ("direct_dependency_uids" if state.uids else "direct_dependencies_ids"): deps,
            }
        if action == "set_end_of_execution/":
            return 200, {"ok": True}
        if action == "insert_data_into_table/":
            records = json.loads(gzip.decompress(base64.b64decode(body["data"])))
            stc = state.stcs[table_id]
            time_name = stc["time_index_name"]
            uid_name = stc["index_names"][1] if len(stc["index_names"]) > 1 else None
            refused = sorted({str(r.get(uid_name)) for r in records} & state.refused_uids) if uid_name else []
            if refused:
                return 400, {"detail": f"asset(s) {', '.join(refused)} refused by the platform"}
            table = state.rows.setdefault(table_id, {})
            for record in records:
                record[time_name] = _iso(record[time_name])
                table[(record[time_name], record.get(uid_name, "") if uid_name else "")] = record
            state.row_writes += len(records)
            entry["rows"] = len(records)
            entry["uids"] = sorted({str(r.get(uid_name)) for r in records}) if uid_name else []
            entry.pop("json", None)
            return 200, {"ok": True}
        if action == "set_last_update_index_time_from_update_stats/":
            return 200, state.update_json(update_id)
        return 404, {"detail": f"no local_time_serie action {action}"}

    def _table_action(self, table_id: int, action: str, method: str, body: Any) -> tuple[int, Any]:
        state = self.state
        table = state.tables[table_id]
        if action == "" and method == "PATCH":
            for key, value in body.items():
                if key in table and key != "id":
                    table[key] = value
            return 200, state.storage_json(table_id)
        if action == "" and method == "GET":
            return 200, state.storage_json(table_id)
        if action == "build_or_update_update_details/":
            return 202, {}
        if action == "get_data_between_dates_from_remote/":
            return 200, self._read_rows(table_id, body)
        return 404, {"detail": f"no dynamic_table action {action}"}

    def _read_rows(self, table_id: int, body: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        rows = state.rows.get(table_id, {})
        if state.api >= (3, 20):  # the SDK's own reader sends only the canonical dimension filter
            uids = (body.get("dimension_filters") or {}).get("unique_identifier")
        else:
            uids = body.get("unique_identifier_list")
        start, end = body.get("start_date"), body.get("end_date")
        ge, le = body.get("great_or_equal", True) is not False, body.get("less_or_equal", True) is not False
        selected = []
        for (ti, uid), row in sorted(rows.items()):
            when = _epoch(ti)
            if uids and uid not in uids:
                continue
            if start is not None and (when < start or (when == start and not ge)):
                continue
            if end is not None and (when > end or (when == end and not le)):
                continue
            selected.append(row)
        offset = int(body.get("offset") or 0)
        page = selected[offset : offset + PAGE_ROWS]
        nxt = offset + PAGE_ROWS if offset + PAGE_ROWS < len(selected) else None
        return {"results": page, "next_offset": nxt}


HOST = "127.0.0.1"


class _Server(ThreadingHTTPServer):
    """The listening socket and the state it serves: the socket lives as long as the fake, the
    state is replaced by :meth:`reset`."""

    daemon_threads = True

    def __init__(self, state: PlatformState) -> None:
        self.state = state
        self.connections: set[socket.socket] = set()
        super().__init__((HOST, 0), Handler)

    def server_bind(self) -> None:
        """Bind a port the kernel picks, but by its number, so the port stays ours while nothing listens.

        Linux gives a port bound as 0 back when its socket stops listening, and keeps one bound by
        number. A probe asks the kernel for a free port and holds it (both sockets set SO_REUSEPORT,
        cleared afterwards) until this socket has it: no other socket can take it in between.
        SO_REUSEADDR lets the socket listen again beside the connections it closed (in TIME_WAIT).
        """
        with socket.socket(self.address_family, self.socket_type) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind((HOST, 0))
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            self.socket.bind(probe.getsockname())
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 0)
        self.server_address = self.socket.getsockname()
        self.server_name, self.server_port = HOST, self.server_address[1]

    def reset(self) -> None:
        """Fresh state (assets, tables, rows, log, faults, everything); ids go on from the old state's,
        so a reference kept from before the reset is answered 404, never by another object."""
        old = self.state
        with old.lock:
            self.state = PlatformState(project_id=old.project_id, api=old.api, first_id=old.last_id)

    def finish_request(self, request: Any, client_address: Any) -> None:
        self.connections.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            self.connections.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that gave up (timeouts, dropped-connection faults, outages) are expected, not errors."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        """Close kept-alive client connections too, so a server that is down really answers nothing."""
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


class PlatformServer:
    """The fake platform on 127.0.0.1, served from a background thread.

    It keeps one address (a port the kernel picked) from construction to :meth:`stop`, so a
    client configured with :attr:`url` always reaches it. :meth:`take_down` and :meth:`bring_up`
    simulate an outage on that address, and :meth:`reset` gives it fresh state.
    """

    def __init__(self, project_id: int = 1, api: tuple[int, int] | None = None) -> None:
        self._server = _Server(PlatformState(project_id=project_id, api=api))
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def state(self) -> PlatformState:
        """The current state (a new object after :meth:`reset`)."""
        return self._server.state

    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def is_down(self) -> bool:
        return self._thread is None

    def start(self) -> PlatformServer:
        """Serve requests (the socket already listens; connections made before are answered now)."""
        if self._stopped:
            raise RuntimeError("a stopped fake platform gave its port up; make a new one")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="platform-server"
            )
            self._thread.daemon = True
            self._thread.start()
        return self

    def take_down(self) -> None:
        """An outage on the same address: new connections are refused, open ones are closed.

        The socket stops listening but stays bound (see :meth:`_Server.server_bind`), which is
        what a client sees of a platform that is not running, and no one else can take the port.
        """
        if self._stopped or self._thread is None:
            return
        self._server.socket.shutdown(socket.SHUT_RD)  # on Linux: no longer listening, still bound
        self._server.shutdown()
        self._thread.join()
        self._thread = None
        self._server.drop_connections()
        with socket.socket() as probe:
            try:
                probe.connect(self._server.server_address)
            except ConnectionRefusedError:
                return
        raise RuntimeError(f"{self.url} still accepts connections after take_down()")

    def bring_up(self) -> None:
        """The end of an outage: listen again on the same address and serve."""
        if self._stopped:
            raise RuntimeError("a stopped fake platform gave its port up; make a new one")
        if self._thread is None:
            self._server.socket.listen(self._server.request_queue_size)
            self.start()

    def reset(self) -> None:
        """Fresh state for the next test, and up again if a test left it down."""
        self._server.reset()
        self.bring_up()

    def stop(self) -> None:
        """Close for good: the port is given up, so this object is never started again."""
        if self._stopped:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        self._server.drop_connections()
        self._stopped = True

    def fault(self, path: str, **kwargs: Any) -> Fault:
        fault = Fault(path=path, **kwargs)
        with self.state.lock:
            self.state.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-id", type=int, default=1)
    args = parser.parse_args()
    server = PlatformServer(project_id=args.project_id).start()
    print(f"listening on {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
