"""RabbitMQ, owned in one place: the connection supervisor, the topology, the pipelined
confirmed publisher, the consumers and their batched acks. The rest of the router sees the
`Broker`, the `Delivery` a consumer hands over and the `Settlement` it applies."""

from router.amqp.broker import Broker
from router.amqp.consumer import Consumers
from router.amqp.delivery import (
    ACK,
    REQUEUE,
    Ack,
    Copy,
    DeadLetter,
    Delivery,
    Requeue,
    Retry,
    Settlement,
)
from router.amqp.errors import BrokerError, TopologyError
from router.amqp.topology import QueueState

__all__ = [
    "ACK",
    "REQUEUE",
    "Ack",
    "Broker",
    "BrokerError",
    "Consumers",
    "Copy",
    "DeadLetter",
    "Delivery",
    "QueueState",
    "Requeue",
    "Retry",
    "Settlement",
    "TopologyError",
]
