"""Pure pieces: token bucket arithmetic, demo script, delta coalescing, snapshot folding."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tether.agents.demo import plan
from tether.agents.runner import AssistantMessage, TextDelta
from tether.core.output import coalesce
from tether.core.sessions import fold_snapshot
from tether.limits.bucket import TokenBucket
from tether.settings import Settings
from tether.store.contract import EventRecord, RunRecord, SessionRecord, SnapshotData

ROOT = Path(__file__).resolve().parents[2]


def test_token_bucket_exact_numbers() -> None:
    bucket = TokenBucket.full(capacity=3, refill_per_s=2, now_s=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5)
    assert bucket.take(100.25) == pytest.approx(0.25)
    assert bucket.take(100.5) == 0.0
    assert bucket.take(200.0, cost=3) == 0.0
    assert bucket.take(200.0, cost=4) == float("inf")
    assert bucket.take(99.0) == pytest.approx(0.5), "a clock going backwards refills nothing"


def test_demo_plan() -> None:
    script = plan("/stream 4 25")
    assert "".join(script.tokens) == "t1 t2 t3 t4"
    assert script.delay_s == 0.025
    assert plan("/stream nonsense").tokens[0] == "t1"
    assert plan("/fail disk on fire").fail == "disk on fire"
    assert "hello" in "".join(plan("hello").tokens)


def test_coalesce_merges_consecutive_deltas_of_one_message() -> None:
    events = [
        TextDelta("a", "1"),
        TextDelta("a", "2"),
        TextDelta("b", "3"),
        AssistantMessage("b", "3"),
        TextDelta("a", "4"),
    ]
    assert coalesce(events) == [
        TextDelta("a", "12"),
        TextDelta("b", "3"),
        AssistantMessage("b", "3"),
        TextDelta("a", "4"),
    ]


def _event(seq: int, kind: str, data: dict[str, object], run_id: str = "r1") -> EventRecord:
    return EventRecord("s", seq, "e", datetime.now(UTC), run_id, kind, dict(data))


def test_snapshot_folds_messages_and_partial_stream() -> None:
    now = datetime.now(UTC)
    session = SessionRecord("s", "u", "t", "demo", {}, "enqueue", 1, "e", 9, "running", now, now)
    events = [
        _event(2, "message.user", {"message_id": "u1", "content": "hi", "command_id": "c1"}),
        _event(4, "text.delta", {"message_id": "a1", "delta": "Hel"}),
        _event(5, "text.delta", {"message_id": "a1", "delta": "lo"}),
        _event(6, "message.assistant", {"message_id": "a1", "content": "Hello"}),
        _event(8, "message.user", {"message_id": "u2", "content": "more"}, "r2"),
        _event(9, "text.delta", {"message_id": "a2", "delta": "stre"}, "r2"),
    ]
    runs = [RunRecord("r2", "s", "u2", "c", "more", "running")]
    frame = fold_snapshot(SnapshotData(session, events, runs))
    assert frame.as_of_seq == 9
    assert [(m["role"], m["content"], m.get("partial", False)) for m in frame.messages] == [
        ("user", "hi", False),
        ("assistant", "Hello", False),
        ("user", "more", False),
        ("assistant", "stre", True),
    ]
    assert frame.runs[0]["status"] == "running"
    # The page learns which of its commands are logged, so a re-sent one shows once.
    assert frame.messages[0]["command_id"] == "c1"


def test_snapshot_places_tool_calls_after_the_message_they_followed() -> None:
    now = datetime.now(UTC)
    session = SessionRecord("s", "u", "t", "demo", {}, "enqueue", 1, "e", 7, "idle", now, now)
    call = {"call_id": "c1", "tool": "read_file", "args": {"path": "a.py"}}
    failed = {"call_id": "c2", "tool": "edit_file", "ok": False, "error": "x"}
    events = [
        _event(2, "message.user", {"message_id": "u1", "content": "hi"}),
        _event(3, "tool.started", call),
        _event(4, "tool.finished", {"call_id": "c1", "tool": "read_file", "ok": True, "output": 1}),
        _event(5, "message.assistant", {"message_id": "a1", "content": "done"}),
        _event(6, "tool.started", {"call_id": "c2", "tool": "edit_file", "args": {}}),
        _event(7, "tool.finished", failed),
    ]
    frame = fold_snapshot(SnapshotData(session, events, []))
    assert [(t["call_id"], t["status"], t["after_message_id"]) for t in frame.tools] == [
        ("c1", "ok", "u1"),
        ("c2", "error", "a1"),
    ]
    assert frame.tools[0]["args"] == {"path": "a.py"} and frame.tools[0]["output"] == 1
    assert frame.tools[1]["error"] == "x"
    assert [m["message_id"] for m in frame.messages] == ["u1", "a1"]


def test_env_example_lists_every_setting() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    listed = set(re.findall(r"^TETHER_([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert fields == listed


def test_settings_refuse_unsafe_combinations() -> None:
    with pytest.raises(ValueError, match="non-loopback"):
        Settings(host="0.0.0.0", _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="TETHER_API_TOKENS"):
        Settings(auth="token", _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="8\\+"):
        Settings(auth="token", api_tokens="short=bob", _env_file=None)  # type: ignore[call-arg]
    ok = Settings(auth="token", api_tokens="tok-alice-1=alice, tok-bob-22=bob", _env_file=None)  # type: ignore[call-arg]
    assert ok.token_map() == {"tok-alice-1": "alice", "tok-bob-22": "bob"}
    opted_in = Settings(host="0.0.0.0", allow_insecure_none=True, _env_file=None)  # type: ignore[call-arg]
    assert opted_in.auth == "none"
    jwt_public = Settings(host="0.0.0.0", auth="jwt", jwt_secret="k" * 32, _env_file=None)  # type: ignore[call-arg]
    assert jwt_public.jwt_leeway_s == 30
    with pytest.raises(ValueError, match="TETHER_LIMITER_URL"):
        Settings(limiter_url="memcached://x", _env_file=None)  # type: ignore[call-arg]


def test_served_sockets_get_tcp_nodelay() -> None:
    """asyncio sets TCP_NODELAY on accepted sockets only when the listening socket says
    IPPROTO_TCP; without it, frames sent back to back wait for a delayed ACK (~40 ms)."""
    import socket

    from tether.cli import _bind

    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
