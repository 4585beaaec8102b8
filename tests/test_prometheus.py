"""The dashboard and the alert rules against a real Prometheus scraping a real router.

A router (real Redis and RabbitMQ, a namespace of its own) gets a little load of every kind the
dashboard shows: sync and async invocations, failures that are retried and dead-lettered, an
expired event, a throttle, duplicates, webhooks accepted, rejected and filtered, a forged
envelope on the router's own exchange. Prometheus
(`/usr/bin/prometheus`, Debian package `prometheus`; CI installs it) scrapes it every second
with the repository's rules file loaded. Then every panel query of
deploy/grafana/dashboards/trigger-router.json and every rule expression of
deploy/prometheus/rules/router.yml goes through Prometheus' HTTP API: each must parse and return
data, so a renamed metric, a wrong label or a typo in a query fails here.

The load runs in two phases a few scrapes apart: a labelled series is only created by its first
increment, and rate() needs two samples of it, so the second phase is what gives rates and
quantiles real values (not only 0 or NaN).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest
import yaml

from tests.conftest import AMQP_URL, Router, cleanup, free_port, start_router, stop, wait_ready

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "rules" / "router.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "trigger-router.json"
PROMETHEUS_BIN = Path("/usr/bin/prometheus")
PROMTOOL_BIN = Path("/usr/bin/promtool")
JOB = "trigger-router"

OK, FAIL, EXPIRE, SLOW, IDEM = (
    "metrics-ok",
    "metrics-fail",
    "metrics-expire",
    "metrics-slow",
    "metrics-idem",
)
HOOK, SIGNED, FILTERED = "metrics-hook", "metrics-signed", "metrics-filtered"
TICKS = "metrics-ticks"  # a schedule trigger and its function
PHASES = 2
FAIL_EVENTS = 2  # async events of metrics-fail per phase; each runs twice, then is dead-lettered

# Grafana's macros, as a 1 s scrape interval makes sense of them. `$function` is the dashboard's
# multi-value variable; Grafana renders "All" as its allValue `.*`.
MACROS = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1m",
    "$function": ".*",
}
# A comparison with a number: `expr > 0.05`, `up == 0`, `x >= bool 3`. Alerts fire on what such a
# comparison keeps, which after a short healthy run is nothing; removing the comparisons leaves
# the expression the alert watches, and that must return data: proof that the series it reads
# exist with the labels it groups by. The expression as written is still queried, to parse.
THRESHOLD = re.compile(
    r"\s*(?:==|!=|>=|<=|>|<)\s*(?:bool\s+)?[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?(?![\w.])",
    re.IGNORECASE,
)


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, expr: str) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body: dict[str, Any] = response.json()
        return body

    def scalar(self, expr: str) -> float | None:
        body = self.query(expr)
        result = body.get("data", {}).get("result") or []
        return float(result[0]["value"][1]) if result else None


# --- expressions ---------------------------------------------------------------------------


def substitute(expr: str) -> str:
    for macro, value in MACROS.items():
        expr = expr.replace(macro, value)
    assert "$" not in expr, f"unsubstituted Grafana variable in {expr!r}"
    return expr


def strip_thresholds(expr: str) -> str:
    return THRESHOLD.sub("", expr)


def panel_exprs() -> list[tuple[str, str]]:
    """(panel title and refId, expr) of every target of every panel, rows' panels included."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = list(dashboard["panels"])
    for panel in dashboard["panels"]:
        panels.extend(panel.get("panels", []))
    return [
        (f"{panel['title']} [{target['refId']}]", target["expr"])
        for panel in panels
        for target in panel.get("targets", [])
    ]


def rule_exprs() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [
        (rule.get("alert") or rule["record"], rule["expr"])
        for group in groups
        for rule in group["rules"]
    ]


def test_threshold_stripping() -> None:
    expr = 'sum by (f) (rate(a{le="0.5"}[5m])) / sum by (f) (rate(b[5m]))\n> 0.05'
    assert strip_thresholds(expr) == 'sum by (f) (rate(a{le="0.5"}[5m])) / sum by (f) (rate(b[5m]))'
    assert strip_thresholds('up{job="x"} == 0') == 'up{job="x"}'
    assert strip_thresholds("histogram_quantile(0.95, x) > 6e1 and y >= bool 3") == (
        "histogram_quantile(0.95, x) and y"
    )
    assert strip_thresholds("a > b") == "a > b"  # vector comparisons stay: they are the alert


# --- the stack -----------------------------------------------------------------------------


def put_ok(router: Router, phase: int) -> None:
    """A new version each phase: its first call cold-starts an environment (init duration)."""
    router.put_function(
        OK,
        handler="testfns:record",
        isolation="process",
        concurrency={"min": 0, "max": 2},
        description=f"phase {phase}",
    )


def setup_functions(router: Router) -> None:
    put_ok(router, 1)
    router.put_function(FAIL, handler="testfns:fail", retry={"max_attempts": 2, "backoff_s": 0})
    # Every event is older than 1 ms when it arrives: dead-lettered without a run ("expired").
    router.put_function(
        EXPIRE,
        handler="testfns:record",
        isolation="thread",
        retry={"max_attempts": 1, "max_event_age_s": 0.001},
    )
    router.put_function(SLOW, handler="testfns:slow", concurrency={"min": 0, "max": 1})
    router.put_function(IDEM, handler="testfns:record", isolation="thread", idempotent=True)
    router.put_trigger(HOOK, function=OK, type="webhook", verify={"scheme": "none"})
    router.put_trigger(
        SIGNED, function=OK, type="webhook", verify={"scheme": "github", "secrets": ["x"]}
    )
    router.put_trigger(
        FILTERED,
        function=OK,
        type="webhook",
        verify={"scheme": "none"},
        filter={"body": {"a": ["b"]}},
    )
    router.put_function(TICKS, handler="testfns:record", isolation="thread")
    router.put_trigger(TICKS, function=TICKS, type="schedule", schedule="rate(1 second)")


def throttle(router: Router, statuses: list[int]) -> None:
    """Hold metrics-slow's only slot with one call, then call again until refused with 429.
    Runs in a thread beside the rest of the load; every status seen goes to `statuses` (either
    call may be the one refused, whichever reached the slot second)."""

    def call(sleep: float) -> None:
        url = f"/api/v1/functions/{SLOW}/invoke"
        statuses.append(router.http.post(url, json={"sleep": sleep}).status_code)

    deadline = time.monotonic() + 10
    while 429 not in statuses and time.monotonic() < deadline:
        holder = threading.Thread(target=call, args=(2,))
        holder.start()
        time.sleep(0.2)
        while holder.is_alive() and 429 not in statuses:
            call(0)
            time.sleep(0.05)
        holder.join(15)


def generate_load(router: Router, phase: int) -> None:
    if phase > 1:
        put_ok(router, phase)
    statuses: list[int] = []
    throttler = threading.Thread(target=throttle, args=(router, statuses))
    throttler.start()
    http = router.http
    for i in range(3):
        response = http.post(f"/api/v1/functions/{OK}/invoke", json={"phase": phase, "i": i})
        assert response.status_code == 200, response.text
    for function, count in ((OK, 2), (FAIL, FAIL_EVENTS), (EXPIRE, 1)):
        for i in range(count):
            response = http.post(
                f"/api/v1/functions/{function}/invoke", params={"mode": "async"}, json={"i": i}
            )
            assert response.status_code == 202, response.text
    key = {"Idempotency-Key": uuid.uuid4().hex}
    for _ in range(2):
        response = http.post(f"/api/v1/functions/{IDEM}/invoke", json={"i": 0}, headers=key)
        assert response.status_code == 200, response.text
    assert http.post(f"/hooks/{HOOK}", json={"phase": phase}).status_code == 200
    assert http.post(f"/hooks/{SIGNED}", json={"phase": phase}).status_code == 400
    filtered = http.post(f"/hooks/{FILTERED}", json={"a": "c"})
    assert filtered.status_code == 200, filtered.text
    assert filtered.json() == {"filtered": True}
    forge_an_envelope(router, EXPIRE)
    throttler.join(20)
    assert 429 in statuses, f"no throttle from {SLOW}: {statuses}"


def forge_an_envelope(router: Router, function: str) -> None:
    """An unsealed envelope on the router's own exchange: dead-lettered unrun ("unverified")."""
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        headers = {"x-router-invocation-id": uuid.uuid4().hex, "x-router-event-id": "forged"}
        connection.channel().basic_publish(
            f"{router.namespace}.work", function, b"{}", pika.BasicProperties(headers=headers)
        )
    finally:
        connection.close()


def wait_for(what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_settled(router: Router, phase: int) -> None:
    """Every async event of the phases so far has run or been dead-lettered."""
    fail = FAIL_EVENTS * phase

    def settled() -> bool:
        return (
            router.metric("router_dead_letters_total", function=FAIL, reason="failed") >= fail
            and router.metric(
                "router_async_events_dropped_total", function=EXPIRE, reason="expired"
            )
            >= phase
            and router.metric("router_invocations_total", function=OK, outcome="succeeded")
            >= 5 * phase
        )

    wait_for(f"the async events of phase {phase} to settle", settled, 20)


def start_prometheus(tmp: Path, router_port: int) -> Prometheus:
    if not PROMETHEUS_BIN.exists():
        pytest.fail(
            f"{PROMETHEUS_BIN} not found: install the Debian package `prometheus` "
            "(CI does) to check the dashboard and the alert rules against a real Prometheus"
        )
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": JOB,
                "metrics_path": "/metrics",
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "static_configs": [{"targets": [f"127.0.0.1:{router_port}"]}],
            }
        ],
    }
    config_file = tmp / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(PROMETHEUS_BIN),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", process, log)

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited with {process.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(f"{prometheus.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for("prometheus to be ready", ready, 20)
    return prometheus


def wait_scrapes(prometheus: Prometheus, count: int) -> None:
    """The router is up and scraped at least `count` times more than now."""
    seen = prometheus.scalar(f'count_over_time(up{{job="{JOB}"}}[1m])') or 0
    wait_for(
        f"{count} more scrapes of the router",
        lambda: (
            prometheus.scalar(f'up{{job="{JOB}"}}') == 1
            and (prometheus.scalar(f'count_over_time(up{{job="{JOB}"}}[1m])') or 0) >= seen + count
        ),
        20,
    )


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    namespace = f"test-prom-{uuid.uuid4().hex[:8]}"
    tmp = tmp_path_factory.mktemp("prometheus")
    process, port, log = start_router(namespace)
    prom: Prometheus | None = None
    try:
        router = Router(namespace, port, process, log)
        wait_ready(router.url, process, log)
        setup_functions(router)
        prom = start_prometheus(tmp, port)
        wait_scrapes(prom, 2)
        for phase in range(1, PHASES + 1):
            generate_load(router, phase)
            wait_settled(router, phase)
            wait_scrapes(prom, 3)
        # Rules evaluate every second; give the last scrape one evaluation.
        time.sleep(1.5)
        yield prom
    finally:
        if prom is not None:
            stop(prom.process)
        stop(process)
        cleanup(namespace)


# --- the checks ----------------------------------------------------------------------------


def check(prometheus: Prometheus, name: str, expr: str) -> str | None:
    """What is wrong with the expression's result, if anything."""
    body = prometheus.query(expr)
    if body.get("status") != "success":
        return f"{name}: {body.get('errorType')}: {body.get('error')}\n    {expr}"
    result = body["data"]["result"]
    if not result:
        return f"{name}: no data\n    {expr}"
    # Only NaN is a quantile or ratio of nothing observed in the window: no data either.
    if all(math.isnan(float(series["value"][1])) for series in result):
        return f"{name}: only NaN\n    {expr}"
    return None


def run_checks(prometheus: Prometheus, exprs: list[tuple[str, str]], kind: str) -> None:
    problems = [p for name, expr in exprs if (p := check(prometheus, name, expr))]
    print(f"\n{kind}: {len(exprs)} expressions checked, {len(problems)} failed")
    assert not problems, f"{kind} expressions failing against Prometheus:\n" + "\n".join(problems)


def test_every_panel_query_returns_data(prometheus: Prometheus) -> None:
    exprs = [(name, substitute(expr)) for name, expr in panel_exprs()]
    assert len(exprs) >= 20
    run_checks(prometheus, exprs, "panel")


def test_every_rule_expression_parses(prometheus: Prometheus) -> None:
    problems = []
    for name, expr in rule_exprs():
        body = prometheus.query(expr)
        if body.get("status") != "success":
            problems.append(f"{name}: {body.get('error')}")
    assert not problems, problems


def test_every_rule_expression_returns_data(prometheus: Prometheus) -> None:
    exprs = [(name, strip_thresholds(expr)) for name, expr in rule_exprs()]
    run_checks(prometheus, exprs, "rule")


def test_prometheus_loaded_every_rule_healthy(prometheus: Prometheus) -> None:
    body = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()
    loaded = {rule["name"]: rule for group in body["data"]["groups"] for rule in group["rules"]}
    assert set(loaded) == {name for name, _ in rule_exprs()}
    unhealthy = {name: rule.get("lastError") for name, rule in loaded.items()}
    assert all(rule["health"] == "ok" for rule in loaded.values()), unhealthy


def test_healthy_router_fires_no_critical_alert(prometheus: Prometheus) -> None:
    body = httpx.get(f"{prometheus.url}/api/v1/alerts", timeout=10).json()
    critical = [
        alert["labels"]
        for alert in body["data"]["alerts"]
        if alert["labels"].get("severity") == "critical"
    ]
    assert not critical


def test_promtool_checks_the_rules() -> None:
    if not PROMTOOL_BIN.exists():
        pytest.fail(f"{PROMTOOL_BIN} not found: install the Debian package `prometheus`")
    result = subprocess.run(
        [str(PROMTOOL_BIN), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
