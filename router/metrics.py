"""Prometheus metrics: the only module that talks to prometheus_client.

Each app owns its own collector registry (no import-time globals), and the rest of the router
reports through the small methods here, so labels stay bounded: function, trigger, outcome,
reason, status. Never an event id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.invocations = Counter(
            "router_invocations",
            "Invocations by function and outcome.",
            ["function", "outcome"],
            registry=r,
        )
        self.errors = Counter(
            "router_errors", "Invocations that failed or timed out.", ["function"], registry=r
        )
        self.duration = Histogram(
            "router_invocation_duration_seconds",
            "Handler run time.",
            ["function"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.billed = Counter(
            "router_billed_gb_seconds",
            "Billed duration (1 ms granularity) times memory in GB.",
            ["function"],
            registry=r,
        )
        self.concurrent = Gauge(
            "router_concurrent_executions", "Invocations running now.", ["function"], registry=r
        )
        self.queue_depth = Gauge(
            "router_queue_depth",
            "Messages ready in the function's queue.",
            ["function"],
            registry=r,
        )
        self.event_age = Histogram(
            "router_event_age_seconds",
            "Time from accepting an event to starting its handler.",
            ["function"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.filtered = Counter(
            "router_events_filtered",
            "Events a trigger's filter turned away.",
            ["function", "trigger"],
            registry=r,
        )
        self.retries = Counter(
            "router_retries",
            "Failed attempts sent back for another try.",
            ["function"],
            registry=r,
        )
        self.dead_letters = Counter(
            "router_dead_letters",
            "Events moved to the dead-letter queue.",
            ["function", "reason"],
            registry=r,
        )
        self.webhooks = Counter(
            "router_webhook_requests",
            "Webhook requests by trigger and HTTP status.",
            ["trigger", "status"],
            registry=r,
        )
        self.rejections = Counter(
            "router_webhook_rejections",
            "Webhook requests refused before running, by reason.",
            ["trigger", "reason"],
            registry=r,
        )
        self.async_received = Counter(
            "router_async_events_received",
            "Events accepted onto a function's queue.",
            ["function"],
            registry=r,
        )
        self.duplicates = Counter(
            "router_duplicates",
            "Duplicate events of idempotent functions, not run again.",
            ["function"],
            registry=r,
        )
        self.workers = Gauge(
            "router_workers",
            "Process execution environments by state.",
            ["function", "state"],
            registry=r,
        )
        self.cold_starts = Counter(
            "router_cold_starts", "Execution environments started.", ["function"], registry=r
        )
        self.init_duration = Histogram(
            "router_init_duration_seconds",
            "Time to start an environment and import its handler.",
            ["function"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.throttles = Counter(
            "router_throttles",
            "Sync invocations refused at concurrency.max.",
            ["function"],
            registry=r,
        )
        self.max_memory = Gauge(
            "router_max_memory_used_megabytes",
            "Peak resident memory of the last environment that ran the function.",
            ["function"],
            registry=r,
        )
        self.registry_version = Gauge(
            "router_registry_version",
            "Version of the registry this replica routes from.",
            registry=r,
        )
        self.up = Gauge(
            "router_dependency_up",
            "Whether a dependency is reachable (1) or not (0).",
            ["dependency"],
            registry=r,
        )

    def invocation(self, function: str, outcome: str, duration_s: float, gb_seconds: float) -> None:
        self.invocations.labels(function, outcome).inc()
        self.duration.labels(function).observe(duration_s)
        self.billed.labels(function).inc(gb_seconds)
        if outcome != "succeeded":
            self.errors.labels(function).inc()

    def webhook(self, trigger: str, status: int) -> None:
        self.webhooks.labels(trigger, str(status)).inc()

    def rejected(self, trigger: str, reason: str) -> None:
        self.rejections.labels(trigger, reason).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
