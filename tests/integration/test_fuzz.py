"""Property-based fuzzing of the socket (hypothesis): thousands of random and mutated frames
(deep nesting, huge strings, wrong types, unicode edge cases, surrogates, NUL) over a real
server. The server never crashes; every frame gets exactly one documented answer (or a
documented close); the session's log stays gapless; a well-formed message still works."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.harness import Running, make_settings, serve_in_thread
from tether.protocol.errors import CloseCode, ErrorCode
from tether.protocol.events import EventKind
from tether.store.sql.migrate import upgrade

MAX_FRAME_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 2_000
EXAMPLES = 500
READ_TIMEOUT_S = 10
ERROR_CODES = {str(code) for code in ErrorCode}
CLOSE_CODES = {int(code) for code in CloseCode}
EDGE_TEXT = [
    "",
    "\x00",
    "\ud800",
    "\udfff",
    "\ud83d\ude00",
    "\u202e",
    "\ufeff",
    "\u0301",
    "\U0010ffff",
    "\U0001d518\U0001d52b\U0001d526",
    "null",
    "/stream 2",
    "/ask",
    "/approve x",
    "/fail",
    "x" * (MAX_MESSAGE_CHARS + 1),
]

text = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
    st.sampled_from(EDGE_TEXT),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
command_ids = st.one_of(st.text(min_size=1, max_size=8), st.text(min_size=60, max_size=80))
valid_frames = st.one_of(
    st.fixed_dictionaries({"type": st.just("ping")}, optional={"t": scalars}),
    st.fixed_dictionaries(
        {"type": st.just("message"), "id": command_ids, "content": text.filter(bool)},
        optional={"policy": st.sampled_from(["enqueue", "reject", "interrupt", "other"])},
    ),
    st.fixed_dictionaries(
        {"type": st.just("respond"), "id": command_ids, "interrupt_id": text},
        optional={"approved": st.booleans(), "answer": text, "note": text},
    ),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["cancel", "retry"]), "id": command_ids}, optional={"run_id": text}
    ),
    st.fixed_dictionaries({"type": st.just("hello")}, optional={"session_id": text}),
)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    frame: dict[str, Any] = dict(draw(valid_frames))
    how = draw(st.sampled_from(["drop", "retype", "extra", "type", "wrap", "cut", "insert"]))
    keys = sorted(frame)
    if how == "drop":
        frame.pop(draw(st.sampled_from(keys)))
    elif how == "retype":
        frame[draw(st.sampled_from(keys))] = draw(json_values)
    elif how == "extra":
        frame[draw(text)] = draw(json_values)
    elif how == "type":
        frame["type"] = draw(st.one_of(text, json_values))
    elif how == "wrap":
        return json.dumps([frame])
    encoded = json.dumps(frame)
    if how == "cut":
        return encoded[: draw(st.integers(0, max(0, len(encoded) - 1)))]
    if how == "insert":
        at = draw(st.integers(0, len(encoded)))
        return (
            encoded[:at]
            + draw(st.sampled_from(["{", "}", '"', ",", "\\", "\x00", "é"]))
            + encoded[at:]
        )
    return encoded


@st.composite
def nested(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 3_000))
    opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
    return '{"type":"ping","t":' + opener * depth + "1" + closer * depth + "}"


@st.composite
def huge(draw: st.DrawFn) -> str:
    size = draw(
        st.sampled_from([MAX_MESSAGE_CHARS + 1, MAX_FRAME_BYTES // 2, MAX_FRAME_BYTES + 10])
    )
    char = draw(st.sampled_from(["x", "é", "\U0001f600"]))
    return json.dumps({"type": "message", "id": "big", "content": char * size})


# A WebSocket text frame is UTF-8, so raw (not JSON) text cannot hold a lone surrogate;
# JSON text can, as a \\u escape, and the generators above send those.
raw_text = st.text(st.characters(codec="utf-8"), max_size=60)
frames = st.one_of(
    valid_frames.map(json.dumps),
    mutated(),
    json_values.map(json.dumps),
    raw_text,
    nested(),
    huge(),
)


@dataclass
class Fuzzer:
    """One socket on one session; reconnects (with resume) after a documented close."""

    server: Running
    session_id: str = ""
    epoch: str = ""
    last_seq: int = 0
    ws: ClientConnection | None = None
    sent: int = 0
    closes: list[int] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)
    sockets: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def connect(self) -> ClientConnection:
        ws = self.sockets.enter_context(
            connect(self.server.ws, open_timeout=READ_TIMEOUT_S, max_size=None)
        )
        hello: dict[str, Any] = {"type": "hello"}
        if self.session_id:
            hello |= {"session_id": self.session_id,
                      "resume": {"epoch": self.epoch, "seq": self.last_seq}}  # fmt: skip
        ws.send(json.dumps(hello))
        welcome = json.loads(ws.recv(timeout=READ_TIMEOUT_S))
        assert welcome["type"] == "welcome", welcome
        self.session_id, self.epoch = welcome["session_id"], welcome["epoch"]
        assert welcome["recovered"] or not self.last_seq, "a fresh socket resumes exactly"
        self.ws = ws
        return ws

    def read(self, ws: ClientConnection) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(ws.recv(timeout=READ_TIMEOUT_S))
        for event in frame["events"] if frame["type"] == "events" else [frame]:
            if event.get("type") == "event":
                assert event["seq"] == self.last_seq + 1, "gapless, in order, once"
                assert event["event"] in {str(k) for k in EventKind}
                self.last_seq = event["seq"]
        if frame["type"] == "snapshot":
            self.last_seq = frame["as_of_seq"]
        return frame

    def exchange(self, frame: str) -> None:
        """Send ``frame`` and a probe ping: exactly one answer must come before the probe's
        pong, and it must be documented; or the socket closes with a documented code."""
        ws = self.ws or self.connect()
        probe = f"probe-{uuid.uuid4().hex}"
        self.sent += 1
        try:
            ws.send(frame)
            ws.send(json.dumps({"type": "ping", "t": probe}))
            answers = []
            while (reply := self.read(ws))["type"] != "pong" or reply.get("t") != probe:
                if reply["type"] in {"ack", "error", "pong", "welcome"}:
                    answers.append(reply)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else None
            assert code in CLOSE_CODES, (code, frame[:200])
            self.closes.append(code)
            self.ws = None
            return
        assert len(answers) == 1, (frame[:200], answers)
        [answer] = answers
        assert answer["type"] in {"ack", "error", "pong"}, answer
        if answer["type"] == "error":
            assert answer["code"] in ERROR_CODES, answer
        if answer["type"] == "ack":
            self.acked.add(answer["id"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "tether.db"
    url = f"sqlite+aiosqlite:///{path}"
    upgrade(url)
    config = make_settings(
        url,
        max_frame_bytes=MAX_FRAME_BYTES,
        max_message_chars=MAX_MESSAGE_CHARS,
        max_bad_frames=1_000_000,
        frames_per_s=1e6,
        frame_burst=1_000_000,
        messages_per_s=1e6,
        message_burst=1_000_000,
        run_starts_per_s=1e6,
        run_start_burst=1_000_000,
        connects_per_s=1e6,
        connect_burst=1_000_000,
    )
    with serve_in_thread(config) as running:
        yield running


def test_random_and_mutated_frames_get_documented_answers(server: Running) -> None:
    with Fuzzer(server).sockets as sockets:
        fuzz(Fuzzer(server, sockets=sockets))


def fuzz(fuzzer: Fuzzer) -> None:
    server = fuzzer.server

    @given(batch=st.lists(frames, min_size=2, max_size=16))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(batch: list[str]) -> None:
        for frame in batch:
            fuzzer.exchange(frame)

    run()
    assert fuzzer.sent >= 2_000, fuzzer.sent
    assert set(fuzzer.closes) <= {int(CloseCode.TOO_BIG)}, fuzzer.closes
    still_works(fuzzer)
    log_is_intact(server, fuzzer)


def still_works(fuzzer: Fuzzer) -> None:
    """Cancel what the fuzz left open, then a well-formed message runs to completion."""
    ws = fuzzer.ws or fuzzer.connect()
    for i in range(200):
        ws.send(json.dumps({"type": "cancel", "id": f"final-cancel-{i}"}))
        while (reply := fuzzer.read(ws))["type"] not in {"ack", "error"}:
            pass
        if reply["type"] == "error":
            assert reply["code"] == "not_found", reply
            break
    ws.send(json.dumps({"type": "message", "id": "final", "content": "/stream 3"}))
    seen: list[dict[str, Any]] = []
    while not (seen and seen[-1].get("event") == "run.completed"):
        seen.append(fuzzer.read(ws))
    ack = next(f for f in seen if f["type"] == "ack")
    assert (ack["id"], ack["duplicate"]) == ("final", False)
    fuzzer.acked.add("final")
    ws.close()


def log_is_intact(server: Running, fuzzer: Fuzzer) -> None:
    events: list[dict[str, Any]] = []
    with httpx.Client(base_url=server.http, timeout=10) as http:
        after = 0
        while True:
            page = http.get(
                f"/v1/sessions/{fuzzer.session_id}/events", params={"after": after, "limit": 1000}
            ).json()
            events += page["events"]
            if page["next_after"] == after:
                break
            after = page["next_after"]
        head = page["head_seq"]
    assert [e["seq"] for e in events] == list(range(1, head + 1))
    assert fuzzer.last_seq == head, "the socket saw every event exactly once"
    users = [e["data"]["command_id"] for e in events if e["event"] == "message.user"]
    assert len(users) == len(set(users)), "no command ran twice"
    acked_messages = {c for c in fuzzer.acked if c in set(users)}
    assert "final" in acked_messages
    for event in events:
        json.dumps(event, ensure_ascii=False).encode("utf-8")
