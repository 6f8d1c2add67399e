"""Auth and isolation against a real server in JWT mode: another user is refused on every
route and on the socket, by id and by guessing; bad tokens are refused (4401 / 401); a
foreign Origin is refused before anything is read; tokens never reach the log."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
import structlog
import websockets
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.harness import Running, close_code, make_settings, raw_connect, recv_until, serve
from tests.integration.test_ws import is_event, send

SECRET = "a-test-secret-of-at-least-32-bytes!!"
AUDIENCE, ISSUER = "tether-tests", "https://idp.test"
GUESS = "s" + "0" * 32


def token(sub: str, key: Any = SECRET, algorithm: str = "HS256", **extra: Any) -> str:
    now = int(time.time())
    claims = {"sub": sub, "aud": AUDIENCE, "iss": ISSUER, "iat": now, "nbf": now, "exp": now + 300}
    return jwt.encode(claims | extra, key, algorithm=algorithm)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    settings = make_settings(
        url,
        auth="jwt",
        jwt_secret=SECRET,
        jwt_audience=AUDIENCE,
        jwt_issuer=ISSUER,
        jwt_leeway_s=5,
    )
    async with serve(settings) as running:
        yield running


@pytest.fixture
async def http(server: Running) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.http, timeout=10) as client:
        yield client


async def alice_session_with_a_pending_interrupt(server: Running) -> tuple[str, str, str]:
    """Alice's session with one completed run and one run waiting on an approval."""
    ws, (welcome, _) = await raw_connect(server, {"type": "hello", "token": token("alice")})
    await send(ws, {"type": "message", "id": "m1", "content": "/stream 2"})
    done = await recv_until(ws, is_event("run.completed"))
    await send(ws, {"type": "message", "id": "m2", "content": "/approve secret-note"})
    asked = await recv_until(ws, is_event("interrupt.requested"))
    await ws.close()
    return welcome["session_id"], done[-1]["run_id"], asked[-1]["data"]["interrupt_id"]


def routes(sid: str, rid: str, iid: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"/v1/sessions/{sid}", None),
        ("PATCH", f"/v1/sessions/{sid}", {"title": "x"}),
        ("DELETE", f"/v1/sessions/{sid}", None),
        ("GET", f"/v1/sessions/{sid}/events", None),
        ("GET", f"/v1/sessions/{sid}/snapshot", None),
        ("GET", f"/v1/sessions/{sid}/runs", None),
        ("POST", f"/v1/sessions/{sid}/messages", {"id": "m", "content": "hi"}),
        ("POST", f"/v1/sessions/{sid}/runs/{rid}/cancel", {"id": "c"}),
        ("POST", f"/v1/sessions/{sid}/runs/{rid}/retry", {"id": "r"}),
        ("GET", f"/v1/sessions/{sid}/interrupts", None),
        ("POST", f"/v1/sessions/{sid}/interrupts/{iid}", {"id": "a", "approved": True}),
    ]


async def test_another_user_is_refused_on_every_route_and_the_socket(
    server: Running, http: httpx.AsyncClient
) -> None:
    sid, rid, iid = await alice_session_with_a_pending_interrupt(server)
    bob = bearer(token("bob"))
    for method, path, body in routes(sid, rid, iid):
        as_bob = await http.request(method, path, json=body, headers=bob)
        guessed = await http.request(method, path.replace(sid, GUESS), json=body, headers=bob)
        assert (as_bob.status_code, guessed.status_code) == (404, 404), (method, path)
        assert as_bob.headers["content-type"] == "application/problem+json"
        assert as_bob.json()["detail"].replace(sid, "ID") == guessed.json()["detail"].replace(
            GUESS, "ID"
        ), "the same answer whether or not the session exists"
        assert "secret-note" not in as_bob.text
    for session_id, code in ((sid, 4403), (GUESS, 4404)):
        hello = {"type": "hello", "token": token("bob"), "session_id": session_id}
        ws, frames = await raw_connect(server, hello)
        assert frames == [] and await close_code(ws) == code
    alice = bearer(token("alice"))
    still = (await http.get(f"/v1/sessions/{sid}", headers=alice)).json()
    assert (still["version"], still["status"]) == (1, "waiting"), "nothing changed"
    pending = (await http.get(f"/v1/sessions/{sid}/interrupts", headers=alice)).json()
    assert [i["status"] for i in pending] == ["pending"]
    listed = (await http.get("/v1/sessions", headers=bob)).json()["items"]
    assert sid not in {item["id"] for item in listed}


def bad_tokens() -> dict[str, str]:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header, _, signature = token("alice").split(".")
    forged = token("mallory").split(".")[1]
    return {
        "forged": f"{header}.{forged}.{signature}",
        "expired": token("alice", exp=int(time.time()) - 600),
        "not-yet-valid": token("alice", nbf=int(time.time()) + 600),
        "wrong-audience": token("alice", aud="someone-else"),
        "wrong-issuer": token("alice", iss="https://evil.test"),
        "wrong-key": token("alice", key="another-secret-of-at-least-32-bytes"),
        "wrong-algorithm-key": token("alice", key=other_key, algorithm="RS256"),
        "unsigned": jwt.encode({"sub": "alice"}, None, algorithm="none"),
        "garbage": "not.a.jwt",
    }


async def test_bad_tokens_are_refused(server: Running, http: httpx.AsyncClient) -> None:
    good = token("alice")
    assert (await http.get("/v1/sessions", headers=bearer(good))).status_code == 200
    for name, bad in bad_tokens().items():
        response = await http.get("/v1/sessions", headers=bearer(bad))
        assert response.status_code == 401, name
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["code"] == "unauthenticated"
        ws, frames = await raw_connect(server, {"type": "hello", "token": bad})
        assert frames == [] and await close_code(ws) == 4401, name
        ws, frames = await raw_connect(server, additional_headers=bearer(bad))
        assert frames == [] and await close_code(ws) == 4401, name
    ws, (welcome, _) = await raw_connect(server, additional_headers=bearer(good))
    assert welcome["user"] == "alice"
    await ws.close()


async def test_foreign_origin_is_refused_before_anything_is_read(
    server: Running, http: httpx.AsyncClient
) -> None:
    sid, _, _ = await alice_session_with_a_pending_interrupt(server)
    evil = {"Origin": "https://evil.example", **bearer(token("alice"))}
    refused = await http.get(f"/v1/sessions/{sid}", headers=evil)
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
    assert "secret-note" not in refused.text and '"owner"' not in refused.text
    # Refused at the HTTP upgrade: the socket never opens, so no hello (and no session id)
    # is ever read from it.
    with pytest.raises(websockets.InvalidStatus) as caught:
        await websockets.connect(
            server.ws,
            origin="https://evil.example",  # type: ignore[arg-type]
            additional_headers=bearer(token("alice")),
        )
    assert caught.value.response.status_code == 403
    same = await http.get(f"/v1/sessions/{sid}", headers={**evil, "Origin": server.http})
    assert same.status_code == 200


async def test_tokens_never_reach_the_log(server: Running, http: httpx.AsyncClient) -> None:
    good, bad = token("alice"), bad_tokens()["expired"]
    with structlog.testing.capture_logs() as logs:
        ws, (welcome, _) = await raw_connect(server, {"type": "hello", "token": good})
        await send(ws, {"type": "message", "id": "m1", "content": "/stream 2"})
        await recv_until(ws, is_event("run.completed"))
        await send(ws, {"type": "hello", "token": good})
        await ws.close()
        refused, _ = await raw_connect(server, {"type": "hello", "token": bad})
        await close_code(refused)
        await http.get("/v1/sessions", headers=bearer(good))
        await http.get("/v1/sessions", headers=bearer(bad))
        ws, _ = await raw_connect(server, {"type": "hello", "token": good, "session_id": GUESS})
        await close_code(ws)
    text = json.dumps(logs, default=str)
    assert logs, "the server logged something (attach, run, close)"
    assert welcome["session_id"] in text
    for secret in (good, bad, good.split(".")[2], bad.split(".")[2]):
        assert secret not in text


async def test_dns_rebinding_cannot_reach_an_unauthenticated_server(sqlite_url: str) -> None:
    """A hostile page whose name resolves to 127.0.0.1 sends its own name as Host and as a
    same-origin Origin (or no Origin at all on a same-origin GET)."""
    async with serve(make_settings(sqlite_url)) as server:
        rebound = f"evil.test:{server.port}"
        async with httpx.AsyncClient(base_url=server.http, timeout=10) as http:
            for headers in ({"Host": rebound, "Origin": f"http://{rebound}"}, {"Host": rebound}):
                refused = await http.get("/v1/sessions", headers=headers)
                assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")
            assert (await http.get("/v1/sessions")).status_code == 200
            local = await http.get("/v1/sessions", headers={"Host": f"localhost:{server.port}"})
            assert local.status_code == 200
        with pytest.raises(websockets.InvalidStatus) as caught:
            await websockets.connect(
                server.ws,
                origin=f"http://{rebound}",  # type: ignore[arg-type]
                additional_headers={"Host": rebound},
            )
        assert caught.value.response.status_code == 403
