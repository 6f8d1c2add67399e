"""``GET /asyncapi.json`` is a valid AsyncAPI 3.0 document by the official JSON schema (from
the npm package ``@asyncapi/specs``, installed by ``make test`` into tests/asyncapi), and
the frames a real server sends match the schemas it publishes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.harness import make_settings, raw_connect, recv_until, serve
from tests.integration.test_ws import is_event, send
from tests.services import require
from tether.protocol.errors import CloseCode, ErrorCode
from tether.protocol.events import EventKind
from tether.protocol.frames import CLIENT_TYPES

SPECS = Path(__file__).resolve().parents[1] / "asyncapi/node_modules/@asyncapi/specs/schemas"


@pytest.fixture(scope="module")
def official_schema() -> dict[str, Any]:
    path = SPECS / "3.0.0.json"
    require(path.exists(), f"the official AsyncAPI schema ({path}; `make asyncapi-deps`)")
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in refs(item)]
    return []


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def payload_validator(doc: dict[str, Any], message: str) -> jsonschema.Validator:
    payload = doc["channels"]["session"]["messages"][message]["payload"]
    return jsonschema.Draft202012Validator({**payload, "components": doc["components"]})


async def test_asyncapi_document_is_valid_and_complete(
    sqlite_url: str, official_schema: dict[str, Any]
) -> None:
    async with (
        serve(make_settings(sqlite_url)) as server,
        httpx.AsyncClient(base_url=server.http, timeout=10) as http,
    ):
        response = await http.get("/asyncapi.json")
    assert response.status_code == 200
    doc = response.json()
    errors = list(jsonschema.Draft7Validator(official_schema).iter_errors(doc))
    assert errors == [], [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors]
    assert doc["asyncapi"] == "3.0.0"
    assert doc["servers"]["tether"]["host"] == f"127.0.0.1:{server.port}"
    for ref in refs(doc):
        assert resolve(doc, ref) is not None, ref
    messages = doc["channels"]["session"]["messages"]
    assert {m.removeprefix("client.") for m in messages if m.startswith("client.")} == set(
        CLIENT_TYPES
    )
    assert {m.removeprefix("event.") for m in messages if m.startswith("event.")} == {
        str(k) for k in EventKind
    }
    error_schema = doc["components"]["schemas"]["ErrorCode"]
    assert set(error_schema["enum"]) == {str(c) for c in ErrorCode}
    assert set(doc["x-close-codes"]) == {str(int(c)) for c in CloseCode}


def test_the_validation_is_real(official_schema: dict[str, Any]) -> None:
    from tether.protocol.asyncapi import build_asyncapi

    broken = build_asyncapi()
    broken["operations"]["receive_ping"]["action"] = "listen"
    assert list(jsonschema.Draft7Validator(official_schema).iter_errors(broken)) != []


async def test_frames_on_the_wire_match_the_published_schemas(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url)) as server:
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            doc = (await http.get("/asyncapi.json")).json()
        ws, (welcome, snapshot) = await raw_connect(server)
        await send(ws, {"type": "message", "id": "m1", "content": "/stream 3"})
        frames = [welcome, snapshot, *await recv_until(ws, is_event("run.completed"))]
        await send(ws, {"type": "teleport"})
        await send(ws, {"type": "ping", "t": 7})
        frames += await recv_until(ws, lambda f: f["type"] == "pong")
        await ws.close()
    kinds = set()
    for frame in frames:
        name = f"event.{frame['event']}" if frame["type"] == "event" else f"server.{frame['type']}"
        errors = list(payload_validator(doc, name).iter_errors(frame))
        assert errors == [], (name, [e.message for e in errors])
        kinds.add(name)
    control = {"server.welcome", "server.snapshot", "server.ack", "server.error", "server.pong"}
    assert control <= kinds
    assert "event.text.delta" in kinds
    wrong = {**welcome, "head_seq": "one"}
    assert list(payload_validator(doc, "server.welcome").iter_errors(wrong)) != []
