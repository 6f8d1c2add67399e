"""``GET /asyncapi.json``: the WebSocket protocol's AsyncAPI 3 document (OpenAPI covers REST)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from tether.protocol.asyncapi import build_asyncapi

router = APIRouter(tags=["docs"])


@router.get("/asyncapi.json")
async def asyncapi(request: Request) -> dict[str, Any]:
    """The protocol v1 document, with this server's host and ``ws``/``wss`` scheme."""
    host = request.headers.get("host") or "127.0.0.1:8000"
    protocol = "wss" if request.url.scheme == "https" else "ws"
    return build_asyncapi(host, protocol)
