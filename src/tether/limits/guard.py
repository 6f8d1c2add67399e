"""Per-user limits as the socket and REST see them: rate checks that raise the protocol's
``rate_limited`` error, and the count of a user's open sockets.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from tether.limits.limiter import Limiter, Rate
from tether.protocol.errors import ErrorCode, ProtocolError


class Scope(StrEnum):
    """What a bucket meters; the key is ``scope:user``."""

    MESSAGES = "messages"
    RUN_STARTS = "runs"
    CONNECTS = "connects"


@dataclass(frozen=True, slots=True)
class Rates:
    messages: Rate
    run_starts: Rate
    connects: Rate

    def of(self, scope: Scope) -> Rate:
        return {
            Scope.MESSAGES: self.messages,
            Scope.RUN_STARTS: self.run_starts,
            Scope.CONNECTS: self.connects,
        }[scope]


class UserLimits:
    """Token buckets per user, on a shared ``Limiter`` (memory or Redis)."""

    def __init__(
        self,
        limiter: Limiter,
        rates: Rates,
        on_refusal: Callable[[Scope], None] = lambda scope: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limiter = limiter
        self._rates = rates
        self._on_refusal = on_refusal
        self._clock = clock

    async def take(self, user: str, *scopes: Scope, command_id: str | None = None) -> None:
        """Spend one token of each scope, in order; the first empty bucket raises
        ``rate_limited`` with ``retry_after_ms`` (tokens already spent stay spent)."""
        for scope in scopes:
            decision = await self.limiter.take(
                f"{scope}:{user}", self._rates.of(scope), self._clock()
            )
            if not decision.allowed:
                self._on_refusal(scope)
                raise ProtocolError(
                    ErrorCode.RATE_LIMITED,
                    f"too many {scope} for this user; retry later",
                    command_id,
                    retry_after_ms=decision.retry_after_ms,
                )


class TooManyOpen(Exception):
    pass


class OpenCounts:
    """Open sockets per user in this process, capped at ``max_per_user``. The map holds
    only users with an open socket, so it is bounded by the connection limit."""

    def __init__(self, max_per_user: int) -> None:
        self._open: Counter[str] = Counter()
        self._max = max_per_user

    def acquire(self, user: str) -> None:
        if self._open[user] >= self._max:
            raise TooManyOpen(f"at most {self._max} open connections per user")
        self._open[user] += 1

    def release(self, user: str) -> None:
        if self._open[user] <= 1:
            self._open.pop(user, None)
        else:
            self._open[user] -= 1

    def of(self, user: str) -> int:
        return self._open.get(user, 0)
