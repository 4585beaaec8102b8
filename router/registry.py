"""The registry: functions and triggers in Redis, and the in-memory copy every replica routes from.

Redis is the source of truth. Every write bumps a monotonic version and publishes a hint; each
replica reloads when the hint arrives or when its poll sees a newer version (pub/sub is
at-most-once), and never replaces a good copy with an older one. The hot path reads only memory.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import orjson
from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

from router.bundles import digest
from router.names import Names
from router.specs import (
    LATEST,
    AliasSpec,
    AmqpTrigger,
    FunctionSpec,
    ScheduleTrigger,
    TriggerSpec,
    WebhookTrigger,
    split_target,
)

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


class PreconditionFailed(RegistryError):
    """The caller's expected revision is not the stored one (someone else changed it)."""

    status = 412


@dataclass(frozen=True, slots=True)
class Target:
    """What runs for a name: the function, the version that runs (`$LATEST` or a published
    number) and its spec, and the qualifier the caller named (an alias, say) for its ARN."""

    function: str
    version: str
    spec: FunctionSpec
    qualifier: str | None = None


@dataclass(frozen=True, slots=True)
class Routing:
    """How a name resolves: one version, or two split by weight (a weighted alias)."""

    primary: Target
    other: Target | None = None
    weight: float = 0.0

    def pick(self, draw: Callable[[], float] = random.random) -> Target:
        if self.other is not None and draw() < self.weight:
            return self.other
        return self.primary


@dataclass(frozen=True)
class Snapshot:
    version: int = 0
    functions: Mapping[str, FunctionSpec] = field(default_factory=dict)
    triggers: Mapping[str, Trigger] = field(default_factory=dict)
    # Published versions ({function: {"7": spec}}) and aliases ({function: {"live": alias}}).
    versions: Mapping[str, Mapping[str, FunctionSpec]] = field(default_factory=dict)
    aliases: Mapping[str, Mapping[str, AliasSpec]] = field(default_factory=dict)
    _amqp: dict[str, dict[str, AmqpTrigger]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _routes: dict[str, Routing] = field(default_factory=dict, init=False, repr=False, compare=False)

    def amqp_triggers_of(self, function: str) -> dict[str, AmqpTrigger]:
        """The function's amqp triggers by name, in name order; computed once per snapshot
        (the dispatcher asks for every message)."""
        found = self._amqp.get(function)
        if found is None:
            found = self._amqp[function] = {
                name: t
                for name, t in sorted(self.triggers.items())
                if isinstance(t, AmqpTrigger) and split_target(t.function)[0] == function
            }
        return found

    def resolve(self, target: str) -> Target | None:
        """What runs for `fn`, `fn:$LATEST`, `fn:7` or `fn:alias` now (a weighted alias
        draws its version), or None when it does not exist."""
        routing = self.routing(target)
        return None if routing is None else routing.pick()

    def routing(self, target: str) -> Routing | None:
        """Resolved once per snapshot and name: the hot path pays a dict lookup. Names that
        resolve to nothing are not remembered (a caller could make up any number of them)."""
        routing = self._routes.get(target)
        if routing is None:
            routing = self._route(target)
            if routing is not None:
                self._routes[target] = routing
        return routing

    def _route(self, target: str) -> Routing | None:
        function, qualifier = split_target(target)
        alias = self.aliases.get(function, {}).get(qualifier or "")
        if alias is None:
            found = self.version_target(function, qualifier)
            return None if found is None else Routing(found)
        primary = self.version_target(function, alias.function_version, qualifier)
        if primary is None:
            return None
        for version, weight in alias.routing.items():
            other = self.version_target(function, version, qualifier)
            if other is not None:
                return Routing(primary, other, weight)
        return Routing(primary)

    def target_of(self, function: str, version: str | None) -> Target | None:
        """A version of a function, resolved once per snapshot (queued events name theirs)."""
        routing = self.routing(function if version is None else f"{function}:{version}")
        return None if routing is None else routing.primary

    def version_target(
        self, function: str, version: str | None, qualifier: str | None = None
    ) -> Target | None:
        """A version of a function (None or `$LATEST`: the editable one). A published
        version runs with the function's current concurrency, shared by all its versions,
        as Lambda's reserved concurrency is."""
        latest = self.functions.get(function)
        if latest is None:
            return None
        if version is None or version == LATEST:
            return Target(function, LATEST, latest, qualifier)
        published = self.versions.get(function, {}).get(version)
        if published is None:
            return None
        if published.concurrency != latest.concurrency:
            published = published.model_copy(update={"concurrency": latest.concurrency})
        return Target(function, version, published, qualifier or version)

    def users_of(self, function: str, qualifier: str | None = None) -> list[str]:
        """Triggers naming the function (any of its versions and aliases), or only those
        naming exactly `function:qualifier`."""
        return sorted(
            name
            for name, trigger in self.triggers.items()
            if (split_target(trigger.function) == (function, qualifier))
            or (qualifier is None and split_target(trigger.function)[0] == function)
        )


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
            pipe.hgetall(self._names.versions)
            pipe.hgetall(self._names.aliases)
            version, functions, triggers, versions, aliases = await pipe.execute()
        return Snapshot(
            int(version or 0),
            _parsed(functions, FunctionSpec.model_validate_json, "function"),
            _parsed(triggers, TRIGGER.validate_json, "trigger"),
            _grouped(_parsed(versions, FunctionSpec.model_validate_json, "version")),
            _grouped(_parsed(aliases, AliasSpec.model_validate_json, "alias")),
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
        self, name: str, spec: FunctionSpec, bundle: bytes | None = None, expect: int | None = None
    ) -> tuple[FunctionSpec, bool]:
        """Store `spec` (and its code bundle, the first time that bundle is used), bumping its
        version when it changed. Returns (stored, created). `expect` makes it conditional:
        0 creates only, N replaces only the function at change counter N."""

        async def step(pipe: Pipeline) -> tuple[FunctionSpec, bool]:
            functions = await pipe.hgetall(self._names.functions)
            raw = functions.get(name.encode())
            old = None if raw is None else FunctionSpec.model_validate_json(raw)
            _expected(name, old, expect)
            if old is not None and old.same_definition(spec):
                _multi(pipe)
                return old, False
            versions = await pipe.hgetall(self._names.versions)
            stored = spec.model_copy(
                update={"version": (old.version if old else 0) + 1, "updated_at": time.time()}
            )
            _multi(pipe)
            if bundle is not None and spec.code is not None:
                pipe.set(self._names.code(digest(spec.code.sha256)), bundle, nx=True)
            pipe.hset(self._names.functions, name, stored.model_dump_json())
            others = [r for f, r in functions.items() if _text(f) != name]
            self._drop_unused_code(
                pipe, old, [*others, *versions.values(), stored.model_dump_json()]
            )
            self._bump(pipe)
            return stored, old is None

        return await self._transaction((self._names.functions, self._names.versions), step)

    async def delete_function(self, name: str) -> None:
        """Delete the function with its published versions and aliases; refused while
        triggers name it (or any of its versions or aliases)."""

        async def step(pipe: Pipeline) -> None:
            functions = await pipe.hgetall(self._names.functions)
            raw = functions.get(name.encode())
            if raw is None:
                raise NotFound(f"function {name!r} does not exist")
            users = _users(await pipe.hgetall(self._names.triggers), name, None)
            if users:
                raise Conflict(
                    f"function {name!r} is used by triggers: {', '.join(users)}; delete them first"
                )
            versions = await pipe.hgetall(self._names.versions)
            aliases = await pipe.hkeys(self._names.aliases)
            own_versions = [f for f in versions if _text(f).startswith(name + ":")]
            own_aliases = [f for f in aliases if _text(f).startswith(name + ":")]
            _multi(pipe)
            pipe.hdel(self._names.functions, name)
            if own_versions:
                pipe.hdel(self._names.versions, *own_versions)
            if own_aliases:
                pipe.hdel(self._names.aliases, *own_aliases)
            pipe.hdel(self._names.published, name)
            remaining = [
                *(r for f, r in functions.items() if _text(f) != name),
                *(r for f, r in versions.items() if f not in own_versions),
            ]
            gone = [raw, *(versions[f] for f in own_versions)]
            for record in gone:
                self._drop_unused_code(pipe, FunctionSpec.model_validate_json(record), remaining)
            self._bump(pipe)

        keys = (self._names.functions, self._names.triggers, self._names.versions)
        await self._transaction((*keys, self._names.aliases), step)

    def _drop_unused_code(
        self, pipe: Pipeline, old: FunctionSpec | None, remaining: Iterable[bytes | str]
    ) -> None:
        """Queue the deletion of the old bundle when none of the remaining records (functions
        and published versions) uses it."""
        if old is None or old.code is None:
            return
        sha = old.code.sha256
        if any(_code_sha(record) == sha for record in remaining):
            return
        pipe.delete(self._names.code(digest(sha)))

    async def code_in_use(self) -> set[str]:
        """Hashes (base64) of the bundles functions and their published versions use now."""
        return code_of(await self.load())

    async def publish_version(
        self,
        name: str,
        description: str | None = None,
        code_sha256: str | None = None,
        expect: int | None = None,
    ) -> tuple[str, FunctionSpec, bool]:
        """Snapshot `$LATEST` as the next version number, immutably. Unchanged since the last
        version published, that version is answered instead (as Lambda does). Returns
        (number, spec, created)."""

        async def step(pipe: Pipeline) -> tuple[str, FunctionSpec, bool]:
            raw = await pipe.hget(self._names.functions, name)
            if raw is None:
                raise NotFound(f"function {name!r} does not exist")
            latest = FunctionSpec.model_validate_json(raw)
            _expected(name, latest, expect)
            current = latest.code.sha256 if latest.code else latest.source_sha256
            if code_sha256 is not None and code_sha256 != current:
                raise PreconditionFailed(
                    f"CodeSha256 {code_sha256} is not $LATEST's ({current})", "code_sha256"
                )
            last = int(await pipe.hget(self._names.published, name) or 0)
            previous = await pipe.hget(self._names.versions, f"{name}:{last}")
            if previous is not None:
                spec = FunctionSpec.model_validate_json(previous)
                if spec.version == latest.version:
                    _multi(pipe)
                    return str(last), spec, False
            number = str(last + 1)
            spec = _published(latest, description)
            _multi(pipe)
            pipe.hset(self._names.versions, f"{name}:{number}", spec.model_dump_json())
            pipe.hset(self._names.published, name, number)
            self._bump(pipe)
            return number, spec, True

        keys = (self._names.functions, self._names.versions, self._names.published)
        return await self._transaction(keys, step)

    async def delete_version(self, name: str, number: str) -> None:
        """Delete a published version no alias or trigger uses; its bundle goes with its last
        user."""

        async def step(pipe: Pipeline) -> None:
            field = f"{name}:{number}"
            versions = await pipe.hgetall(self._names.versions)
            raw = versions.get(field.encode())
            if raw is None:
                raise NotFound(f"function {name!r} has no version {number}")
            aliases = [
                _text(f).partition(":")[2]
                for f, a in (await pipe.hgetall(self._names.aliases)).items()
                if _text(f).startswith(name + ":")
                and number in AliasSpec.model_validate_json(a).versions()
            ]
            users = _users(await pipe.hgetall(self._names.triggers), name, number)
            if aliases or users:
                named = [*(f"alias {a}" for a in sorted(aliases)), *(f"trigger {t}" for t in users)]
                raise Conflict(f"version {number} of {name!r} is used by {', '.join(named)}")
            functions = await pipe.hvals(self._names.functions)
            _multi(pipe)
            pipe.hdel(self._names.versions, field)
            remaining = [*functions, *(r for f, r in versions.items() if _text(f) != field)]
            self._drop_unused_code(pipe, FunctionSpec.model_validate_json(raw), remaining)
            self._bump(pipe)

        keys = (self._names.functions, self._names.versions, self._names.aliases)
        await self._transaction((*keys, self._names.triggers), step)

    async def put_alias(
        self,
        name: str,
        alias: str,
        spec: AliasSpec,
        *,
        create: bool | None = None,
        expect: int | None = None,
    ) -> tuple[AliasSpec, bool]:
        """Create or replace an alias whose versions exist. `create` True refuses an existing
        alias, False a missing one; `expect` is the revision the caller read. Returns
        (stored, created)."""

        async def step(pipe: Pipeline) -> tuple[AliasSpec, bool]:
            if not await pipe.hexists(self._names.functions, name):
                raise NotFound(f"function {name!r} does not exist")
            for version in spec.versions():
                if version != LATEST and not await pipe.hexists(
                    self._names.versions, f"{name}:{version}"
                ):
                    raise RegistryError(
                        f"function {name!r} has no version {version}; publish it first",
                        "function_version",
                    )
            raw = await pipe.hget(self._names.aliases, f"{name}:{alias}")
            old = None if raw is None else AliasSpec.model_validate_json(raw)
            _alias_expected(name, alias, old, create, expect)
            stored = spec.model_copy(update={"revision": (old.revision if old else 0) + 1})
            if old is not None and old.model_dump(exclude={"revision"}) == spec.model_dump(
                exclude={"revision"}
            ):
                _multi(pipe)
                return old, False
            _multi(pipe)
            pipe.hset(self._names.aliases, f"{name}:{alias}", stored.model_dump_json())
            self._bump(pipe)
            return stored, old is None

        keys = (self._names.functions, self._names.versions, self._names.aliases)
        return await self._transaction(keys, step)

    async def delete_alias(self, name: str, alias: str) -> None:
        async def step(pipe: Pipeline) -> None:
            if not await pipe.hexists(self._names.aliases, f"{name}:{alias}"):
                raise NotFound(f"function {name!r} has no alias {alias!r}")
            users = _users(await pipe.hgetall(self._names.triggers), name, alias)
            if users:
                raise Conflict(
                    f"alias {alias!r} of {name!r} is used by triggers: {', '.join(users)}"
                )
            _multi(pipe)
            pipe.hdel(self._names.aliases, f"{name}:{alias}")
            self._bump(pipe)

        await self._transaction((self._names.aliases, self._names.triggers), step)

    async def put_trigger(self, name: str, trigger: Trigger) -> bool:
        """Store a trigger whose function (and version or alias) exists. Returns whether it
        was created."""

        async def step(pipe: Pipeline) -> bool:
            await self._check_target(pipe, trigger.function)
            created = not await pipe.hexists(self._names.triggers, name)
            _multi(pipe)
            pipe.hset(self._names.triggers, name, trigger.model_dump_json())
            self._bump(pipe)
            return created

        keys = (self._names.functions, self._names.triggers, self._names.versions)
        return await self._transaction((*keys, self._names.aliases), step)

    async def _check_target(self, pipe: Pipeline, target: str) -> None:
        function, qualifier = split_target(target)
        if not await pipe.hexists(self._names.functions, function):
            raise RegistryError(
                f"function {function!r} does not exist; create it first", "function"
            )
        if qualifier is None or qualifier == LATEST:
            return
        if qualifier.isdigit():
            if not await pipe.hexists(self._names.versions, target):
                raise RegistryError(f"function {function!r} has no version {qualifier}", "function")
        elif not await pipe.hexists(self._names.aliases, target):
            raise RegistryError(f"function {function!r} has no alias {qualifier!r}", "function")

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
            records = (self._names.versions, self._names.aliases, self._names.published)
            pipe.delete(self._names.functions, self._names.triggers, *records)
            for name, spec in snapshot.functions.items():
                pipe.hset(self._names.functions, name, spec.model_dump_json())
            for name, trigger in snapshot.triggers.items():
                pipe.hset(self._names.triggers, name, trigger.model_dump_json())
            for name, versions in snapshot.versions.items():
                for number, spec in versions.items():
                    pipe.hset(self._names.versions, f"{name}:{number}", spec.model_dump_json())
                # Numbers are never reused: go on from the highest one still known.
                pipe.hset(self._names.published, name, max(int(n) for n in versions))
            for name, aliases in snapshot.aliases.items():
                for alias, named in aliases.items():
                    pipe.hset(self._names.aliases, f"{name}:{alias}", named.model_dump_json())
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


def _published(latest: FunctionSpec, description: str | None) -> FunctionSpec:
    """The snapshot of `$LATEST` a version keeps, validated like any spec (a description is
    the caller's)."""
    fields = {**latest.model_dump(), "updated_at": time.time()}
    if description is not None:
        fields["description"] = description
    try:
        return FunctionSpec.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise RegistryError(f"invalid description: {first['msg']}", "description") from None


def _expected(name: str, old: FunctionSpec | None, expect: int | None) -> None:
    """Conditional writes: `expect` 0 creates only, N changes only the function at counter N."""
    if expect is None:
        return
    if expect == 0 and old is not None:
        raise Conflict(f"function {name!r} exists already")
    if expect and old is None:
        raise NotFound(f"function {name!r} does not exist")
    if expect and old is not None and old.version != expect:
        raise PreconditionFailed(
            f"function {name!r} changed meanwhile (revision {old.version}, not {expect})",
            "revision",
        )


def _alias_expected(
    name: str, alias: str, old: AliasSpec | None, create: bool | None, expect: int | None
) -> None:
    if create is True and old is not None:
        raise Conflict(f"alias {alias!r} of {name!r} exists already")
    if create is False and old is None:
        raise NotFound(f"function {name!r} has no alias {alias!r}")
    if expect is not None and old is not None and old.revision != expect:
        raise PreconditionFailed(
            f"alias {alias!r} of {name!r} changed meanwhile (revision {old.revision})", "revision"
        )


def _users(
    triggers: Mapping[bytes | str, bytes | str], function: str, qualifier: str | None
) -> list[str]:
    """Names of the triggers naming the function (or exactly `function:qualifier`)."""
    found = []
    for trigger, raw in triggers.items():
        named = split_target(str(orjson.loads(raw).get("function", "")))
        if named == (function, qualifier) or (qualifier is None and named[0] == function):
            found.append(_text(trigger))
    return sorted(found)


def _code_sha(record: bytes | str) -> str | None:
    code = orjson.loads(record).get("code") or {}
    sha: str | None = code.get("sha256")
    return sha


def code_of(snapshot: Snapshot) -> set[str]:
    """Hashes (base64) of every bundle a function or a published version uses."""
    specs = [*snapshot.functions.values()]
    specs += [s for versions in snapshot.versions.values() for s in versions.values()]
    return {s.code.sha256 for s in specs if s.code is not None}


def _grouped(records: dict[str, T]) -> dict[str, dict[str, T]]:
    """`{"fn:7": x}` -> `{"fn": {"7": x}}`."""
    grouped: dict[str, dict[str, T]] = {}
    for key, value in records.items():
        function, _, name = key.partition(":")
        grouped.setdefault(function, {})[name] = value
    return grouped


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
