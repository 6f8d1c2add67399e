"""Reconnect delays: full-jitter exponential backoff. Pure maths; the caller sleeps."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tether.protocol.errors import ClientAction


@dataclass(frozen=True, slots=True)
class Backoff:
    """``delay_s(attempt)`` is uniform in ``[0, min(cap_s, base_s * 2**attempt)]``.

    Full jitter spreads a crowd of clients that lost the same server, so they do not
    all come back in the same millisecond.
    """

    base_s: float = 0.1
    cap_s: float = 5.0
    max_attempts: int = 10

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.cap_s < 0 or self.max_attempts < 1:
            raise ValueError("backoff needs base_s >= 0, cap_s >= 0 and max_attempts >= 1")

    def ceiling_s(self, attempt: int) -> float:
        """The largest delay before ``attempt`` (0-based); 2**attempt is capped early."""
        return min(self.cap_s, self.base_s * 2.0 ** min(attempt, 62))

    def delay_s(
        self, attempt: int, action: ClientAction, rand: Callable[[], float] = random.random
    ) -> float:
        """Delay before ``attempt``; the first try after a ``resume`` close is immediate."""
        if action is ClientAction.RESUME and attempt == 0:
            return 0.0
        return rand() * self.ceiling_s(attempt)
