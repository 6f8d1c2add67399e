"""The one codec: any inbound text becomes a valid client frame or a typed ``ProtocolError``.

Checks run cheapest first: size, JSON syntax, nesting depth, shape, ``type``, schema, limits.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from tether.protocol.errors import ErrorCode, ProtocolError
from tether.protocol.frames import (
    CLIENT_TYPES,
    ClientFrame,
    HelloFrame,
    MessageFrame,
    ServerFrame,
)

_CLIENT = TypeAdapter[Any](ClientFrame)
_SERVER = TypeAdapter[Any](ServerFrame)
MAX_ERROR_DETAILS = 10


@dataclass(frozen=True, slots=True)
class DecodeLimits:
    max_frame_bytes: int = 1_048_576
    max_message_chars: int = 100_000
    max_json_depth: int = 32
    max_command_id_chars: int = 64
    max_metadata_bytes: int = 16_384
    max_metadata_keys: int = 64


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (scalars are 0), computed without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        )
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def _nesting_exceeds(text: str, max_depth: int) -> bool:
    """True when the raw text nests brackets (outside strings) deeper than ``max_depth``.
    Checked before ``json.loads``, so a hostile frame never drives the parser into deep
    recursion (a ``RecursionError`` in a server thread). Cheap when brackets are few."""
    if text.count("[") + text.count("{") <= max_depth:
        return False
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = 0
    for char in brackets:
        depth += 1 if char in "[{" else -1
        if depth > max_depth:
            return True
    return False


def _unstorable(text: str) -> bool:
    """Lone surrogates cannot be encoded as UTF-8 and NUL cannot be stored by Postgres:
    neither is accepted anywhere, so every store keeps the same text."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_text(value: Any) -> None:
    """Refuse (``invalid``) any string, key or value, holding NUL or a lone surrogate."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _unstorable(node):
                raise ProtocolError(
                    ErrorCode.INVALID, "text may not contain NUL or unpaired surrogates"
                )
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _parse(text: str | bytes, limits: DecodeLimits) -> Any:
    if isinstance(text, bytes):
        raise ProtocolError(ErrorCode.BAD_FRAME, "binary frames are not accepted; send JSON text")
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_frame_bytes:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"frame exceeds {limits.max_frame_bytes} bytes")
    if _nesting_exceeds(text, limits.max_json_depth):
        raise ProtocolError(ErrorCode.INVALID, f"JSON nesting deeper than {limits.max_json_depth}")
    try:
        value = json.loads(text)
    except RecursionError:  # not reached after the scan above; kept as a last guard
        raise ProtocolError(
            ErrorCode.INVALID, f"JSON nesting deeper than {limits.max_json_depth}"
        ) from None
    except ValueError as exc:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"not valid JSON: {exc}") from None
    if json_depth(value) > limits.max_json_depth:
        raise ProtocolError(ErrorCode.INVALID, f"JSON nesting deeper than {limits.max_json_depth}")
    check_text(value)
    return value


def _command_id(value: Any) -> str | None:
    raw = value.get("id") if isinstance(value, dict) else None
    return raw if isinstance(raw, str) and 0 < len(raw) <= 256 else None


def _details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(part) for part in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)[:MAX_ERROR_DETAILS]
    ]


def _check_limits(frame: BaseModel, limits: DecodeLimits, command_id: str | None) -> None:
    frame_id = getattr(frame, "id", None)
    if isinstance(frame_id, str):
        check_command_id(frame_id, limits.max_command_id_chars)
    if isinstance(frame, MessageFrame) and len(frame.content) > limits.max_message_chars:
        raise ProtocolError(
            ErrorCode.TOO_LARGE,
            f"message longer than {limits.max_message_chars} characters",
            command_id=command_id,
        )
    if isinstance(frame, HelloFrame) and frame.create and frame.create.metadata is not None:
        check_metadata(
            frame.create.metadata,
            limits.max_metadata_bytes,
            limits.max_metadata_keys,
            limits.max_json_depth,
        )


MAX_METADATA_KEY_CHARS = 128


def check_command_id(command_id: str, max_chars: int) -> None:
    """A command id within ``max_chars`` and storable text (``invalid`` otherwise); the
    same rule for socket frames and REST bodies."""
    check_text(command_id)
    if len(command_id) > max_chars:
        raise ProtocolError(
            ErrorCode.INVALID,
            f"command id longer than {max_chars} characters",
            details=[{"loc": ["id"], "msg": "too long", "type": "string_too_long"}],
        )


def check_metadata(
    metadata: dict[str, Any], max_bytes: int, max_keys: int = 64, max_depth: int = 32
) -> None:
    """Refuse metadata whose JSON encoding exceeds ``max_bytes`` (``too_large``), nested
    deeper than ``max_depth``, with more than ``max_keys`` top-level keys, or a key that
    is empty or longer than ``MAX_METADATA_KEY_CHARS`` (``invalid``)."""
    check_text(metadata)
    if json_depth(metadata) > max_depth:
        raise ProtocolError(ErrorCode.INVALID, f"metadata nested deeper than {max_depth}")
    if len(metadata) > max_keys:
        raise ProtocolError(ErrorCode.INVALID, f"metadata has more than {max_keys} keys")
    if any(not 0 < len(key) <= MAX_METADATA_KEY_CHARS for key in metadata):
        raise ProtocolError(
            ErrorCode.INVALID, f"metadata keys must be 1..{MAX_METADATA_KEY_CHARS} characters"
        )
    if len(json.dumps(metadata, separators=(",", ":")).encode()) > max_bytes:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"metadata exceeds {max_bytes} bytes")


def decode(text: str | bytes, limits: DecodeLimits) -> BaseModel:
    """Turn one inbound frame into a validated client frame, or raise ``ProtocolError``."""
    value = _parse(text, limits)
    if not isinstance(value, dict):
        raise ProtocolError(ErrorCode.INVALID, "a frame must be a JSON object")
    command_id = _command_id(value)
    kind = value.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(ErrorCode.INVALID, "a frame needs a string 'type'", command_id)
    if kind not in CLIENT_TYPES:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {kind[:64]!r}", command_id)
    try:
        frame: BaseModel = _CLIENT.validate_python(value)
    except ValidationError as exc:
        raise ProtocolError(
            ErrorCode.INVALID, f"invalid {kind} frame", command_id, details=_details(exc)
        ) from None
    _check_limits(frame, limits, command_id)
    return frame


def encode(frame: BaseModel) -> str:
    """Serialize a server frame to compact JSON text."""
    return frame.model_dump_json(exclude_none=True)


def decode_server(text: str | bytes) -> BaseModel:
    """Parse a server frame (used by clients and tests)."""
    result: BaseModel = _SERVER.validate_json(text)
    return result
