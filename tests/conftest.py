"""Shared fixtures: migrated SQLite and Postgres databases, and started stores."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from tests.harness import ServerProcess
from tests.services import create_pg_database, drop_pg_database, port_open, require
from tether.store import EventRecord, Store, open_store
from tether.store.sql.migrate import upgrade

T = TypeVar("T")


def in_thread(fn: Callable[[], T]) -> T:
    """Run blocking set-up that uses its own event loop (Alembic, asyncpg admin) off-loop,
    so session fixtures work even when an async fixture asks for them first."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result(timeout=120)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "tether.db"
    in_thread(lambda: upgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    if not port_open("127.0.0.1", 5432):
        yield None
        return
    name, url = in_thread(create_pg_database)
    in_thread(lambda: upgrade(url))
    yield url
    in_thread(lambda: drop_pg_database(name))


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "tether.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def pg_url(pg_database: str | None) -> str:
    require(pg_database is not None, "PostgreSQL on 127.0.0.1:5432")
    assert pg_database is not None
    return pg_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def processes() -> Iterator[list[ServerProcess]]:
    """``tether serve`` subprocesses a test starts; each is stopped when the test ends."""
    started: list[ServerProcess] = []
    yield started
    for process in started:
        process.stop()


class Committed:
    """Collects what the store's commit hook published, in order."""

    def __init__(self) -> None:
        self.events: list[EventRecord] = []

    def __call__(self, events: Sequence[EventRecord]) -> None:
        self.events.extend(events)


@pytest.fixture
async def committed() -> Committed:
    return Committed()


@pytest.fixture
async def store(store_url: str, committed: Committed) -> AsyncIterator[Store]:
    instance = open_store(store_url, timeout_s=10)
    await instance.start(committed)
    yield instance
    await instance.close()
