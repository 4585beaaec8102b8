"""Prometheus metrics: the only module that talks to prometheus_client.

Each app owns its own collector registry (no import-time globals), and the rest of the router
reports through the small methods here, so labels stay bounded: function, trigger, outcome,
reason, status. Never an event id.

Several workers on one port (`serve --workers N`, router.supervisor) share their metrics
through prometheus_client's multiprocess mode: each worker keeps its values in memory-mapped
files of its own in a directory the supervisor creates for the run (PROMETHEUS_MULTIPROC_DIR,
which prometheus_client reads when it is imported), and a scrape, whichever worker answers it,
merges every worker's files. Why files rather than asking the other workers at scrape time:
a file outlives its worker, so a worker that is killed and started again (a new pid, a new
file) leaves its counters in the sum, and the sum never drops. The per-event families stay
plain numbers on the hot path (a write through the file costs about 1.4 us, five a request)
and are written into the file once a second and before a scrape is answered (`share`); the
other metrics, rarely updated, write through. Gauges say how they merge (`Merge`): a count of
this process's things (connections, running invocations) is summed; a reading of shared state
(queue depth) is the most recent one; lag and staleness the worst. A dead worker's gauges
leave the merge with it (the supervisor drops its "live" files).
"""

from __future__ import annotations

import contextlib
import os
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, Literal, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as shared_values
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.utils import floatToGoString


class Shareable(Protocol):
    def share(self) -> None: ...


C = TypeVar("C", covariant=True)
V = TypeVar("V", bound=Shareable)
SHARED_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's variable, read at its import
# How a gauge's values from several workers merge (prometheus_client's multiprocess modes; the
# "live" ones drop a dead worker's value). One worker alone ignores it.
Merge = Literal["livesum", "livemax", "livemin", "livemostrecent"]
SUM: Merge = "livesum"  # a count of each worker's own things: connections, running invocations
RECENT: Merge = "livemostrecent"  # a reading of shared state (a queue's depth): the newest
MOST: Merge = "livemax"  # lag, staleness: the worst worker's
LEAST: Merge = "livemin"  # reachable, registry version: what every worker has


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
BOUNDS = (*map(floatToGoString, DURATION_BUCKETS), "+Inf")


def shared_directory() -> str | None:
    """The run's directory of shared metric files when this process is one worker of several
    (prometheus_client was imported with PROMETHEUS_MULTIPROC_DIR set), else None."""
    if getattr(shared_values.ValueClass, "_multiprocess", False):
        return os.environ.get(SHARED_DIR)
    return None


def forget_process(pid: int, directory: str) -> None:
    """A worker is gone: its gauges leave the merge; its counters stay in it."""
    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]  # (untyped upstream)


class Total:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def share(self) -> None:
        """Write the value into the worker's shared file: only SharedTotal has one."""


class Observations:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)  # the last is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(DURATION_BUCKETS, value)] += 1  # the first bucket with le >= it
        self.total += value

    def share(self) -> None:
        """Write the counts into the worker's shared file: only SharedObservations has one."""


class SharedTotal(Total):
    """A Total of one worker of several, updated as plainly, and written into the worker's
    shared file by `share` (an update through the file costs 1.4 us, five times a request)."""

    __slots__ = ("_shared", "_written")

    def __init__(self, name: str, doc: str, labels: tuple[str, ...], values_: tuple[str, ...]):
        super().__init__()
        value = shared_values.ValueClass
        self._shared = value("counter", name, f"{name}_total", labels, values_, doc)
        self._written = 0.0

    def share(self) -> None:
        if self.value != self._written:
            self._shared.set(self.value)
            self._written = self.value


class SharedObservations(Observations):
    """Observations of one worker of several, written into its shared file by `share`: a
    bucket's own count each (the merge makes them cumulative), as prometheus_client keeps a
    Histogram there."""

    __slots__ = ("_buckets", "_sum", "_written")

    def __init__(self, name: str, doc: str, labels: tuple[str, ...], values_: tuple[str, ...]):
        super().__init__()
        value, le = shared_values.ValueClass, (*labels, "le")
        self._buckets = [
            value("histogram", name, f"{name}_bucket", le, (*values_, b), doc) for b in BOUNDS
        ]
        self._sum = value("histogram", name, f"{name}_sum", labels, values_, doc)
        self._written = 0

    def share(self) -> None:
        count = sum(self.counts)
        if count == self._written:
            return
        for bucket, bucket_count in zip(self._buckets, self.counts, strict=True):
            bucket.set(float(bucket_count))
        self._sum.set(self.total)
        self._written = count


class EventFamily(Generic[V]):
    """A labelled family for the per-event metrics, its children kept in plain Python numbers.

    prometheus_client's own take a lock and check their state on every update (0.3 us a
    counter, 0.5 us a histogram, several per event). These are only updated on the event loop,
    where /metrics also renders them, so they need no lock. Exposed as the same families.
    """

    _child: Callable[[], V]  # makes a child: the subclass's value type
    # makes a child that is also kept in the worker's shared file
    _shared_child: Callable[[str, str, tuple[str, ...], tuple[str, ...]], V]

    def __init__(
        self,
        registry: CollectorRegistry,
        name: str,
        doc: str,
        labels: tuple[str, ...],
        shared: bool = False,
    ) -> None:
        self._name, self._doc, self._labels = name, doc, labels
        self._shared = shared
        self._children: dict[tuple[str, ...], V] = {}
        registry.register(self)

    def labels(self, *values: str) -> V:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._new(values)
        return child

    def _new(self, values: tuple[str, ...]) -> V:
        if self._shared:
            return self._shared_child(self._name, self._doc, self._labels, values)
        return self._child()

    def collect(self) -> Iterator[Metric]:
        raise NotImplementedError

    def share(self) -> None:
        for child in self._children.values():
            child.share()


class EventCounter(EventFamily[Total]):
    _child = Total
    _shared_child = SharedTotal

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._doc, labels=self._labels)
        for values, child in self._children.items():
            family.add_metric(values, child.value)
        yield family


class EventHistogram(EventFamily[Observations]):
    """With DURATION_BUCKETS, as every histogram here."""

    _child = Observations
    _shared_child = SharedObservations

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self._name, self._doc, labels=self._labels)
        for values, child in self._children.items():
            cumulative, buckets = 0, []
            for bound, count in zip(BOUNDS, child.counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(list(values), buckets, child.total)
        yield family


# An invocation's count (by outcome), duration, GB-seconds and, unless it succeeded, its error.
OutcomeChildren = tuple[Total, Observations, Total, Total | None]


class Merged:
    """Every worker's shared files, merged: what a scrape of any worker answers. Gauges of
    functions deleted meanwhile are left out, as one router removes them."""

    def __init__(self, directory: str, gone: set[str]) -> None:
        self._files = MultiProcessCollector(None, directory)  # type: ignore[no-untyped-call]
        self._gone = gone

    def collect(self) -> Iterator[Metric]:
        families: Iterable[Metric] = self._files.collect()  # type: ignore[no-untyped-call]
        for family in families:
            if family.type == "gauge" and self._gone:
                family.samples = [
                    s for s in family.samples if s.labels.get("function") not in self._gone
                ]
            yield family


class Metrics:
    def __init__(self, shared_dir: str | None = None) -> None:
        """`shared_dir`: the run's directory of shared files (`shared_directory()`), when this
        process is one worker of several."""
        if shared_dir is not None and shared_directory() is None:
            raise ValueError(f"shared metrics need {SHARED_DIR} set before prometheus_client loads")
        self.registry = CollectorRegistry()
        self._shared = shared_dir is not None
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._outcomes: dict[tuple[str, str], OutcomeChildren] = {}
        self._sampled: dict[tuple[int, tuple[str, ...]], tuple[Gauge, Callable[[], float]]] = {}
        self._gone: set[str] = set()  # deleted functions, whose gauges other workers still have
        self._families: list[EventCounter | EventHistogram] = []
        self._merged = CollectorRegistry()
        if shared_dir is not None:
            self._merged.register(Merged(shared_dir, self._gone))
        self._lambda_metrics()
        self._router_metrics()
        self._schedule_metrics()

    def _counter(self, name: str, doc: str, *labels: str) -> Counter:
        return Counter(name, doc, labels, registry=self.registry)

    def _gauge(self, name: str, doc: str, *labels: str, merge: Merge) -> Gauge:
        return Gauge(name, doc, labels, registry=self.registry, multiprocess_mode=merge)

    def _histogram(self, name: str, doc: str, *labels: str) -> Histogram:
        return Histogram(name, doc, labels, buckets=DURATION_BUCKETS, registry=self.registry)

    def _per_event(self, name: str, doc: str, *labels: str) -> EventCounter:
        family = EventCounter(self.registry, name, doc, labels, self._shared)
        self._families.append(family)
        return family

    def _per_event_histogram(self, name: str, doc: str, *labels: str) -> EventHistogram:
        family = EventHistogram(self.registry, name, doc, labels, self._shared)
        self._families.append(family)
        return family

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
        self.concurrent = g(
            "router_concurrent_executions", "Invocations running now.", "function", merge=SUM
        )
        self.throttles = c(
            "router_throttles", "Sync invocations refused at concurrency.max.", "function"
        )
        self.leases_held = g(
            "router_concurrency_leases",
            "Slots of concurrency.max this replica holds leased in Redis.",
            "function",
            merge=SUM,  # each worker process leases on its own
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
            merge=RECENT,
        )

    def _router_metrics(self) -> None:
        """The router's own health: queues, pools, webhooks, dependencies."""
        c, g, ec, eh = self._counter, self._gauge, self._per_event, self._per_event_histogram
        self.queue_depth = g(
            "router_queue_depth",
            "Messages ready in the function's queue.",
            "function",
            merge=RECENT,
        )
        self.dlq_depth = g(
            "router_dead_letter_queue_depth",
            "Messages in the function's dead-letter queue.",
            "function",
            merge=RECENT,
        )
        self.consumers = g(
            "router_queue_consumers",
            "Consumers of the function's queue, all replicas.",
            "function",
            merge=RECENT,
        )
        self.workers = g(
            "router_workers",
            "Process execution environments by state.",
            "function",
            "state",
            merge=SUM,
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
            "router_registry_version",
            "Version of the registry this replica routes from (its workers: the oldest).",
            merge=LEAST,
        )
        self.registry_staleness = g(
            "router_registry_staleness_seconds",
            "Seconds since this replica last confirmed its registry is current.",
            merge=MOST,
        )
        self.loop_lag = g(
            "router_event_loop_lag_seconds",
            "How late the event loop ran a timer: time it could not respond.",
            merge=MOST,
        )
        self.up = g(
            "router_dependency_up",
            "Whether a dependency is reachable (1) or not (0): from every worker.",
            "dependency",
            merge=LEAST,
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
        self.background_restarts = c(
            "router_background_restarts",
            "Background loops (by name) that failed or returned and were started again.",
            "loop",
        )
        self.http_connections = g("router_http_connections", "Open HTTP connections.", merge=SUM)
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

    def sampled(self, gauge: Gauge, read: Callable[[], float], *labels: str) -> None:
        """A gauge whose value `read` gives. One router reads it when scraped; a worker of
        several cannot be called into by the one a scrape reaches, so `share` writes it."""
        child = self.child(gauge, *labels)
        if self._shared:
            self._sampled[(id(gauge), labels)] = (child, read)
        else:
            child.set_function(read)

    def share(self) -> None:
        """A worker of several: write its per-event counts and sampled gauges into its shared
        file. The monitor does once a second, a worker answering a scrape does first, and the
        shutdown does last. Between times the hot path updates plain numbers only, so a scrape
        sees another worker's counts up to a second late, and a worker killed outright loses
        what it counted since (which no scrape saw: no sum goes down)."""
        if not self._shared:
            return
        for family in self._families:
            family.share()
        for child, read in self._sampled.values():
            child.set(read())

    def known(self, function: str) -> None:
        """A function (again) in the registry: its gauges are exported."""
        self._gone.discard(function)

    def forget(self, function: str) -> None:
        """A deleted function's gauges go (a last queue depth exported for ever would keep an
        autoscaler up); its counters stay, as counters do."""
        labelled: list[tuple[Gauge, tuple[str, ...]]] = [
            (g, (function,)) for g in (self.queue_depth, self.dlq_depth, self.consumers)
        ]
        labelled += [(self.max_memory, (function,)), (self.concurrent, (function,))]
        labelled += [(self.leases_held, (function,))]
        labelled += [(self.workers, (function, state)) for state in ("busy", "idle")]
        if self._shared:
            self._forget_shared(function, labelled)
        for gauge, labels in labelled if not self._shared else ():
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
        self._children = {k: v for k, v in self._children.items() if function not in k[1]}

    def _forget_shared(self, function: str, labelled: list[tuple[Gauge, tuple[str, ...]]]) -> None:
        """Shared files keep every series they were given: the merge leaves the function's
        gauges out, and they are set to 0 here so that a function created again under the same
        name starts from nothing rather than from its predecessor's last values."""
        self._gone.add(function)
        for gauge, labels in labelled:
            self._sampled.pop((id(gauge), labels), None)
            gauge.labels(*labels).set(0)

    def render(self) -> bytes:
        if not self._shared:
            return generate_latest(self.registry)
        self.share()  # this worker's own counts, current
        return generate_latest(self._merged)

    # background and pools

    def background_loop(self, loop: str) -> None:
        """A background loop runs: its restart count is exported at 0 from the start."""
        self.child(self.background_restarts, loop)

    def background_restart(self, loop: str) -> None:
        self.child(self.background_restarts, loop).inc()

    def cold_start(self, function: str, init_s: float) -> None:
        self.child(self.cold_starts, function).inc()
        self.child(self.init_duration, function).observe(init_s)

    def throttled(self, function: str) -> None:
        self.child(self.throttles, function).inc()

    def memory_used(self, function: str, megabytes: float) -> None:
        self.child(self.max_memory, function).set(megabytes)

    def duplicate(self, function: str) -> None:
        self.child(self.duplicates, function).inc()

    def leasing(self, function: str) -> None:
        """A function's slots are leased here: its unchecked count is exported at 0 from the
        start, so a rate over it has a series before the first outage rather than no data."""
        self.child(self.leases_unchecked, function)

    def unchecked(self, function: str) -> None:
        """An invocation admitted without a lease (Redis away)."""
        self.child(self.leases_unchecked, function).inc()

    def log_output_seen(self, function: str) -> None:
        """A function's drop count exists (at 0) from its first output on: a counter series
        born at its first drop would have that drop missed by increase() and rate()."""
        self.child(self.log_entries_dropped, function)

    def log_entry_dropped(self, function: str) -> None:
        self.child(self.log_entries_dropped, function).inc()

    def schedule_known(self, trigger: str) -> None:
        """Counted from 0: increase() then sees the first tick (or miss), and a schedule that
        never missed one shows 0 rather than no data."""
        self.child(self.ticks_fired, trigger)
        self.child(self.ticks_missed, trigger)

    def tick_fired(self, trigger: str, lag_s: float) -> None:
        self.child(self.ticks_fired, trigger).inc()
        self.child(self.tick_lag, trigger).observe(lag_s)

    def ticks_lost(self, trigger: str, missed: int) -> None:
        self.child(self.ticks_missed, trigger).inc(missed)

    def loop_lagged(self, lag_s: float) -> None:
        self.loop_lag.set(lag_s)

    def router_lines_dropped(self, count: int) -> None:
        self.log_lines_dropped.inc(count)

    def registry_read(self, version: int, staleness_s: float) -> None:
        self.registry_version.set(version)
        self.registry_staleness.set(staleness_s)

    def reachable(self, dependency: str, up: bool) -> None:
        self.child(self.up, dependency).set(1 if up else 0)

    def dead_letter_depth(self, function: str, depth: int) -> None:
        self.child(self.dlq_depth, function).set(depth)

    # amqp layer
    def reconnected(self) -> None:
        self.reconnects.inc()

    def confirmed(self, latency_s: float) -> None:
        self.child(self.confirm_latency).observe(latency_s)

    def queue_state(self, function: str, ready: int, consumers: int) -> None:
        self.queue_depth.labels(function).set(ready)
        self.consumers.labels(function).set(consumers)

    def envelope_rejected(self, function: str, reason: str) -> None:
        self.child(self.envelope_rejections, function, reason).inc()

    def filtered_out(self, function: str, trigger: str) -> None:
        self.child(self.filtered, function, trigger).inc()

    def event_started(self, function: str, age_s: float) -> None:
        self.child(self.event_age, function).observe(age_s)

    def retried(self, function: str) -> None:
        self.child(self.retries, function).inc()

    def dead_lettered(self, function: str, reason: str) -> None:
        self.child(self.dead_letters, function, reason).inc()

    def dropped(self, function: str, reason: str) -> None:
        """An async event dropped unrun (expired, oversize, unverified, malformed)."""
        self.child(self.async_dropped, function, reason).inc()

    # http side
    def async_accepted(self, function: str) -> None:
        """An event queued for the function (RabbitMQ confirmed it)."""
        self.child(self.async_received, function).inc()
