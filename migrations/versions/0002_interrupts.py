"""Interrupts: durable requests to a person (approvals and questions).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "interrupts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "session_id",
            sa.String(64),
            sa.ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("call_id", sa.String(128), nullable=True),
        sa.Column("tool", sa.String(128), nullable=True),
        sa.Column("args", Json, nullable=True),
        sa.Column("args_hash", sa.String(64), nullable=True),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("choices", Json, nullable=True),
        sa.Column("expires_at_ms", sa.BigInteger, nullable=True),
        sa.Column("on_timeout", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("answer", sa.Text, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("answered_by", sa.String(256), nullable=True),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_interrupts_session_id_status", "interrupts", ["session_id", "status"])
    op.create_index("ix_interrupts_run_id_status", "interrupts", ["run_id", "status"])
    op.create_index("ix_interrupts_status_expires_at_ms", "interrupts", ["status", "expires_at_ms"])


def downgrade() -> None:
    op.drop_table("interrupts")
