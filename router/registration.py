"""Registry writes with their checks and side effects (queues, bindings, schedules), shared by
the admin API, the Lambda API and `@router.function`.

Each write checks everything before it changes anything (the spec, the handler's module, the
trigger's function, the AMQP topology), so nothing is ever half-registered.
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.exceptions import RedisError

from router import loader, runtimes
from router.amqp import Broker, BrokerError, TopologyError
from router.bundles import Bundle
from router.registry import NotFound, Registry, RegistryError, Trigger
from router.specs import (
    REDACTED,
    AliasSpec,
    AmqpTrigger,
    FunctionSpec,
    ScheduleTrigger,
    WebhookTrigger,
    split_target,
)
from router.ticks import TickLedger

log = logging.getLogger("router.registration")


class Unavailable(RegistryError):
    status = 503


class Registration:
    def __init__(
        self,
        registry: Registry,
        broker: Broker,
        packages: tuple[str, ...],
        ticks: TickLedger | None = None,
    ) -> None:
        self._registry = registry
        self._store = registry.store
        self._broker = broker
        self._packages = packages  # where handlers on the router's own path may come from
        self._ticks = ticks  # schedule triggers' shared state

    async def put_function(
        self,
        name: str,
        spec: FunctionSpec,
        bundle: Bundle | None = None,
        expect: int | None = None,
    ) -> tuple[FunctionSpec, bool]:
        """Create or replace; `expect` 0 only creates, N only replaces change N."""
        if name.endswith(".dlq"):
            raise RegistryError(
                f"invalid name {name!r}: a function's queue would be the dead-letter queue of "
                f"{name.removesuffix('.dlq')!r}; choose a name not ending in '.dlq'",
                "name",
            )
        spec = await self._completed(name, spec)
        # Finding an interpreter or a module touches the disk (and may start a process).
        await asyncio.to_thread(self._check_runnable, spec, bundle)
        try:
            await self._broker.declare_function(name)
        except Exception as exc:  # aiormq raises its own kinds (or RuntimeError) while away
            raise _unavailable("RabbitMQ could not declare the function's queues", exc) from exc
        stored, created = await self._store.put_function(
            name, spec, None if bundle is None else bundle.data, expect
        )
        await self._registry.refresh()
        return stored, created

    async def _completed(self, name: str, spec: FunctionSpec) -> FunctionSpec:
        """Write-only `env` values sent back redacted keep the stored value; code on the
        router's path is fingerprinted, so a changed file makes a new version."""
        changes: dict[str, object] = {}
        if REDACTED in spec.env.values():
            try:
                stored = (await self._store.get_function(name)).env
            except NotFound:
                stored = {}
            env = {}
            for key, value in spec.env.items():
                if value == REDACTED and key not in stored:
                    raise RegistryError(f"env {key} is redacted; send its value", f"env.{key}")
                env[key] = stored[key] if value == REDACTED else value
            changes["env"] = env
        if spec.code is None:
            changes["source_sha256"] = loader.source_sha256(spec.handler)
        return spec.model_copy(update=changes) if changes else spec

    def _check_runnable(self, spec: FunctionSpec, bundle: Bundle | None) -> None:
        try:
            runtimes.check(spec.runtime)
        except runtimes.RuntimeUnavailable as exc:
            raise RegistryError(str(exc), "runtime") from None
        if spec.code is None:
            self._check_own_handler(spec.handler)
        elif (
            spec.family == "provided" and bundle and not bundle.contents.has_executable("bootstrap")
        ):
            raise RegistryError(
                "a provided runtime runs the bundle's `bootstrap`: the zip needs an executable "
                "file named bootstrap at its root",
                "code",
            )

    def _check_own_handler(self, handler: str) -> None:
        """Code on the router's path runs only from the packages the operator named
        (ROUTER_HANDLERS): no `pty:spawn` or `shutil:rmtree` as a function."""
        module = (loader.split(handler) or ("",))[0]
        if not any(module == p or module.startswith(p + ".") for p in self._packages):
            allowed = ", ".join(self._packages) or "(none)"
            raise RegistryError(
                f"handler module {module!r} is not in the packages ROUTER_HANDLERS allows "
                f"({allowed}); upload code to run anything else",
                "handler",
            )
        if not loader.module_exists(handler):
            raise RegistryError(f"handler module of {handler!r} cannot be found", "handler")
        try:  # code the router can see is checked now, not at the first invocation
            loader.load(handler)
        except loader.HandlerError as exc:
            raise RegistryError(f"{exc} ({exc.kind})", "handler") from None

    async def delete_function(self, name: str) -> None:
        await self._store.delete_function(name)
        await self._registry.refresh()

    async def publish_version(
        self,
        name: str,
        description: str | None = None,
        code_sha256: str | None = None,
        expect: int | None = None,
    ) -> tuple[str, FunctionSpec, bool]:
        published = await self._store.publish_version(name, description, code_sha256, expect)
        await self._registry.refresh()
        return published

    async def delete_version(self, name: str, number: str) -> None:
        await self._store.delete_version(name, number)
        await self._registry.refresh()

    async def put_alias(
        self,
        name: str,
        alias: str,
        spec: AliasSpec,
        *,
        create: bool | None = None,
        expect: int | None = None,
    ) -> tuple[AliasSpec, bool]:
        stored = await self._store.put_alias(name, alias, spec, create=create, expect=expect)
        await self._registry.refresh()
        return stored

    async def delete_alias(self, name: str, alias: str) -> None:
        await self._store.delete_alias(name, alias)
        await self._registry.refresh()

    async def put_trigger(self, name: str, trigger: Trigger) -> bool:
        function = split_target(trigger.function)[0]
        try:
            await self._store.get_function(function)
        except RegistryError:
            raise RegistryError(
                f"function {function!r} does not exist; create it first", "function"
            ) from None
        previous = (await self._store.load()).triggers.get(name)
        trigger = _unredacted(trigger, previous)
        if isinstance(trigger, AmqpTrigger):
            await self._bind(trigger)
        if isinstance(trigger, ScheduleTrigger) and _timing(previous) != trigger.timing():
            await self._start_schedule(name)
        created = await self._store.put_trigger(name, trigger)
        if isinstance(previous, AmqpTrigger) and _binding(previous) != _binding(trigger):
            await self._unbind_unused(previous)
        if isinstance(previous, ScheduleTrigger) and not isinstance(trigger, ScheduleTrigger):
            await self._forget_schedule(name)
        await self._registry.refresh()
        return created

    async def delete_trigger(self, name: str) -> None:
        removed = await self._store.delete_trigger(name)
        if isinstance(removed, AmqpTrigger):
            await self._unbind_unused(removed)
        if isinstance(removed, ScheduleTrigger):
            await self._forget_schedule(name)
        await self._registry.refresh()

    async def _start_schedule(self, name: str) -> None:
        """A new schedule, or one whose timing changed, counts from now (a rate's first tick
        fires at once), before any replica sees it; one put again unchanged (a declared
        trigger at every start) keeps its count."""
        if self._ticks is not None:
            await self._ticks.start(name, time.time())

    async def _forget_schedule(self, name: str) -> None:
        if self._ticks is None:
            return
        try:
            await self._ticks.forget(name)
        except RedisError as exc:  # a stale ledger entry only waits for the name's next use
            log.warning("could not remove the schedule state of %s: %s", name, exc)

    async def _bind(self, trigger: AmqpTrigger) -> None:
        try:
            await self._broker.bind(_on_queue(trigger))
        except TopologyError as exc:
            raise RegistryError(str(exc), "exchange") from exc
        except Exception as exc:  # as above: RabbitMQ away, whatever the library calls it
            raise _unavailable("RabbitMQ could not bind the trigger", exc) from exc

    async def _unbind_unused(self, trigger: AmqpTrigger) -> None:
        """Remove a binding no remaining trigger shares (two triggers may bind alike)."""
        remaining = (await self._store.load()).triggers.values()
        if any(_binding(t) == _binding(trigger) for t in remaining):
            return
        try:
            await self._broker.unbind(_on_queue(trigger))
        except Exception as exc:  # a stale binding only costs filtered messages; report it
            log.warning("could not unbind %s from %s: %s", trigger.function, trigger.exchange, exc)


def _unavailable(what: str, exc: Exception) -> Unavailable:
    if not isinstance(exc, BrokerError):
        log.warning("%s: %r", what, exc)
    return Unavailable(f"{what}: {exc or type(exc).__name__}")


def _unredacted(trigger: Trigger, previous: Trigger | None) -> Trigger:
    """A secret sent back as shown by GET (redacted) keeps the stored secret in its place."""
    if not isinstance(trigger, WebhookTrigger) or REDACTED not in trigger.verify.secrets:
        return trigger
    stored = previous.verify.secrets if isinstance(previous, WebhookTrigger) else []
    secrets = []
    for index, secret in enumerate(trigger.verify.secrets):
        if secret == REDACTED:
            if index >= len(stored):
                raise RegistryError(
                    f"secret {index} is redacted; send the secret itself", "verify.secrets"
                )
            secret = stored[index]
        secrets.append(secret)
    verify = trigger.verify.model_copy(update={"secrets": secrets})
    return trigger.model_copy(update={"verify": verify})


def _timing(trigger: Trigger | None) -> tuple[str, str] | None:
    return trigger.timing() if isinstance(trigger, ScheduleTrigger) else None


def _binding(trigger: Trigger) -> tuple[str, ...]:
    if isinstance(trigger, AmqpTrigger):
        return (split_target(trigger.function)[0], trigger.exchange, trigger.routing_key)
    return ()


def _on_queue(trigger: AmqpTrigger) -> AmqpTrigger:
    """The binding is to the function's queue, whichever version or alias the trigger names
    (the consumer picks the version for each message)."""
    function = split_target(trigger.function)[0]
    return (
        trigger
        if function == trigger.function
        else trigger.model_copy(update={"function": function})
    )
