"""Pure decisions of human-in-the-loop: judging answers, and where each pending call stands."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tether.agents.runner import Answer
from tether.core.interrupts import RespondRequest, answer_for, args_hash, fold_calls, judge
from tether.protocol.errors import ErrorCode, ProtocolError
from tether.store.contract import EventRecord, InterruptRecord


def interrupt(kind: str = "approval", **changes: object) -> InterruptRecord:
    base = InterruptRecord(
        id="i1",
        session_id="s",
        run_id="r",
        kind=kind,
        prompt="?",
        on_timeout="deny",
        reason=kind,
        call_id="c1",
        tool="t",
        args={},
    )
    return replace(base, **changes)


def respond(**fields: object) -> RespondRequest:
    values: dict[str, object] = {"approved": None, "answer": None, "note": None, **fields}
    return RespondRequest("s", "u", "cmd", "i1", **values)  # type: ignore[arg-type]


def test_judge_checks_answers_against_the_stored_request() -> None:
    assert judge(interrupt(), respond(approved=True)) == ("approved", None)
    assert judge(interrupt(), respond(approved=False)) == ("denied", None)
    question = interrupt("question", choices=["a", "b"])
    assert judge(question, respond(answer="b")) == ("answered", "b")
    assert judge(interrupt("question"), respond(answer="anything")) == ("answered", "anything")
    for rec, req in [
        (interrupt(), respond()),
        (interrupt(), respond(answer="yes")),
        (question, respond(answer="c")),
        (question, respond(approved=True)),
        (interrupt("question"), respond(answer=" ")),
    ]:
        with pytest.raises(ProtocolError) as caught:
            judge(rec, req)
        assert caught.value.code == ErrorCode.INVALID
        assert caught.value.command_id == "cmd"


def test_args_hash_binds_tool_and_arguments() -> None:
    assert args_hash("t", {"a": 1, "b": 2}) == args_hash("t", {"b": 2, "a": 1})
    assert args_hash("t", {"a": 1}) != args_hash("t", {"a": 2})
    assert args_hash("t", {"a": 1}) != args_hash("u", {"a": 1})


def _event(seq: int, kind: str, **data: object) -> EventRecord:
    return EventRecord("s", seq, "e", datetime.now(UTC), "r", kind, dict(data))


def test_fold_calls_decides_replay_rerun_or_answer() -> None:
    approved = interrupt(status="approved")
    rerun = interrupt(id="i2", reason="rerun", status="denied")
    asked = interrupt("question", id="i3", call_id="c3", status="answered", answer="blue")
    events = [
        _event(1, "interrupt.requested", interrupt_id="i1", call_id="c1"),
        _event(2, "interrupt.resolved", interrupt_id="i1", outcome="approved"),
        _event(3, "tool.started", call_id="c1", tool="t", args={}),
        _event(4, "tool.started", call_id="c2", tool="t", args={}),
        _event(5, "tool.finished", call_id="c2", ok=True, output="done"),
        _event(6, "interrupt.resolved", interrupt_id="i3", outcome="answered"),
    ]
    calls = fold_calls(events, [approved, asked], ["c1", "c2", "c3", "c4"])
    assert calls["c1"].state == "started", "approved, then started: a crash mid-tool"
    assert answer_for("c2", calls["c2"]) == Answer("c2", output="done", replay=True)
    assert answer_for("c3", calls["c3"]) == Answer("c3", answer="blue")
    assert answer_for("c4", calls["c4"]) is None
    later = [*events, _event(7, "interrupt.resolved", interrupt_id="i2", outcome="denied")]
    calls = fold_calls(later, [approved, rerun, asked], ["c1"])
    settled = answer_for("c1", calls["c1"])
    assert settled is not None
    assert (settled.approved, settled.note) == (
        False,
        "Not run again: the server stopped while it was running.",
    )
