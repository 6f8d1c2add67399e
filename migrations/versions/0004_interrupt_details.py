"""Interrupt details: what an approval shows besides the tool and its arguments
(for file edits, ``{"path", "diff"}``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("interrupts") as batch:
        batch.add_column(sa.Column("details", Json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interrupts") as batch:
        batch.drop_column("details")
