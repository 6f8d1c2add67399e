"""The WebSocket protocol as an AsyncAPI 3.0 document, built from the pydantic models the
codec validates with, so the published contract cannot drift from the code.

Operations are from the server's side: it ``receive``s client frames and ``send``s
control frames and logged events. Commands declare their reply (``ack`` or ``error``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from tether.protocol.errors import CLOSE_ACTIONS, CloseCode, ErrorCode
from tether.protocol.events import EVENT_DATA
from tether.protocol.frames import (
    AckFrame,
    CancelFrame,
    ErrorFrame,
    EventFrame,
    EventsFrame,
    HelloFrame,
    MessageFrame,
    PingFrame,
    PongFrame,
    RespondFrame,
    RetryFrame,
    SnapshotFrame,
    WelcomeFrame,
)

VERSION = "3.0.0"
CHANNEL = "session"
REF = "#/components/schemas/{model}"

CLIENT: dict[str, type[BaseModel]] = {
    "hello": HelloFrame,
    "message": MessageFrame,
    "respond": RespondFrame,
    "cancel": CancelFrame,
    "retry": RetryFrame,
    "ping": PingFrame,
}
CONTROL: dict[str, type[BaseModel]] = {
    "welcome": WelcomeFrame,
    "snapshot": SnapshotFrame,
    "ack": AckFrame,
    "error": ErrorFrame,
    "pong": PongFrame,
    "events": EventsFrame,
}
REPLIES: dict[str, list[str]] = {
    "hello": ["welcome"],
    "message": ["ack", "error"],
    "respond": ["ack", "error"],
    "cancel": ["ack", "error"],
    "retry": ["ack", "error"],
    "ping": ["pong"],
}
SUMMARIES = {
    "hello": "First frame: authenticate, then attach to (or create) a session, maybe resuming",
    "message": "A user message: starts a run or follows the busy policy",
    "respond": "Answer an interrupt (approval or question)",
    "cancel": "Cancel the active, named or oldest queued run",
    "retry": "Run a failed, cancelled or interrupted run again",
    "ping": "Application-level round trip",
}


def _schemas() -> dict[str, Any]:
    """Every frame and event-data model, as JSON schemas referencing each other."""
    client: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "validation") for m in CLIENT.values()
    ]
    models: list[type[BaseModel]] = [*CONTROL.values(), EventFrame]
    models += list(dict.fromkeys(EVENT_DATA.values()))
    server: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "serialization") for m in models]
    _, top = models_json_schema([*client, *server], ref_template=REF)
    defs: dict[str, Any] = top.get("$defs", {})
    return defs


def _message(name: str, schema: str, summary: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": name,
        "summary": summary,
        "contentType": "application/json",
        "payload": {"$ref": REF.format(model=schema)},
    }


def _event_message(kind: str, data_schema: str) -> dict[str, Any]:
    return {
        "name": kind,
        "title": f"event {kind}",
        "summary": f"Logged event {kind} (has a gapless seq)",
        "contentType": "application/json",
        "payload": {
            "allOf": [
                {"$ref": REF.format(model="EventFrame")},
                {
                    "type": "object",
                    "properties": {
                        "event": {"const": kind},
                        "data": {"$ref": REF.format(model=data_schema)},
                    },
                },
            ]
        },
    }


def _messages() -> dict[str, Any]:
    messages = {
        f"client.{name}": _message(name, model.__name__, SUMMARIES[name])
        for name, model in CLIENT.items()
    }
    messages |= {
        f"server.{name}": _message(name, model.__name__, f"Control frame {name} (not logged)")
        for name, model in CONTROL.items()
    }
    messages |= {
        f"event.{kind}": _event_message(str(kind), data.__name__)
        for kind, data in EVENT_DATA.items()
    }
    return messages


def _ref_list(names: list[str]) -> list[dict[str, str]]:
    return [{"$ref": f"#/channels/{CHANNEL}/messages/{name}"} for name in names]


def _operation(
    action: Literal["send", "receive"], summary: str, names: list[str]
) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{CHANNEL}"},
        "summary": summary,
        "messages": _ref_list(names),
    }


def _operations(messages: dict[str, Any]) -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for name in CLIENT:
        op = _operation("receive", SUMMARIES[name], [f"client.{name}"])
        op["reply"] = {
            "channel": {"$ref": f"#/channels/{CHANNEL}"},
            "messages": _ref_list([f"server.{r}" for r in REPLIES[name]]),
        }
        operations[f"receive_{name}"] = op
    control = [f"server.{name}" for name in CONTROL]
    events = [name for name in messages if name.startswith("event.")]
    operations["send_control"] = _operation("send", "Control frames (no seq)", control)
    operations["send_events"] = _operation("send", "Logged events, in seq order", events)
    return operations


def _close_codes() -> dict[str, Any]:
    return {
        str(int(code)): {"name": code.name.lower(), "client_action": str(CLOSE_ACTIONS[code])}
        for code in CloseCode
    }


def build_asyncapi(host: str = "127.0.0.1:8000", protocol: str = "ws") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of protocol v1, served at ``GET /asyncapi.json``."""
    messages = _messages()
    return {
        "asyncapi": VERSION,
        "info": {
            "title": "tether WebSocket protocol",
            "version": "1",
            "description": (
                "JSON text frames, one object each, discriminated by `type`. `hello` must "
                "come first. Error codes: " + ", ".join(str(c) for c in ErrorCode) + ". "
                "Close codes and what a client should do: see `x-close-codes`."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"tether": {"host": host, "protocol": protocol}},
        "channels": {
            CHANNEL: {
                "address": "/v1/ws",
                "title": "One client connection, attached to one session",
                "messages": messages,
            }
        },
        "operations": _operations(messages),
        "components": {"schemas": _schemas()},
        "x-close-codes": _close_codes(),
    }
