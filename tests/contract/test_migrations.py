"""The Alembic migrations and the tables the code uses describe the same schema."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tether.store.sql.tables import metadata


def _diff(sync_url: str) -> list[object]:
    engine = sa.create_engine(sync_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": False})
            return [d for d in compare_metadata(ctx, metadata) if "alembic_version" not in str(d)]
    finally:
        engine.dispose()


def test_sqlite_migrations_match_tables(sqlite_template: Path) -> None:
    assert _diff(f"sqlite:///{sqlite_template}") == []
