"""Helpers the bench runs as separate processes, so none shares an event loop with the bench.

    python -m bench.loadgen serve --port P                 # the bare aiohttp webhook ceiling
    python -m bench.loadgen http --url U --body-file F ... # the HTTP load generator without wrk
    python -m bench.loadgen publish --queue Q ...          # confirmed-publish ceiling
    python -m bench.loadgen consume --queue Q --count N    # the bare aio-pika drain ceiling

Each uses uvloop when installed, as `router serve` does. `http`, `publish` and `consume` print
one JSON line with their result; `serve` runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
REDIS_URL = "redis://127.0.0.1:6379/0"


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# ---------------------------------------------------------------------------------------------
# serve: the bare aiohttp app answering what the router's sync webhook answers


async def serve(port: int, reuse_port: bool = False) -> None:
    from aiohttp import web

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/hooks/{trigger}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    # reuse_port: one of several such processes on the port, as `serve --workers N` runs
    await web.TCPSite(runner, "127.0.0.1", port, reuse_port=reuse_port or None).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------------------------------------
# http: a closed-loop load generator (used when wrk is not installed)


async def http_load(
    url: str, body: bytes, connections: int, duration_s: float, warmup_s: float
) -> dict[str, Any]:
    import aiohttp

    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        measuring = False
        deadline = 0.0

        async def worker(stop_at: float) -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                    continue
                if measuring:
                    latencies.append(time.perf_counter() - t0)
                    statuses[status] = statuses.get(status, 0) + 1

        if warmup_s > 0:
            stop_at = time.perf_counter() + warmup_s
            await asyncio.gather(*(worker(stop_at) for _ in range(connections)))
        measuring = True
        started = time.perf_counter()
        deadline = started + duration_s
        await asyncio.gather(*(worker(deadline) for _ in range(connections)))
        seconds = time.perf_counter() - started
    ok = sum(n for s, n in statuses.items() if 200 <= s < 400)
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "non2xx": len(latencies) - ok,
        "errors": errors,
        "tool": "aiohttp client",
    }


# ---------------------------------------------------------------------------------------------
# publish: persistent confirmed publishes with `inflight` outstanding, for a fixed time


async def publish_load(
    queue: str, body: bytes, inflight: int, duration_s: float, warmup_s: float
) -> dict[str, Any]:
    import aio_pika

    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
        exchange = channel.default_exchange
        latencies: list[float] = []
        measuring = False

        async def worker(stop_at: float) -> None:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                await exchange.publish(
                    aio_pika.Message(
                        body,
                        content_type="application/json",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=queue,
                    mandatory=True,
                )
                if measuring:
                    latencies.append(time.perf_counter() - t0)

        if warmup_s > 0:
            stop_at = time.perf_counter() + warmup_s
            await asyncio.gather(*(worker(stop_at) for _ in range(inflight)))
        measuring = True
        started = time.perf_counter()
        await asyncio.gather(*(worker(started + duration_s) for _ in range(inflight)))
        seconds = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
    }


# ---------------------------------------------------------------------------------------------
# consume: the bare drain ceiling (manual ack after one INCR), exits after `count` messages


async def consume(queue_name: str, count: int, prefetch: int, timeout_s: float) -> dict[str, Any]:
    import aio_pika
    import redis.asyncio
    from aio_pika.abc import AbstractIncomingMessage

    connection = await aio_pika.connect(AMQP_URL)
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.get_queue(queue_name)
        handled = 0
        done = asyncio.Event()

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal handled
            document = json.loads(message.body)
            await client.incr(document["key"])
            await message.ack()
            handled += 1
            if handled >= count:
                done.set()

        tag = await queue.consume(on_message)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout_s)
        await queue.cancel(tag)
    finally:
        await client.aclose()
        await connection.close()
    return {"handled": handled}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--reuse-port", action="store_true", help="SO_REUSEPORT, beside siblings")
    p = sub.add_parser("http")
    p.add_argument("--url", required=True)
    p.add_argument("--body-file", type=Path, required=True)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=0.0)
    p = sub.add_parser("publish")
    p.add_argument("--queue", required=True)
    p.add_argument("--body-file", type=Path, required=True)
    p.add_argument("--inflight", type=int, default=32)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=0.0)
    p = sub.add_parser("consume")
    p.add_argument("--queue", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--prefetch", type=int, default=32)
    p.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    install_uvloop()
    if args.command == "serve":
        asyncio.run(serve(args.port, args.reuse_port))
        return 0
    result: dict[str, Any]
    if args.command == "http":
        body = args.body_file.read_bytes()
        result = asyncio.run(
            http_load(args.url, body, args.connections, args.duration, args.warmup)
        )
    elif args.command == "publish":
        body = args.body_file.read_bytes()
        result = asyncio.run(
            publish_load(args.queue, body, args.inflight, args.duration, args.warmup)
        )
    else:
        result = asyncio.run(consume(args.queue, args.count, args.prefetch, args.timeout))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
