"""Metrics shared by the workers of `serve --workers N` (router.metrics): each worker in a
process of its own writes its files, and any of them renders the merge of all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from router.metrics import forget_process
from tests.conftest import ROOT

WORKER = """
import os, sys
from router.metrics import Metrics, shared_directory
metrics = Metrics(shared_directory())
count, depth, running = (int(a) for a in sys.argv[1:4])
for _ in range(count):
    metrics.invocation("f", "succeeded", 0.003, 0.001)
    metrics.webhook("t", 200)
metrics.throttles.labels("f").inc()
metrics.http_connections.inc()
metrics.queue_depth.labels("f").set(depth)
metrics.sampled(metrics.concurrent, lambda: running, "f")
metrics.share()
print(os.getpid())
"""
RENDER = """
import sys
from router.metrics import Metrics, shared_directory
metrics = Metrics(shared_directory())
for function in sys.argv[1:]:
    metrics.forget(function)
sys.stdout.write(metrics.render().decode())
"""


def run(script: str, directory: Path, *args: str) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


def sample(text: str, line_start: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rpartition(" ")[2])
    return None


def test_counters_histograms_and_gauges_merge_across_workers(tmp_path: Path) -> None:
    first = int(run(WORKER, tmp_path, "3", "10", "2"))
    run(WORKER, tmp_path, "4", "7", "1")
    text = run(RENDER, tmp_path)
    assert sample(text, 'router_invocations_total{function="f",outcome="succeeded"}') == 7
    assert sample(text, 'router_invocation_duration_seconds_count{function="f"}') == 7
    assert sample(text, 'router_invocation_duration_seconds_bucket{function="f",le="0.005"}') == 7
    assert sample(text, 'router_invocation_duration_seconds_bucket{function="f",le="0.0025"}') == 0
    assert sample(text, 'router_webhook_requests_total{status="200",trigger="t"}') == 7
    assert sample(text, 'router_throttles_total{function="f"}') == 2
    assert sample(text, "router_http_connections") == 2  # each worker's own: summed
    assert sample(text, 'router_concurrent_executions{function="f"}') == 3
    assert sample(text, 'router_queue_depth{function="f"}') == 7  # shared state: the newest
    forget_process(first, str(tmp_path))  # the first worker died
    text = run(RENDER, tmp_path)
    # Its counts stay in the sums (they never go down); its gauges leave.
    assert sample(text, 'router_invocations_total{function="f",outcome="succeeded"}') == 7
    assert sample(text, "router_http_connections") == 1
    assert sample(text, 'router_concurrent_executions{function="f"}') == 1


def test_a_deleted_functions_gauges_leave_the_merge_and_its_counters_stay(tmp_path: Path) -> None:
    run(WORKER, tmp_path, "2", "5", "1")
    text = run(RENDER, tmp_path, "f")
    assert sample(text, 'router_queue_depth{function="f"}') is None
    assert sample(text, 'router_concurrent_executions{function="f"}') is None
    assert sample(text, 'router_invocations_total{function="f",outcome="succeeded"}') == 2
