"""SQL for the per-session search context (table ``search_context``, migration 0003).

Invalidation matches a path inside the ``paths`` JSON array exactly: ``@>`` on Postgres
(JSONB containment), ``json_each`` on SQLite.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from tether.store.contract import SearchContextRecord
from tether.store.sql.tables import search_context as table


def record_from_row(row: Row[Any]) -> SearchContextRecord:
    m = row._mapping
    return SearchContextRecord(
        session_id=m["session_id"],
        query_key=m["query_key"],
        query=m["query"],
        paths=list(m["paths"]),
        results=dict(m["results"]),
        created_ms=m["created_ms"],
    )


async def get(conn: AsyncConnection, session_id: str, query_key: str) -> SearchContextRecord | None:
    stmt = sa.select(table).where(table.c.session_id == session_id, table.c.query_key == query_key)
    row = (await conn.execute(stmt)).first()
    return record_from_row(row) if row else None


async def recent(conn: AsyncConnection, session_id: str, limit: int) -> list[SearchContextRecord]:
    stmt = (
        sa.select(table)
        .where(table.c.session_id == session_id)
        .order_by(table.c.created_ms.desc(), table.c.query_key)
        .limit(limit)
    )
    return [record_from_row(row) for row in await conn.execute(stmt)]


async def put(conn: AsyncConnection, record: SearchContextRecord, keep: int) -> None:
    where = (table.c.session_id == record.session_id, table.c.query_key == record.query_key)
    await conn.execute(sa.delete(table).where(*where))
    await conn.execute(
        sa.insert(table).values(
            session_id=record.session_id,
            query_key=record.query_key,
            query=record.query,
            paths=record.paths,
            results=record.results,
            created_ms=record.created_ms,
        )
    )
    kept = [r.query_key for r in await recent(conn, record.session_id, keep)]
    await conn.execute(
        sa.delete(table).where(
            table.c.session_id == record.session_id, table.c.query_key.not_in(kept)
        )
    )


async def invalidate(conn: AsyncConnection, path: str) -> int:
    if conn.dialect.name == "postgresql":
        match: Any = sa.type_coerce(table.c.paths, JSONB).contains([path])
    else:
        each = sa.func.json_each(table.c.paths).table_valued("value")
        match = sa.exists(sa.select(1).select_from(each).where(each.c.value == path))
    result = await conn.execute(sa.delete(table).where(match))
    return int(result.rowcount or 0)
