"""What the AMQP layer raises to the rest of the router."""


class BrokerError(Exception):
    """RabbitMQ could not do what was asked: not connected, not confirmed, or refused."""


class TopologyError(BrokerError):
    """A declaration RabbitMQ refused, such as an exchange name reserved by the broker."""
