"""Every Redis key and AMQP name the router uses, in one place, all under the namespace."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    namespace: str

    # Redis
    @property
    def functions(self) -> str:
        return f"{self.namespace}:functions"

    @property
    def triggers(self) -> str:
        return f"{self.namespace}:triggers"

    @property
    def versions(self) -> str:
        """Published versions of every function, fields `{function}:{number}` (immutable)."""
        return f"{self.namespace}:versions"

    @property
    def aliases(self) -> str:
        """Aliases of every function, fields `{function}:{alias}`."""
        return f"{self.namespace}:aliases"

    @property
    def published(self) -> str:
        """The last version number published per function (numbers are never reused)."""
        return f"{self.namespace}:published"

    @property
    def function_urls(self) -> str:
        """Function URL configs (Lambda API), fields `{function}` or `{function}:{alias}`."""
        return f"{self.namespace}:function-urls"

    @property
    def registry_version(self) -> str:
        return f"{self.namespace}:registry:version"

    @property
    def registry_channel(self) -> str:
        return f"{self.namespace}:registry:changed"

    def invocation(self, invocation_id: str) -> str:
        return f"{self.namespace}:invocation:{invocation_id}"

    def delivery(self, trigger: str, delivery_id: str) -> str:
        return f"{self.namespace}:delivery:{trigger}:{delivery_id}"

    def logs(self, function: str) -> str:
        """A stream of the function's invocation output, newest last."""
        return f"{self.namespace}:logs:{function}"

    def usage(self, hour: str) -> str:
        """Usage counters of one hour (`YYYYMMDDHH`, UTC), fields `{function}:{counter}`."""
        return f"{self.namespace}:usage:{hour}"

    def rate_limit(self, trigger: str) -> str:
        return f"{self.namespace}:ratelimit:{trigger}"

    def concurrency_keys(self, function: str) -> tuple[str, str, str]:
        """A function's slot leases (router.leases): slots held per replica (a hash), slots
        asked for and not granted per replica (a hash), each replica's lease expiry (a zset)."""
        prefix = f"{self.namespace}:concurrency:{function}"
        return f"{prefix}:held", f"{prefix}:wants", f"{prefix}:expiry"

    def code(self, digest: str) -> str:
        """A code bundle's zip, by the hex SHA-256 of its bytes (stored once, shared)."""
        return f"{self.namespace}:code:{digest}"

    def idempotency(self, function: str, event_id: str) -> str:
        return f"{self.namespace}:idempotency:{function}:{event_id}"

    def schedule(self, trigger: str) -> str:
        """A schedule trigger's ticks, shared by every replica (a hash): `anchor` (where a rate
        counts from), `cursor` (the latest tick claimed or passed over) and `t:{tick}` (the
        lease of a claimed tick until RabbitMQ confirmed its event)."""
        return f"{self.namespace}:schedule:{trigger}"

    @property
    def envelope_keys(self) -> str:
        """A set of the keys that seal the router's envelopes; the smallest one signs."""
        return f"{self.namespace}:envelope:keys"

    # AMQP
    @property
    def work_exchange(self) -> str:
        """Direct exchange routing to function queues by function name (async webhooks, retries)."""
        return f"{self.namespace}.work"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.namespace}.dlx"

    def delay(self, tier_ms: int) -> str:
        """Exchange and queue of one delay tier: held for the tier's TTL, then back to work."""
        return f"{self.namespace}.delay.{tier_ms}"

    def queue(self, function: str) -> str:
        return f"{self.namespace}.fn.{function}"

    def dead_letter_queue(self, function: str) -> str:
        return f"{self.namespace}.fn.{function}.dlq"


# The exchange names above, in any namespace (namespaces have no dots): a trigger binding one
# of them would read another namespace's events, or the router's own.
ROUTER_EXCHANGE_SUFFIXES = (".work", ".dlx")
ROUTER_EXCHANGE_INFIX = ".delay."


def is_router_exchange(name: str) -> bool:
    """Whether `name` is, or could be, an exchange of the router in some namespace."""
    return name.endswith(ROUTER_EXCHANGE_SUFFIXES) or ROUTER_EXCHANGE_INFIX in name
