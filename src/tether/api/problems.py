"""RFC 9457 problem details: every REST error, translated once, here."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

from tether.core.sessions import Forbidden
from tether.protocol.errors import HTTP_STATUS, ErrorCode, ProtocolError
from tether.store.contract import NotFound, StoreUnavailable, VersionConflict

log = structlog.get_logger(__name__)
PROBLEM = "application/problem+json"
TITLES = {
    400: "bad request",
    401: "not authenticated",
    403: "forbidden",
    404: "not found",
    409: "conflict",
    412: "precondition failed",
    413: "too large",
    422: "invalid",
    429: "too many requests",
    500: "internal error",
    503: "unavailable",
}
CODES = {
    400: ErrorCode.BAD_FRAME,
    401: "unauthenticated",
    403: ErrorCode.FORBIDDEN,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.TOO_LARGE,
    429: ErrorCode.RATE_LIMITED,
    404: ErrorCode.NOT_FOUND,
    412: ErrorCode.CONFLICT,
    422: ErrorCode.INVALID,
    503: "unavailable",
}


class Problem(HTTPException):
    def __init__(
        self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(status, detail, headers)
        self.extra = extra


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Problem:
    return Problem(status, detail, headers, title=title, **extra)


def _respond(
    status: int, detail: str, request: Request, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": TITLES.get(status, "error"),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": str(CODES.get(status, "error")),
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM)


def install(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        extra = exc.extra if isinstance(exc, Problem) else {}
        headers = dict(exc.headers) if exc.headers else None
        return _respond(exc.status_code, str(exc.detail), request, headers, **extra)

    @app.exception_handler(ProtocolError)
    async def _protocol(request: Request, exc: ProtocolError) -> JSONResponse:
        headers = None
        if exc.retry_after_ms is not None:
            headers = {"Retry-After": str(max(1, -(-exc.retry_after_ms // 1000)))}
        return _respond(HTTP_STATUS[exc.code], exc.message, request, headers, code=exc.code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in exc.errors()[:10]
        ]
        return _respond(422, "request failed validation", request, errors=errors)

    @app.exception_handler(NotFound)
    @app.exception_handler(Forbidden)
    async def _missing(request: Request, exc: Exception) -> JSONResponse:
        return _respond(404, "no such resource", request)

    @app.exception_handler(VersionConflict)
    async def _stale(request: Request, exc: VersionConflict) -> JSONResponse:
        return _respond(
            412,
            f"stale If-Match; current version is {exc.current}",
            request,
            headers={"ETag": f'"{exc.current}"'},
        )

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(request: Request, exc: StoreUnavailable) -> JSONResponse:
        return _respond(503, str(exc), request, headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request_failed", path=request.url.path)
        return _respond(500, "internal error", request, code=ErrorCode.INTERNAL)


class ProblemOut(BaseModel):
    """An RFC 9457 problem document; ``code`` is one of the protocol's error codes."""

    model_config = ConfigDict(extra="allow")
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str
    code: str
    errors: list[dict[str, Any]] | None = None


REASONS = {
    400: "Body is not valid JSON",
    401: "Not authenticated (Bearer token missing or invalid)",
    403: "Origin not allowed",
    404: "No such session (or not the caller's)",
    409: "Conflict with the current state (busy, already done)",
    412: "Stale If-Match",
    413: "Body or field too large",
    422: "Request failed validation",
    429: "Rate limited or quota exceeded (see Retry-After)",
    500: "Internal error",
    503: "Store unavailable (see Retry-After)",
}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """The problem statuses an operation can answer, from its path, method and inputs."""
    codes = {403, 500}
    if path.startswith("/v1/"):
        codes |= {401, 429, 503}
    if operation.get("parameters") or operation.get("requestBody"):
        codes.add(422)
    if "{session_id}" in path:
        codes.add(404)
    if operation.get("requestBody"):
        codes.add(400)
    if method in {"post", "patch"}:
        codes |= {409, 413}
    if method == "patch":
        codes.add(412)
    return sorted(codes)


REF = "#/components/schemas/{model}"


def document(app: FastAPI) -> None:
    """Make ``/openapi.json`` say what the API answers: every error is a problem document
    (``application/problem+json``), listed per operation with its status."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = build()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = ProblemOut.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        body = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, methods in spec.get("paths", {}).items():
            for method, operation in methods.items():
                responses = operation.setdefault("responses", {})
                for status in _statuses(path, method, operation):
                    responses[str(status)] = {"description": REASONS[status], "content": body}
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
