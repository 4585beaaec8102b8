"""`create_app(settings)`: wires every part of the router and runs its lifecycle.

The HTTP server comes up at once; connecting to Redis and RabbitMQ happens in the background
with retries, and `/readyz` says what is still missing until then.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from router import declare, loader, routes, tokens
from router.amqp import Broker, Consumers
from router.background import Background, Loop
from router.bundles import Bundles, default_directory
from router.dispatcher import Dispatcher
from router.dlq import DeadLetters
from router.enqueue import Enqueuer
from router.executors.cells import Cells
from router.executors.launcher import Launcher
from router.executors.local import LocalExecutor
from router.guards import json_refusals
from router.idempotency import Idempotency
from router.invocation import InvocationService
from router.invocations import InvocationStore
from router.invoker import Invoker
from router.leases import Leases
from router.lifecycle import Lifecycle, Readiness
from router.logstore import LogStore
from router.metrics import Metrics, shared_directory
from router.monitor import Monitor
from router.names import Names
from router.ratelimit import RateLimiter
from router.registration import Registration
from router.registry import Registry, RegistryStore, Snapshot
from router.replays import Replays
from router.scaler import Scaler
from router.scheduler import Scheduler, ledger
from router.services import SERVICES, Services
from router.settings import Settings
from router.shutdown import MARGIN_S, Deadline, bounded
from router.usage import Usage

log = logging.getLogger("router")
RETRY_S = 1.0
CLOSING_S = 1.0  # of the shutdown's margin, kept for closing the connections last


def create_app(settings: Settings) -> web.Application:
    if not settings.admin_token:
        path = tokens.token_file(settings.token_file)
        settings = settings.replace(admin_token=tokens.ensure(path))
        log.warning(
            "ROUTER_ADMIN_TOKEN is not set: the admin token is the one kept in %s "
            '(the CLI on this host reads it; curl: -H "Authorization: Bearer $(cat %s)")',
            path,
            path,
        )
    # Bodies stay as sent: signatures are checked over those bytes, then router.bodies
    # decodes them, bounded by the body limit.
    app = web.Application(
        client_max_size=settings.max_body_bytes, handler_args={"auto_decompress": False}
    )
    svc = app[SERVICES] = build_services(settings)
    app.add_routes(routes.routes(svc))
    app.on_response_prepare.append(json_refusals)
    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(stop_taking_events)
    return app


def build_services(settings: Settings) -> Services:
    names = Names(settings.namespace)
    metrics = Metrics(shared_directory())  # shared: one worker of several (router.supervisor)
    # Fail fast when Redis is away (the hot path never waits on it) and retry once on a blip;
    # redis-py's own defaults (10 retries, up to 1 s apart) would stall every request.
    redis = Redis.from_url(
        settings.redis_url,
        socket_timeout=2,
        socket_connect_timeout=1,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.01), 1),
    )
    store = RegistryStore(redis, names)
    registry = Registry(store, redis, names, settings.registry_poll_s)
    broker = Broker(settings.amqp_url, names, settings.publish_timeout_s, metrics, redis)
    idempotency = Idempotency(redis, names, metrics, settings.idempotency_window_s)
    usage = Usage(redis, names)
    logs = LogStore(redis, names, settings.log_max_entries, settings.log_retention_s, metrics)
    bundles = Bundles(
        redis,
        names,
        Path(settings.code_dir) if settings.code_dir else default_directory(names.namespace),
    )
    cells = Cells(settings.namespace)
    invocations = InvocationStore(redis, names, settings.invocation_ttl_s)
    enqueuer = Enqueuer(broker, invocations, metrics)
    leases = Leases(redis, names, metrics)
    invoker = Invoker(
        LocalExecutor(settings.thread_workers),
        Launcher(bundles, cells),
        metrics,
        idempotency,
        usage,
        logs,
        invocations,
        leases,
    )
    dispatcher = Dispatcher(
        registry, invoker, invocations, broker, metrics, settings.max_event_bytes
    )
    consumers = Consumers(broker, dispatcher, settings.prefetch_multiplier)
    registry.on_change(consumers.reconcile)
    registry.on_change(invoker.reconcile)
    registry.on_change(_forgetting(metrics))
    registry.on_change(bundles.reconcile)
    scaler = Scaler(
        registry,
        invoker,
        broker,
        metrics,
        settings.scale_interval_s,
        settings.keep_warm_s,
        settings.max_environments,
    )
    state = Lifecycle()
    return Services(
        settings=settings,
        names=names,
        metrics=metrics,
        redis=redis,
        registry=registry,
        broker=broker,
        invoker=invoker,
        store=invocations,
        enqueuer=enqueuer,
        invocations=InvocationService(invoker, enqueuer),
        consumers=consumers,
        registration=Registration(
            registry, broker, settings.handlers, ledger(redis, names, settings.publish_timeout_s)
        ),
        scaler=scaler,
        dead_letters=DeadLetters(broker),
        dispatcher=dispatcher,
        rate_limiter=RateLimiter(redis, names),
        replays=Replays(redis, names),
        usage=usage,
        logs=logs,
        bundles=bundles,
        cells=cells,
        leases=leases,
        lifecycle=state,
        readiness=Readiness(state, redis, broker, registry),
    )


async def lifecycle(app: web.Application) -> AsyncIterator[None]:
    svc = app[SERVICES]
    svc.bundles.prepare()
    svc.cells.start()
    declared = declare.declarations(loader.walk_modules(svc.settings.handlers))
    starting = asyncio.create_task(start(svc, declared), name="router-start")
    starting.add_done_callback(_report_failure)
    yield
    await drain(svc)
    await close(svc, [starting])


async def stop_taking_events(app: web.Application) -> None:
    """First step of a graceful shutdown (SIGTERM): webhooks answer 503, consumers stop."""
    svc = app[SERVICES]
    svc.lifecycle.draining = True
    log.info(
        "shutting down: no new events; %.0f s for running invocations to finish",
        svc.settings.shutdown_grace_s,
    )
    await svc.consumers.cancel()


async def drain(svc: Services) -> None:
    """Let running invocations finish within the grace period; the rest return to the queue
    when the consumers' channels close. The shutdown and the lifecycle both call it: the
    second call waits for the first."""
    state = svc.lifecycle
    if state.drained is None:
        state.draining = True
        if state.stopping is None:
            state.stopping = Deadline(svc.settings.shutdown_grace_s + MARGIN_S)
        grace_s = state.stopping.left(keep_s=MARGIN_S)
        state.drained = asyncio.ensure_future(_drain(svc, grace_s))
    await state.drained


async def _drain(svc: Services, grace_s: float) -> None:
    if not await svc.dispatcher.drained(grace_s):
        log.warning(
            "grace period over: %d invocations return to their queues", svc.dispatcher.running
        )


async def close(svc: Services, tasks: list[asyncio.Task[None]]) -> None:
    """After the drain: write out what was written behind, stop consuming and the
    environments, then close the connections. Each step is waited for until the shutdown's
    deadline at most (`bounded`), so a library that swallows a cancellation cannot hang it."""
    stopping = svc.lifecycle.stopping or Deadline(MARGIN_S)
    first_s = stopping.left(keep_s=CLOSING_S)
    await asyncio.gather(
        bounded("writing usage", svc.usage.flush(), first_s),
        bounded("writing invocation output", svc.logs.flush(), first_s),
        bounded("writing invocation records", svc.store.flush(), first_s),
        bounded("stopping background tasks", _cancelled(tasks), first_s),
        _stop_work(svc, first_s),
    )
    svc.metrics.share()  # a worker of several: its last counts stay in the run's sums
    last_s = stopping.left()
    await asyncio.gather(
        bounded("closing the RabbitMQ connection", svc.broker.close(), last_s),
        bounded("closing the Redis connection", svc.redis.aclose(), last_s),
    )


async def _stop_work(svc: Services, within_s: float) -> None:
    """Consumers first (what is unsettled returns to its queue), then the environments: an
    environment stopped under a running invocation would fail it and settle its message."""
    await bounded("stopping consumers", svc.consumers.stop(), within_s * 0.6)
    await bounded("stopping environments", svc.invoker.close(), within_s * 0.4)
    # What ran here is over: other replicas need not wait out a TTL.
    await bounded("giving back concurrency leases", svc.leases.give_back(), within_s * 0.2)
    svc.cells.close()  # what is left of the environments' process trees goes with the router


async def _cancelled(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())


async def start(svc: Services, declared: list[declare.Declared]) -> None:
    """Reach Redis and RabbitMQ (retrying), register declared functions, then follow changes.
    A shutdown that begins meanwhile stops it before it consumes anything."""
    steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("Redis", svc.registry.refresh),
        ("RabbitMQ", svc.broker.connect),
        ("declared functions", lambda: register(svc, declared)),
        ("consumers", lambda: svc.consumers.reconcile(svc.registry.snapshot)),
    ]
    for what, step in steps:
        if svc.lifecycle.draining:
            return
        await _retry(what, step)
    svc.lifecycle.start()
    # What is loaded by now lives as long as the process. Frozen, it is left out of garbage
    # collections: a full one under load took 40 ms (a 40 ms stall) over these ~70k objects
    # and takes about 1 ms without them.
    gc.collect()
    gc.freeze()
    log.info(
        "ready: %d functions, %d triggers",
        len(svc.registry.snapshot.functions),
        len(svc.registry.snapshot.triggers),
    )
    monitor = Monitor(svc.registry, svc.broker, svc.redis, svc.metrics)
    ticks = ledger(svc.redis, svc.names, svc.settings.publish_timeout_s)
    scheduler = Scheduler(svc.registry, ticks, svc.enqueuer, svc.broker, svc.metrics, svc.names)
    svc.registry.on_change(scheduler.changed)
    loops: dict[str, Loop] = {
        "registry watch": svc.registry.watch,
        "scaler": svc.scaler.run,
        "monitor": monitor.run,
        "usage writer": svc.usage.run,
        "log writer": svc.logs.run,
        "record writer": svc.store.run,
        "scheduler": scheduler.run,
        "lease renewal": svc.leases.run,
    }
    await Background(svc.metrics).run(loops)


async def _retry(what: str, attempt: Callable[[], Awaitable[object]]) -> None:
    while True:
        try:
            await attempt()
            return
        except (RedisError, OSError, ConnectionError, TimeoutError) as exc:
            log.warning("waiting for %s: %s", what, exc)
        except Exception as exc:  # aio-pika raises its own hierarchy for an unreachable broker
            log.warning("waiting for %s: %r", what, exc)
        await asyncio.sleep(RETRY_S)


async def register(svc: Services, declared: list[declare.Declared]) -> None:
    for item in declared:
        await svc.registration.put_function(item.name, item.spec)
        for name, trigger in item.triggers.items():
            await svc.registration.put_trigger(name, trigger)


def _forgetting(metrics: Metrics) -> Callable[[Snapshot], Awaitable[None]]:
    """A registry listener that drops the gauges of functions that are gone."""
    known: set[str] = set()

    async def forget(snapshot: Snapshot) -> None:
        for function in known - set(snapshot.functions):
            metrics.forget(function)
        for function in set(snapshot.functions) - known:
            metrics.known(function)
        known.clear()
        known.update(snapshot.functions)

    return forget
