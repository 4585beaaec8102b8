"""Fault tests' tools: a ledger of events sent and executed, and service restarts.

Each test ends by printing lost, duplicated and dead-lettered counts. Services a test stops are
always started again, even when the test fails.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from subprocess import Popen

import pika
import pytest
import redis

from tests.conftest import (
    AMQP_URL,
    FNLIB,
    REDIS_URL,
    ROOT,
    Router,
    cleanup,
    free_port,
    start_router,
    stop,
    unique,
    wait_ready,
)

REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


class Tally:
    """Event ids sent, and how many times each ran (where the runs are counted is the
    subclass's)."""

    def __init__(self) -> None:
        self.sent: set[str] = set()

    def executed(self) -> Counter[str]:
        raise NotImplementedError

    def wait_all(self, ids: set[str], timeout: float) -> Counter[str]:
        deadline = time.monotonic() + timeout
        runs = self.executed()
        while time.monotonic() < deadline and not ids <= set(runs):
            time.sleep(0.2)
            runs = self.executed()
        return runs

    def report(
        self, name: str, expected: set[str], dead_lettered: int = 0, expected_as: str = "expected"
    ) -> tuple[int, int]:
        runs = self.executed()
        lost = len(expected - set(runs))
        duplicated = sum(count - 1 for count in runs.values() if count > 1)
        print(
            f"\n[{name}] sent={len(self.sent)} {expected_as}={len(expected)} "
            f"executed={sum(runs.values())} lost={lost} duplicated={duplicated} "
            f"dead_lettered={dead_lettered}"
        )
        return lost, duplicated


class Ledger(Tally):
    """Runs appended to a file, an id a line (`testfns:ledger_entry`): it survives the Redis
    restarts some tests make."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def executed(self) -> Counter[str]:
        if not self.path.exists():
            return Counter()
        return Counter(line for line in self.path.read_text().splitlines() if line)


class RedisTally(Tally):
    """Runs counted per id in the Redis hash `testfns:tally` keeps for `function`: environments
    in process isolation have a /tmp of their own, out of a file ledger's reach."""

    def __init__(self, namespace: str, function: str) -> None:
        super().__init__()
        self.key = f"{namespace}:tally:{function}"
        self._redis = redis.Redis.from_url(REDIS_URL)

    def executed(self) -> Counter[str]:
        runs = self._redis.hgetall(self.key)
        return Counter({event_id.decode(): int(count) for event_id, count in runs.items()})


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger")


class Service:
    """A router process that a test may kill and start again in the same namespace."""

    def __init__(self, namespace: str, **env: str) -> None:
        self.namespace = namespace
        self.env = env
        self.router: Router | None = None

    def start(self) -> Router:
        self.launch()
        return self.ready()

    def launch(self) -> None:
        """Start the process, without waiting for it to be ready."""
        process, port, log = start_router(self.namespace, **self.env)
        self.router = Router(self.namespace, port, process, log)

    def ready(self) -> Router:
        assert self.router is not None
        wait_ready(self.router.url, self.router.process, self.router.log, timeout=60)
        return self.router

    def kill(self) -> None:
        assert self.router is not None
        self.router.process.kill()
        self.router.process.wait()

    def stop(self) -> None:
        """SIGTERM: a graceful drain, which ends with exit code 0."""
        assert self.router is not None
        self.router.process.terminate()
        assert self.router.process.wait(timeout=40) == 0


@pytest.fixture
def service() -> Iterator[Service]:
    svc = Service(unique("fault"), ROUTER_LOG_LEVEL="WARNING", ROUTER_SHUTDOWN_GRACE_S="20")
    try:
        yield svc
    finally:
        if svc.router is not None and svc.router.process.poll() is None:
            stop(svc.router.process)
        ensure_rabbitmq()
        ensure_redis()
        cleanup(svc.namespace)


@pytest.fixture
def replicas() -> Iterator[list[Service]]:
    """Three replicas of one namespace, started by the test (so it decides when)."""
    namespace = unique("replicas")
    services = [Service(namespace, ROUTER_LOG_LEVEL="WARNING") for _ in range(3)]
    try:
        yield services
    finally:
        for svc in services:
            if svc.router is not None and svc.router.process.poll() is None:
                stop(svc.router.process)
        cleanup(namespace)


def start_together(services: list[Service]) -> list[Router]:
    """Replicas started at once, then waited for: none has a start-up's head start."""
    for svc in services:
        svc.launch()
    return [svc.ready() for svc in services]


def publish(exchange: str, key: str, bodies: list[bytes], ids: list[str]) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    for body, message_id in zip(bodies, ids, strict=True):
        channel.basic_publish(
            exchange,
            key,
            body,
            pika.BasicProperties(
                content_type="application/json", message_id=message_id, delivery_mode=2
            ),
        )
    connection.close()


def queue_consumers(queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        count: int = connection.channel().queue_declare(queue, passive=True).method.consumer_count
        return count
    finally:
        connection.close()


def queue_messages(queue: str) -> int:
    """Messages in `queue`, ready and unacknowledged both (a passive declare counts only the
    ready ones): 0 once every delivery was settled."""
    result = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "messages"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    for line in result.stdout.splitlines():
        name, _, count = line.rpartition("\t")
        if name == queue:
            return int(count)
    raise AssertionError(f"queue {queue} not found")


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def ensure_rabbitmq() -> None:
    rabbitmqctl("start_app")
    rabbitmqctl("await_startup")


def redis_up() -> bool:
    result = subprocess.run(["redis-cli", "-p", "6379", "ping"], capture_output=True, text=True)
    return result.stdout.strip() == "PONG"


def ensure_redis() -> None:
    if not redis_up():
        os.makedirs("/var/lib/redis", exist_ok=True)
        os.makedirs("/var/log/redis", exist_ok=True)
        subprocess.run(REDIS_START, check=True, timeout=30)
    deadline = time.monotonic() + 20
    while not redis_up():
        assert time.monotonic() < deadline, "Redis did not come back"
        time.sleep(0.1)


def restart_redis() -> None:
    subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], capture_output=True)
    deadline = time.monotonic() + 10
    while redis_up() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # a real outage, not a blink
    ensure_redis()


def start_limited(namespace: str, nofile: int, **env: str) -> tuple[Popen[bytes], int, Path]:
    """`start_router` with the open-file limit (soft and hard) set to `nofile`, which the
    router then cannot raise."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    port = free_port()
    log = Path(f"/tmp/router-{namespace}-{port}.log")
    environment = {
        **os.environ,
        "ROUTER_NAMESPACE": namespace,
        "ROUTER_PORT": str(port),
        "ROUTER_REDIS_URL": REDIS_URL,
        "ROUTER_AMQP_URL": AMQP_URL,
        "PYTHONPATH": os.pathsep.join([str(FNLIB), str(ROOT)]),
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "router", "serve"],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            preexec_fn=limit,
        )
    return process, port, log


def wait_listening(port: int, process: Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Until the HTTP server answers, whether or not Redis and RabbitMQ are reached."""
    wait_ready(f"http://127.0.0.1:{port}", process, log, timeout, path="/healthz")
