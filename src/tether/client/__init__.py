"""Python client for tether: reconnect, resume by cursor, duplicate drop (DESIGN §2, §3).

Example::

    async with TetherClient("ws://127.0.0.1:8000/v1/ws", token="t") as client:
        ack = await client.send_message("hello")
        done = await client.wait_for_event("run.completed", run_id=ack.result["run_id"])
"""

from tether.client.backoff import Backoff
from tether.client.connection import TetherClient, new_command_id
from tether.client.errors import (
    ClientClosedError,
    CommandError,
    ConnectError,
    EpochError,
    GapError,
    StreamError,
    TetherClosed,
    TetherError,
)
from tether.client.inbox import EventInbox
from tether.client.state import SessionState

__all__ = [
    "Backoff",
    "ClientClosedError",
    "CommandError",
    "ConnectError",
    "EpochError",
    "EventInbox",
    "GapError",
    "SessionState",
    "StreamError",
    "TetherClient",
    "TetherClosed",
    "TetherError",
    "new_command_id",
]
