"""Daily per-user quotas and usage, as steps inside a run's own transaction.

A run is counted when admitted (started or queued) and on every retry, in the transaction
that admits it: a rollback uncounts it, and the store's upsert serialises concurrent
charges, so a cap of N admits exactly N. Model tokens are added when a run step ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from tether.protocol.errors import ErrorCode, ProtocolError
from tether.store.contract import StoreTx, utc_day, utcnow


@dataclass(frozen=True, slots=True)
class DailyQuota:
    """Per-user caps per UTC day (0 = none): runs admitted, model tokens used."""

    max_runs: int = 0
    max_tokens: int = 0


def _ms_to_next_day() -> int:
    now = utcnow()
    midnight = datetime.combine(now.date() + timedelta(days=1), time(), tzinfo=UTC)
    return max(1, int((midnight - now).total_seconds() * 1000))


async def charge_run(tx: StoreTx, owner: str, command_id: str, quota: DailyQuota) -> None:
    """Count one run against ``owner``'s day in this transaction, or refuse with
    ``quota_exceeded`` (retry after the UTC day ends). Runs are counted when admitted
    (started or queued) and on every retry; a rollback uncounts them."""
    if await tx.charge_run(owner, utc_day(), quota.max_runs, quota.max_tokens) is None:
        raise ProtocolError(
            ErrorCode.QUOTA_EXCEEDED,
            "daily quota of runs or model tokens used up",
            command_id,
            retry_after_ms=_ms_to_next_day(),
        )


async def record_usage(tx: StoreTx, session_id: str, used: dict[str, int] | None) -> None:
    """Add a run step's model usage to its session owner's day."""
    if not used:
        return
    session = await tx.lock_session(session_id)
    if session is None:
        return
    await tx.add_usage(
        session.owner,
        utc_day(),
        int(used.get("input_tokens", 0)),
        int(used.get("output_tokens", 0)),
        int(used.get("requests", 0)),
    )
