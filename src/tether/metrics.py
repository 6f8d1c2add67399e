"""Prometheus metrics, on a registry of the app's own (two apps in one process never clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("tether_connections", "Open WebSocket connections", registry=r)
        self.frames_in = Counter(
            "tether_frames_in_total", "Client frames received", ["type"], registry=r
        )
        self.frames_out = Counter(
            "tether_frames_out_total", "Frames sent to clients", ["type"], registry=r
        )
        self.errors = Counter("tether_errors_total", "Error frames sent", ["code"], registry=r)
        self.closes = Counter("tether_closes_total", "Socket closes by code", ["code"], registry=r)
        self.events_appended = Counter(
            "tether_events_appended_total", "Events committed to the log", registry=r
        )
        self.replay_events = Histogram(
            "tether_replay_events",
            "Events replayed on a resume",
            buckets=(0, 1, 10, 100, 1_000, 10_000),
            registry=r,
        )
        self.snapshots = Counter("tether_snapshots_total", "Snapshots sent", registry=r)
        self.runs_finished = Counter(
            "tether_runs_total", "Runs ended, by outcome", ["outcome"], registry=r
        )
        self.run_seconds = Histogram("tether_run_seconds", "Run duration", registry=r)
        self.rate_limited = Counter(
            "tether_rate_limited_total", "Rate-limit rejections", ["scope"], registry=r
        )
        self.store_batch = Histogram(
            "tether_store_batch_units",
            "Units of work per group commit",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.store_commit_seconds = Histogram(
            "tether_store_commit_seconds", "Group commit latency", registry=r
        )
        self.interrupts_opened = Counter(
            "tether_interrupts_opened_total", "Interrupts opened, by kind", ["kind"], registry=r
        )
        self.interrupts_resolved = Counter(
            "tether_interrupts_resolved_total",
            "Interrupts resolved, by outcome",
            ["outcome"],
            registry=r,
        )
        self.interrupt_wait_seconds = Histogram(
            "tether_interrupt_wait_seconds",
            "Time an interrupt waited for a person",
            buckets=(1, 5, 30, 60, 300, 1800, 3600, 86400),
            registry=r,
        )
        self.slow_consumers = Counter(
            "tether_slow_consumers_total",
            "Connections closed for overflowing their outbox",
            registry=r,
        )

        self.repo_map_cache = Counter(
            "tether_repo_map_cache_lookups_total",
            "Repo map / search index cache lookups, by result",
            ["result"],
            registry=r,
        )
        self.repo_map_evictions = Counter(
            "tether_repo_map_cache_evictions_total",
            "Repo map / search index cache entries evicted to stay within its caps",
            registry=r,
        )
        self.search_context = Counter(
            "tether_search_context_lookups_total",
            "Searches looked up in the session's search context, by result",
            ["result"],
            registry=r,
        )

    def observe_lookup(self, counter: Counter, hit: bool) -> None:
        counter.labels(result="hit" if hit else "miss").inc()

    def observe_batch(self, units: int, seconds: float) -> None:
        self.store_batch.observe(units)
        self.store_commit_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
