"""A bounded LRU: at most ``max_entries`` values and ``max_bytes`` of their sizes.

A value larger than ``max_bytes`` on its own is not kept (the caller still has it).
Every value pushed out to make room counts as one eviction.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedLRU(Generic[K, V]):
    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        size_of: Callable[[V], int],
        on_evict: Callable[[], None] | None = None,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("an LRU needs room for at least one entry and one byte")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._on_evict = on_evict
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.total_bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def keys(self) -> list[K]:
        return list(self._items)

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V) -> bool:
        """Keep ``value`` (most recent); ``False`` when it alone exceeds ``max_bytes``."""
        self.discard(key)
        size = self._size_of(value)
        if size > self.max_bytes:
            return False
        self._items[key] = (value, size)
        self.total_bytes += size
        while len(self._items) > self.max_entries or self.total_bytes > self.max_bytes:
            self._evict_oldest()
        return True

    def discard(self, key: K) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self.total_bytes -= item[1]

    def _evict_oldest(self) -> None:
        _, (_, size) = self._items.popitem(last=False)
        self.total_bytes -= size
        self.evictions += 1
        if self._on_evict is not None:
            self._on_evict()
