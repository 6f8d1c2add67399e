"""A token bucket as pure arithmetic: the caller passes ``now``; nothing here reads a clock."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """``capacity`` tokens, refilled at ``refill_per_s``; each ``take`` costs ``cost`` tokens."""

    capacity: float
    refill_per_s: float
    tokens: float
    updated_s: float

    @classmethod
    def full(cls, capacity: float, refill_per_s: float, now_s: float) -> TokenBucket:
        return cls(capacity, refill_per_s, capacity, now_s)

    def _refill(self, now_s: float) -> None:
        elapsed = max(0.0, now_s - self.updated_s)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.refill_per_s)
        self.updated_s = max(self.updated_s, now_s)

    def take(self, now_s: float, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens if there are enough: returns 0.0, else the seconds to wait."""
        self._refill(now_s)
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        if cost > self.capacity:
            return float("inf")
        return (cost - self.tokens) / self.refill_per_s
