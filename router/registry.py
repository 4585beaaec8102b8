"""The registry: functions and triggers in Redis, and the in-memory copy every replica routes from.

Redis is the source of truth. Every write bumps a monotonic version and publishes a hint; each
replica reloads when the hint arrives or when its poll sees a newer version (pub/sub is
at-most-once), and never replaces a good copy with an older one. The hot path reads only memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import orjson
from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

from router.bundles import digest
from router.names import Names
from router.specs import AmqpTrigger, FunctionSpec, ScheduleTrigger, TriggerSpec, WebhookTrigger

log = logging.getLogger("router.registry")

Trigger = WebhookTrigger | AmqpTrigger | ScheduleTrigger
TRIGGER = TypeAdapter[Trigger](TriggerSpec)
T = TypeVar("T")


class RegistryError(Exception):
    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(RegistryError):
    status = 404


class Conflict(RegistryError):
    status = 409


@dataclass(frozen=True)
class Snapshot:
    version: int = 0
    functions: Mapping[str, FunctionSpec] = field(default_factory=dict)
    triggers: Mapping[str, Trigger] = field(default_factory=dict)
    _amqp: dict[str, dict[str, AmqpTrigger]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def amqp_triggers_of(self, function: str) -> dict[str, AmqpTrigger]:
        """The function's amqp triggers by name, in name order; computed once per snapshot
        (the dispatcher asks for every message)."""
        found = self._amqp.get(function)
        if found is None:
            found = self._amqp[function] = {
                name: t
                for name, t in sorted(self.triggers.items())
                if isinstance(t, AmqpTrigger) and t.function == function
            }
        return found


class RegistryStore:
    """Reads and atomic writes of the registry in Redis."""

    def __init__(self, redis: Redis, names: Names) -> None:
        self._redis = redis
        self._names = names

    async def load(self) -> Snapshot:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._names.registry_version)
            pipe.hgetall(self._names.functions)
            pipe.hgetall(self._names.triggers)
            version, functions, triggers = await pipe.execute()
        return Snapshot(
            int(version or 0),
            _parsed(functions, FunctionSpec.model_validate_json, "function"),
            _parsed(triggers, TRIGGER.validate_json, "trigger"),
        )

    async def version(self) -> int:
        return int(await self._redis.get(self._names.registry_version) or 0)

    async def get_function(self, name: str) -> FunctionSpec:
        raw = await self._redis.hget(self._names.functions, name)
        if raw is None:
            raise NotFound(f"function {name!r} does not exist")
        return FunctionSpec.model_validate_json(raw)

    async def get_trigger(self, name: str) -> Trigger:
        raw = await self._redis.hget(self._names.triggers, name)
        if raw is None:
            raise NotFound(f"trigger {name!r} does not exist")
        return TRIGGER.validate_json(raw)

    async def put_function(
        self, name: str, spec: FunctionSpec, bundle: bytes | None = None
    ) -> tuple[FunctionSpec, bool]:
        """Store `spec` (and its code bundle, the first time that bundle is used), bumping its
        version when it changed. Returns (stored, created)."""

        async def step(pipe: Pipeline) -> tuple[FunctionSpec, bool]:
            functions = await pipe.hgetall(self._names.functions)
            raw = functions.get(name.encode())
            old = None if raw is None else FunctionSpec.model_validate_json(raw)
            if old is not None and old.same_definition(spec):
                _multi(pipe)
                return old, False
            stored = spec.model_copy(update={"version": (old.version if old else 0) + 1})
            _multi(pipe)
            if bundle is not None and spec.code is not None:
                pipe.set(self._names.code(digest(spec.code.sha256)), bundle, nx=True)
            pipe.hset(self._names.functions, name, stored.model_dump_json())
            self._drop_unused_code(pipe, functions, name, old, stored)
            self._bump(pipe)
            return stored, old is None

        return await self._transaction((self._names.functions,), step)

    async def delete_function(self, name: str) -> None:
        async def step(pipe: Pipeline) -> None:
            functions = await pipe.hgetall(self._names.functions)
            raw = functions.get(name.encode())
            if raw is None:
                raise NotFound(f"function {name!r} does not exist")
            users = [
                trigger
                for trigger, raw in (await pipe.hgetall(self._names.triggers)).items()
                if orjson.loads(raw).get("function") == name
            ]
            if users:
                listed = ", ".join(sorted(_text(u) for u in users))
                raise Conflict(
                    f"function {name!r} is used by triggers: {listed}; delete them first"
                )
            _multi(pipe)
            pipe.hdel(self._names.functions, name)
            self._drop_unused_code(
                pipe, functions, name, FunctionSpec.model_validate_json(raw), None
            )
            self._bump(pipe)

        await self._transaction((self._names.functions, self._names.triggers), step)

    def _drop_unused_code(
        self,
        pipe: Pipeline,
        functions: Mapping[bytes | str, bytes | str],
        name: str,
        old: FunctionSpec | None,
        new: FunctionSpec | None,
    ) -> None:
        """Queue the deletion of the old bundle when no function uses it any more."""
        if old is None or old.code is None:
            return
        sha = old.code.sha256
        if new is not None and new.code is not None and new.code.sha256 == sha:
            return
        for other, raw in functions.items():
            if _text(other) != name and (orjson.loads(raw).get("code") or {}).get("sha256") == sha:
                return
        pipe.delete(self._names.code(digest(sha)))

    async def code_in_use(self) -> set[str]:
        """Hashes (base64) of the bundles functions use now."""
        snapshot = await self.load()
        return {s.code.sha256 for s in snapshot.functions.values() if s.code is not None}

    async def put_trigger(self, name: str, trigger: Trigger) -> bool:
        """Store a trigger whose function exists. Returns whether it was created."""

        async def step(pipe: Pipeline) -> bool:
            if not await pipe.hexists(self._names.functions, trigger.function):
                raise RegistryError(
                    f"function {trigger.function!r} does not exist; create it first", "function"
                )
            created = not await pipe.hexists(self._names.triggers, name)
            _multi(pipe)
            pipe.hset(self._names.triggers, name, trigger.model_dump_json())
            self._bump(pipe)
            return created

        return await self._transaction((self._names.functions, self._names.triggers), step)

    async def delete_trigger(self, name: str) -> Trigger:
        async def step(pipe: Pipeline) -> Trigger:
            raw = await pipe.hget(self._names.triggers, name)
            if raw is None:
                raise NotFound(f"trigger {name!r} does not exist")
            _multi(pipe)
            pipe.hdel(self._names.triggers, name)
            self._bump(pipe)
            return TRIGGER.validate_json(raw)

        return await self._transaction((self._names.triggers,), step)

    async def restore(self, snapshot: Snapshot) -> bool:
        """Write a whole snapshot back, unless Redis has meanwhile reached its version."""

        async def step(pipe: Pipeline) -> bool:
            if int(await pipe.get(self._names.registry_version) or 0) >= snapshot.version:
                _multi(pipe)
                return False
            _multi(pipe)
            pipe.delete(self._names.functions, self._names.triggers)
            for name, spec in snapshot.functions.items():
                pipe.hset(self._names.functions, name, spec.model_dump_json())
            for name, trigger in snapshot.triggers.items():
                pipe.hset(self._names.triggers, name, trigger.model_dump_json())
            pipe.set(self._names.registry_version, snapshot.version)
            pipe.publish(self._names.registry_channel, b"changed")
            return True

        keys = (self._names.registry_version, self._names.functions, self._names.triggers)
        return await self._transaction(keys, step)

    def _bump(self, pipe: Pipeline) -> None:
        pipe.incr(self._names.registry_version)
        pipe.publish(self._names.registry_channel, b"changed")

    async def _transaction(
        self, keys: tuple[str, ...], step: Callable[[Pipeline], Awaitable[T]]
    ) -> T:
        """Optimistic transaction: WATCH the keys, read, queue writes; retry if another wrote."""
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*keys)
                    result = await step(pipe)
                    await pipe.execute()
                    return result
                except WatchError:
                    continue


def _multi(pipe: Pipeline) -> None:
    """Switch the pipeline from reading (after WATCH) to queueing the transaction."""
    pipe.multi()  # type: ignore[no-untyped-call]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _parsed(raw: Mapping[bytes, bytes], parse: Callable[[bytes], T], kind: str) -> dict[str, T]:
    parsed: dict[str, T] = {}
    for name, value in raw.items():
        try:
            parsed[name.decode()] = parse(value)
        except ValidationError as exc:
            log.error("skipping invalid %s %r in the registry: %s", kind, name, exc)
    return parsed


Listener = Callable[[Snapshot], Awaitable[None]]


class Registry:
    """The replica's in-memory registry, kept current by `watch()`."""

    def __init__(self, store: RegistryStore, redis: Redis, names: Names, poll_s: float) -> None:
        self.store = store
        self.snapshot = Snapshot()
        self.loaded = False
        self.refreshed_at = 0.0
        self._redis = redis
        self._names = names
        self._poll_s = poll_s
        self._listeners: list[Listener] = []

    def on_change(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def refresh(self) -> bool:
        """Load from Redis; apply only a newer version (or the first one). Returns if applied."""
        fresh = await self.store.load()
        self.refreshed_at = time.time()
        if self.loaded and fresh.version <= self.snapshot.version:
            if fresh.version < self.snapshot.version:
                await self._restore(fresh)
            return False
        self.snapshot, self.loaded = fresh, True
        log.info(
            "registry version %d: %d functions, %d triggers",
            fresh.version,
            len(fresh.functions),
            len(fresh.triggers),
        )
        for listener in self._listeners:
            await listener(fresh)
        return True

    async def _restore(self, fresh: Snapshot) -> None:
        """Redis went backwards. Emptied (a restart without persistence): write our copy back,
        so changes made from now on build on it. Older but not empty (a failover to a stale
        replica): keep routing from ours and say so."""
        if fresh.functions or fresh.triggers:
            log.warning(
                "registry in Redis is at version %d, older than ours (%d); keeping ours",
                fresh.version,
                self.snapshot.version,
            )
            return
        if await self.store.restore(self.snapshot):
            log.warning(
                "registry in Redis was empty; restored version %d from memory",
                self.snapshot.version,
            )

    async def watch(self) -> None:
        """Follow changes forever: a pub/sub hint wakes us early, the poll catches lost hints."""
        while True:
            try:
                await self._follow()
            except (RedisError, OSError) as exc:
                log.warning("registry watch lost Redis (%s); retrying", exc)
                await asyncio.sleep(self._poll_s)

    async def _follow(self) -> None:
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self._names.registry_channel)
            while True:
                await pubsub.get_message(timeout=self._poll_s)
                version = await self.store.version()
                self.refreshed_at = time.time()
                if version != self.snapshot.version or not self.loaded:
                    await self.refresh()
