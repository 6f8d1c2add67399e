"""Sessions, their event logs, runs and command ids.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def _session_fk() -> sa.ForeignKey:
    return sa.ForeignKey("sessions.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("agent", sa.String(64), nullable=False),
        sa.Column("metadata", Json, nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("epoch", sa.String(64), nullable=False),
        sa.Column("head_seq", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_sessions_owner_id", "sessions", ["owner", "id"])
    op.create_table(
        "events",
        sa.Column("session_id", sa.String(64), _session_fk(), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("data", Json, nullable=False),
    )
    op.create_index("ix_events_session_id_kind_seq", "events", ["session_id", "kind", "seq"])
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(64), _session_fk(), nullable=False),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("command_id", sa.String(256), nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("queue_seq", sa.BigInteger, nullable=False),
        sa.Column("error", Json, nullable=True),
        sa.Column("usage", Json, nullable=True),
        sa.Column("checkpoint", sa.Text, nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_expires_ms", sa.BigInteger, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index(
        "ix_runs_session_id_status_queue_seq", "runs", ["session_id", "status", "queue_seq"]
    )
    op.create_index("ix_runs_status_lease_expires_ms", "runs", ["status", "lease_expires_ms"])
    op.create_table(
        "commands",
        sa.Column("session_id", sa.String(64), _session_fk(), primary_key=True),
        sa.Column("command_id", sa.String(256), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("result", Json, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("commands")
    op.drop_table("runs")
    op.drop_table("events")
    op.drop_table("sessions")
