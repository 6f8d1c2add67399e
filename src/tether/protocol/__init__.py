"""Protocol v1: frames, events, codec and the error/close-code table. Imports nothing of ours."""

from tether.protocol.codec import DecodeLimits, check_metadata, decode, decode_server, encode
from tether.protocol.errors import (
    CloseCode,
    ClientAction,
    ErrorCode,
    ProtocolError,
    close_action,
)
from tether.protocol.events import EVENT_DATA, EventKind
from tether.protocol.frames import (
    AckFrame,
    CancelFrame,
    ClientFrame,
    ErrorFrame,
    EventFrame,
    EventsFrame,
    HelloFrame,
    Limits,
    MessageFrame,
    PingFrame,
    Policy,
    PongFrame,
    RespondFrame,
    RetryFrame,
    ServerFrame,
    SnapshotFrame,
    WelcomeFrame,
)

__all__ = [
    "EVENT_DATA", "AckFrame", "CancelFrame", "ClientAction", "ClientFrame", "CloseCode",
    "DecodeLimits", "ErrorCode", "ErrorFrame", "EventFrame", "EventKind", "EventsFrame",
    "HelloFrame", "Limits", "MessageFrame", "PingFrame", "Policy", "PongFrame",
    "ProtocolError", "RespondFrame", "RetryFrame", "ServerFrame", "SnapshotFrame",
    "WelcomeFrame", "check_metadata", "close_action", "decode", "decode_server", "encode",
]
