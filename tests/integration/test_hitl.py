"""Durable human-in-the-loop against a real server, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.harness import Running, make_settings, serve
from tether.client import CommandError, TetherClient
from tether.protocol.frames import EventFrame


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    value: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return value


@pytest.fixture
async def server(url: str) -> AsyncIterator[Running]:
    async with serve(make_settings(url, interrupt_sweep_interval_s=0.1)) as running:
        yield running


@pytest.fixture
async def http(server: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
        yield client


async def ask_for(client: TetherClient, content: str) -> tuple[str, EventFrame]:
    """Send ``content``; return its run id and the ``interrupt.requested`` it leads to."""
    ack = await client.send_message(content)
    run_id = ack.result["run_id"] if ack.result else ""
    requested = await client.wait_for_event("interrupt.requested", run_id=run_id, timeout_s=15)
    return run_id, requested


def kinds(client: TetherClient, run_id: str) -> list[str]:
    return [e.event for e in client.state.events if e.run_id == run_id]


def final_text(client: TetherClient, run_id: str) -> str:
    messages = [
        e for e in client.state.events if e.event == "message.assistant" and e.run_id == run_id
    ]
    return str(messages[-1].data["content"])


async def notes(http: httpx.AsyncClient, session_id: str) -> list[str]:
    session = (await http.get(f"/v1/sessions/{session_id}")).json()
    found: list[str] = session["metadata"].get("notes", [])
    return found


async def test_approve_over_the_socket_runs_the_tool_once(
    server: Running, http: httpx.AsyncClient
) -> None:
    async with TetherClient(server.ws) as client:
        run_id, requested = await ask_for(client, "/approve buy milk")
        data = requested.data
        assert (data["kind"], data["tool"], data["args"]) == (
            "approval",
            "demo_note",
            {"text": "buy milk"},
        )
        assert data["on_timeout"] == "deny"
        session_id = client.session_id or ""
        pending = (
            await http.get(f"/v1/sessions/{session_id}/interrupts", params={"status": "pending"})
        ).json()
        assert [p["interrupt_id"] for p in pending] == [data["interrupt_id"]]
        assert (await http.get(f"/v1/sessions/{session_id}")).json()["status"] == "waiting"
        ack = await client.respond(data["interrupt_id"], approved=True, note="go ahead")
        assert ack.result == {
            "interrupt_id": data["interrupt_id"],
            "outcome": "approved",
            "run_id": run_id,
        }
        await client.wait_for_event("run.completed", run_id=run_id, timeout_s=15)
        run_events = kinds(client, run_id)
        after = run_events[run_events.index("interrupt.resolved") :]
        assert after[:5] == [
            "interrupt.resolved",
            "run.started",
            "tool.started",
            "session.updated",
            "tool.finished",
        ]
        assert after[-2:] == ["message.assistant", "run.completed"]
        assert run_events.count("tool.started") == 1
        resolved = next(e for e in client.state.events if e.event == "interrupt.resolved")
        assert (resolved.data["outcome"], resolved.data["note"], resolved.data["by"]) == (
            "approved",
            "go ahead",
            "local",
        )
        assert "added the note 'buy milk'" in final_text(client, run_id)
    assert await notes(http, session_id) == ["buy milk"]
    assert (
        await http.get(f"/v1/sessions/{session_id}/interrupts", params={"status": "pending"})
    ).json() == []


async def test_deny_over_rest_gives_the_agent_a_denial(
    server: Running, http: httpx.AsyncClient
) -> None:
    async with TetherClient(server.ws) as client:
        run_id, requested = await ask_for(client, "/approve delete everything")
        session_id = client.session_id or ""
        iid = requested.data["interrupt_id"]
        reply = await http.post(
            f"/v1/sessions/{session_id}/interrupts/{iid}",
            json={"id": "r1", "approved": False, "note": "too risky"},
        )
        assert reply.status_code == 200
        assert reply.json()["result"]["outcome"] == "denied"
        await client.wait_for_event("run.completed", run_id=run_id, timeout_s=15)
        assert "did not run demo_note: too risky" in final_text(client, run_id)
        assert "tool.started" not in kinds(client, run_id)
    assert await notes(http, session_id) == []


async def test_questions_with_choices_and_free_text(server: Running) -> None:
    async with TetherClient(server.ws) as client:
        run_id, requested = await ask_for(client, "/ask")
        iid = requested.data["interrupt_id"]
        assert requested.data["choices"] == ["red", "green", "blue"]
        assert requested.data["on_timeout"] == "fail"
        for bad in ({"answer": "purple"}, {"approved": True}, {}, {"answer": "  "}):
            with pytest.raises(CommandError) as caught:
                await client.respond(iid, **bad)
            assert caught.value.code == "invalid"
        await client.respond(iid, answer="blue")
        await client.wait_for_event("run.completed", run_id=run_id, timeout_s=15)
        assert final_text(client, run_id) == "You answered: blue"
        run_id, requested = await ask_for(client, "/ask free")
        assert requested.data.get("choices") is None
        await client.respond(requested.data["interrupt_id"], answer="Grocery planning")
        await client.wait_for_event("run.completed", run_id=run_id, timeout_s=15)
        assert final_text(client, run_id) == "You answered: Grocery planning"


async def test_an_approval_takes_approved_not_an_answer(server: Running) -> None:
    async with TetherClient(server.ws) as client:
        _, requested = await ask_for(client, "/approve x")
        iid = requested.data["interrupt_id"]
        for bad in ({"answer": "yes"}, {}):
            with pytest.raises(CommandError) as caught:
                await client.respond(iid, **bad)
            assert caught.value.code == "invalid"
            assert caught.value.details
        with pytest.raises(CommandError) as missing:
            await client.respond("i-nope", approved=True)
        assert missing.value.code == "not_found"


async def test_two_tabs_answer_at_once_exactly_one_wins(
    server: Running, http: httpx.AsyncClient
) -> None:
    async with TetherClient(server.ws) as first:
        run_id, requested = await ask_for(first, "/approve race")
        iid = requested.data["interrupt_id"]
        async with TetherClient(server.ws, session_id=first.session_id) as second:
            outcomes = await asyncio.gather(
                first.respond(iid, approved=True),
                second.respond(iid, approved=False),
                return_exceptions=True,
            )
            wins = [o for o in outcomes if not isinstance(o, BaseException)]
            losses = [o for o in outcomes if isinstance(o, CommandError)]
            assert len(wins) == 1
            assert [loss.code for loss in losses] == ["conflict"]
            for tab in (first, second):
                await tab.wait_for_event("run.completed", run_id=run_id, timeout_s=15)
            resolved = [
                [(e.seq, e.data) for e in tab.state.events if e.event == "interrupt.resolved"]
                for tab in (first, second)
            ]
            assert resolved[0] == resolved[1]
            assert len(resolved[0]) == 1
            with pytest.raises(CommandError) as late:
                await first.respond(iid, approved=True, command_id="late-1")
            assert late.value.code == "conflict"


async def test_a_duplicate_respond_id_is_acked_again_without_effect(
    server: Running, http: httpx.AsyncClient
) -> None:
    async with TetherClient(server.ws) as client:
        run_id, requested = await ask_for(client, "/approve once")
        iid = requested.data["interrupt_id"]
        first = await client.respond(iid, approved=True, command_id="answer-1")
        second = await client.respond(iid, approved=True, command_id="answer-1")
        assert (first.duplicate, second.duplicate) == (False, True)
        assert first.result == second.result
        await client.wait_for_event("run.completed", run_id=run_id, timeout_s=15)
        with pytest.raises(CommandError) as late:
            await client.respond(iid, approved=False, command_id="answer-2")
        assert late.value.code == "conflict"
        session_id = client.session_id or ""
    assert await notes(http, session_id) == ["once"]


async def test_snapshot_shows_pending_interrupts_to_a_late_joiner(server: Running) -> None:
    async with TetherClient(server.ws) as client:
        _, requested = await ask_for(client, "/ask")
        async with TetherClient(server.ws, session_id=client.session_id) as late:
            snapshot = late.state.snapshot
            assert snapshot is not None
            assert [i["interrupt_id"] for i in snapshot.interrupts] == [
                requested.data["interrupt_id"]
            ]
            assert snapshot.interrupts[0]["choices"] == ["red", "green", "blue"]
            await late.respond(requested.data["interrupt_id"], answer="red")
            await client.wait_for_event("run.completed", timeout_s=15)


async def test_cancel_while_waiting(server: Running, http: httpx.AsyncClient) -> None:
    async with TetherClient(server.ws) as client:
        run_id, requested = await ask_for(client, "/approve never")
        await client.cancel(run_id)
        cancelled = await client.wait_for_event("run.cancelled", run_id=run_id, timeout_s=15)
        assert cancelled.data["by"] == "local"
        resolved = next(e for e in client.state.events if e.event == "interrupt.resolved")
        assert resolved.data["outcome"] == "cancelled"
        session_id = client.session_id or ""
        with pytest.raises(CommandError) as caught:
            await client.respond(requested.data["interrupt_id"], approved=True)
        assert caught.value.code == "conflict"
    listed = (await http.get(f"/v1/sessions/{session_id}/interrupts")).json()
    assert [i["status"] for i in listed] == ["cancelled"]
    assert (await http.get(f"/v1/sessions/{session_id}")).json()["status"] == "idle"


async def test_retry_after_failure_and_refusal_for_completed(
    server: Running, http: httpx.AsyncClient
) -> None:
    async with TetherClient(server.ws) as client:
        ack = await client.send_message("/flaky")
        run_id = ack.result["run_id"] if ack.result else ""
        failed = await client.wait_for_event("run.failed", run_id=run_id, timeout_s=15)
        assert failed.data["retryable"] is True
        retried = await client.retry(run_id)
        assert retried.result == {"run_id": run_id, "attempt": 2}
        started = await client.wait_for_event("run.started", run_id=run_id, timeout_s=15)
        assert started.data["attempt"] == 2
        await client.wait_for_event("run.completed", run_id=run_id, timeout_s=15)
        assert final_text(client, run_id) == "Succeeded on attempt 2."
        with pytest.raises(CommandError) as caught:
            await client.retry(run_id)
        assert caught.value.code == "conflict"
        session_id = client.session_id or ""
    over_rest = await http.post(f"/v1/sessions/{session_id}/runs/{run_id}/retry", json={"id": "x"})
    assert (over_rest.status_code, over_rest.json()["code"]) == (409, "conflict")
    runs = (await http.get(f"/v1/sessions/{session_id}/runs")).json()
    assert [(r["status"], r["attempt"]) for r in runs] == [("completed", 2)]


async def test_question_deadline_fails_the_run(server: Running) -> None:
    async with TetherClient(server.ws) as client:
        run_id, requested = await ask_for(client, "/ask 1")
        assert requested.data["expires_at"]
        failed = await client.wait_for_event("run.failed", run_id=run_id, timeout_s=15)
        assert failed.data["error"]["code"] == "interrupt_expired"
        resolved = [e for e in client.state.events if e.event == "interrupt.resolved"]
        assert [(e.data["outcome"], e.data["by"]) for e in resolved] == [("expired", "timeout")]


async def test_approval_deadline_denies_and_the_run_goes_on(url: str) -> None:
    settings = make_settings(url, approval_timeout_s=0.5, interrupt_sweep_interval_s=0.1)
    async with serve(settings) as server, TetherClient(server.ws) as client:
        run_id, _ = await ask_for(client, "/approve late")
        await client.wait_for_event("run.completed", run_id=run_id, timeout_s=15)
        assert "did not run demo_note: No answer came before the deadline." in final_text(
            client, run_id
        )


async def test_a_deadline_is_applied_once_with_two_sweepers(url: str) -> None:
    """Two instances sweep the same store; the expiry is applied by exactly one. (The bus
    is ``local``, so each instance fans out only its own commits: watch both.)"""
    settings = make_settings(url, interrupt_sweep_interval_s=0.05)
    async with serve(settings) as one, serve(settings) as two:
        async with TetherClient(one.ws) as first:
            run_id, _ = await ask_for(first, "/ask 1")
            session_id = first.session_id or ""
            async with TetherClient(two.ws, session_id=session_id) as second:
                waits = [
                    asyncio.create_task(c.wait_for_event("run.failed", run_id=run_id, timeout_s=15))
                    for c in (first, second)
                ]
                done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                assert next(iter(done)).result().data["error"]["code"] == "interrupt_expired"
        events = await two.engine.store.read_events(session_id, 0, 1000)
        resolved = [e for e in events if e.kind == "interrupt.resolved"]
        failed = [e for e in events if e.kind == "run.failed"]
        assert len(resolved) == 1
        assert len(failed) == 1


async def test_retry_of_a_cancelled_waiting_run_asks_again(
    server: Running, http: httpx.AsyncClient
) -> None:
    async with TetherClient(server.ws) as client:
        run_id, first = await ask_for(client, "/approve second chance")
        await client.cancel(run_id)
        await client.wait_for_event("run.cancelled", run_id=run_id, timeout_s=15)
        await client.retry(run_id)
        again = await client.wait_for(
            lambda e: (
                e.event == "interrupt.requested"
                and e.data["interrupt_id"] != first.data["interrupt_id"]
            ),
            timeout_s=15,
        )
        assert (again.data["tool"], again.data["args"]) == ("demo_note", {"text": "second chance"})
        await client.respond(again.data["interrupt_id"], approved=True)
        await client.wait_for_event("run.completed", run_id=run_id, timeout_s=15)
        session_id = client.session_id or ""
    assert await notes(http, session_id) == ["second chance"]
    runs = (await http.get(f"/v1/sessions/{session_id}/runs")).json()
    assert [(r["status"], r["attempt"]) for r in runs] == [("completed", 2)]


async def test_another_users_interrupts_and_runs_are_out_of_reach(url: str) -> None:
    """Guarantee 7: ids from someone else's session are answered ``not_found``, never acted on."""
    tokens = "tok-alice-123=alice,tok-bob-4567=bob"
    settings = make_settings(url, auth="token", api_tokens=tokens)
    async with (
        serve(settings) as server,
        TetherClient(server.ws, token="tok-alice-123") as alice,
        TetherClient(server.ws, token="tok-bob-4567") as bob,
    ):
        run_id, requested = await ask_for(alice, "/approve alice only")
        iid = requested.data["interrupt_id"]
        attempts = [
            bob.respond(iid, approved=True),
            bob.cancel(run_id),
            bob.retry(run_id),
        ]
        for attempt in attempts:
            with pytest.raises(CommandError) as caught:
                await attempt
            assert caught.value.code == "not_found"
        bob_headers = {"Authorization": "Bearer tok-bob-4567"}
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            own = f"/v1/sessions/{bob.session_id}"
            answer = await http.post(
                f"{own}/interrupts/{iid}",
                json={"id": "x", "approved": True},
                headers=bob_headers,
            )
            cancel = await http.post(
                f"{own}/runs/{run_id}/cancel", json={"id": "y"}, headers=bob_headers
            )
            assert (answer.status_code, cancel.status_code) == (404, 404)
        pending = await server.engine.store.list_interrupts(alice.session_id or "", "pending", 10)
        assert [p.id for p in pending] == [iid]
        await alice.respond(iid, approved=True)
        await alice.wait_for_event("run.completed", run_id=run_id, timeout_s=15)
