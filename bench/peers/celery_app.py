"""Celery on RabbitMQ, run as `celery -A bench.peers.celery_app worker -P prefork -c 2`.

The queue is a durable quorum queue like the router's function queues; tasks are acked late
(after they ran), results are ignored, and the prefetch multiplier is Celery's default 4.
"""

from __future__ import annotations

from typing import Any

from celery import Celery  # type: ignore[import-untyped]
from kombu.entity import Exchange, Queue

from bench.peers import AMQP_URL, QUEUE, incr

app = Celery("bench_peer", broker=AMQP_URL)
app.conf.update(
    task_queues=[
        Queue(  # type: ignore[no-untyped-call]
            QUEUE,
            Exchange(QUEUE, type="direct", durable=True),  # type: ignore[no-untyped-call]
            routing_key=QUEUE,
            durable=True,
            queue_arguments={"x-queue-type": "quorum"},
        )
    ],
    task_default_queue=QUEUE,
    task_default_exchange=QUEUE,
    task_default_routing_key=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=4,
    worker_enable_remote_control=False,  # no pidbox queue left behind
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.incr")  # type: ignore[untyped-decorator]
def incr_task(document: dict[str, Any]) -> None:
    incr(str(document["key"]))
