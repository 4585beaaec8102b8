"""Start-up and shutdown that cannot hang: a start that fails exits at once, having consumed
nothing; a SIGTERM at any moment ends the process within the grace period plus a margin,
whatever a library or a handler's thread does with its cancellation; a background loop that
fails is logged and started again."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pika
import pytest

from router.app import build_services, start
from router.settings import Settings
from tests.conftest import (
    AMQP_URL,
    REDIS_URL,
    Router,
    cleanup,
    start_router,
    stop,
    unique,
    wait_ready,
)
from tests.faults.conftest import queue_consumers, wait_listening

GRACE_S = 2
# The grace, the shutdown's margin (4 s) and the exit's (1 s), and room for a busy machine.
EXITS_WITHIN_S = GRACE_S + 5 + 10


@contextmanager
def blackhole() -> Iterator[int]:
    """A port where connections are accepted (by the kernel) and then hear nothing: a Redis or
    RabbitMQ that is there but does not answer, the hardest kind of away."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


def terminated(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM; the exit code, or a failure if the process is still there past the bound."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=EXITS_WITHIN_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"still running {EXITS_WITHIN_S} s after SIGTERM") from None


def test_a_taken_port_ends_the_start_at_once_and_nothing_is_consumed() -> None:
    namespace, function = unique("taken"), unique("fn")
    process, port, log = start_router(namespace)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
        Router(namespace, port, process, log).put_function(function, handler="testfns:record")
        stop(process)
        queue = f"{namespace}.fn.{function}"
        _send(queue, 5)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            for _ in range(3):
                process, _port, log = start_router(namespace, ROUTER_PORT=str(busy))
                code = process.wait(timeout=30)
                text = log.read_text()
                assert code != 0
                assert f"port {busy} is in use" in text
                assert "Traceback" not in text
        assert _ready_messages(queue) == 5
        assert queue_consumers(queue) == 0
    finally:
        if process.poll() is None:
            stop(process)
        cleanup(namespace)


@pytest.mark.parametrize("dependency", ["rabbitmq", "redis"])
def test_sigterm_while_a_dependency_does_not_answer(dependency: str) -> None:
    namespace = unique("away")
    with blackhole() as port:
        variable, url = {
            "rabbitmq": ("ROUTER_AMQP_URL", f"amqp://guest:guest@127.0.0.1:{port}/"),
            "redis": ("ROUTER_REDIS_URL", f"redis://127.0.0.1:{port}/0"),
        }[dependency]
        env = {variable: url, "ROUTER_SHUTDOWN_GRACE_S": str(GRACE_S)}
        process, http_port, log = start_router(namespace, **env)
        try:
            wait_listening(http_port, process, log)
            time.sleep(1)  # well into connecting to it
            assert terminated(process) == 0, log.read_text()
        finally:
            cleanup(namespace)


def test_sigterm_at_any_moment_of_the_start() -> None:
    namespace = unique("early")
    try:
        for delay in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2.5):
            process, _port, log = start_router(namespace, ROUTER_SHUTDOWN_GRACE_S=str(GRACE_S))
            time.sleep(delay)
            code = terminated(process)
            # Before its handlers are installed, SIGTERM ends the interpreter (-15): fine too.
            assert code in (0, -signal.SIGTERM), (delay, log.read_text())
    finally:
        cleanup(namespace)


def test_a_handler_thread_that_never_ends_does_not_hold_the_exit() -> None:
    namespace, function = unique("stuck"), unique("fn")
    process, port, log = start_router(namespace, ROUTER_SHUTDOWN_GRACE_S=str(GRACE_S))
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
        router = Router(namespace, port, process, log)
        router.put_function(function, handler="testfns:hang", isolation="thread", timeout_s=1)
        invoked = router.http.post(f"/api/v1/functions/{function}/invoke", json={})
        assert invoked.status_code == 504  # timed out; its thread sleeps on (600 s)
        assert terminated(process) == 0
    finally:
        if process.poll() is None:
            process.kill()
        cleanup(namespace)


def test_a_background_loop_that_fails_is_logged_and_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    namespace = unique("loops")
    settings = Settings(namespace=namespace, redis_url=REDIS_URL, amqp_url=AMQP_URL)
    runs: list[float] = []
    again = asyncio.Event()

    async def flaky() -> None:
        runs.append(time.monotonic())
        if len(runs) == 1:
            raise RuntimeError("the usage writer broke")
        again.set()
        await asyncio.sleep(3600)

    async def main() -> None:
        svc = build_services(settings)
        svc.usage.run = flaky  # type: ignore[method-assign]
        starting = asyncio.create_task(start(svc, []))
        waiting = asyncio.ensure_future(again.wait())
        await asyncio.wait([starting, waiting], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await svc.consumers.stop()
        await svc.broker.close()
        await svc.invoker.close()
        await svc.redis.aclose()

    caplog.set_level(logging.ERROR, logger="router")
    try:
        asyncio.run(main())
    finally:
        cleanup(namespace)
    assert len(runs) == 2  # started again after it raised
    assert "the usage writer broke" in caplog.text


def _send(queue: str, count: int) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    for i in range(count):
        channel.basic_publish("", queue, b'{"n": %d}' % i, pika.BasicProperties(delivery_mode=2))
    connection.close()


def _ready_messages(queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        count: int = connection.channel().queue_declare(queue, passive=True).method.message_count
        return count
    finally:
        connection.close()
