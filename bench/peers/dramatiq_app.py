"""Dramatiq on RabbitMQ, run as `dramatiq bench.peers.dramatiq_app -p 2 -t 8`.

Dramatiq declares classic queues; this broker only adds `x-queue-type: quorum` to the queues
it declares (the actor's queue and its delay queue), so the broker does the same work as for
the router's quorum queues. Messages are acked after the actor ran (Dramatiq's default).
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from bench.peers import AMQP_URL, QUEUE, incr


class QuorumRabbitmqBroker(RabbitmqBroker):
    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        arguments: dict[str, Any] = super()._build_queue_arguments(  # type: ignore[no-untyped-call]
            queue_name
        )
        arguments["x-queue-type"] = "quorum"
        return arguments


broker = QuorumRabbitmqBroker(url=AMQP_URL)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="bench_incr", queue_name=QUEUE, max_retries=0)
def incr_actor(document: dict[str, Any]) -> None:
    incr(str(document["key"]))
