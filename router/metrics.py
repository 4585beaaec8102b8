"""Prometheus metrics: the only module that talks to prometheus_client.

Each app owns its own collector registry (no import-time globals), and the rest of the router
reports through the small methods here, so labels stay bounded: function, trigger, outcome,
reason, status. Never an event id.
"""

from __future__ import annotations

import contextlib
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

C = TypeVar("C", covariant=True)
V = TypeVar("V")


class Labelled(Protocol[C]):
    def labels(self, *values: str) -> C: ...


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


class Total:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class Observations:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)  # the last is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(DURATION_BUCKETS, value)] += 1  # the first bucket with le >= it
        self.total += value


class EventFamily(Generic[V]):
    """A labelled family for the per-event metrics, its children kept in plain Python numbers.

    prometheus_client's own take a lock and check their state on every update (0.3 us a
    counter, 0.5 us a histogram, several per event). These are only updated on the event loop,
    where /metrics also renders them, so they need no lock. Exposed as the same families.
    """

    _child: Callable[[], V]  # makes a child: the subclass's value type

    def __init__(
        self, registry: CollectorRegistry, name: str, doc: str, labels: tuple[str, ...]
    ) -> None:
        self._name, self._doc, self._labels = name, doc, labels
        self._children: dict[tuple[str, ...], V] = {}
        registry.register(self)

    def labels(self, *values: str) -> V:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._child()
        return child

    def collect(self) -> Iterator[Metric]:
        raise NotImplementedError


class EventCounter(EventFamily[Total]):
    _child = Total

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._doc, labels=self._labels)
        for values, child in self._children.items():
            family.add_metric(values, child.value)
        yield family


class EventHistogram(EventFamily[Observations]):
    """With DURATION_BUCKETS, as every histogram here."""

    _child = Observations

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._doc, labels=self._labels)
        bounds = [*map(floatToGoString, DURATION_BUCKETS), "+Inf"]
        for values, child in self._children.items():
            cumulative, buckets = 0, []
            for bound, count in zip(bounds, child.counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(list(values), buckets, child.total)
        yield family


# An invocation's count (by outcome), duration, GB-seconds and, unless it succeeded, its error.
OutcomeChildren = tuple[Total, Observations, Total, Total | None]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._outcomes: dict[tuple[str, str], OutcomeChildren] = {}
        self._lambda_metrics()
        self._router_metrics()
        self._schedule_metrics()

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(name, doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, *labels: str) -> Gauge:
        return Gauge(name, doc, labels, registry=self.registry)

    def _histogram(self, name: str, doc: str, *labels: str) -> Histogram:
        return Histogram(name, doc, labels, buckets=DURATION_BUCKETS, registry=self.registry)

    def _per_event(self, name: str, doc: str, *labels: str) -> EventCounter:
        return EventCounter(self.registry, name, doc, labels)

    def _per_event_histogram(self, name: str, doc: str, *labels: str) -> EventHistogram:
        return EventHistogram(self.registry, name, doc, labels)

    def _lambda_metrics(self) -> None:
        """What AWS Lambda reports in CloudWatch, per function."""
        c, g, h = self._counter, self._gauge, self._histogram
        ec, eh = self._per_event, self._per_event_histogram
        self.invocations = ec(
            "router_invocations", "Invocations by outcome.", "function", "outcome"
        )
        self.errors = ec("router_errors", "Invocations that failed or timed out.", "function")
        self.duration = eh("router_invocation_duration_seconds", "Handler run time.", "function")
        self.billed = ec(
            "router_billed_gb_seconds",
            "Billed duration (1 ms granularity) times memory in GB.",
            "function",
        )
        self.concurrent = g("router_concurrent_executions", "Invocations running now.", "function")
        self.throttles = c(
            "router_throttles", "Sync invocations refused at concurrency.max.", "function"
        )
        self.leases_held = g(
            "router_concurrency_leases",
            "Slots of concurrency.max this replica holds leased in Redis.",
            "function",
        )
        self.leases_unchecked = c(
            "router_concurrency_leases_unchecked",
            "Invocations started without a lease while Redis was away (up to the per-replica cap).",
            "function",
        )
        self.cold_starts = c("router_cold_starts", "Execution environments started.", "function")
        self.init_duration = h(
            "router_init_duration_seconds",
            "Time to start an environment and import its handler.",
            "function",
        )
        self.event_age = eh(
            "router_event_age_seconds",
            "Time from accepting an event to starting its handler.",
            "function",
        )
        self.retries = c("router_retries", "Failed attempts sent back for another try.", "function")
        self.dead_letters = c(
            "router_dead_letters", "Events moved to the dead-letter queue.", "function", "reason"
        )
        self.async_received = ec(
            "router_async_events_received", "Events accepted onto a function's queue.", "function"
        )
        self.async_dropped = c(
            "router_async_events_dropped",
            "Events dead-lettered without a run (too old, malformed).",
            "function",
            "reason",
        )
        self.duplicates = c(
            "router_duplicates",
            "Duplicate events of idempotent functions, not run again.",
            "function",
        )
        self.max_memory = g(
            "router_max_memory_used_megabytes",
            "Peak resident memory of the last environment that ran the function.",
            "function",
        )

    def _router_metrics(self) -> None:
        """The router's own health: queues, pools, webhooks, dependencies."""
        c, g, ec, eh = self._counter, self._gauge, self._per_event, self._per_event_histogram
        self.queue_depth = g(
            "router_queue_depth", "Messages ready in the function's queue.", "function"
        )
        self.dlq_depth = g(
            "router_dead_letter_queue_depth",
            "Messages in the function's dead-letter queue.",
            "function",
        )
        self.consumers = g(
            "router_queue_consumers", "Consumers of the function's queue, all replicas.", "function"
        )
        self.workers = g(
            "router_workers", "Process execution environments by state.", "function", "state"
        )
        self.filtered = c(
            "router_events_filtered",
            "Events a trigger's filter turned away.",
            "function",
            "trigger",
        )
        self.webhooks = ec(
            "router_webhook_requests",
            "Webhook requests by trigger and HTTP status.",
            "trigger",
            "status",
        )
        self.rejections = c(
            "router_webhook_rejections",
            "Webhook requests refused before running, by reason.",
            "trigger",
            "reason",
        )
        self.envelope_rejections = c(
            "router_envelope_rejections",
            "Messages with router headers the router did not seal: forged through a binding"
            " (run as plain AMQP events) or unverified on the router's own exchange"
            " (dead-lettered).",
            "function",
            "reason",
        )
        self.confirm_latency = eh(
            "router_publish_confirm_seconds", "Time for RabbitMQ to confirm a persistent publish."
        )
        self.reconnects = c("router_amqp_reconnects", "Reconnections to RabbitMQ.")
        self.registry_version = g(
            "router_registry_version", "Version of the registry this replica routes from."
        )
        self.registry_staleness = g(
            "router_registry_staleness_seconds",
            "Seconds since this replica last confirmed its registry is current.",
        )
        self.loop_lag = g(
            "router_event_loop_lag_seconds",
            "How late the event loop ran a timer: time it could not respond.",
        )
        self.up = g(
            "router_dependency_up",
            "Whether a dependency is reachable (1) or not (0).",
            "dependency",
        )
        self.log_entries_dropped = c(
            "router_log_entries_dropped",
            "Invocation output dropped, oldest first, while Redis was away too long to hold it.",
            "function",
        )
        self.log_lines_dropped = c(
            "router_log_lines_dropped",
            "The router's own log lines dropped because stderr could not keep up.",
        )
        self.http_connections = g("router_http_connections", "Open HTTP connections.")
        self.http_refused = c(
            "router_http_connections_refused",
            "HTTP connections refused at the cap (ROUTER_MAX_CONNECTIONS).",
        )

    def _schedule_metrics(self) -> None:
        """Schedule triggers, by trigger. Each tick is counted once, by the replica that
        fired it (or gave it up as missed): sum over replicas."""
        self.ticks_fired = self._counter(
            "router_schedule_ticks_fired", "Ticks whose event was queued.", "trigger"
        )
        self.ticks_missed = self._counter(
            "router_schedule_ticks_missed",
            "Ticks no replica could fire within their grace (replicas, Redis or RabbitMQ away)"
            " and the catch-up policy did not run.",
            "trigger",
        )
        self.tick_lag = self._histogram(
            "router_schedule_lag_seconds",
            "Time from a tick to its event confirmed on the function's queue.",
            "trigger",
        )

    def child(self, metric: Labelled[C], *labels: str) -> C:
        """The labelled child, cached: `labels()` takes a lock and checks its arguments on every
        call, and the hot path asks for the same few children for every event."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def invocation(self, function: str, outcome: str, duration_s: float, gb_seconds: float) -> None:
        count, duration, billed, errors = self._outcome_children(function, outcome)
        count.inc()
        duration.observe(duration_s)
        billed.inc(gb_seconds)
        if errors is not None:
            errors.inc()

    def _outcome_children(self, function: str, outcome: str) -> OutcomeChildren:
        """The four children one invocation updates, looked up together."""
        key = (function, outcome)
        children = self._outcomes.get(key)
        if children is None:
            child = self.child
            children = self._outcomes[key] = (
                child(self.invocations, function, outcome),
                child(self.duration, function),
                child(self.billed, function),
                child(self.errors, function) if outcome != "succeeded" else None,
            )
        return children

    def webhook(self, trigger: str, status: int) -> None:
        self.child(self.webhooks, trigger, str(status)).inc()

    def rejected(self, trigger: str, reason: str) -> None:
        self.child(self.rejections, trigger, reason).inc()

    def forget(self, function: str) -> None:
        """A deleted function's gauges go (a last queue depth exported for ever would keep an
        autoscaler up); its counters stay, as counters do."""
        for gauge in (self.queue_depth, self.dlq_depth, self.consumers, self.max_memory):
            with contextlib.suppress(KeyError):
                gauge.remove(function)
        for state in ("busy", "idle"):
            with contextlib.suppress(KeyError):
                self.workers.remove(function, state)
        for gauge in (self.concurrent, self.leases_held):
            with contextlib.suppress(KeyError):
                gauge.remove(function)
        self._children = {k: v for k, v in self._children.items() if function not in k[1]}

    def render(self) -> bytes:
        return generate_latest(self.registry)
