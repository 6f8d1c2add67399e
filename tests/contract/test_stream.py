"""The per-connection event stream over a real store: a gap before a live event is filled
from the log, and a log that cannot fill it closes the connection instead of leaving a
hole on the wire (guarantees 2 and 3)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.contract.test_store import append, create
from tether.core.hub import Outbox
from tether.core.stream import Closing, EventStream
from tether.metrics import Metrics
from tether.store import Store
from tether.store.sql import tables


async def stream_at(store: Store, session_id: str, sent: list[dict[str, object]]) -> EventStream:
    async def send(text: str) -> None:
        sent.append(json.loads(text))

    session = await store.get_session(session_id)
    assert session is not None
    stream = EventStream(store, session, Outbox(8), send, Metrics(), batch_events=10)
    stream.last_seq = 1
    return stream


async def test_a_gap_before_a_live_event_is_filled_from_the_log(store: Store) -> None:
    session = await create(store)
    await append(store, session.id, "a", "b")
    events = await store.read_events(session.id, after_seq=0, limit=10)
    sent: list[dict[str, object]] = []
    stream = await stream_at(store, session.id, sent)
    await stream.deliver(events[2])
    assert [f["seq"] for f in sent] == [2, 3]
    assert stream.last_seq == 3


async def test_a_log_that_cannot_fill_the_gap_closes_instead(store_url: str, store: Store) -> None:
    session = await create(store)
    await append(store, session.id, "a", "b")
    events = await store.read_events(session.id, after_seq=0, limit=10)
    engine = create_async_engine(store_url)
    async with engine.begin() as conn:  # the log lost seq 2 (an operator's mistake)
        await conn.execute(
            sa.delete(tables.events).where(
                tables.events.c.session_id == session.id, tables.events.c.seq == 2
            )
        )
    await engine.dispose()
    sent: list[dict[str, object]] = []
    stream = await stream_at(store, session.id, sent)
    with pytest.raises(Closing) as closing:
        await stream.deliver(events[2])
    assert closing.value.code == 1011
    assert sent == [], "seq 3 is never sent after seq 1"
