"""Fixtures for end-to-end tests: a real router process against the real Redis and RabbitMQ,
isolated by a namespace of its own and cleaned up afterwards."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
FNLIB = Path(__file__).resolve().parent / "fnlib"
GITHUB_SECRET = "it's a secret to everybody"
ADMIN_TOKEN = f"test-token-{uuid.uuid4().hex}"  # what every test router is started with
os.environ["ROUTER_ADMIN_TOKEN"] = ADMIN_TOKEN  # and what the CLI the tests run sends
REDIS_URL = os.environ.get("ROUTER_REDIS_URL", "redis://localhost:6379/0")
AMQP_URL = os.environ.get("ROUTER_AMQP_URL", "amqp://guest:guest@localhost:5672/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Router:
    """A running `trigger-router serve` and a client for it."""

    def __init__(self, namespace: str, port: int, process: subprocess.Popen[bytes], log: Path):
        self.namespace = namespace
        self.url = f"http://127.0.0.1:{port}"
        self.process = process
        self.log = log
        self.http = httpx.Client(
            base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        self.redis = redis.Redis.from_url(REDIS_URL)

    def put_function(self, name: str, **spec: Any) -> httpx.Response:
        response = self.http.put(f"/api/v1/functions/{name}", json=spec)
        assert response.status_code in (200, 201), response.text
        return response

    def put_trigger(self, name: str, **spec: Any) -> httpx.Response:
        if spec.get("type") == "webhook":
            spec.setdefault("verify", {"scheme": "none"})  # signatures have tests of their own
        response = self.http.put(f"/api/v1/triggers/{name}", json=spec)
        assert response.status_code in (200, 201), response.text
        return response

    def invocation(self, invocation_id: str, until: tuple[str, ...], timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        record = None
        while time.monotonic() < deadline:
            response = self.http.get(f"/api/v1/invocations/{invocation_id}")
            if response.status_code == 200:
                record = response.json()
                if record["status"] in until:
                    return record
            time.sleep(0.05)
        raise AssertionError(f"invocation {invocation_id} never reached {until}: {record}")

    def ledger(self, function: str) -> list[Any]:
        import json

        raw = self.redis.lrange(f"{self.namespace}:ledger:{function}", 0, -1)
        return [json.loads(item) for item in raw]

    def wait_ledger(self, function: str, count: int, timeout: float = 20) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entries = self.ledger(function)
            if len(entries) >= count:
                return entries
            time.sleep(0.05)
        raise AssertionError(f"{function} ran {len(self.ledger(function))} times, not {count}")

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample from /metrics (0 when absent)."""
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith("#"):
                continue
            sample, _, value = line.rpartition(" ")
            metric, _, rest = sample.partition("{")
            given = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
            if metric == name and given == wanted:
                return float(value)
        return 0.0


def start_router(
    namespace: str, *, output: int | None = None, **env: str
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """A `trigger-router serve`; its output goes to the returned log file, or to `output`
    (subprocess.PIPE, say) when given."""
    port = free_port()
    log = Path(f"/tmp/router-{namespace}-{port}.log")
    environment = {
        **os.environ,
        "ROUTER_NAMESPACE": namespace,
        "ROUTER_PORT": str(port),
        "ROUTER_REDIS_URL": REDIS_URL,
        "ROUTER_AMQP_URL": AMQP_URL,
        "PYTHONPATH": os.pathsep.join([str(FNLIB), str(ROOT)]),
        "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
        "ROUTER_ADMIN_TOKEN": ADMIN_TOKEN,
        "ROUTER_HANDLERS": "handlers,testfns",
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "router", "serve"],
            env=environment,
            stdout=out if output is None else output,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    return process, port, log


def logged(log: Path, *texts: str, timeout_s: float = 5.0) -> str:
    """The router's log once it holds every one of `texts` (or after `timeout_s`, for the
    caller's assertion to show): the router writes its log in batches (router.logwriter), so a
    line logged a moment ago may not be in the file yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = log.read_text()
        if all(wanted in text for wanted in texts) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def wait_ready(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 30,
    path: str = "/readyz",
) -> None:
    """Until `path` answers 200 (`/healthz`: listening, whether or not Redis and RabbitMQ are
    reached yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"router exited with {process.returncode}:\n{_said(log)}")
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"router not ready within {timeout}s:\n{_said(log)}")


def _said(log: Path) -> str:
    return log.read_text() if log.exists() else "(its output went elsewhere)"


@contextlib.contextmanager
def running_router(prefix: str, **env: Any) -> Iterator[Router]:
    """A router of its own, in a namespace of its own, stopped and cleaned up afterwards."""
    namespace = unique(prefix)
    process, port, log = start_router(namespace, **env)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
        yield Router(namespace, port, process, log)
    finally:
        if process.poll() is None:
            stop(process)
        cleanup(namespace)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cleanup(namespace: str) -> None:
    """Remove everything a namespace created in Redis and RabbitMQ."""
    client = redis.Redis.from_url(REDIS_URL)
    functions = [f.decode() for f in client.hkeys(f"{namespace}:functions")]
    keys = list(client.scan_iter(f"{namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    queues = {f"{namespace}.fn.{f}{suffix}" for f in functions for suffix in ("", ".dlq")}
    exchanges = {f"{namespace}.work", f"{namespace}.dlx", f"{namespace}-orders"}
    # Queues of functions deleted during the run and delay tiers are not in the registry any
    # more: left behind, quorum queues pile up in RabbitMQ from run to run.
    queues |= set(listed("list_queues", namespace))
    exchanges |= set(listed("list_exchanges", namespace))
    for queue in sorted(queues):
        channel.queue_delete(queue)
    for exchange in sorted(exchanges):
        channel.exchange_delete(exchange)
    connection.close()
    shutil.rmtree(f"/var/lib/trigger-router/{namespace}", ignore_errors=True)


def listed(command: str, namespace: str) -> list[str]:
    """Names `rabbitmqctl <command>` lists under the namespace; none if it cannot be asked."""
    try:
        result = subprocess.run(
            ["rabbitmqctl", "-q", command, "name"], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    names = result.stdout.split() if result.returncode == 0 else []
    return [name for name in names if name.startswith((f"{namespace}.", f"{namespace}-"))]


@pytest.fixture(scope="session")
def namespace() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def router(namespace: str) -> Iterator[Router]:
    process, port, log = start_router(namespace)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        yield Router(namespace, port, process, log)
    finally:
        stop(process)
        cleanup(namespace)


@pytest.fixture(scope="session")
def amqp() -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    yield channel
    # Fault tests restart RabbitMQ: a connection from before then is already gone.
    with contextlib.suppress(pika.exceptions.AMQPError):
        connection.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
