"""Envelopes the router trusts are the ones it sealed: `x-router-*` headers from anyone who can
publish to a trigger's exchange are plain data of an AMQP event, filtered as one, with an
invocation id of its own; an envelope on the router's own exchange without a valid seal is
dead-lettered unrun. The seal's keys live in Redis, one set per namespace, cached by every
replica."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pika
import pytest
from redis.asyncio import Redis

from router.envelope import SEAL, Envelope, Unsealed, keyed, mac
from router.names import Names
from router.seal import Seal, SealError
from tests.conftest import REDIS_URL, Router, unique

BODY = b'{"n": 1}'


def forged_headers(invocation_id: str, trigger: str) -> dict[str, object]:
    return {
        "x-router-invocation-id": invocation_id,
        "x-router-event-id": "forged-event",
        "x-router-trigger": trigger,
        "x-router-accepted-at": repr(time.time()),
        "x-router-attempt": 1,
    }


def amqp_function(router: Router) -> tuple[str, str, str]:
    """A recording function with an amqp trigger whose filter wants region eu."""
    function, trigger = unique("sealed"), unique("sealed")
    exchange = f"{router.namespace}-orders"
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(
        trigger,
        function=function,
        type="amqp",
        exchange=exchange,
        routing_key=f"{function}.#",
        filter={"body": {"region": ["eu"]}},
    )
    return function, trigger, exchange


def publish(
    channel: pika.adapters.blocking_connection.BlockingChannel,
    exchange: str,
    key: str,
    body: bytes,
    headers: dict[str, object],
) -> None:
    properties = pika.BasicProperties(content_type="application/json", headers=headers)
    channel.basic_publish(exchange, key, body, properties, mandatory=True)


def wait_metric(router: Router, name: str, **labels: str) -> float:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        value = router.metric(name, **labels)
        if value:
            return value
        time.sleep(0.05)
    return 0.0


def test_forged_envelope_through_a_binding_is_filtered_as_a_plain_event(
    router: Router, amqp: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    function, trigger, exchange = amqp_function(router)
    victim = router.http.post(f"/api/v1/functions/{function}/invoke?mode=async", json={"v": 1})
    victim_id = victim.json()["invocation_id"]
    router.invocation(victim_id, ("succeeded",))
    # The filter wants eu: a forged envelope used to skip it and run under the victim's id.
    publish(amqp, exchange, f"{function}.x", b'{"region": "us"}', forged_headers(victim_id, "hook"))
    publish(amqp, exchange, f"{function}.x", b'{"region": "eu"}', forged_headers(victim_id, "hook"))
    runs = router.wait_ledger(function, 2)  # the invoke, and the eu message
    assert wait_metric(router, "router_events_filtered_total", function=function, trigger=trigger)
    time.sleep(0.5)
    runs = router.ledger(function)
    assert len(runs) == 2
    event = runs[1]["event"]
    assert event["body"] == {"region": "eu"}
    assert event["exchange"] == exchange
    assert event["headers"]["x-router-invocation-id"] == victim_id  # data, nothing more
    assert runs[1]["request_id"] != victim_id
    record = router.invocation(runs[1]["request_id"], ("succeeded",))
    assert record["trigger"] == trigger
    assert router.invocation(victim_id, ("succeeded",))["result"] == {
        "ok": True,
        "request_id": victim_id,
    }
    assert (
        router.metric("router_envelope_rejections_total", function=function, reason="forged") == 2
    )


def test_unsealed_envelope_on_the_routers_own_exchange_is_dead_lettered_unrun(
    router: Router, amqp: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    function = unique("unsealed")
    router.put_function(function, handler="testfns:record", isolation="thread")
    headers = forged_headers(str(uuid.uuid4()), "hook")
    publish(amqp, f"{router.namespace}.work", function, BODY, headers)
    publish(amqp, f"{router.namespace}.work", function, BODY, {**headers, SEAL: "0" * 32})
    labels = {"function": function, "reason": "unverified"}
    deadline = time.monotonic() + 15
    while router.metric("router_dead_letters_total", **labels) < 2:
        assert time.monotonic() < deadline, "the unsealed messages were not dead-lettered"
        time.sleep(0.05)
    assert router.ledger(function) == []
    assert router.metric("router_envelope_rejections_total", **labels) == 2
    listed = router.http.get(f"/api/v1/functions/{function}/dlq").json()
    assert [m["kind"] for m in listed["messages"]] == ["malformed", "malformed"]
    assert "seal" in listed["messages"][0]["malformed"]


def test_a_sealed_envelope_through_a_binding_is_still_only_data(
    router: Router, amqp: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    """Even a valid seal (a copied message) is trusted only on the router's own exchange."""
    function, _trigger, exchange = amqp_function(router)
    keys = router.redis.smembers(f"{router.namespace}:envelope:keys")
    key = bytes.fromhex(min(k.decode() for k in keys))
    victim = str(uuid.uuid4())
    envelope = Envelope(victim, "copied", "hook", time.time()).headers()
    body = b'{"region": "us"}'
    envelope[SEAL] = mac(keyed(key), function, envelope, body)
    publish(amqp, exchange, f"{function}.y", body, envelope)
    publish(amqp, exchange, f"{function}.y", b'{"region": "eu"}', {})
    runs = router.wait_ledger(function, 1)
    time.sleep(0.5)
    assert [r["event"]["body"] for r in router.ledger(function)] == [{"region": "eu"}]
    assert runs[0]["request_id"] != victim


def test_sealed_events_survive_retries_delay_tiers_and_a_replay(router: Router) -> None:
    function = unique("sealed-retry")
    router.put_function(
        function,
        handler="testfns:fixable",
        isolation="thread",
        retry={"max_attempts": 2, "backoff_s": 0.2, "backoff_max_s": 0.2},
    )
    queued = router.http.post(f"/api/v1/functions/{function}/invoke?mode=async", json={"n": 7})
    invocation = queued.json()["invocation_id"]
    record = router.invocation(invocation, ("dead_lettered",))
    assert record["attempt"] == 2  # the retry came back from a delay tier, sealed
    letter = router.http.get(f"/api/v1/functions/{function}/dlq/{invocation}").json()
    assert letter["kind"] == "sealed"
    assert letter["function_version"] == "$LATEST"  # the version that failed
    router.redis.set(f"{router.namespace}:fixed:{function}", "1")
    replay = router.http.post(f"/api/v1/functions/{function}/dlq/replay", json={"id": invocation})
    assert replay.json() == {"replayed": 1}
    assert router.invocation(invocation, ("succeeded",))["result"] == "fixed"


def test_keys_lost_from_redis_are_written_back(router: Router) -> None:
    key = f"{router.namespace}:envelope:keys"
    before = router.redis.smembers(key)
    assert len(before) == 1
    router.redis.delete(key)
    deadline = time.monotonic() + 15
    while not router.redis.exists(key):
        assert time.monotonic() < deadline, "the router did not write its key back"
        time.sleep(0.1)
    assert router.redis.smembers(key) == before


# --- the seal against the real Redis ------------------------------------------------------


def run(test: Callable[[Redis, Names], Awaitable[None]]) -> None:
    async def main() -> None:
        async with namespace() as (redis, names):
            await test(redis, names)

    asyncio.run(main())


@asynccontextmanager
async def namespace() -> AsyncIterator[tuple[Redis, Names]]:
    names = Names(f"test-{uuid.uuid4().hex[:10]}")
    redis = Redis.from_url(REDIS_URL)
    try:
        yield redis, names
    finally:
        await redis.delete(names.envelope_keys)
        await redis.aclose()


def sealed(seal: Seal, function: str = "fn", body: bytes = BODY) -> dict[str, object]:
    return seal.headers(Envelope("inv-1", "evt-1", "hook", 1700000000.5), function, body)


def test_replicas_of_a_namespace_share_one_key_made_once() -> None:
    async def test(redis: Redis, names: Names) -> None:
        replicas = [Seal(redis, names) for _ in range(4)]
        await asyncio.gather(*(r.load() for r in replicas))
        assert await redis.scard(names.envelope_keys) == 1
        headers = sealed(replicas[0])
        for other in replicas[1:]:
            assert other.open(headers, "fn", BODY) == Envelope(
                "inv-1", "evt-1", "hook", 1700000000.5
            )

    run(test)


@pytest.mark.parametrize(
    ("change", "function", "body"),
    [
        ({"x-router-invocation-id": "someone-else"}, "fn", BODY),
        ({"x-router-attempt": 9}, "fn", BODY),
        ({"x-router-trigger": "other-hook"}, "fn", BODY),
        ({"x-router-errors": "[]"}, "fn", BODY),
        ({}, "other-function", BODY),
        ({}, "fn", b'{"n": 2}'),
        ({SEAL: "0" * 32}, "fn", BODY),
        ({SEAL: b"\xff\xfe"}, "fn", BODY),
        ({SEAL: ["not", "text"]}, "fn", BODY),
    ],
)
def test_any_change_breaks_the_seal(change: dict[str, object], function: str, body: bytes) -> None:
    async def test(redis: Redis, names: Names) -> None:
        seal = Seal(redis, names)
        await seal.load()
        headers = {**sealed(seal), **change}
        with pytest.raises(Unsealed):
            seal.open(headers, function, body)

    run(test)


def test_a_replica_without_its_keys_trusts_nothing_and_seals_nothing() -> None:
    async def test(redis: Redis, names: Names) -> None:
        loaded = Seal(redis, names)
        await loaded.load()
        headers = sealed(loaded)
        fresh = Seal(redis, names)
        with pytest.raises(Unsealed):
            fresh.open(headers, "fn", BODY)
        with pytest.raises(SealError):
            sealed(fresh)
        assert fresh.open({"tenant": "acme"}, "fn", BODY) is None  # no envelope at all

    run(test)


def test_after_redis_lost_the_keys_replicas_learn_each_others() -> None:
    async def test(redis: Redis, names: Names) -> None:
        old = Seal(redis, names)
        await old.load()
        before = sealed(old)  # a message queued before Redis lost its data
        await redis.delete(names.envelope_keys)
        new = Seal(redis, names)  # a replica started meanwhile makes a key of its own
        await new.load()
        after = sealed(new)
        with pytest.raises(Unsealed):
            old.open(after, "fn", BODY)
        assert await old.refresh(0.0)  # writes its key back, learns the new one
        assert old.open(after, "fn", BODY) is not None
        assert await new.refresh(0.0)
        assert new.open(before, "fn", BODY) is not None
        # Both now seal with the same key.
        assert sealed(old)[SEAL] == sealed(new)[SEAL]

    run(test)


def test_forged_header_values_are_never_an_error() -> None:
    async def test(redis: Redis, names: Names) -> None:
        seal = Seal(redis, names)
        await seal.load()
        for value in (None, 3.5, b"\x00\xff", {"a": 1}, ["x"], "\ud800"):
            headers = {"x-router-invocation-id": value, SEAL: value}
            with pytest.raises(Unsealed):
                seal.open(headers, "fn", BODY)

    run(test)


def test_what_is_not_a_key_in_the_set_is_ignored() -> None:
    async def test(redis: Redis, names: Names) -> None:
        await redis.sadd(names.envelope_keys, "not hex", "abcd", "ff" * 65)
        seal = Seal(redis, names)
        with pytest.raises(SealError):  # nothing usable, and the set is not empty: no key made
            await seal.load()
        assert not seal.loaded
        await redis.sadd(names.envelope_keys, "ab" * 32)
        await seal.load()
        assert seal.open(sealed(seal), "fn", BODY) is not None

    run(test)
