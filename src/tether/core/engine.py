"""The engine: store, bus, hub, runs and sessions of one server instance, wired once.

Start order: store → bus → runs (recovery first). Stop order is the reverse, each step
idempotent, so a failed start or a second stop leaves nothing running.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import structlog

from tether.agents.assistant import ModelSettings
from tether.agents.registry import AgentRegistry, default_registry
from tether.bus import Bus, open_bus
from tether.core.expiry import SessionReaper
from tether.core.hub import Hub
from tether.core.interrupts import Deadlines
from tether.core.quotas import DailyQuota
from tether.core.runs import RunConfig, RunManager
from tether.core.sessions import SessionLimits, Sessions
from tether.limits.guard import OpenCounts, Rates, Scope, UserLimits
from tether.limits.limiter import Limiter, Rate, open_limiter
from tether.metrics import Metrics
from tether.settings import Settings
from tether.store.contract import EventRecord, Store
from tether.store.factory import open_store
from tether.workspace.locks import open_locks
from tether.workspace.repo_map import IndexCache
from tether.workspace.scan import ScanLimits
from tether.workspace.service import WorkspaceConfig, WorkspaceService

log = structlog.get_logger(__name__)


def _rates(s: Settings) -> Rates:
    return Rates(
        messages=Rate(s.messages_per_s, s.message_burst),
        run_starts=Rate(s.run_starts_per_s, s.run_start_burst),
        connects=Rate(s.connects_per_s, s.connect_burst),
    )


class Engine:
    def __init__(self, settings: Settings, registry: AgentRegistry | None = None) -> None:
        self.settings = settings
        self.server_id = settings.server_id or f"srv-{os.urandom(6).hex()}"
        self.metrics = Metrics()
        self.store: Store = open_store(
            settings.store_url,
            timeout_s=settings.store_timeout_s,
            batch_max=settings.write_batch_max,
            queue_max=settings.write_queue_max,
            observe_batch=self.metrics.observe_batch,
        )
        self.locks = open_locks(settings.store_url, settings.file_lock_lease_s)
        self.workspace = self._workspace()
        model = ModelSettings(settings.model, settings.model_base_url, settings.model_api_key)
        self.registry = registry or default_registry(settings.agents, model, self.workspace)
        self.bus: Bus = open_bus(settings.bus_url)
        self.hub = Hub(settings.max_connections_per_session, settings.max_connections)
        self.runs = RunManager(self.store, self.registry, self._run_config(), self.metrics)
        self.limiter: Limiter = open_limiter(settings.limiter_url)
        self.guard = UserLimits(self.limiter, _rates(settings), self._count_refusal)
        self.open_counts = OpenCounts(settings.max_connections_per_user)
        self.sessions = Sessions(
            self.store,
            self.hub,
            self.runs,
            self.registry,
            self._limits(),
            self.metrics,
            self.guard,
        )
        self.reaper = SessionReaper(
            self.store, self.hub, settings.session_ttl_s, settings.session_reap_interval_s
        )
        self._started = False

    def _run_config(self) -> RunConfig:
        s = self.settings
        return RunConfig(
            server_id=self.server_id,
            lease_s=s.run_lease_s,
            recovery_interval_s=s.recovery_interval_s,
            run_timeout_s=s.run_timeout_s,
            shutdown_grace_s=s.shutdown_grace_s,
            sweep_interval_s=s.interrupt_sweep_interval_s,
            deadlines=Deadlines(s.approval_timeout_s, s.question_timeout_s),
        )

    def _workspace(self) -> WorkspaceService:
        s, m = self.settings, self.metrics
        cache = IndexCache(
            s.repo_map_cache_entries,
            s.repo_map_cache_bytes,
            ScanLimits(s.workspace_max_files, s.workspace_max_file_bytes),
            on_evict=m.repo_map_evictions.inc,
            on_lookup=lambda hit: m.observe_lookup(m.repo_map_cache, hit),
        )
        config = WorkspaceConfig(
            root=s.workspace_root,
            max_file_bytes=s.workspace_max_file_bytes,
            max_read_chars=s.workspace_read_max_chars,
            search_context_entries=s.search_context_entries,
            lock_timeout_s=s.file_lock_timeout_s,
        )
        on_context = lambda hit: m.observe_lookup(m.search_context, hit)  # noqa: E731
        return WorkspaceService(config, self.store, cache, self.locks, on_context)

    def _limits(self) -> SessionLimits:
        s = self.settings
        return SessionLimits(
            max_metadata_bytes=s.max_metadata_bytes,
            max_title_chars=s.max_title_chars,
            max_open_runs_per_user=s.max_active_runs_per_user,
            default_agent=s.default_agent,
            workspace_root=s.workspace_root,
            max_metadata_keys=s.max_metadata_keys,
            quota=DailyQuota(s.max_runs_per_day, s.max_tokens_per_day),
            max_command_id_chars=s.max_command_id_chars,
            max_message_chars=s.max_message_chars,
            max_json_depth=s.max_json_depth,
        )

    def _count_refusal(self, scope: Scope) -> None:
        self.metrics.rate_limited.labels(scope=str(scope)).inc()

    def _on_commit(self, events: Sequence[EventRecord]) -> None:
        self.metrics.events_appended.inc(len(events))
        self.bus.publish(events)

    async def start(self) -> None:
        await self.store.start(self._on_commit)
        await self.bus.start(self.hub.dispatch)
        self._started = True
        await self.runs.start()
        self.reaper.start()
        log.info("engine_started", server_id=self.server_id, store=self.store_kind)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.reaper.stop()
        await self.sessions.drain(self.settings.shutdown_grace_s)
        await self.runs.stop()
        await self.bus.close()
        await self.locks.close()
        await self.store.close()
        await self.limiter.close()
        log.info("engine_stopped", server_id=self.server_id)

    @property
    def store_kind(self) -> str:
        return self.settings.store_url.split(":", 1)[0]
