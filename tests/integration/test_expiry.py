"""Session expiry against a real server: the reaper removes idle sessions with their rows
and closes their open sockets with 4404; busy and recently used sessions stay."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.contract.test_store import seed_sessions
from tests.harness import close_code, make_settings, raw_connect, recv_until, serve
from tests.integration.test_ws import is_event, send
from tether.core.expiry import SessionReaper
from tether.core.hub import CloseRequest, Hub, Outbox
from tether.store import Store, new_id, utcnow
from tether.store.sql import tables


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_idle_session_expires_and_its_socket_gets_4404(
    store: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if store == "sqlite" else "pg_url")
    settings = make_settings(url, session_ttl_s=1, session_reap_interval_s=0.2)
    async with serve(settings) as server:
        ws, (welcome, _) = await raw_connect(server)
        session_id = welcome["session_id"]
        await send(ws, {"type": "message", "id": "m1", "content": "/stream 3"})
        await recv_until(ws, is_event("run.completed"))
        assert server.engine.hub.sessions() == 1
        assert await close_code(ws, timeout_s=10) == 4404
        assert await server.engine.store.get_session(session_id) is None
        assert await server.engine.store.read_events(session_id, 0, 10) == []
        assert await server.engine.store.list_runs(session_id, 10) == []
        assert server.engine.hub.sessions() == 0, "memory back to its baseline"
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            assert (await http.get(f"/v1/sessions/{session_id}")).status_code == 404
        again, frames = await raw_connect(server, {"type": "hello", "session_id": session_id})
        assert frames == [] and await close_code(again) == 4404


async def test_reaper_spares_recent_sessions_and_is_off_by_default(sqlite_url: str) -> None:
    async with serve(make_settings(sqlite_url, session_ttl_s=3600)) as server:
        ws, (welcome, _) = await raw_connect(server)
        reaper = server.engine.reaper
        assert await reaper.reap_once() == 0
        assert await server.engine.store.get_session(welcome["session_id"]) is not None
        assert await reaper.reap_once(now=utcnow() + timedelta(hours=2)) == 1
        assert await close_code(ws) == 4404
    async with serve(make_settings(sqlite_url)) as server:
        assert not server.engine.reaper.running, "TETHER_SESSION_TTL_S=0 keeps sessions"


async def test_reaper_expires_one_thousand_idle_sessions_and_their_rows(store: Store) -> None:
    owner = f"reap-{new_id()}"
    sessions = await seed_sessions(store, owner, 1_000)
    hub = Hub(max_per_session=4, max_total=100)
    outbox = Outbox(8)
    hub.subscribe(sessions[0].id, outbox)
    reaper = SessionReaper(store, hub, ttl_s=60, interval_s=1)
    assert await reaper.reap_once() == 0, "not idle for a minute yet"
    assert await reaper.reap_once(now=utcnow() + timedelta(minutes=2)) >= 1_000
    assert await store.list_sessions(owner, 2_000) == []
    ids = [s.id for s in sessions]
    engine = create_async_engine(store.url)  # type: ignore[attr-defined]
    try:
        async with engine.connect() as conn:
            for table in (tables.sessions, tables.events, tables.commands):
                column = table.c.id if table is tables.sessions else table.c.session_id
                count = await conn.scalar(sa.select(sa.func.count()).where(column.in_(ids)))
                assert count == 0, table.name
    finally:
        await engine.dispose()
    assert await outbox.get() == CloseRequest(4404, "session expired")
