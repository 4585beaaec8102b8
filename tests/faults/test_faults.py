"""Delivery under faults, against the real services: nothing acknowledged is lost.

Each test sends events with unique ids, lets the handler append each executed id to a ledger
file, breaks something on the way, and ends by printing lost / duplicated / dead-lettered.
"""

from __future__ import annotations

import itertools
import json
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import unique
from tests.faults.conftest import (
    Ledger,
    Service,
    ensure_rabbitmq,
    publish,
    queue_consumers,
    rabbitmqctl,
    restart_redis,
)


def events(
    ledger: Ledger, count: int, prefix: str, **extra: object
) -> tuple[list[bytes], list[str]]:
    ids = [f"{prefix}-{i}" for i in range(count)]
    ledger.sent.update(ids)
    bodies = [json.dumps({"id": i, "ledger": str(ledger.path), **extra}).encode() for i in ids]
    return bodies, ids


def amqp_function(service: Service, concurrency: int = 10, **spec: object) -> tuple[str, str]:
    """A function fed by an amqp trigger on an exchange of the test's own."""
    assert service.router is not None
    function, exchange = unique("fn"), f"{service.namespace}-orders"
    service.router.put_function(
        function,
        handler="testfns:ledger_entry",
        isolation="thread",
        timeout_s=30,
        concurrency={"min": 0, "max": concurrency},
        **spec,
    )
    service.router.put_trigger(
        unique("tr"), function=function, type="amqp", exchange=exchange, routing_key="fault.#"
    )
    return function, exchange


def test_sigkill_while_draining_loses_nothing(service: Service, ledger: Ledger) -> None:
    router = service.start()
    _function, exchange = amqp_function(service, concurrency=10)
    stop_gracefully(router.process)
    bodies, ids = events(ledger, 5000, "kill")
    publish(exchange, "fault.created", bodies, ids)  # 5,000 queued while no router runs
    router = service.start()
    deadline = time.monotonic() + 60
    while sum(ledger.executed().values()) < 1000:
        assert time.monotonic() < deadline, "the router did not start draining"
        time.sleep(0.05)
    service.kill()  # SIGKILL mid-drain: in-flight messages were never acked
    service.start()
    runs = ledger.wait_all(set(ids), timeout=120)
    lost, duplicated = ledger.report("sigkill", set(ids))
    assert lost == 0
    assert duplicated <= 20  # at most what was held: prefetch = concurrency.max x multiplier 2
    assert set(runs) == set(ids)


def test_rabbitmq_restart_under_webhooks(service: Service, ledger: Ledger) -> None:
    router = service.start()
    function, trigger = unique("fn"), unique("hook")
    router.put_function(function, handler="testfns:ledger_entry", isolation="thread")
    router.put_trigger(trigger, function=function, type="webhook", mode="async")
    accepted: set[str] = set()
    answers: list[tuple[float, int]] = []
    done = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=router.url, timeout=30) as client:
            n = 0
            while not done.is_set():
                event_id = f"hook-{n}"
                n += 1
                ledger.sent.add(event_id)
                # When it was sent, not when the answer was read: on a loaded machine an answer
                # confirmed before the outage can be read after it began.
                sent_at = time.monotonic()
                response = client.post(
                    f"/hooks/{trigger}", json={"id": event_id, "ledger": str(ledger.path)}
                )
                answers.append((sent_at, response.status_code))
                if response.status_code == 202:
                    accepted.add(event_id)
                elif response.status_code != 503:
                    raise AssertionError(f"unexpected {response.status_code}: {response.text}")
                else:
                    assert response.headers["Retry-After"]
                time.sleep(0.01)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        time.sleep(1.5)
        rabbitmqctl("stop_app")  # returns once the broker is down
        outage_started = time.monotonic()
        time.sleep(4)
        outage_ended = time.monotonic()
        ensure_rabbitmq()
        time.sleep(8)  # the router reconnects (aio-pika retries every 5 s) and takes 202s again
    finally:
        done.set()
        sender.join()
        ensure_rabbitmq()
    during = [status for at, status in answers if outage_started < at < outage_ended]
    assert during, "webhooks were answered during the outage"
    assert 202 not in during, "no 202 without a publisher confirm"
    assert any(status == 202 for at, status in answers if at > outage_ended + 6), (
        "async webhooks are accepted again after the broker returned"
    )
    ledger.wait_all(accepted, timeout=60)
    lost, _ = ledger.report("rabbitmq-restart", accepted)
    assert lost == 0
    deadline = time.monotonic() + 20
    while queue_consumers(f"{service.namespace}.fn.{function}") < 1:
        assert time.monotonic() < deadline, "the consumer was not restored"
        time.sleep(0.2)


def test_redis_restart_under_load(service: Service, ledger: Ledger) -> None:
    router = service.start()
    function, exchange = amqp_function(service, concurrency=5)
    first, first_ids = events(ledger, 300, "before", sleep=0.01)
    publish(exchange, "fault.created", first, first_ids)
    time.sleep(0.5)
    restart_redis()  # Redis comes back empty: no persistence here
    second, second_ids = events(ledger, 300, "after", sleep=0.01)
    publish(exchange, "fault.created", second, second_ids)  # routed from the in-memory registry
    ledger.wait_all(ledger.sent, timeout=60)
    lost, duplicated = ledger.report("redis-restart", ledger.sent)
    assert lost == 0
    assert duplicated == 0
    deadline = time.monotonic() + 10
    while router.http.get(f"/api/v1/functions/{function}").status_code != 200:
        assert time.monotonic() < deadline, "the registry was not restored into Redis"
        time.sleep(0.1)
    later = unique("fn")  # a change made after recovery is applied
    router.put_function(later, handler="testfns:record", isolation="thread")
    assert router.http.post(f"/api/v1/functions/{later}/invoke", json={}).status_code == 200


def test_poison_event_costs_only_its_own_retries(service: Service, ledger: Ledger) -> None:
    router = service.start()
    function, exchange = amqp_function(
        service, retry={"max_attempts": 3, "backoff_s": 0.2, "backoff_max_s": 0.4}
    )
    bodies, ids = events(ledger, 1000, "healthy")
    poison = json.dumps({"id": "poison", "ledger": str(ledger.path)}).encode()
    publish(
        exchange,
        "fault.created",
        [*bodies[:500], poison, *bodies[500:]],
        [*ids[:500], "poison", *ids[500:]],
    )
    ledger.wait_all(set(ids), timeout=60)
    deadline = time.monotonic() + 20
    dlq: dict[str, object] = {}
    while time.monotonic() < deadline:
        dlq = router.http.get(f"/api/v1/functions/{function}/dlq").json()
        if dlq["count"] == 1:
            break
        time.sleep(0.1)
    lost, duplicated = ledger.report("poison", set(ids), dead_lettered=int(dlq["count"]))
    assert lost == 0
    assert duplicated == 0
    attempts = Path(str(ledger.path) + ".poison").read_text().split()
    assert len(attempts) == 3
    gaps = [float(b) - float(a) for a, b in itertools.pairwise(attempts)]
    assert all(gap < 0.4 + 0.5 for gap in gaps), gaps  # backoff capped at backoff_max_s
    assert dlq["count"] == 1
    letter = dlq["messages"][0]  # type: ignore[index]
    assert [e["type"] for e in letter["errors"]] == ["ValueError"] * 3


def test_sigterm_drains_gracefully(service: Service, ledger: Ledger) -> None:
    router = service.start()
    _function, exchange = amqp_function(service, concurrency=5)
    bodies, ids = events(ledger, 300, "term", sleep=0.05)
    publish(exchange, "fault.created", bodies, ids)
    deadline = time.monotonic() + 30
    while sum(ledger.executed().values()) < 50:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    router.process.send_signal(signal.SIGTERM)
    code = router.process.wait(timeout=30)
    assert code == 0
    assert time.monotonic() - started < 20 + 5  # within the grace period
    service.start()
    ledger.wait_all(set(ids), timeout=60)
    lost, duplicated = ledger.report("sigterm", set(ids))
    assert lost == 0
    assert duplicated == 0


def test_sigterm_returns_prefetched_messages_waiting_for_a_slot(
    service: Service, ledger: Ledger
) -> None:
    router = service.start()
    _function, exchange = amqp_function(service, concurrency=1)  # prefetch 2: 1 runs, 1 waits
    bodies, ids = events(ledger, 3, "waiting", sleep=3)
    publish(exchange, "fault.created", bodies, ids)
    time.sleep(1)  # the first is running, the second is prefetched and waiting for the slot
    started = time.monotonic()
    router.process.send_signal(signal.SIGTERM)
    assert router.process.wait(timeout=30) == 0
    # The running one finishes (about 2 s left); the waiting one is not run in the grace period.
    assert time.monotonic() - started < 3 + 2
    assert sum(ledger.executed().values()) == 1
    service.start()
    ledger.wait_all(set(ids), timeout=60)
    lost, duplicated = ledger.report("sigterm-waiting", set(ids))
    assert lost == 0
    assert duplicated == 0


def test_replay_after_fixing_the_function(service: Service, ledger: Ledger) -> None:
    router = service.start()
    function = unique("fn")
    router.put_function(
        function,
        handler="testfns:fixable",
        isolation="thread",
        retry={"max_attempts": 2, "backoff_s": 0},
    )
    invocation = router.http.post(
        f"/api/v1/functions/{function}/invoke?mode=async", json={"order": 1}
    ).json()["invocation_id"]
    router.invocation(invocation, ("dead_lettered",))
    router.redis.set(f"{service.namespace}:fixed:{function}", "1")  # deploy the fix
    assert router.http.post(
        f"/api/v1/functions/{function}/dlq/replay", json={"all": True}
    ).json() == {"replayed": 1}
    record = router.invocation(invocation, ("succeeded",))
    runs = [r for r in router.ledger(function) if r["event"] == {"order": 1}]
    print(f"\n[replay] runs={len(runs)} result={record['result']} dead_lettered=1")
    assert len(runs) == 3  # two failed attempts, then exactly one success
    time.sleep(0.5)
    assert len([r for r in router.ledger(function) if r["event"] == {"order": 1}]) == 3
    assert router.http.get(f"/api/v1/functions/{function}/dlq").json()["count"] == 0


def stop_gracefully(process: object) -> None:
    from subprocess import Popen

    assert isinstance(process, Popen)
    process.terminate()
    assert process.wait(timeout=30) == 0
