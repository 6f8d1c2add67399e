"""Per-user daily usage, as SQL on one connection.

``charge_run`` is one ``INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING``: Postgres
locks the conflicting row and re-checks the ``WHERE`` on its latest version; SQLite's
writer holds the database write lock. Either way concurrent charges serialise, so a cap
of N admits exactly N.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from tether.store.contract import UsageRecord, utcnow
from tether.store.sql.tables import usage


def usage_from_row(row: Row[Any]) -> UsageRecord:
    m = row._mapping
    return UsageRecord(
        owner=m["owner"],
        day=m["day"],
        runs=m["runs"],
        input_tokens=m["input_tokens"],
        output_tokens=m["output_tokens"],
        requests=m["requests"],
    )


def _upsert(conn: AsyncConnection, values: dict[str, Any]) -> Any:
    module: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(usage).values(**values)


def _fresh(owner: str, day: str, **counts: int) -> dict[str, Any]:
    row = {"runs": 0, "input_tokens": 0, "output_tokens": 0, "requests": 0, **counts}
    return {"owner": owner, "day": day, "updated_at": utcnow(), **row}


async def charge_run(
    conn: AsyncConnection, owner: str, day: str, max_runs: int, max_tokens: int
) -> UsageRecord | None:
    caps = []
    if max_runs > 0:
        caps.append(usage.c.runs < max_runs)
    if max_tokens > 0:
        caps.append(usage.c.input_tokens + usage.c.output_tokens < max_tokens)
    stmt = _upsert(conn, _fresh(owner, day, runs=1)).on_conflict_do_update(
        index_elements=[usage.c.owner, usage.c.day],
        set_={"runs": usage.c.runs + 1, "updated_at": utcnow()},
        where=sa.and_(*caps) if caps else None,
    )
    row = (await conn.execute(stmt.returning(*usage.c))).first()
    return usage_from_row(row) if row else None


async def add_usage(
    conn: AsyncConnection,
    owner: str,
    day: str,
    input_tokens: int,
    output_tokens: int,
    requests: int,
) -> None:
    counts = {"input_tokens": input_tokens, "output_tokens": output_tokens, "requests": requests}
    stmt = _upsert(conn, _fresh(owner, day, **counts)).on_conflict_do_update(
        index_elements=[usage.c.owner, usage.c.day],
        set_={
            **{name: getattr(usage.c, name) + value for name, value in counts.items()},
            "updated_at": utcnow(),
        },
    )
    await conn.execute(stmt)


async def get_usage(conn: AsyncConnection, owner: str, day: str) -> UsageRecord:
    stmt = sa.select(usage).where(usage.c.owner == owner, usage.c.day == day)
    row = (await conn.execute(stmt)).first()
    return usage_from_row(row) if row else UsageRecord(owner, day)
