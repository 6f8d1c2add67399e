"""``GET /v1/usage``: the caller's usage today (UTC) and the limits that apply to them."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from tether.api.rest import EngineDep, UserDep
from tether.store.contract import utc_day

router = APIRouter(prefix="/v1", tags=["usage"])


class UsageToday(BaseModel):
    runs: int
    input_tokens: int
    output_tokens: int
    requests: int
    tokens: int


class Quotas(BaseModel):
    """Caps per user; ``null`` means no cap."""

    runs_per_day: int | None
    tokens_per_day: int | None
    active_runs: int
    connections: int


class UsageOut(BaseModel):
    user: str
    day: str
    usage: UsageToday
    active_runs: int
    open_connections: int
    quotas: Quotas


@router.get("/usage")
async def get_usage(engine: EngineDep, user: UserDep) -> UsageOut:
    """Runs admitted and model tokens used today, open runs and sockets, and the quotas.
    Runs count when admitted (started or queued) and on each retry; tokens when a run
    step ends (completed or paused for a person)."""
    s = engine.settings
    day = utc_day()
    used = await engine.store.get_usage(user, day)
    return UsageOut(
        user=user,
        day=day,
        usage=UsageToday(**used.to_json() | {"tokens": used.tokens}),
        active_runs=await engine.store.count_active_runs(user),
        open_connections=engine.open_counts.of(user),
        quotas=Quotas(
            runs_per_day=s.max_runs_per_day or None,
            tokens_per_day=s.max_tokens_per_day or None,
            active_runs=s.max_active_runs_per_user,
            connections=s.max_connections_per_user,
        ),
    )
