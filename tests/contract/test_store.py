"""One contract suite, run on every store backend (SQLite and Postgres)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from tests.conftest import Committed
from tether.store import (
    CommandRecord,
    NewEvent,
    NotFound,
    RunRecord,
    SearchContextRecord,
    SessionRecord,
    Store,
    StoreTx,
    StoreUnavailable,
    UsageRecord,
    VersionConflict,
    new_id,
    open_store,
    utcnow,
)


def make_session(owner: str = "alice") -> SessionRecord:
    now = utcnow()
    return SessionRecord(
        id=new_id("s"),
        owner=owner,
        title="t",
        agent="demo",
        metadata={"k": [1, 2]},
        policy="enqueue",
        version=1,
        epoch=secrets.token_hex(8),
        head_seq=0,
        status="idle",
        created_at=now,
        updated_at=now,
    )


async def seed_sessions(store: Store, owner: str, count: int) -> list[SessionRecord]:
    """``count`` sessions of ``owner``, each with two events and a command, 100 per unit."""
    sessions = [make_session(owner) for _ in range(count)]

    async def seed(tx: StoreTx, batch: list[SessionRecord]) -> None:
        for session in batch:
            await tx.insert_session(session)
            await tx.append(session.id, [NewEvent("session.created", {}), NewEvent("x", {})])
            await tx.insert_command(CommandRecord(session.id, "c1", "message", {}))

    for start in range(0, count, 100):
        batch = sessions[start : start + 100]
        await store.write(lambda tx, b=batch: seed(tx, b))  # type: ignore[misc]
    return sessions


async def create(store: Store, owner: str = "alice") -> SessionRecord:
    session = make_session(owner)

    async def op(tx: StoreTx) -> None:
        await tx.insert_session(session)
        await tx.append(session.id, [NewEvent("session.created", {"title": "t"})])

    await store.write(op)
    return session


async def append(store: Store, session_id: str, *kinds: str) -> list[int]:
    async def op(tx: StoreTx) -> list[int]:
        records = await tx.append(session_id, [NewEvent(k, {"k": k}) for k in kinds])
        return [r.seq for r in records]

    return await store.write(op)


async def test_create_then_read_after_write(store: Store) -> None:
    session = await create(store)
    loaded = await store.get_session(session.id)
    assert loaded is not None
    assert (loaded.owner, loaded.metadata, loaded.head_seq) == ("alice", {"k": [1, 2]}, 1)
    assert loaded.created_at.tzinfo is not None
    seqs = await append(store, session.id, "a", "b")
    assert seqs == [2, 3]
    events = await store.read_events(session.id, after_seq=1, limit=10)
    assert [(e.seq, e.kind, e.data) for e in events] == [(2, "a", {"k": "a"}), (3, "b", {"k": "b"})]
    assert all(e.epoch == session.epoch for e in events)


async def test_gapless_seq_under_50_concurrent_appenders(
    store: Store, committed: Committed
) -> None:
    session = await create(store)
    results = await asyncio.gather(*(append(store, session.id, "x", "y") for _ in range(50)))
    assigned = sorted(seq for pair in results for seq in pair)
    assert assigned == list(range(2, 102))
    assert all(pair[1] == pair[0] + 1 for pair in results), "one append's events stay adjacent"
    stored = await store.read_events(session.id, after_seq=0, limit=1000)
    assert [e.seq for e in stored] == list(range(1, 102))
    published = [e.seq for e in committed.events if e.session_id == session.id]
    assert sorted(published) == list(range(1, 102))
    head = await store.get_session(session.id)
    assert head is not None and head.head_seq == 101


async def test_concurrent_appenders_on_two_store_instances(store_url: str, store: Store) -> None:
    """Two writers (as two server processes would have) still produce one gapless log."""

    session = await create(store)
    other = open_store(store_url)
    await other.start(lambda events: None)
    try:
        jobs = [append(s, session.id, "x") for _ in range(25) for s in (store, other)]
        await asyncio.gather(*jobs)
    finally:
        await other.close()
    stored = await store.read_events(session.id, after_seq=0, limit=1000)
    assert [e.seq for e in stored] == list(range(1, 52))


async def test_failed_unit_rolls_back_alone(store: Store, committed: Committed) -> None:
    session = await create(store)

    async def bad(tx: StoreTx) -> None:
        await tx.append(session.id, [NewEvent("doomed", {})])
        raise RuntimeError("boom")

    results = await asyncio.gather(
        store.write(bad), append(store, session.id, "ok"), return_exceptions=True
    )
    assert isinstance(results[0], RuntimeError)
    assert results[1] == [2]
    stored = await store.read_events(session.id, after_seq=0, limit=10)
    assert [e.kind for e in stored] == ["session.created", "ok"]
    assert "doomed" not in {e.kind for e in committed.events}


async def test_a_commit_that_raises_is_never_re_applied(
    store: Store, committed: Committed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A COMMIT may land and still raise (a connection lost on the way back): the batch's
    units fail as unavailable and are not run a second time."""
    session = await create(store)
    writer = store._writer  # type: ignore[attr-defined]
    real_commit = writer._commit

    async def commit_then_fail(batch: Any) -> None:
        await real_commit(batch)
        monkeypatch.setattr(writer, "_commit", real_commit)
        raise ConnectionError("connection lost after COMMIT")

    monkeypatch.setattr(writer, "_commit", commit_then_fail)
    published = len(committed.events)
    results = await asyncio.gather(
        *(append(store, session.id, f"e{i}") for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, StoreUnavailable) for r in results), results
    stored = await store.read_events(session.id, after_seq=0, limit=20)
    kinds = [e.kind for e in stored][1:]
    assert sorted(kinds) == ["e0", "e1", "e2"], "each unit applied exactly once"
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    assert len(committed.events) == published, "an unknown outcome is never published"


async def test_a_write_that_timed_out_before_it_started_is_never_applied(
    store_url: str,
) -> None:
    instance = open_store(store_url, timeout_s=0.3)
    await instance.start(lambda events: None)
    try:
        session = await create(instance)
        holding, release, ran = asyncio.Event(), asyncio.Event(), []

        async def hold(tx: StoreTx) -> None:
            holding.set()
            await release.wait()

        async def late(tx: StoreTx) -> None:
            ran.append(True)
            await tx.append(session.id, [NewEvent("late", {})])

        blocker = asyncio.create_task(instance.write(hold))
        async with asyncio.timeout(5):
            await holding.wait()
        with pytest.raises(StoreUnavailable, match="timed out"):
            await instance.write(late)
        release.set()
        await blocker
        assert ran == []
        stored = await instance.read_events(session.id, after_seq=0, limit=10)
        assert [e.kind for e in stored] == ["session.created"]
    finally:
        await instance.close()


async def test_append_to_missing_session_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await append(store, "nope", "x")


async def test_command_id_dedupe(store: Store) -> None:
    session = await create(store)
    command = CommandRecord(session.id, "cmd-1", "message", {"run_id": "r1"})

    async def record_once(tx: StoreTx) -> tuple[bool, dict[str, object]]:
        existing = await tx.get_command(session.id, "cmd-1")
        if existing is not None:
            return True, existing.result
        await tx.insert_command(command)
        return False, command.result

    outcomes = await asyncio.gather(*(store.write(record_once) for _ in range(10)))
    assert sorted(dup for dup, _ in outcomes) == [False] + [True] * 9
    assert {str(result) for _, result in outcomes} == {str({"run_id": "r1"})}
    stored = await store.get_command(session.id, "cmd-1")
    assert stored is not None and stored.result == {"run_id": "r1"}
    assert await store.get_command(session.id, "cmd-2") is None


async def test_duplicate_command_insert_fails_atomically(store: Store) -> None:
    session = await create(store)
    command = CommandRecord(session.id, "c", "message", {})

    async def insert_with_event(tx: StoreTx) -> None:
        await tx.append(session.id, [NewEvent("cmd", {})])
        await tx.insert_command(command)

    await store.write(insert_with_event)
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        await store.write(insert_with_event)
    stored = await store.read_events(session.id, after_seq=0, limit=10)
    assert [e.kind for e in stored] == ["session.created", "cmd"]


async def test_optimistic_version_on_update(store: Store) -> None:
    session = await create(store)

    async def rename(title: str, version: int) -> SessionRecord:
        async def op(tx: StoreTx) -> SessionRecord:
            return await tx.update_session(session.id, version, title=title)

        return await store.write(op)

    updated = await rename("second", 1)
    assert (updated.title, updated.version) == ("second", 2)
    with pytest.raises(VersionConflict) as stale:
        await rename("stale", 1)
    assert stale.value.current == 2
    outcomes = await asyncio.gather(
        *(rename(f"race-{i}", 2) for i in range(5)), return_exceptions=True
    )
    winners = [o for o in outcomes if isinstance(o, SessionRecord)]
    assert len(winners) == 1 and winners[0].version == 3
    assert sum(isinstance(o, VersionConflict) for o in outcomes) == 4
    with pytest.raises(NotFound):

        async def missing(tx: StoreTx) -> None:
            await tx.update_session("nope", 1, title="x")

        await store.write(missing)


async def test_runs_compare_and_set_and_order(store: Store) -> None:
    session = await create(store)
    runs = [
        RunRecord(new_id("r"), session.id, f"m{i}", f"c{i}", "hi", "queued", queue_seq=10 - i)
        for i in range(3)
    ]

    async def insert(tx: StoreTx) -> None:
        for run in runs:
            await tx.insert_run(run)

    await store.write(insert)
    queued = await store.write(lambda tx: tx.runs_by_status(session.id, frozenset({"queued"})))
    assert [r.message_id for r in queued] == ["m2", "m1", "m0"]

    async def start(tx: StoreTx) -> RunRecord | None:
        return await tx.update_run(runs[0].id, frozenset({"queued"}), status="running")

    first, second = await asyncio.gather(store.write(start), store.write(start))
    assert [first is None, second is None].count(True) == 1
    loaded = await store.get_run(runs[0].id)
    assert loaded is not None and loaded.status == "running"


async def test_extend_lease_only_for_the_running_owner(store: Store) -> None:
    session = await create(store)
    run = RunRecord(new_id("r"), session.id, "m", "c", "hi", "running", lease_owner="srv-a")
    await store.write(lambda tx: tx.insert_run(run))

    def extend(owner: str, checkpoint: str | None = None) -> Any:
        return lambda tx: tx.extend_lease(run.id, owner, 99_000, checkpoint)

    assert await store.write(extend("srv-a", "[1]")) == session.id
    loaded = await store.get_run(run.id)
    assert loaded is not None
    assert (loaded.lease_expires_ms, loaded.checkpoint) == (99_000, "[1]")
    assert await store.write(extend("srv-b")) is None
    assert await store.write(extend("srv-a")) == session.id
    loaded = await store.get_run(run.id)
    assert loaded is not None and loaded.checkpoint == "[1]", "no checkpoint keeps the old one"
    await store.write(lambda tx: tx.update_run(run.id, None, status="completed"))
    assert await store.write(extend("srv-a")) is None


async def test_expired_runs_and_listing(store: Store) -> None:
    owner = f"owner-{secrets.token_hex(4)}"
    session = await create(store, owner=owner)
    run = RunRecord(new_id("r"), session.id, "m", "c", "p", "running", lease_expires_ms=1_000)
    held = RunRecord(new_id("r"), session.id, "m", "c", "p", "running", lease_expires_ms=9_000)
    await store.write(lambda tx: tx.insert_run(run))
    await store.write(lambda tx: tx.insert_run(held))
    expired = {r.id for r in await store.expired_runs(now_ms=2_000, limit=1000)}
    assert run.id in expired and held.id not in expired
    assert run.id not in {r.id for r in await store.expired_runs(now_ms=500, limit=1000)}
    await create(store, owner=f"other-{owner}")
    mine = await store.list_sessions(owner, limit=10)
    assert [s.id for s in mine] == [session.id]


async def test_list_sessions_cursor_pagination(store: Store) -> None:
    owner = f"pager-{secrets.token_hex(4)}"
    ids = [(await create(store, owner=owner)).id for _ in range(5)]
    page1 = await store.list_sessions(owner, limit=2)
    page2 = await store.list_sessions(owner, limit=2, before_id=page1[-1].id)
    page3 = await store.list_sessions(owner, limit=2, before_id=page2[-1].id)
    seen = [s.id for s in page1 + page2 + page3]
    assert seen == sorted(ids, reverse=True)


async def test_delete_removes_everything(store: Store) -> None:
    session = await create(store)
    await append(store, session.id, "a")
    assert await store.write(lambda tx: tx.delete_session(session.id)) is True
    assert await store.get_session(session.id) is None
    assert await store.read_events(session.id, 0, 10) == []
    assert await store.write(lambda tx: tx.delete_session(session.id)) is False


def context(session_id: str, query: str, paths: list[str], at_ms: int) -> SearchContextRecord:
    return SearchContextRecord(
        session_id, f"k-{query}", query, paths, {"results": [{"path": p} for p in paths]}, at_ms
    )


async def put_context(store: Store, record: SearchContextRecord, keep: int) -> None:
    await store.write(lambda tx: tx.put_search_context(record, keep))


async def test_search_context_keeps_the_newest_entries_per_session(store: Store) -> None:
    session = await create(store)
    other = await create(store)
    for index in range(5):
        await put_context(store, context(session.id, f"q{index}", ["w/a.py"], 1_000 + index), 3)
    await put_context(store, context(other.id, "q0", ["w/a.py"], 1), 3)
    recent = await store.list_search_context(session.id, 10)
    assert [r.query for r in recent] == ["q4", "q3", "q2"]
    assert await store.get_search_context(session.id, "k-q1") is None
    found = await store.get_search_context(session.id, "k-q4")
    assert found == context(session.id, "q4", ["w/a.py"], 1_004)
    assert [r.query for r in await store.list_search_context(other.id, 10)] == ["q0"]


async def test_search_context_replaces_the_same_query(store: Store) -> None:
    session = await create(store)
    await put_context(store, context(session.id, "q", ["w/a.py"], 1), 3)
    await put_context(store, context(session.id, "q", ["w/b.py"], 2), 3)
    [only] = await store.list_search_context(session.id, 10)
    assert (only.paths, only.created_ms) == (["w/b.py"], 2)


async def test_invalidating_a_path_forgets_exactly_the_entries_that_include_it(
    store: Store,
) -> None:
    first, second = await create(store), await create(store)
    w = secrets.token_hex(6)  # the database may be shared with other tests' entries
    await put_context(store, context(first.id, "a", [f"{w}/a.py", f"{w}/b.py"], 1), 10)
    await put_context(store, context(first.id, "b", [f"{w}/b.py"], 2), 10)
    await put_context(store, context(second.id, "a", [f"{w}/a.py"], 3), 10)
    await put_context(store, context(second.id, "c", [f"{w}/a.py.bak", f"x/{w}/a.py"], 4), 10)
    removed = await store.write(lambda tx: tx.invalidate_search_context(f"{w}/a.py"))
    assert removed == 2
    assert [r.query for r in await store.list_search_context(first.id, 10)] == ["b"]
    assert [r.query for r in await store.list_search_context(second.id, 10)] == ["c"]


async def test_deleting_a_session_deletes_its_search_context(store: Store) -> None:
    session = await create(store)
    await put_context(store, context(session.id, "q", ["w/a.py"], 1), 3)
    assert await store.write(lambda tx: tx.delete_session(session.id))
    assert await store.list_search_context(session.id, 10) == []


# ---------------------------------------------------------------- usage and quotas


class Refused(Exception):
    pass


def charge(owner: str, day: str, max_runs: int, max_tokens: int = 0) -> Any:
    async def op(tx: StoreTx) -> UsageRecord:
        used = await tx.charge_run(owner, day, max_runs, max_tokens)
        if used is None:
            raise Refused(owner)
        return used

    return op


async def test_run_quota_holds_exactly_under_20_concurrent_charges(
    store_url: str, store: Store
) -> None:
    owner, day = f"q-{new_id()}", "2026-11-21"
    others = [open_store(store_url) for _ in range(3)]
    for other in others:
        await other.start(lambda events: None)
    try:
        stores = [store, *others]
        jobs = [stores[i % 4].write(charge(owner, day, max_runs=7)) for i in range(20)]
        results = await asyncio.gather(*jobs, return_exceptions=True)
    finally:
        for other in others:
            await other.close()
    granted = [r for r in results if isinstance(r, UsageRecord)]
    assert len(granted) == 7
    assert sorted(r.runs for r in granted) == list(range(1, 8))
    assert all(isinstance(r, Refused) for r in results if not isinstance(r, UsageRecord))
    assert (await store.get_usage(owner, day)).runs == 7
    assert (await store.get_usage(owner, "2026-11-22")).runs == 0, "a new day starts at zero"


async def test_token_quota_and_usage_totals(store: Store) -> None:
    owner, day = f"t-{new_id()}", "2026-11-21"
    assert await store.write(charge(owner, day, max_runs=0, max_tokens=100))
    await store.write(lambda tx: tx.add_usage(owner, day, 60, 30, 2))
    assert await store.write(charge(owner, day, max_runs=0, max_tokens=100))
    await store.write(lambda tx: tx.add_usage(owner, day, 5, 5, 1))
    with pytest.raises(Refused):
        await store.write(charge(owner, day, max_runs=0, max_tokens=100))
    used = await store.get_usage(owner, day)
    assert (used.runs, used.input_tokens, used.output_tokens, used.requests) == (2, 65, 35, 3)
    assert used.tokens == 100
    assert (await store.get_usage("nobody", day)) == UsageRecord("nobody", day)


# ---------------------------------------------------------------- expiry


async def test_one_thousand_idle_sessions_expire_with_all_their_rows(store: Store) -> None:
    owner = f"idle-{new_id()}"
    sessions = await seed_sessions(store, owner, 1_000)
    cutoff = utcnow()
    live = await create(store, owner)
    expired: list[str] = []
    while batch_ids := await store.write(lambda tx: tx.delete_idle_sessions(cutoff, 300)):
        expired += [i for i in batch_ids if i.startswith("s")]
    mine = {s.id for s in sessions}
    assert mine <= set(expired)
    assert live.id not in expired, "a session updated after the cutoff stays"
    for session in sessions[:: 97]:
        assert await store.get_session(session.id) is None
        assert await store.read_events(session.id, 0, 10) == []
        assert await store.get_command(session.id, "c1") is None
    assert [s.id for s in await store.list_sessions(owner, 2_000)] == [live.id]


async def test_busy_sessions_do_not_expire(store: Store) -> None:
    session = await create(store)
    await store.write(lambda tx: tx.set_session_status(session.id, "running"))
    assert session.id not in await store.write(
        lambda tx: tx.delete_idle_sessions(utcnow(), 1_000)
    )
    assert await store.get_session(session.id) is not None


async def test_a_snapshot_holds_the_newest_messages_and_says_where_history_resumes(
    store: Store,
) -> None:
    from tether.core.sessions import fold_snapshot
    from tether.store.sql.store import SNAPSHOT_MESSAGES

    session = await create(store)
    total = SNAPSHOT_MESSAGES + 10

    async def chat(tx: StoreTx) -> None:
        await tx.append(
            session.id,
            [
                NewEvent("message.user", {"message_id": f"u{i}", "content": f"m{i}"})
                for i in range(total)
            ],
        )

    await store.write(chat)
    data = await store.read_snapshot(session.id)
    assert data is not None
    frame = fold_snapshot(data)
    assert len(frame.messages) == SNAPSHOT_MESSAGES
    assert frame.messages[-1]["content"] == f"m{total - 1}"
    assert frame.messages[0]["content"] == "m10"
    assert frame.history_before == 12  # seq 1 is session.created; m10 is seq 12
    older = await store.read_events(session.id, after_seq=0, limit=frame.history_before - 1)
    assert [e.data.get("content") for e in older][1:] == [f"m{i}" for i in range(10)]
