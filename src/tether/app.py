"""``create_app(settings)``: the ASGI app. Settings come in; nothing reads the environment."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from tether.agents.registry import AgentRegistry
from tether.api import docs, problems, rest, usage, ws
from tether.api.auth import Authenticator, refusal
from tether.api.bodylimit import BodyLimit
from tether.core.engine import Engine
from tether.settings import Settings

WEB_DIR = Path(__file__).parent / "web"


def create_app(settings: Settings, registry: AgentRegistry | None = None) -> FastAPI:
    engine = Engine(settings, registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()

    app = FastAPI(
        title="tether",
        version="0.1.0",
        lifespan=lifespan,
        description="WebSocket orchestration for human-in-the-loop AI agents",
    )
    app.state.engine = engine
    app.state.auth = Authenticator(settings)
    problems.install(app)
    _guard_origin(app, settings)
    app.add_middleware(BodyLimit, max_bytes=settings.max_frame_bytes)
    app.include_router(rest.router)
    app.include_router(usage.router)
    app.include_router(docs.router)
    app.include_router(ws.router)
    _ops_routes(app, engine)
    _web_routes(app)
    problems.document(app)
    return app


def _guard_origin(app: FastAPI, settings: Settings) -> None:
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_credentials=False,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-Match"],
            expose_headers=["ETag"],
        )

    @app.middleware("http")
    async def refuse_foreign_origin(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        reason = refusal(request.headers.get("origin"), request.headers.get("host"), settings)
        if reason is None:
            return await call_next(request)
        body = {
            "type": "about:blank",
            "title": "forbidden",
            "status": 403,
            "code": "forbidden",
            "detail": reason,
            "instance": request.url.path,
        }
        return JSONResponse(body, status_code=403, media_type=problems.PROBLEM)


class Readiness(BaseModel):
    status: str
    store: str
    bus: str | None = None


def _ops_routes(app: FastAPI, engine: Engine) -> None:
    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "server_id": engine.server_id}

    @app.get(
        "/readyz",
        tags=["ops"],
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "store unreachable"}},
    )
    async def readyz() -> JSONResponse:
        try:
            await engine.store.ping()
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "store": str(exc)}, status_code=503)
        return JSONResponse({"status": "ready", "store": engine.store_kind, "bus": "local"})

    @app.get(
        "/metrics",
        tags=["ops"],
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        return Response(engine.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _web_routes(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})
