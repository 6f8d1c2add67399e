"""REST under ``/v1`` (DESIGN §4): sessions, their logs and runs; the caller owns all of it.

Errors are RFC 9457 problem documents (``api/problems.py``). Another user's session is
indistinguishable from a missing one (404).
"""

from __future__ import annotations

import base64
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from tether.api.auth import Authenticator, bearer
from tether.api.problems import problem
from tether.core.engine import Engine
from tether.core.hub import CloseRequest
from tether.core.sessions import Forbidden
from tether.core.stream import event_frame
from tether.protocol.errors import CloseCode
from tether.protocol.frames import CommandId, EventFrame, JsonObject, Policy, SnapshotFrame
from tether.store.contract import NotFound, SessionRecord

router = APIRouter(prefix="/v1", tags=["sessions"])


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def current_user(request: Request, authorization: Annotated[str | None, Header()] = None) -> str:
    auth: Authenticator = request.app.state.auth
    user = auth.user_for(bearer(authorization))
    if user is None:
        raise problem(
            401,
            "not authenticated",
            "send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


EngineDep = Annotated[Engine, Depends(get_engine)]
UserDep = Annotated[str, Depends(current_user)]


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = None
    agent: str | None = Field(default=None, min_length=1, max_length=64)
    metadata: JsonObject | None = None
    policy: Policy | None = None


class SessionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, min_length=1)
    metadata: JsonObject | None = None
    policy: Policy | None = None


class SessionOut(BaseModel):
    id: str
    title: str
    agent: str
    metadata: JsonObject
    policy: Policy
    owner: str
    version: int
    epoch: str
    head_seq: int
    status: str
    created_at: str
    updated_at: str
    pending_interrupts: int = Field(
        0, description="interrupts waiting for an answer (the page's badge)"
    )


class SessionPage(BaseModel):
    items: list[SessionOut]
    next_cursor: str | None


class EventPage(BaseModel):
    session_id: str
    epoch: str
    head_seq: int
    events: list[EventFrame]
    next_after: int


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: CommandId
    content: str = Field(min_length=1)
    policy: Policy | None = None


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: CommandId


class AckOut(BaseModel):
    id: str
    duplicate: bool
    result: JsonObject | None = None


class RunOut(BaseModel):
    run_id: str
    message_id: str
    status: str
    attempt: int
    error: JsonObject | None = None
    usage: dict[str, int] | None = None
    created_at: str
    updated_at: str


def _out(
    session: SessionRecord, response: Response | None = None, pending_interrupts: int = 0
) -> SessionOut:
    if response is not None:
        response.headers["ETag"] = f'"{session.version}"'
    return SessionOut.model_validate(
        {**session.to_json(), "pending_interrupts": pending_interrupts}
    )


async def _out_counted(
    engine: Engine, session: SessionRecord, response: Response | None = None
) -> SessionOut:
    counts = await engine.store.pending_interrupt_counts([session.id])
    return _out(session, response, counts.get(session.id, 0))


async def _owned(engine: Engine, user: str, session_id: str) -> SessionRecord:
    try:
        return await engine.sessions.owned(user, session_id)
    except (NotFound, Forbidden):
        raise problem(404, "not found", f"no session {session_id}") from None


def _cursor(session_id: str | None) -> str | None:
    return base64.urlsafe_b64encode(session_id.encode()).decode() if session_id else None


def _uncursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    try:
        return base64.b64decode(cursor.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise problem(422, "invalid cursor", "pass next_cursor from a previous page") from None


@router.post("/sessions", status_code=status.HTTP_201_CREATED)
async def create_session(
    body: SessionCreate, engine: EngineDep, user: UserDep, response: Response
) -> SessionOut:
    session = await engine.sessions.create(
        user, title=body.title, agent=body.agent, metadata=body.metadata, policy=body.policy
    )
    response.headers["Location"] = f"/v1/sessions/{session.id}"
    return _out(session, response)


@router.get("/sessions")
async def list_sessions(
    engine: EngineDep,
    user: UserDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> SessionPage:
    rows = await engine.store.list_sessions(user, limit + 1, _uncursor(cursor))
    page = rows[:limit]
    more = len(rows) > limit
    counts = await engine.store.pending_interrupt_counts([s.id for s in page])
    return SessionPage(
        items=[_out(s, None, counts.get(s.id, 0)) for s in page],
        next_cursor=_cursor(page[-1].id) if more else None,
    )


@router.get("/sessions/{session_id}")
async def get_session(
    session_id: str, engine: EngineDep, user: UserDep, response: Response
) -> SessionOut:
    return await _out_counted(engine, await _owned(engine, user, session_id), response)


@router.patch("/sessions/{session_id}")
async def patch_session(
    session_id: str,
    body: SessionPatch,
    engine: EngineDep,
    user: UserDep,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> SessionOut:
    expected = _version(if_match)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if not changes:
        raise problem(422, "nothing to change", "send title, metadata or policy")
    await _owned(engine, user, session_id)
    updated = await engine.sessions.update(user, session_id, expected, changes)
    return await _out_counted(engine, updated, response)


def _version(if_match: str | None) -> int | None:
    if if_match is None:
        return None
    try:
        return int(if_match.strip().removeprefix("W/").strip('"'))
    except ValueError:
        raise problem(422, "invalid If-Match", "If-Match takes the session's version") from None


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_session(session_id: str, engine: EngineDep, user: UserDep) -> Response:
    await _owned(engine, user, session_id)
    gone = CloseRequest(CloseCode.NOT_FOUND, "session deleted")
    try:
        await engine.sessions.delete(user, session_id, gone)
    except (NotFound, Forbidden):
        raise problem(404, "not found", f"no session {session_id}") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sessions/{session_id}/events")
async def list_events(
    session_id: str,
    engine: EngineDep,
    user: UserDep,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> EventPage:
    session = await _owned(engine, user, session_id)
    events = await engine.store.read_events(session_id, after, limit)
    next_after = events[-1].seq if events else after
    return EventPage(
        session_id=session_id,
        epoch=session.epoch,
        head_seq=session.head_seq,
        events=[event_frame(e) for e in events],
        next_after=next_after,
    )


@router.get("/sessions/{session_id}/snapshot")
async def get_snapshot(session_id: str, engine: EngineDep, user: UserDep) -> SnapshotFrame:
    await _owned(engine, user, session_id)
    return await engine.sessions.snapshot(session_id)


@router.post("/sessions/{session_id}/messages", status_code=status.HTTP_202_ACCEPTED)
async def post_message(
    session_id: str, body: MessageIn, engine: EngineDep, user: UserDep
) -> AckOut:
    await _owned(engine, user, session_id)
    result = await engine.sessions.message(user, session_id, body.id, body.content, body.policy)
    return AckOut(id=body.id, duplicate=result.duplicate, result=result.result)


@router.get("/sessions/{session_id}/runs")
async def list_runs(
    session_id: str,
    engine: EngineDep,
    user: UserDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[RunOut]:
    await _owned(engine, user, session_id)
    runs = await engine.store.list_runs(session_id, limit)
    return [RunOut.model_validate(run.to_json()) for run in runs]


@router.post("/sessions/{session_id}/runs/{run_id}/cancel")
async def cancel_run(
    session_id: str, run_id: str, body: CommandIn, engine: EngineDep, user: UserDep
) -> AckOut:
    await _owned(engine, user, session_id)
    result = await engine.sessions.cancel(user, session_id, body.id, run_id)
    return AckOut(id=body.id, duplicate=result.duplicate, result=result.result)


class RespondIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: CommandId
    approved: bool | None = None
    answer: str | None = None
    note: str | None = Field(default=None, max_length=10_000)


class InterruptOut(BaseModel):
    interrupt_id: str
    run_id: str
    kind: str
    call_id: str | None = None
    tool: str | None = None
    args: JsonObject | None = None
    prompt: str
    choices: list[str] | None = None
    expires_at: str | None = None
    on_timeout: str
    status: str
    answer: str | None = None
    note: str | None = None
    by: str | None = None
    reason: str
    created_at: str
    answered_at: str | None = None
    details: JsonObject | None = None  # file edits: {"path", "diff"}


InterruptStatus = Literal["pending", "approved", "denied", "answered", "expired", "cancelled"]


@router.get("/sessions/{session_id}/interrupts")
async def list_interrupts(
    session_id: str,
    engine: EngineDep,
    user: UserDep,
    status: InterruptStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[InterruptOut]:
    await _owned(engine, user, session_id)
    records = await engine.store.list_interrupts(session_id, status, limit)
    return [InterruptOut.model_validate(rec.to_json()) for rec in records]


@router.post("/sessions/{session_id}/interrupts/{interrupt_id}")
async def respond(
    session_id: str, interrupt_id: str, body: RespondIn, engine: EngineDep, user: UserDep
) -> AckOut:
    await _owned(engine, user, session_id)
    result = await engine.sessions.respond(
        user, session_id, body.id, interrupt_id, body.approved, body.answer, body.note
    )
    return AckOut(id=body.id, duplicate=result.duplicate, result=result.result)


@router.post("/sessions/{session_id}/runs/{run_id}/retry")
async def retry_run(
    session_id: str, run_id: str, body: CommandIn, engine: EngineDep, user: UserDep
) -> AckOut:
    await _owned(engine, user, session_id)
    result = await engine.sessions.retry(user, session_id, body.id, run_id)
    return AckOut(id=body.id, duplicate=result.duplicate, result=result.result)
