"""The dead-letter queue reads each dead letter on its own: a malformed one (a forged header is
enough) is listed as malformed, can be purged, and is skipped by a replay, while the others
are listed, replayed and purged as usual. Listing is paged and shows large bodies as a preview
and their size."""

from __future__ import annotations

import time
import uuid

import pika
import pytest

from tests.conftest import Router, unique

Channel = pika.adapters.blocking_connection.BlockingChannel


def dead_lettered_function(router: Router, events: int) -> tuple[str, list[str]]:
    """A function with `events` sealed dead letters (each failed its only attempt)."""
    function = unique("poison")
    router.put_function(
        function, handler="testfns:fixable", isolation="thread", retry={"max_attempts": 1}
    )
    ids = []
    for n in range(events):
        queued = router.http.post(f"/api/v1/functions/{function}/invoke?mode=async", json={"n": n})
        ids.append(queued.json()["invocation_id"])
        router.invocation(ids[-1], ("dead_lettered",))
    return function, ids


def inject(
    router: Router, channel: Channel, function: str, body: bytes, headers: dict[str, object]
) -> None:
    """A message straight into the function's dead-letter queue, as anyone with access to the
    router's exchanges (or a forged header dead-lettered earlier) could put there."""
    channel.basic_publish(
        f"{router.namespace}.dlx",
        function,
        body,
        pika.BasicProperties(headers=headers, message_id=str(uuid.uuid4())),
        mandatory=True,
    )


POISON = [
    {"x-router-invocation-id": "forged"},  # no accepted-at: once a KeyError, a 500
    {"x-router-invocation-id": "forged", "x-router-accepted-at": "soon"},
    {
        "x-router-invocation-id": "f",
        "x-router-event-id": "e",
        "x-router-accepted-at": "1.0",
        "x-router-errors": "not json",
    },
    {"x-death": "not a list"},
    {"x-death": [{"exchange": ["nested"], "routing-keys": "k"}]},
]


def listing(router: Router, function: str, **query: object) -> dict[str, object]:
    response = router.http.get(f"/api/v1/functions/{function}/dlq", params=query)
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer


def test_malformed_dead_letters_poison_nothing(router: Router, amqp: Channel) -> None:
    function, ids = dead_lettered_function(router, 2)
    for headers in POISON:
        inject(router, amqp, function, b'{"poison": true}', headers)
    listed = listing(router, function)
    assert listed["count"] == 2 + len(POISON)
    messages = listed["messages"]
    assert isinstance(messages, list)
    assert [m["id"] for m in messages[:2]] == ids
    malformed = messages[2:]
    assert [m["kind"] for m in malformed] == ["malformed"] * len(POISON)
    assert all(m["malformed"] and m["id"].startswith("raw-") for m in malformed)
    assert len({m["id"] for m in malformed}) == len(POISON)
    shown = router.http.get(f"/api/v1/functions/{function}/dlq/{malformed[0]['id']}")
    assert shown.status_code == 200
    assert shown.json()["event"] == {"poison": True}
    one = router.http.post(
        f"/api/v1/functions/{function}/dlq/replay", json={"id": malformed[0]["id"]}
    )
    assert one.status_code == 409
    assert one.json()["field"] == "id"
    router.redis.set(f"{router.namespace}:fixed:{function}", "1")
    replayed = router.http.post(f"/api/v1/functions/{function}/dlq/replay", json={"all": True})
    assert replayed.status_code == 200
    assert replayed.json()["replayed"] == 2
    assert [s["id"] for s in replayed.json()["skipped"]] == [m["id"] for m in malformed]
    for invocation in ids:
        assert router.invocation(invocation, ("succeeded",))["result"] == "fixed"
    assert listing(router, function)["count"] == len(POISON)  # the malformed ones stay


def test_malformed_dead_letters_can_be_purged(router: Router, amqp: Channel) -> None:
    function, ids = dead_lettered_function(router, 1)
    inject(router, amqp, function, b"one", {"x-router-invocation-id": "forged"})
    inject(router, amqp, function, b"two", {"x-router-invocation-id": "forged"})
    messages = listing(router, function)["messages"]
    assert isinstance(messages, list)
    purged = router.http.delete(f"/api/v1/functions/{function}/dlq/{messages[1]['id']}")
    assert purged.json() == {"purged": 1}
    assert [m["id"] for m in listing(router, function)["messages"]] == [  # type: ignore[union-attr]
        ids[0],
        messages[2]["id"],
    ]
    everything = router.http.delete(f"/api/v1/functions/{function}/dlq")
    assert everything.status_code == 200
    assert everything.json() == {"purged": 2}
    assert listing(router, function)["count"] == 0


def test_listing_is_paged(router: Router, amqp: Channel) -> None:
    function, ids = dead_lettered_function(router, 5)
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        query: dict[str, object] = {"limit": 2, **({"after": after} if after else {})}
        page = listing(router, function, **query)
        assert page["count"] == 5
        seen += [m["id"] for m in page["messages"]]  # type: ignore[union-attr]
        pages += 1
        after = page["next"]  # type: ignore[assignment]
        if after is None:
            break
    assert seen == ids
    assert pages == 3
    gone = router.http.get(f"/api/v1/functions/{function}/dlq", params={"after": "nope"})
    assert gone.status_code == 404
    assert gone.json()["field"] == "after"


def test_large_dead_letters_are_listed_as_a_preview(router: Router, amqp: Channel) -> None:
    function, _ = dead_lettered_function(router, 1)
    big = b'{"blob": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    for _ in range(4):
        inject(
            router,
            amqp,
            function,
            big,
            {
                "x-death": [
                    {
                        "exchange": "shop",
                        "routing-keys": ["k"],
                        "reason": "delivery_limit",
                        "count": 20,
                    }
                ]
            },
        )
    response = router.http.get(f"/api/v1/functions/{function}/dlq")
    assert response.status_code == 200
    assert len(response.content) < 64 * 1024  # not 8 MB of bodies
    raw = response.json()["messages"][1:]
    assert [m["kind"] for m in raw] == ["raw"] * 4
    assert all(m["truncated"] and m["event"] is None for m in raw)
    assert all(m["size"] == len(big) and len(m["preview"]) == 1024 for m in raw)
    assert raw[0]["reason"] == "delivery_limit"
    full = router.http.get(f"/api/v1/functions/{function}/dlq/{raw[0]['id']}").json()
    assert full["event"]["body"] == {"blob": "x" * (2 * 1024 * 1024)}
    assert (full["event"]["exchange"], full["event"]["routing_key"]) == ("shop", "k")


@pytest.mark.parametrize("limit", ["0", "x", "10001"])
def test_bad_limits_are_refused(router: Router, limit: str) -> None:
    function, _ = dead_lettered_function(router, 0)
    response = router.http.get(f"/api/v1/functions/{function}/dlq", params={"limit": limit})
    assert response.status_code == 400
    assert response.json()["field"] == "limit"


def test_replay_of_raw_dead_letters_runs_the_amqp_event(router: Router, amqp: Channel) -> None:
    function = unique("raw")
    router.put_function(function, handler="testfns:record", isolation="thread")
    death = [{"exchange": "shop", "routing-keys": ["order.eu"], "reason": "delivery_limit"}]
    inject(router, amqp, function, b'{"order": 1}', {"x-death": death, "tenant": "acme"})
    messages = listing(router, function)["messages"]
    assert isinstance(messages, list)
    assert messages[0]["kind"] == "raw"
    replayed = router.http.post(
        f"/api/v1/functions/{function}/dlq/replay", json={"id": messages[0]["id"]}
    )
    assert replayed.json() == {"replayed": 1}
    event = router.wait_ledger(function, 1)[0]["event"]
    assert (event["body"], event["exchange"], event["routing_key"]) == (
        {"order": 1},
        "shop",
        "order.eu",
    )
    assert event["headers"] == {"tenant": "acme"}
    time.sleep(0.3)
    assert len(router.ledger(function)) == 1
