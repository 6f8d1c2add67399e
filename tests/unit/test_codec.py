"""The codec turns any text into a valid frame or a typed error (never an exception leak)."""

from __future__ import annotations

import json

import pytest

from tether.protocol import (
    ClientAction,
    CloseCode,
    DecodeLimits,
    ErrorCode,
    HelloFrame,
    MessageFrame,
    ProtocolError,
    close_action,
    codec,
    decode,
)
from tether.protocol.codec import json_depth

LIMITS = DecodeLimits(
    max_frame_bytes=4096,
    max_message_chars=100,
    max_json_depth=8,
    max_command_id_chars=16,
    max_metadata_bytes=64,
)


def code_of(text: str | bytes) -> ErrorCode:
    with pytest.raises(ProtocolError) as caught:
        decode(text, LIMITS)
    return caught.value.code


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", ErrorCode.BAD_FRAME),
        (b'{"type":"ping"}', ErrorCode.BAD_FRAME),
        ("[1,2]", ErrorCode.INVALID),
        ('{"id": "x"}', ErrorCode.INVALID),
        ('{"type": 5}', ErrorCode.INVALID),
        ('{"type": "dance"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "message", "id": "a"}', ErrorCode.INVALID),
        ('{"type": "message", "id": "a", "content": "x", "extra": 1}', ErrorCode.INVALID),
        ('{"type": "message", "id": "", "content": "x"}', ErrorCode.INVALID),
        ('{"type": "message", "id": "' + "i" * 17 + '", "content": "x"}', ErrorCode.INVALID),
        ('{"type": "message", "id": "a", "content": "' + "x" * 101 + '"}', ErrorCode.TOO_LARGE),
        (
            '{"type": "hello", "create": {"metadata": {"k": "' + "v" * 80 + '"}}}',
            ErrorCode.TOO_LARGE,
        ),
        ('{"type": "ping", "t": ' + "[" * 9 + "]" * 9 + "}", ErrorCode.INVALID),
        ("[" * 100_000 + "]" * 100_000, ErrorCode.TOO_LARGE),
        ('{"type":"ping","t":"' + "x" * 5000 + '"}', ErrorCode.TOO_LARGE),
        ('{"type": "message", "id": "a", "content": "\\ud800"}', ErrorCode.INVALID),
        ('{"type": "message", "id": "a", "content": "a\\u0000b"}', ErrorCode.INVALID),
        ('{"type": "ping", "t": "\\udfff\\ud800"}', ErrorCode.INVALID),
        ('{"type": "hello", "create": {"metadata": {"\\ud83d": 1}}}', ErrorCode.INVALID),
        ('{"type": "hello", "create": {"metadata": {"": 1}}}', ErrorCode.INVALID),
        ('{"type": "hello", "create": {"metadata": {"' + "k" * 129 + '": 1}}}', ErrorCode.INVALID),
    ],
)
def test_bad_input_gets_its_code(text: str, code: ErrorCode) -> None:
    assert code_of(text) == code


def test_deep_nesting_within_size_is_invalid_not_a_crash() -> None:
    limits = DecodeLimits(max_frame_bytes=10_000_000, max_json_depth=32)
    with pytest.raises(ProtocolError) as caught:
        decode("[" * 200_000 + "]" * 200_000, limits)
    assert caught.value.code == ErrorCode.INVALID


def test_nesting_is_refused_before_the_parser_recurses(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = DecodeLimits(max_frame_bytes=10_000_000, max_json_depth=32)
    parsed: list[str] = []
    real_loads = json.loads
    monkeypatch.setattr(json, "loads", lambda text: parsed.append(text) or real_loads(text))
    for deep in ('{"a":' * 33 + "1" + "}" * 33, "[" * 5_000 + "]" * 5_000):
        with pytest.raises(ProtocolError) as caught:
            decode(deep, limits)
        assert caught.value.code == ErrorCode.INVALID
    assert parsed == []  # refused by the scan, never handed to the parser
    # Brackets inside strings (escaped quotes too) are text, not nesting.
    content = '[{\\"' * 500 + "]]"
    frame = decode(json.dumps({"type": "message", "id": "m", "content": content}), limits)
    assert isinstance(frame, MessageFrame) and frame.content == content
    assert not codec._nesting_exceeds("[" * 32 + "]" * 32, 32)
    assert codec._nesting_exceeds("[" * 33 + "]" * 33, 32)


def test_error_carries_the_command_id_and_field_details() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode('{"type": "cancel", "id": "c-9", "run_id": 5}', LIMITS)
    assert caught.value.command_id == "c-9"
    assert caught.value.details
    assert caught.value.details[0]["loc"] == ["cancel", "run_id"]  # type: ignore[index]


def test_valid_frames_decode_to_their_models() -> None:
    frame = decode(json.dumps({"type": "message", "id": "m1", "content": "hi"}), LIMITS)
    assert frame == MessageFrame(type="message", id="m1", content="hi")
    hello = decode('{"type":"hello","resume":{"epoch":"e","seq":3}}', LIMITS)
    assert isinstance(hello, HelloFrame)
    assert hello.resume is not None
    assert (hello.resume.epoch, hello.resume.seq) == ("e", 3)


def test_json_depth() -> None:
    assert json_depth(1) == 0
    assert json_depth({"a": [1, {"b": []}]}) == 4
    assert json_depth([[], [[[]]]]) == 4


def test_close_actions_follow_the_table() -> None:
    assert close_action(CloseCode.SLOW_CONSUMER) is ClientAction.RESUME
    assert close_action(CloseCode.SERVICE_RESTART) is ClientAction.RESUME
    assert close_action(CloseCode.FORBIDDEN) is ClientAction.STOP
    assert close_action(CloseCode.UNAUTHENTICATED) is ClientAction.STOP
    assert close_action(CloseCode.TRY_AGAIN_LATER) is ClientAction.BACKOFF
    assert close_action(1006) is ClientAction.BACKOFF


def test_paired_surrogates_and_other_unicode_are_fine() -> None:
    frame = decode(
        '{"type": "message", "id": "a", "content": "\\ud83d\\ude00 \u00e9 \u200b"}', LIMITS
    )
    assert isinstance(frame, MessageFrame)
    assert frame.content == "\U0001f600 \u00e9 \u200b"


def test_metadata_key_count_is_limited() -> None:
    limits = DecodeLimits(max_metadata_bytes=10_000, max_metadata_keys=3)
    ok = {"type": "hello", "create": {"metadata": {"a": 1, "b": 2, "c": 3}}}
    assert isinstance(decode(json.dumps(ok), limits), HelloFrame)
    ok["create"]["metadata"]["d"] = 4  # type: ignore[index]
    with pytest.raises(ProtocolError) as caught:
        decode(json.dumps(ok), limits)
    assert caught.value.code == ErrorCode.INVALID
    assert "more than 3 keys" in caught.value.message
