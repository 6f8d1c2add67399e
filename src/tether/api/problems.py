"""RFC 9457 problem details: every REST error, translated once, here."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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
    401: "unauthenticated",
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
