"""Real services for tests: detection, CI strictness, and fresh databases."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import pytest

PG_ADMIN_DSN = os.environ.get("TETHER_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TETHER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def port_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def require(available: bool, what: str) -> None:
    """Skip with a reason when a service is absent; under CI=true that is a failure."""
    if available:
        return
    message = f"{what} is not reachable; start it (see README) to run this test"
    if in_ci():
        pytest.fail(f"CI=true and {message}")
    pytest.skip(message)


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncio.wait_for(asyncpg.connect(PG_ADMIN_DSN), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_pg_database() -> tuple[str, str]:
    """A new empty Postgres database; returns (name, SQLAlchemy URL)."""
    name = f"tether_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return name, f"{base}/{name}"


def drop_pg_database(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
