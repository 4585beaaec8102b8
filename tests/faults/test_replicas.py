"""Delivery under faults with three replicas of one namespace: one SIGKILLed and one SIGTERMed
mid-stream, the third finishes alone (the dead are not restarted, so nothing they held can be
finished by themselves). Nothing accepted is lost, and only what the killed replica held
unacknowledged, its prefetch at most, runs twice.

Each test prints its ledger: sent, accepted (or expected), executed, lost, duplicated.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable

import httpx

from router.settings import Settings
from tests.conftest import Router, unique
from tests.faults.conftest import (
    RedisTally,
    Service,
    publish,
    queue_consumers,
    queue_messages,
    start_together,
)

EVENTS = 5000
REPLICAS = 3
# Per replica (concurrency.per_replica), so that every replica drains at once: 12 process
# environments on the machine at most, and concurrency.max (across replicas) 12.
CONCURRENCY = 4
SENDERS = 6  # webhook sender threads


def test_amqp_drain_one_replica_killed_one_terminated(replicas: list[Service]) -> None:
    first = replicas[0].start()
    function, exchange = unique("fn"), f"{first.namespace}-orders"
    tally = RedisTally(first.namespace, function)
    tally_function(first, function)
    first.put_trigger(
        unique("tr"), function=function, type="amqp", exchange=exchange, routing_key="fault.#"
    )
    replicas[0].stop()
    ids = [f"amqp-{i}" for i in range(EVENTS)]
    tally.sent.update(ids)
    bodies = [json.dumps({"id": event_id}).encode() for event_id in ids]
    publish(exchange, "fault.created", bodies, ids)  # all queued before any replica consumes
    survivor, killed, terminated = start_together(replicas)
    held = prefetch(replicas[1], killed, function)
    queue = f"{first.namespace}.fn.{function}"

    wait_for(lambda: all(ran(r, function) for r in (survivor, killed, terminated)), "all run")
    wait_for(lambda: executed(tally) >= EVENTS * 0.3, "a third drained")
    killed_at = executed(tally)
    assert killed_at < EVENTS, "killed mid-drain"
    replicas[1].kill()
    wait_for(lambda: executed(tally) >= EVENTS * 0.6, "two thirds drained")
    terminated_at = executed(tally)
    assert terminated_at < EVENTS, "terminated mid-drain"
    replicas[2].stop()

    tally.wait_all(set(ids), timeout=90)
    wait_for(lambda: queue_messages(queue) == 0, "every delivery settled", timeout=30)
    lost, duplicated = tally.report("amqp, 3 replicas, 1 killed 1 terminated", set(ids))
    print(
        f"[amqp] killed at executed={killed_at}, terminated at executed={terminated_at}; "
        f"killed replica's prefetch={held}"
    )
    assert lost == 0
    assert duplicated <= held
    assert set(tally.executed()) == set(ids)
    assert queue_consumers(queue) == 1  # the survivor's, still consuming


def test_async_webhooks_round_robin_one_replica_killed_one_terminated(
    replicas: list[Service],
) -> None:
    routers = start_together(replicas)
    function, trigger = unique("fn"), unique("hook")
    tally = RedisTally(routers[0].namespace, function)
    tally_function(routers[0], function)
    routers[0].put_trigger(trigger, function=function, type="webhook", mode="async")
    wait_for(lambda: all(routes_current(r) for r in routers), "every replica routes the hook")
    held = prefetch(replicas[1], routers[1], function)
    sender = RoundRobin([r.url for r in routers], trigger, tally)
    threads = [threading.Thread(target=sender.send) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: all(ran(r, function) for r in routers), "all run")
        wait_for(lambda: len(sender.accepted) >= EVENTS * 0.3, "a third accepted")
        replicas[1].kill()
        sender.dead.add(1)
        wait_for(lambda: len(sender.accepted) >= EVENTS * 0.6, "two thirds accepted")
        replicas[2].stop()
        sender.dead.add(2)
        for thread in threads:
            thread.join()  # the rest go to the survivor and to the dead replicas' ports
    finally:
        sender.done.set()  # cuts the sending short only when the test failed before its end
        for thread in threads:
            thread.join()

    tally.wait_all(sender.accepted, timeout=90)
    queue = f"{routers[0].namespace}.fn.{function}"
    wait_for(lambda: queue_messages(queue) == 0, "every delivery settled", timeout=30)
    lost, duplicated = tally.report(
        "webhooks, 3 replicas, 1 killed 1 terminated", sender.accepted, expected_as="accepted"
    )
    unaccepted = set(tally.executed()) - sender.accepted
    survivor, killed, terminated = (sender.answers_of(replica) for replica in range(3))
    print(
        f"[webhooks] answers: survivor {dict(survivor)}, killed {dict(killed)}, terminated "
        f"{dict(terminated)}; sent to a replica already gone {dict(sender.to_dead)}; run "
        f"without a 202: {len(unaccepted)}; killed replica's prefetch={held}"
    )
    assert len(tally.sent) == EVENTS
    assert lost == 0
    assert duplicated <= held
    assert set(survivor) == {"202"}  # the survivor accepted all it was sent
    assert set(killed) | set(terminated) <= {"202", "503", "refused", "cut off"}
    assert sender.to_dead["refused"] > 0  # the dead replicas' ports were tried
    assert "202" not in sender.to_dead  # and nothing sent there was counted as accepted
    # What ran without a 202 was cut off by the SIGKILL after its publish, or answered 503
    # (a publish that timed out may be confirmed later). The SIGTERMed replica answered every
    # request it had read: none of its events ran unanswered.
    assert unaccepted <= sender.sent_to(1, "cut off") | sender.with_answer("503")


class RoundRobin:
    """Async webhook events sent to the replicas in turn, from several threads, until EVENTS
    were sent. Only a 202 counts as accepted. Other answers: a status, `refused` (the
    connection was refused: the request never reached a replica) or `cut off` (the connection
    broke before an answer came)."""

    def __init__(self, urls: list[str], trigger: str, tally: RedisTally) -> None:
        self.urls = urls
        self.trigger = trigger
        self.tally = tally
        self.accepted: set[str] = set()
        self.dead: set[int] = set()  # replicas whose process had exited (the test says when)
        self.to_dead: Counter[str] = Counter()  # answers to requests sent to those
        self.done = threading.Event()
        self._answers: dict[str, tuple[int, str]] = {}  # event id: (replica, answer)
        self._numbers = itertools.count()
        self._lock = threading.Lock()

    def send(self) -> None:
        clients = [httpx.Client(base_url=url, timeout=30) for url in self.urls]
        try:
            while not self.done.is_set() and (n := next(self._numbers)) < EVENTS:
                event_id = f"hook-{n}"
                with self._lock:
                    self.tally.sent.add(event_id)
                replica = n % len(clients)
                was_dead = replica in self.dead
                answer = self._post(clients[replica], event_id)
                self._note(event_id, replica, answer, was_dead)
        finally:
            for client in clients:
                client.close()

    def answers_of(self, replica: int) -> Counter[str]:
        return Counter(answer for r, answer in self._answers.values() if r == replica)

    def sent_to(self, replica: int, answer: str) -> set[str]:
        return {e for e, (r, a) in self._answers.items() if r == replica and a == answer}

    def with_answer(self, answer: str) -> set[str]:
        return {e for e, (_, a) in self._answers.items() if a == answer}

    def _post(self, client: httpx.Client, event_id: str) -> str:
        try:
            response = client.post(f"/hooks/{self.trigger}", json={"id": event_id})
        except httpx.ConnectError:
            return "refused"
        except httpx.TransportError:
            return "cut off"
        return str(response.status_code)

    def _note(self, event_id: str, replica: int, answer: str, was_dead: bool) -> None:
        with self._lock:
            self._answers[event_id] = (replica, answer)
            if answer == "202":
                self.accepted.add(event_id)
            if was_dead:
                self.to_dead[answer] += 1


def tally_function(router: Router, function: str) -> None:
    router.put_function(
        function,
        handler="testfns:tally",
        isolation="process",
        timeout_s=30,
        concurrency={"min": 0, "max": CONCURRENCY * REPLICAS, "per_replica": CONCURRENCY},
    )


def prefetch(replica: Service, router: Router, function: str) -> int:
    """What a replica can hold unacknowledged for the function: its per-replica cap
    (concurrency.per_replica, else max) times the prefetch multiplier of the replica's settings
    (router.amqp.consumer)."""
    concurrency = router.http.get(f"/api/v1/functions/{function}").json()["concurrency"]
    settings = Settings.from_env({**os.environ, **replica.env})
    cap = concurrency.get("per_replica") or concurrency["max"]
    return int(cap) * settings.prefetch_multiplier


def executed(tally: RedisTally) -> int:
    return sum(tally.executed().values())


def ran(router: Router, function: str) -> bool:
    return router.metric("router_invocations_total", function=function, outcome="succeeded") > 0


def routes_current(router: Router) -> bool:
    """The replica routes from the registry as it is in Redis now."""
    current = int(router.redis.get(f"{router.namespace}:registry:version") or 0)
    return router.metric("router_registry_version") >= current > 0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.05)
