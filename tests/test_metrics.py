"""Per-event metrics (plain floats, no lock) expose exactly what prometheus_client would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from router.metrics import DURATION_BUCKETS, EventCounter, EventHistogram, Metrics

VALUES = (0.0, 0.0004, 0.001, 0.0010001, 0.25, 5, 899.9, 900, 901, 1e9)


def exposed(registry: CollectorRegistry) -> list[str]:
    """The exposition's lines, without the `_created` timestamps only prometheus_client adds."""
    text = generate_latest(registry).decode()
    return sorted(line for line in text.splitlines() if "_created" not in line)


def test_a_histogram_buckets_sums_and_counts_as_prometheus_client_does() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = EventHistogram(ours, "h_seconds", "Doc.", ("function",))
    reference = Histogram(
        "h_seconds", "Doc.", ["function"], buckets=DURATION_BUCKETS, registry=theirs
    )
    for n, value in enumerate(VALUES):
        mine.labels(f"f{n % 3}").observe(value)
        reference.labels(f"f{n % 3}").observe(value)
    assert exposed(ours) == exposed(theirs)


def test_a_counter_exposes_its_totals_as_prometheus_client_does() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = EventCounter(ours, "c", "Doc.", ("function", "outcome"))
    reference = Counter("c", "Doc.", ["function", "outcome"], registry=theirs)
    for n, value in enumerate(VALUES[:-1]):
        mine.labels("f", str(n % 2)).inc(value)
        reference.labels("f", str(n % 2)).inc(value)
    mine.labels("g", "0").inc()
    reference.labels("g", "0").inc()
    assert exposed(ours) == exposed(theirs)


def test_an_invocation_counts_its_outcome_duration_billing_and_error() -> None:
    metrics = Metrics()
    metrics.invocation("fn", "succeeded", 0.002, 0.5)
    metrics.invocation("fn", "timed_out", 3.0, 1.5)
    text = metrics.render().decode()
    assert 'router_invocations_total{function="fn",outcome="succeeded"} 1.0' in text
    assert 'router_invocations_total{function="fn",outcome="timed_out"} 1.0' in text
    assert 'router_errors_total{function="fn"} 1.0' in text
    assert 'router_billed_gb_seconds_total{function="fn"} 2.0' in text
    assert 'router_invocation_duration_seconds_bucket{function="fn",le="0.0025"} 1.0' in text
    assert 'router_invocation_duration_seconds_count{function="fn"} 2.0' in text
