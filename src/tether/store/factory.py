"""Choose a store by URL scheme; backends are imported lazily."""

from __future__ import annotations

from collections.abc import Callable

from tether.store.contract import Store


def open_store(
    url: str,
    *,
    timeout_s: float = 10.0,
    batch_max: int = 256,
    queue_max: int = 10_000,
    observe_batch: Callable[[int, float], None] | None = None,
) -> Store:
    """A store for ``url``: ``sqlite+aiosqlite://…`` or ``postgresql+asyncpg://…``."""
    if url.startswith(("sqlite+aiosqlite:", "postgresql+asyncpg:")):
        from tether.store.sql.migrate import ensure_sqlite_dir
        from tether.store.sql.store import SqlStore

        ensure_sqlite_dir(url)
        return SqlStore(
            url,
            timeout_s=timeout_s,
            batch_max=batch_max,
            queue_max=queue_max,
            observe_batch=observe_batch,
        )
    scheme = url.split(":", 1)[0]
    raise ValueError(
        f"unsupported store URL scheme {scheme!r}; use sqlite+aiosqlite:/// or postgresql+asyncpg://"
    )
