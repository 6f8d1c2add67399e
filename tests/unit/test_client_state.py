"""The client's pure parts: SessionState, Backoff and EventInbox, with no socket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tether.client import (
    Backoff,
    ClientClosedError,
    EpochError,
    EventInbox,
    GapError,
    SessionState,
    TetherClosed,
)
from tether.protocol import decode_server
from tether.protocol.errors import ClientAction
from tether.protocol.frames import (
    AckFrame,
    EventFrame,
    EventsFrame,
    Limits,
    PongFrame,
    SnapshotFrame,
    WelcomeFrame,
)

SESSION = "s1"
LIMITS = Limits(
    max_frame_bytes=1_048_576,
    max_message_chars=100_000,
    max_command_id_chars=64,
    hello_timeout_s=10,
)


def welcome(epoch: str = "e1", *, session_id: str = SESSION, head_seq: int = 0) -> WelcomeFrame:
    return WelcomeFrame(
        session_id=session_id,
        epoch=epoch,
        head_seq=head_seq,
        recovered=True,
        user="alice",
        server_id="srv",
        limits=LIMITS,
    )


def event(seq: int, kind: str = "progress", epoch: str = "e1", **data: Any) -> EventFrame:
    return EventFrame(
        seq=seq, epoch=epoch, ts="2025-01-01T00:00:00Z", session_id=SESSION, event=kind, data=data
    )


def delta(seq: int, message_id: str, text: str) -> EventFrame:
    return event(seq, "text.delta", message_id=message_id, delta=text)


def final(seq: int, message_id: str, content: str) -> EventFrame:
    return event(seq, "message.assistant", message_id=message_id, content=content)


def snapshot(as_of_seq: int, messages: list[dict[str, Any]] | None = None) -> SnapshotFrame:
    return SnapshotFrame(
        as_of_seq=as_of_seq,
        session={"id": SESSION},
        messages=messages or [],
        runs=[],
        interrupts=[],
    )


def batch(*seqs: int) -> EventsFrame:
    return EventsFrame(events=[event(seq) for seq in seqs])


def seqs(events: list[EventFrame]) -> list[int]:
    return [item.seq for item in events]


@pytest.fixture
def state() -> SessionState:
    state = SessionState()
    state.apply(welcome())
    return state


# ---------------------------------------------------------------------- cursor and order


def test_new_state_has_no_cursor() -> None:
    state = SessionState("s9")
    assert state.cursor is None
    assert state.session_id == "s9"
    assert state.applied_seqs == []


def test_welcome_sets_session_and_epoch(state: SessionState) -> None:
    assert state.session_id == SESSION
    assert state.cursor == ("e1", 0)
    assert state.welcome is not None


def test_events_in_order_are_applied_and_move_the_cursor(state: SessionState) -> None:
    applied = [state.apply(event(seq)) for seq in (1, 2, 3)]
    assert [seqs(item) for item in applied] == [[1], [2], [3]]
    assert state.cursor == ("e1", 3)
    assert state.applied_seqs == [1, 2, 3]


def test_duplicate_event_is_dropped(state: SessionState) -> None:
    state.apply(event(1))
    state.apply(event(2))
    assert state.apply(event(2)) == []
    assert state.apply(event(1)) == []
    assert state.applied_seqs == [1, 2]
    assert state.duplicates_dropped == 2


def test_batch_with_overlap_applies_only_new_events(state: SessionState) -> None:
    state.apply(batch(1, 2, 3))
    applied = state.apply(batch(2, 3, 4, 5))
    assert seqs(applied) == [4, 5]
    assert state.applied_seqs == [1, 2, 3, 4, 5]
    assert state.last_seq == 5


def test_batch_entirely_old_applies_nothing(state: SessionState) -> None:
    state.apply(batch(1, 2, 3))
    assert state.apply(batch(1, 2, 3)) == []
    assert state.last_seq == 3


def test_gap_raises_and_does_not_apply(state: SessionState) -> None:
    state.apply(event(1))
    with pytest.raises(GapError, match="expected seq 2, got 3") as caught:
        state.apply(event(3))
    assert caught.value.applied == []
    assert state.applied_seqs == [1]
    assert state.cursor == ("e1", 1)


def test_gap_inside_batch_keeps_the_prefix_and_reports_it(state: SessionState) -> None:
    state.apply(event(1))
    with pytest.raises(GapError) as caught:
        state.apply(batch(1, 2, 3, 5, 6))
    assert seqs(caught.value.applied) == [2, 3]
    assert state.applied_seqs == [1, 2, 3]
    assert state.last_seq == 3


def test_first_event_must_follow_the_cursor() -> None:
    state = SessionState()
    state.apply(welcome())
    with pytest.raises(GapError):
        state.apply(event(2))


def test_event_of_another_epoch_raises(state: SessionState) -> None:
    state.apply(event(1))
    with pytest.raises(EpochError):
        state.apply(event(2, epoch="e2"))
    assert state.cursor == ("e1", 1)


def test_control_frames_change_nothing(state: SessionState) -> None:
    state.apply(event(1))
    assert state.apply(AckFrame(id="c1")) == []
    assert state.apply(PongFrame(t="x")) == []
    assert state.cursor == ("e1", 1)


def test_frames_decoded_from_the_wire_apply() -> None:
    state = SessionState()
    text = (
        '{"type":"welcome","session_id":"s1","epoch":"e1","head_seq":1,"recovered":false,'
        '"user":"u","server_id":"x","limits":{"max_frame_bytes":1,"max_message_chars":1,'
        '"max_command_id_chars":64,"hello_timeout_s":10}}'
    )
    state.apply(decode_server(text))
    applied = state.apply(
        decode_server(
            '{"type":"events","events":[{"type":"event","seq":1,"epoch":"e1","ts":"t",'
            '"session_id":"s1","event":"text.delta","data":{"message_id":"m1","delta":"hi"}}]}'
        )
    )
    assert seqs(applied) == [1]
    assert state.text("m1") == "hi"


# ---------------------------------------------------------------------- welcome and epoch


def test_welcome_with_same_epoch_keeps_the_cursor(state: SessionState) -> None:
    state.apply(batch(1, 2))
    state.apply(welcome(head_seq=5))
    assert state.cursor == ("e1", 2)
    assert state.head_seq == 5
    assert state.applied_seqs == [1, 2]


def test_welcome_with_new_epoch_resets_the_cursor(state: SessionState) -> None:
    state.apply(batch(1, 2, 3))
    state.apply(delta(4, "m1", "old"))
    state.apply(welcome("e2"))
    assert state.cursor == ("e2", 0)
    assert state.applied_seqs == []
    assert state.text("m1") == ""
    assert seqs(state.apply(event(1, epoch="e2"))) == [1]


def test_welcome_for_another_session_resets_the_cursor(state: SessionState) -> None:
    state.apply(batch(1, 2))
    state.apply(welcome(session_id="s2"))
    assert state.session_id == "s2"
    assert state.cursor == ("e1", 0)


# ---------------------------------------------------------------------- snapshots


def test_snapshot_moves_the_cursor_to_as_of_seq(state: SessionState) -> None:
    state.apply(batch(1, 2))
    state.apply(snapshot(10))
    assert state.cursor == ("e1", 10)
    assert state.snapshot is not None
    assert state.apply(event(10)) == []
    assert seqs(state.apply(event(11))) == [11]
    assert state.applied_seqs == [1, 2, 11]


def test_snapshot_behind_the_cursor_trims_events_past_it(state: SessionState) -> None:
    state.apply(batch(1, 2, 3, 4))
    state.apply(snapshot(2))
    assert state.applied_seqs == [1, 2]
    assert seqs(state.apply(batch(3, 4))) == [3, 4]
    assert state.applied_seqs == [1, 2, 3, 4]


def test_snapshot_replaces_texts_from_its_messages(state: SessionState) -> None:
    state.apply(delta(1, "m-old", "stale"))
    messages = [
        {"message_id": "u1", "role": "user", "content": "question"},
        {"message_id": "a1", "role": "assistant", "content": "Hel"},
        {"message_id": "a2", "role": "assistant", "content": "done"},
    ]
    state.apply(snapshot(7, messages))
    assert state.text("m-old") == ""
    assert state.text("u1") == ""
    assert state.text("a2") == "done"
    state.apply(delta(8, "a1", "lo"))
    assert state.text("a1") == "Hello"


def test_snapshot_after_new_epoch_gives_a_fresh_view(state: SessionState) -> None:
    state.apply(batch(1, 2, 3))
    state.apply(welcome("e2"))
    state.apply(snapshot(2, [{"message_id": "a1", "role": "assistant", "content": "x"}]))
    assert state.cursor == ("e2", 2)
    assert state.text("a1") == "x"
    assert seqs(state.apply(event(3, epoch="e2"))) == [3]


# ---------------------------------------------------------------------- text folding


def test_deltas_build_text_and_final_content_replaces_it(state: SessionState) -> None:
    state.apply(delta(1, "m1", "Hel"))
    state.apply(delta(2, "m1", "lo"))
    assert state.text("m1") == "Hello"
    state.apply(final(3, "m1", "Hello, world."))
    assert state.text("m1") == "Hello, world."


def test_deltas_after_final_content_append(state: SessionState) -> None:
    state.apply(final(1, "m1", "a"))
    state.apply(delta(2, "m1", "b"))
    assert state.text("m1") == "ab"


def test_texts_of_messages_are_kept_apart(state: SessionState) -> None:
    state.apply(batch(1))
    state.apply(delta(2, "m1", "one"))
    state.apply(delta(3, "m2", "two"))
    assert (state.text("m1"), state.text("m2"), state.text("m3")) == ("one", "two", "")


def test_duplicate_delta_is_not_folded_twice(state: SessionState) -> None:
    state.apply(delta(1, "m1", "a"))
    state.apply(EventsFrame(events=[delta(1, "m1", "a"), delta(2, "m1", "b")]))
    assert state.text("m1") == "ab"


def test_malformed_text_events_are_ignored(state: SessionState) -> None:
    state.apply(event(1, "text.delta", message_id=5, delta="x"))
    state.apply(event(2, "text.delta", message_id="m1", delta=None))
    assert state.text("m1") == ""
    assert state.last_seq == 2


# ---------------------------------------------------------------------- bounds


def test_max_events_evicts_oldest_but_keeps_the_cursor() -> None:
    state = SessionState(max_events=3)
    state.apply(welcome())
    state.apply(batch(*range(1, 11)))
    assert state.applied_seqs == [8, 9, 10]
    assert state.cursor == ("e1", 10)
    assert state.apply(event(9)) == []


def test_max_texts_evicts_the_oldest_message() -> None:
    state = SessionState(max_texts=2)
    state.apply(welcome())
    for seq, message_id in enumerate(("m1", "m2", "m3"), start=1):
        state.apply(delta(seq, message_id, message_id))
    assert (state.text("m1"), state.text("m2"), state.text("m3")) == ("", "m2", "m3")


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SessionState(max_events=0)


# ---------------------------------------------------------------------- backoff


def test_backoff_ceiling_doubles_up_to_the_cap() -> None:
    backoff = Backoff(base_s=0.1, cap_s=5.0)
    ceilings = [backoff.ceiling_s(attempt) for attempt in range(8)]
    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])
    assert backoff.ceiling_s(10_000) == 5.0


def test_backoff_is_full_jitter() -> None:
    backoff = Backoff(base_s=0.1, cap_s=5.0)
    assert backoff.delay_s(3, ClientAction.BACKOFF, rand=lambda: 0.0) == 0.0
    assert backoff.delay_s(3, ClientAction.BACKOFF, rand=lambda: 0.5) == pytest.approx(0.4)
    assert backoff.delay_s(0, ClientAction.BACKOFF, rand=lambda: 1.0) == pytest.approx(0.1)


def test_backoff_first_resume_attempt_is_immediate() -> None:
    backoff = Backoff()
    assert backoff.delay_s(0, ClientAction.RESUME, rand=lambda: 1.0) == 0.0
    assert backoff.delay_s(1, ClientAction.RESUME, rand=lambda: 1.0) == pytest.approx(0.2)


def test_backoff_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        Backoff(max_attempts=0)


# ---------------------------------------------------------------------- inbox


async def test_inbox_is_fifo() -> None:
    inbox = EventInbox(maxsize=4)
    for seq in (1, 2, 3):
        inbox.put(event(seq))
    async with asyncio.timeout(1):
        assert [(await inbox.get()).seq for _ in range(3)] == [1, 2, 3]


async def test_inbox_overflow_drops_the_oldest() -> None:
    inbox = EventInbox(maxsize=2)
    assert [inbox.put(event(seq)) for seq in (1, 2, 3, 4)] == [False, False, True, True]
    assert inbox.dropped == 2
    async with asyncio.timeout(1):
        assert [(await inbox.get()).seq for _ in range(2)] == [3, 4]


async def test_inbox_end_delivers_queued_events_then_raises_for_every_reader() -> None:
    inbox = EventInbox(maxsize=2)
    inbox.put(event(1))
    inbox.put(event(2))
    inbox.end(TetherClosed(4403, "nope"))
    inbox.end(ClientClosedError("second end is ignored"))
    inbox.put(event(3))  # ignored after the end
    async with asyncio.timeout(1):
        assert (await inbox.get()).seq == 2  # 1 was dropped to make room for the end
        for _ in range(2):
            with pytest.raises(TetherClosed):
                await inbox.get()


async def test_inbox_end_wakes_a_waiting_reader() -> None:
    inbox = EventInbox(maxsize=2)
    reader = asyncio.create_task(inbox.get())
    await asyncio.sleep(0)  # let the reader block on the empty queue
    inbox.end(ClientClosedError("closed"))
    async with asyncio.timeout(1):
        with pytest.raises(ClientClosedError):
            await reader
