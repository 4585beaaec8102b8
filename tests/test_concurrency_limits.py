"""`concurrency.max` across replicas: slots leased in Redis, against the real Redis and RabbitMQ.

The first tests drive the leases in-process, two "replicas" (two Leases in one process) sharing
a namespace; the rest start three `trigger-router serve` processes on one namespace and read
what the handler recorded of each run (its start and end) to compute the peak overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest
import redis
from redis.asyncio import Redis

from router.leases import Leases
from router.metrics import Metrics
from router.names import Names
from router.slots import Slots, Throttled
from tests.conftest import (
    REDIS_URL,
    Router,
    cleanup,
    free_port,
    logged,
    start_router,
    stop,
    unique,
    wait_ready,
)

# ---------------------------------------------------------------------------------------------
# In-process: two replicas' leases on one function


class Replica:
    """One replica's side of a function's slots, on the shared Redis."""

    def __init__(self, namespace: str, function: str, maximum: int, **leases: Any) -> None:
        self.redis = Redis.from_url(leases.pop("url", REDIS_URL), socket_timeout=1)
        self.metrics = Metrics()
        self.leases = Leases(self.redis, Names(namespace), self.metrics, **leases)
        self.slots = Slots(function, maximum, self.metrics, self.leases)

    async def take(self, wait: bool = True) -> None:
        if not self.slots.take():
            await self.slots.acquire(wait)

    def unchecked(self) -> float:
        return self.metrics.leases_unchecked.labels(self.slots.function)._value.get()

    async def close(self) -> None:
        self.slots.stop()
        await self.redis.aclose()


def in_process(test: Callable[[str], Any]) -> None:
    namespace = unique("leases")
    try:
        asyncio.run(test(namespace))
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(f"{namespace}:*"))
        if keys:
            client.delete(*keys)


async def eventually(take: Callable[[], Any], within_s: float) -> None:
    """Try a sync take until it is granted (each refusal is a Throttled)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            await take()
            return
        except Throttled:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


def test_slots_held_by_one_replica_are_refused_to_another() -> None:
    async def run(namespace: str) -> None:
        a, b = Replica(namespace, "f", 2), Replica(namespace, "f", 2)
        await a.take()
        await a.take()
        with pytest.raises(Throttled):
            await b.take(wait=False)
        a.slots.release()  # given back once it has lingered unused
        await eventually(lambda: b.take(wait=False), within_s=2)
        with pytest.raises(Throttled):
            await b.take(wait=False)
        assert (a.slots.held, b.slots.held) == (1, 1)
        await a.close()
        await b.close()

    in_process(run)


def test_a_busy_replica_asks_redis_once_for_a_batch() -> None:
    async def run(namespace: str) -> None:
        a = Replica(namespace, "f", 4)
        takes = [asyncio.ensure_future(a.take()) for _ in range(6)]
        await asyncio.sleep(0.3)
        assert sum(t.done() for t in takes) == 4
        rounds = a.slots._rounds
        for _ in range(6):  # each release hands the slot to a waiting event: no Redis call
            a.slots.release()
            await asyncio.sleep(0)
        assert all(t.done() for t in takes)
        assert a.slots._rounds == rounds
        await a.close()

    in_process(run)


def test_a_dead_replicas_slots_expire_and_go_to_the_waiting_one() -> None:
    async def run(namespace: str) -> None:
        dead = Replica(namespace, "f", 2, ttl_s=0.5)  # never renews: as if SIGKILLed
        await dead.take()
        await dead.take()
        alive = Replica(namespace, "f", 2)
        waiting = [asyncio.ensure_future(alive.take()) for _ in range(2)]
        await asyncio.wait_for(asyncio.gather(*waiting), 5)
        assert alive.slots.held == 2
        await dead.close()
        await alive.close()

    in_process(run)


def test_a_replica_waiting_for_slots_gets_some_from_a_busy_one() -> None:
    async def run(namespace: str) -> None:
        a, b = Replica(namespace, "f", 2), Replica(namespace, "f", 2)
        renewing = [asyncio.ensure_future(r.leases.run()) for r in (a, b)]
        await a.take()
        await a.take()
        a_queue = [asyncio.ensure_future(a.take()) for _ in range(50)]
        b_waiting = asyncio.ensure_future(b.take())
        deadline = time.monotonic() + 10
        while not b_waiting.done() and time.monotonic() < deadline:
            a.slots.release()  # a's runs keep ending, and a still has events waiting
            await asyncio.sleep(0.05)
        assert b_waiting.done(), "a kept every slot while b's event waited"
        assert a.slots.in_flight + b.slots.in_flight <= 2
        for task in [*renewing, *a_queue]:
            task.cancel()
        await asyncio.gather(*renewing, *a_queue, return_exceptions=True)
        await a.close()
        await b.close()

    in_process(run)


def test_slots_rotate_to_a_third_replica_while_two_busy_ones_share_them() -> None:
    async def run(namespace: str) -> None:
        replicas = [Replica(namespace, "f", 2) for _ in range(3)]
        a, b, c = replicas
        renewing = [asyncio.ensure_future(r.leases.run()) for r in replicas]
        await a.take()
        await b.take()
        queued = [asyncio.ensure_future(r.take()) for r in (a, b) for _ in range(50)]
        c_waiting = asyncio.ensure_future(c.take())
        deadline = time.monotonic() + 10
        while not c_waiting.done() and time.monotonic() < deadline:
            for busy in (a, b):  # runs keep ending; a and b always have more events waiting
                if busy.slots.in_flight:
                    busy.slots.release()
            await asyncio.sleep(0.05)
            assert sum(r.slots.in_flight for r in replicas) <= 2
        assert c_waiting.done(), "two replicas kept the slots while a third one's event waited"
        for task in [*renewing, *queued]:
            task.cancel()
        await asyncio.gather(*renewing, *queued, return_exceptions=True)
        for replica in replicas:
            await replica.close()

    in_process(run)


def test_without_redis_slots_fail_open_at_the_per_replica_cap() -> None:
    async def run(namespace: str) -> None:
        away = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
        a = Replica(namespace, "f", 2, url=away)
        await a.take(wait=False)
        await a.take(wait=False)
        with pytest.raises(Throttled):
            await a.take(wait=False)
        assert not a.leases.checked
        assert a.unchecked() == 2
        await a.close()

    in_process(run)


# ---------------------------------------------------------------------------------------------
# Three routers on one namespace


class Cluster:
    def __init__(self, namespace: str, routers: list[Router]) -> None:
        self.namespace = namespace
        self.routers = routers
        self.redis = redis.Redis.from_url(REDIS_URL)

    def spans(self, function: str) -> list[dict[str, Any]]:
        raw = self.redis.lrange(f"{self.namespace}:spans:{function}", 0, -1)
        return [json.loads(item) for item in raw]

    def wait_spans(self, function: str, count: int, timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.spans(function)
            if len(spans) >= count:
                return spans
            time.sleep(0.1)
        raise AssertionError(f"{function} ran {len(self.spans(function))} times, not {count}")


@contextlib.contextmanager
def cluster(size: int = 3) -> Iterator[Cluster]:
    namespace = unique("replicas")
    started = [start_router(namespace) for _ in range(size)]
    try:
        routers = []
        for process, port, log in started:
            wait_ready(f"http://127.0.0.1:{port}", process, log)
            routers.append(Router(namespace, port, process, log))
        yield Cluster(namespace, routers)
    finally:
        for process, _, _ in started:
            if process.poll() is None:
                stop(process)
        cleanup(namespace)


def peak(spans: list[dict[str, Any]]) -> int:
    """The most runs at once: a sweep over starts and ends (an end first at a tie)."""
    edges = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans])
    running = highest = 0
    for _, step in edges:
        running += step
        highest = max(highest, running)
    return highest


def registered(cluster: Cluster, function: str) -> None:
    """Every replica knows the function (and consumes its queue) before the load starts."""
    deadline = time.monotonic() + 20
    for router in cluster.routers:
        while router.http.get(f"/api/v1/functions/{function}").status_code != 200:
            assert time.monotonic() < deadline, "a replica never saw the function"
            time.sleep(0.05)
    time.sleep(1)  # consumers start on the registry change


def sync_invoke(router: Router, function: str, mark: str, sleep: float) -> httpx.Response:
    return router.http.post(
        f"/api/v1/functions/{function}/invoke", json={"mark": mark, "sleep": sleep}
    )


def test_three_replicas_never_run_more_than_the_limit_and_lose_nothing(
    amqp: pika.adapters.blocking_connection.BlockingChannel,
) -> None:
    with cluster() as c:
        function, hook, exchange = unique("limit"), unique("limit-hook"), unique("limit-ex")
        first = c.routers[0]
        first.put_function(function, handler="testfns:span", concurrency={"max": 2}, timeout_s=60)
        first.put_trigger(hook, type="webhook", function=function, mode="sync")
        amqp.exchange_declare(exchange, "topic", durable=True)
        first.put_trigger(
            unique("limit-amqp"),
            type="amqp",
            function=function,
            exchange=exchange,
            exchange_type="topic",
            routing_key="limit.#",
        )
        registered(c, function)
        accepted: list[str] = []
        for i in range(24):  # async events over AMQP
            mark = f"amqp-{i}"
            body = json.dumps({"mark": mark, "sleep": 0.15}).encode()
            amqp.basic_publish(exchange, "limit.x", body, pika.BasicProperties(delivery_mode=2))
            accepted.append(mark)
        for i in range(6):  # async invokes, through every replica
            router = c.routers[i % 3]
            answer = router.http.post(
                f"/api/v1/functions/{function}/invoke?mode=async",
                json={"mark": f"async-{i}", "sleep": 0.15},
            )
            assert answer.status_code == 202, answer.text
            accepted.append(f"async-{i}")

        def sync(i: int) -> tuple[str, list[httpx.Response]]:
            """A sync call, through one replica, retried on 429 as a client would."""
            router, mark, answers = c.routers[i % 3], f"sync-{i}", []
            body = {"mark": mark, "sleep": 0.15}
            deadline = time.monotonic() + 120  # a wedged limit fails the test, not hangs it
            while not answers or answers[-1].status_code == 429:
                assert time.monotonic() < deadline, f"{mark}: 429 for 120 s"
                if answers:
                    assert int(answers[-1].headers["Retry-After"]) >= 1
                    time.sleep(0.1)
                if i % 2:
                    answers.append(sync_invoke(router, function, mark, 0.15))
                else:
                    url = f"{router.url}/hooks/{hook}"
                    answers.append(httpx.post(url, json=body, timeout=30))
            return mark, answers

        with ThreadPoolExecutor(8) as pool:
            calls = list(pool.map(sync, range(24)))
        for mark, answers in calls:
            assert answers[-1].status_code == 200, answers[-1].text
            accepted.append(mark)
        throttled = sum(len(answers) - 1 for _, answers in calls)
        spans = c.wait_spans(function, len(accepted))
        time.sleep(1)  # anything run twice would show now
        spans = c.spans(function)
        print(f"ran {len(spans)} of {len(accepted)} accepted; {throttled} 429s; peak {peak(spans)}")
        assert sorted(s["mark"] for s in spans) == sorted(accepted)  # each once, none lost
        assert peak(spans) == 2


def test_sync_calls_over_the_limit_are_throttled_on_every_replica() -> None:
    with cluster() as c:
        function, hook = unique("throttle"), unique("throttle-hook")
        a, b, third = c.routers
        a.put_function(function, handler="testfns:span", concurrency={"max": 2}, timeout_s=60)
        a.put_trigger(hook, type="webhook", function=function, mode="sync")
        registered(c, function)
        with ThreadPoolExecutor(2) as pool:
            busy = [pool.submit(sync_invoke, a, function, f"long-{i}", 3) for i in range(2)]
            deadline = time.monotonic() + 20
            while a.metric("router_concurrent_executions", function=function) < 2:
                assert time.monotonic() < deadline, "replica a never ran 2 at once"
                time.sleep(0.05)
            refused = [
                sync_invoke(b, function, "over-b", 0.1),
                httpx.post(f"{third.url}/hooks/{hook}", json={"mark": "over-c"}, timeout=30),
            ]
            for answer in refused:
                assert answer.status_code == 429, answer.text
                assert answer.headers["Retry-After"] == "1"
            assert [f.result().status_code for f in busy] == [200, 200]
        assert b.metric("router_throttles_total", function=function) == 1
        # Once a's runs end, its slots serve the other replicas (after a's linger, 50 ms).
        deadline = time.monotonic() + 5
        while sync_invoke(b, function, "after", 0.1).status_code == 429:
            assert time.monotonic() < deadline, "b never got the slots a gave back"
            time.sleep(0.05)
        assert sorted(s["mark"] for s in c.spans(function)) == ["after", "long-0", "long-1"]


def test_a_killed_replicas_slots_come_back_within_seconds() -> None:
    with cluster() as c:
        function = unique("killed")
        doomed, b, third = c.routers
        doomed.put_function(function, handler="testfns:span", concurrency={"max": 2}, timeout_s=60)
        registered(c, function)
        with ThreadPoolExecutor(2) as pool:
            for i in range(2):
                pool.submit(sync_invoke, doomed, function, f"doomed-{i}", 30)
            deadline = time.monotonic() + 20
            while doomed.metric("router_concurrent_executions", function=function) < 2:
                assert time.monotonic() < deadline, "the doomed replica never ran 2 at once"
                time.sleep(0.05)
            assert sync_invoke(b, function, "refused", 0.1).status_code == 429
            doomed.process.send_signal(signal.SIGKILL)
            doomed.process.wait()
            killed = time.time()
            # Events queued on the others wait for the slots, then run two at a time again.
            for i in range(6):
                router = (b, third)[i % 2]
                answer = router.http.post(
                    f"/api/v1/functions/{function}/invoke?mode=async",
                    json={"mark": f"after-{i}", "sleep": 1},
                )
                assert answer.status_code == 202, answer.text
            spans = [s for s in c.wait_spans(function, 6) if s["mark"].startswith("after-")]
        assert len(spans) == 6
        print(f"slots back {min(s['start'] for s in spans) - killed:.2f} s after the kill")
        assert min(s["start"] for s in spans) - killed < 10  # the lease TTL (3 s) and a margin
        assert peak(spans) == 2


# ---------------------------------------------------------------------------------------------
# Redis away: a router on a private redis-server of its own, paused and resumed


@contextlib.contextmanager
def private_redis() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="redis-"))
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "the private redis-server did not start"
            time.sleep(0.05)
    try:
        yield server, url
    finally:
        os.kill(server.pid, signal.SIGCONT)
        server.terminate()
        server.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def test_with_redis_away_replicas_fail_open_at_their_cap_and_lease_again_after() -> None:
    with private_redis() as (server, url):
        namespace = unique("away")
        process, port, log = start_router(namespace, ROUTER_REDIS_URL=url)
        try:
            wait_ready(f"http://127.0.0.1:{port}", process, log)
            router = Router(namespace, port, process, log)
            function, hook = unique("away"), unique("away-hook")
            # `nap` touches no Redis: with Redis paused only the router's leases notice.
            router.put_function(
                function,
                handler="testfns:nap",
                concurrency={"max": 5, "per_replica": 2},
            )
            router.put_trigger(hook, type="webhook", function=function, mode="sync")
            answer = httpx.post(f"{router.url}/hooks/{hook}", json={"sleep": 0}, timeout=30)
            assert answer.status_code == 200, answer.text  # leased, checked
            assert (
                router.metric("router_concurrency_leases_unchecked_total", function=function) == 0
            )

            leased = redis.Redis.from_url(url)
            held_key = f"{namespace}:concurrency:{function}:held"
            deadline = time.monotonic() + 5
            while leased.hlen(held_key):  # the unused slot goes back after its linger
                assert time.monotonic() < deadline, "the replica kept a slot it did not use"
                time.sleep(0.02)
            os.kill(server.pid, signal.SIGSTOP)  # Redis stops answering
            with ThreadPoolExecutor(3) as pool:
                calls = [
                    pool.submit(
                        httpx.post, f"{router.url}/hooks/{hook}", json={"sleep": 2}, timeout=30
                    )
                    for _ in range(3)
                ]
                statuses = sorted(call.result().status_code for call in calls)
            assert statuses == [200, 200, 429]  # the per-replica cap, unchecked
            assert (
                router.metric("router_concurrency_leases_unchecked_total", function=function) == 2
            )
            assert "concurrency leases not checked" in logged(log, "concurrency leases not")

            os.kill(server.pid, signal.SIGCONT)  # Redis is back
            deadline = time.monotonic() + 20
            while "concurrency is leased across replicas again" not in log.read_text():
                assert time.monotonic() < deadline, "the router never leased again"
                time.sleep(0.1)
            with ThreadPoolExecutor(1) as pool:
                running = pool.submit(
                    httpx.post, f"{router.url}/hooks/{hook}", json={"sleep": 2}, timeout=30
                )
                # A write the paused Redis ran late may show for a moment: wait for this run's.
                seen: list[list[bytes]] = []
                while [b"1"] not in seen and not running.done():
                    seen.append(
                        list(leased.hgetall(f"{namespace}:concurrency:{function}:held").values())
                    )
                    time.sleep(0.05)
                assert [b"1"] in seen  # this run holds a lease in Redis
                assert running.result().status_code == 200
            assert (
                router.metric("router_concurrency_leases_unchecked_total", function=function) == 2
            )
        finally:
            os.kill(server.pid, signal.SIGCONT)
            stop(process)
            cleanup(namespace)


def test_a_per_replica_cap_above_max_is_refused(router: Router) -> None:
    function = unique("cap")
    spec = {"handler": "testfns:record", "concurrency": {"max": 2, "per_replica": 3}}
    answer = router.http.put(f"/api/v1/functions/{function}", json=spec)
    assert answer.status_code == 400, answer.text
    assert "per_replica (3) must not exceed max (2)" in answer.json()["error"]
    spec["concurrency"] = {"max": 4, "per_replica": 2}
    router.put_function(function, **spec)
    stored = router.http.get(f"/api/v1/functions/{function}").json()["concurrency"]
    assert stored == {"min": 0, "max": 4, "per_replica": 2}
