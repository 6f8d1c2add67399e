"""REST against a real server: sessions, ownership, optimistic updates, logs, runs, ops."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.harness import Running, make_settings, raw_connect, recv_until, serve
from tests.integration.test_ws import is_event

ALICE = {"Authorization": "Bearer tok-alice-123"}
BOB = {"Authorization": "Bearer tok-bob-4567"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    settings = make_settings(url, auth="token", api_tokens="tok-alice-123=alice,tok-bob-4567=bob")
    async with serve(settings) as running:
        yield running


@pytest.fixture
async def http(server: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
        yield client


async def test_session_lifecycle(http: httpx.AsyncClient) -> None:
    created = await http.post(
        "/v1/sessions", json={"title": "first", "metadata": {"a": 1}}, headers=ALICE
    )
    assert created.status_code == 201
    body = created.json()
    assert (body["title"], body["owner"], body["agent"], body["version"]) == (
        "first",
        "alice",
        "demo",
        1,
    )
    assert (body["head_seq"], body["status"], body["policy"]) == (1, "idle", "enqueue")
    assert created.headers["location"] == f"/v1/sessions/{body['id']}"
    got = await http.get(f"/v1/sessions/{body['id']}", headers=ALICE)
    assert got.json() == body
    assert got.headers["etag"] == '"1"'
    patched = await http.patch(
        f"/v1/sessions/{body['id']}",
        json={"title": "renamed"},
        headers={**ALICE, "If-Match": '"1"'},
    )
    assert patched.status_code == 200
    assert (patched.json()["title"], patched.json()["version"], patched.json()["head_seq"]) == (
        "renamed",
        2,
        2,
    )
    stale = await http.patch(
        f"/v1/sessions/{body['id']}", json={"title": "late"}, headers={**ALICE, "If-Match": "1"}
    )
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.headers["etag"] == '"2"'
    assert stale.json()["status"] == 412
    events = (await http.get(f"/v1/sessions/{body['id']}/events", headers=ALICE)).json()
    assert [(e["seq"], e["event"]) for e in events["events"]] == [
        (1, "session.created"),
        (2, "session.updated"),
    ]
    assert events["events"][1]["data"]["title"] == "renamed"
    deleted = await http.delete(f"/v1/sessions/{body['id']}", headers=ALICE)
    assert deleted.status_code == 204
    assert (await http.get(f"/v1/sessions/{body['id']}", headers=ALICE)).status_code == 404


async def test_another_user_is_refused_everywhere(server: Running, http: httpx.AsyncClient) -> None:
    sid = (await http.post("/v1/sessions", json={}, headers=ALICE)).json()["id"]
    routes = [
        ("GET", f"/v1/sessions/{sid}", None),
        ("PATCH", f"/v1/sessions/{sid}", {"title": "x"}),
        ("DELETE", f"/v1/sessions/{sid}", None),
        ("GET", f"/v1/sessions/{sid}/events", None),
        ("GET", f"/v1/sessions/{sid}/snapshot", None),
        ("GET", f"/v1/sessions/{sid}/runs", None),
        ("POST", f"/v1/sessions/{sid}/messages", {"id": "m", "content": "hi"}),
        ("POST", f"/v1/sessions/{sid}/runs/r1/cancel", {"id": "c"}),
    ]
    for method, path, body in routes:
        as_bob = await http.request(method, path, json=body, headers=BOB)
        guess = await http.request(
            method, path.replace(sid, "s" + "0" * 32), json=body, headers=BOB
        )
        assert as_bob.status_code == 404, (method, path)
        assert guess.status_code == 404
        assert as_bob.json()["detail"].replace(sid, "ID") == guess.json()["detail"].replace(
            "s" + "0" * 32, "ID"
        ), "the same answer whether or not the session exists"
        nobody = await http.request(method, path, json=body)
        assert nobody.status_code == 401
    bobs = (await http.get("/v1/sessions", params={"limit": 200}, headers=BOB)).json()["items"]
    assert sid not in {item["id"] for item in bobs}
    assert all(item["owner"] == "bob" for item in bobs)
    ws, _ = await raw_connect(server, {"type": "hello", "token": "tok-bob-4567", "session_id": sid})
    assert ws.close_code is None or ws.close_code == 4403
    still = await http.get(f"/v1/sessions/{sid}", headers=ALICE)
    assert (still.status_code, still.json()["version"]) == (200, 1)


async def test_cursor_pagination(http: httpx.AsyncClient) -> None:
    ids = [
        (await http.post("/v1/sessions", json={"title": f"s{i}"}, headers=ALICE)).json()["id"]
        for i in range(5)
    ]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await http.get("/v1/sessions", params=params, headers=ALICE)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [i for i in seen if i in ids] == list(reversed(ids))
    bad = await http.get("/v1/sessions", params={"cursor": "%%%"}, headers=ALICE)
    assert bad.status_code == 422


async def test_messages_runs_and_log_over_rest(server: Running, http: httpx.AsyncClient) -> None:
    sid = (await http.post("/v1/sessions", json={}, headers=ALICE)).json()["id"]
    ws, _ = await raw_connect(
        server, {"type": "hello", "token": "tok-alice-123", "session_id": sid}
    )
    sent = await http.post(
        f"/v1/sessions/{sid}/messages", json={"id": "m1", "content": "/stream 5"}, headers=ALICE
    )
    assert sent.status_code == 202
    ack = sent.json()
    assert ack["duplicate"] is False
    await recv_until(ws, is_event("run.completed"))
    again = await http.post(
        f"/v1/sessions/{sid}/messages", json={"id": "m1", "content": "/stream 5"}, headers=ALICE
    )
    assert again.json() == {**ack, "duplicate": True}
    runs = (await http.get(f"/v1/sessions/{sid}/runs", headers=ALICE)).json()
    assert [(r["run_id"], r["status"], r["attempt"]) for r in runs] == [
        (ack["result"]["run_id"], "completed", 1)
    ]
    page1 = (
        await http.get(f"/v1/sessions/{sid}/events", params={"limit": 3}, headers=ALICE)
    ).json()
    page2 = (
        await http.get(
            f"/v1/sessions/{sid}/events",
            params={"after": page1["next_after"], "limit": 500},
            headers=ALICE,
        )
    ).json()
    seqs = [e["seq"] for e in page1["events"] + page2["events"]]
    assert seqs == list(range(1, page2["head_seq"] + 1))
    snapshot = (await http.get(f"/v1/sessions/{sid}/snapshot", headers=ALICE)).json()
    assert snapshot["as_of_seq"] == page2["head_seq"]
    assert [m["content"] for m in snapshot["messages"]] == ["/stream 5", "t1 t2 t3 t4 t5"]
    cancel = await http.post(
        f"/v1/sessions/{sid}/runs/{ack['result']['run_id']}/cancel",
        json={"id": "c1"},
        headers=ALICE,
    )
    assert (cancel.status_code, cancel.json()["code"]) == (409, "conflict")
    invalid = await http.post(
        f"/v1/sessions/{sid}/messages", json={"content": "no id"}, headers=ALICE
    )
    assert (invalid.status_code, invalid.json()["code"]) == (422, "invalid")
    await ws.close()


async def test_bad_input_is_refused_clearly(http: httpx.AsyncClient) -> None:
    unknown = await http.post("/v1/sessions", json={"agent": "nope"}, headers=ALICE)
    assert (unknown.status_code, unknown.json()["code"]) == (422, "invalid")
    huge = await http.post("/v1/sessions", json={"metadata": {"k": "v" * 20_000}}, headers=ALICE)
    assert (huge.status_code, huge.json()["code"]) == (413, "too_large")
    extra = await http.post("/v1/sessions", json={"owner": "mallory"}, headers=ALICE)
    assert extra.status_code == 422
    listed = (await http.get("/v1/sessions", headers=ALICE)).json()["items"]
    assert all(item["owner"] == "alice" for item in listed)


async def test_rest_applies_the_sockets_input_limits(http: httpx.AsyncClient) -> None:
    """The limits a socket frame meets (id length, storable text, nesting) hold for the
    same command over REST: one check, in the layer both share."""
    deep: dict[str, object] = {}
    node = deep
    for _ in range(40):
        node["k"] = {}
        node = node["k"]  # type: ignore[assignment]
    nested = await http.post("/v1/sessions", json={"metadata": deep}, headers=ALICE)
    assert (nested.status_code, nested.json()["code"]) == (422, "invalid")
    sid = (await http.post("/v1/sessions", json={}, headers=ALICE)).json()["id"]
    url = f"/v1/sessions/{sid}/messages"
    for bad_id in ("x" * 65, "nul\x00id"):  # httpx sends the NUL as a \u0000 escape
        refused = await http.post(url, json={"id": bad_id, "content": "hi"}, headers=ALICE)
        assert (refused.status_code, refused.json()["code"]) == (422, "invalid"), bad_id
    long = await http.post(url, json={"id": "m1", "content": "x" * 100_001}, headers=ALICE)
    assert (long.status_code, long.json()["code"]) == (413, "too_large")
    runs = (await http.get(f"/v1/sessions/{sid}/runs", headers=ALICE)).json()
    assert runs == [], "nothing was admitted"


async def test_ops_endpoints(server: Running, http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json()["status"] == "ok"
    ready = await http.get("/readyz")
    assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    await http.post("/v1/sessions", json={}, headers=ALICE)
    metrics = (await http.get("/metrics")).text
    assert "tether_events_appended_total" in metrics
    assert "tether_connections" in metrics
    assert (await http.get("/docs")).status_code == 200
    spec = (await http.get("/openapi.json")).json()
    assert "/v1/sessions/{session_id}/events" in spec["paths"]
    page = await http.get("/")
    assert page.status_code == 200
    assert "/static/app.js" in page.text
    assert (await http.get("/static/app.js")).status_code == 200


async def test_sessions_carry_their_pending_interrupt_count(
    server: Running, http: httpx.AsyncClient
) -> None:
    """The page's badge: `pending_interrupts` counts only this session's unanswered ones."""
    busy = (await http.post("/v1/sessions", json={"title": "busy"}, headers=ALICE)).json()
    calm = (await http.post("/v1/sessions", json={"title": "calm"}, headers=ALICE)).json()
    assert (busy["pending_interrupts"], calm["pending_interrupts"]) == (0, 0)
    ws, _ = await raw_connect(
        server, {"type": "hello", "token": "tok-alice-123", "session_id": busy["id"]}
    )
    await http.post(
        f"/v1/sessions/{busy['id']}/messages",
        json={"id": "m1", "content": "/approve a note"},
        headers=ALICE,
    )
    requested = await recv_until(ws, is_event("interrupt.requested"))
    listed = (await http.get("/v1/sessions", headers=ALICE)).json()["items"]
    ours = {busy["id"]: "busy", calm["id"]: "calm"}  # Postgres is shared by other tests
    counts = {ours[s["id"]]: s["pending_interrupts"] for s in listed if s["id"] in ours}
    assert counts == {"busy": 1, "calm": 0}
    one = (await http.get(f"/v1/sessions/{busy['id']}", headers=ALICE)).json()
    assert one["pending_interrupts"] == 1
    iid = requested[-1]["data"]["interrupt_id"]
    answered = await http.post(
        f"/v1/sessions/{busy['id']}/interrupts/{iid}",
        json={"id": "r1", "approved": False},
        headers=ALICE,
    )
    assert answered.status_code == 200
    await recv_until(ws, is_event("interrupt.resolved"))
    one = (await http.get(f"/v1/sessions/{busy['id']}", headers=ALICE)).json()
    assert one["pending_interrupts"] == 0
    await ws.close()
