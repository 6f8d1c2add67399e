"""Table definitions (SQLAlchemy Core). Alembic migrations are the only way tables are made."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = sa.JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


sessions = sa.Table(
    "sessions",
    metadata,
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
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index(None, "owner", "id"),
    sa.Index(None, "updated_at"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column(
        "session_id",
        sa.String(64),
        sa.ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Index(None, "session_id", "kind", "seq"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column(
        "session_id",
        sa.String(64),
        sa.ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
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
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index(None, "session_id", "status", "queue_seq"),
    sa.Index(None, "status", "lease_expires_ms"),
)

commands = sa.Table(
    "commands",
    metadata,
    sa.Column(
        "session_id",
        sa.String(64),
        sa.ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("command_id", sa.String(256), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("result", Json, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

interrupts = sa.Table(
    "interrupts",
    metadata,
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
    sa.Column("answered_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("details", Json, nullable=True),
    sa.Index(None, "session_id", "status"),
    sa.Index(None, "run_id", "status"),
    sa.Index(None, "status", "expires_at_ms"),
)

usage = sa.Table(
    "usage",
    metadata,
    sa.Column("owner", sa.String(256), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("runs", sa.BigInteger, nullable=False),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

search_context = sa.Table(
    "search_context",
    metadata,
    sa.Column(
        "session_id",
        sa.String(64),
        sa.ForeignKey("sessions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("query_key", sa.String(64), primary_key=True),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("paths", Json, nullable=False),
    sa.Column("results", Json, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Index(None, "session_id", "created_ms"),
)

# Every table whose rows belong to one session: deleting a session deletes these first.
SESSION_CHILDREN = (events, runs, commands, interrupts, search_context)
