"""Stores: the contract and its backends (chosen by URL in ``factory``)."""

from tether.store.contract import (
    CommandRecord,
    EventRecord,
    NewEvent,
    NotFound,
    RunRecord,
    SessionRecord,
    SnapshotData,
    Store,
    StoreError,
    StoreTx,
    StoreUnavailable,
    UsageRecord,
    VersionConflict,
    new_id,
    now_ms,
    utc_day,
    utcnow,
)
from tether.store.factory import open_store

__all__ = [
    "CommandRecord",
    "EventRecord",
    "NewEvent",
    "NotFound",
    "RunRecord",
    "SessionRecord",
    "SnapshotData",
    "Store",
    "StoreError",
    "StoreTx",
    "StoreUnavailable",
    "UsageRecord",
    "VersionConflict",
    "new_id",
    "now_ms",
    "open_store",
    "utc_day",
    "utcnow",
]
