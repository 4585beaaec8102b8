"""Benchmarks of trigger-router against real Redis and RabbitMQ, each with a baseline.

    python bench/run.py [--scenario NAME] [--quick]

Scenarios: scale-up, cold-start, warm-overhead, drain, webhook-sync, webhook-workers,
webhook-async, memory, runtimes, leases, log-cost (see bench/README.md). Every scenario starts
its own router (`python -m router serve`, at the service's defaults) in a fresh namespace and
removes the namespace's Redis keys, queues and exchanges afterwards; the drain also runs Celery
and Dramatiq workers on their own queues, deleted afterwards. One table is printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any, Self

import aio_pika
import aio_pika.exceptions
import aiohttp
import redis.asyncio
import redis.exceptions
from aiohttp import web

if __package__ in (None, ""):  # run as `python bench/run.py`: make `bench.*` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import bundles, payload
from bench.bundles import Code
from bench.cputime import CpuClock, children
from bench.loadgen import percentile
from router.bundles import default_directory
from router.settings import Settings

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
REDIS_URL = "redis://127.0.0.1:6379/0"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
HANDLERS = "bench.handlers"
# The one setting a scenario may need by its nature: scale to zero within seconds, so that a
# cold start can be measured every few seconds (the default keeps an idle environment 60 s).
# The scenarios that set it (cold-start, runtimes) name it in every row.
SCALE_TO_ZERO = {"ROUTER_KEEP_WARM_S": "2"}
# The quietest configuration, against which the defaults are measured (scenario log-cost).
QUIET = {"ROUTER_LOG_LEVEL": "ERROR"}
QUIET_NAME = " ".join(f"{k}={v}" for k, v in QUIET.items())
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
KEEP_LOGS = bool(os.environ.get("BENCH_KEEP_LOGS"))  # keep the routers' output for reading
# The admin API's bearer token, given to every router the bench starts (so none generates one
# in the user's config directory) and sent on every request of the bench's client session.
ADMIN_TOKEN = f"bench-{secrets.token_urlsafe(24)}"


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class Row:
    scenario: str
    mode: str
    figure: str
    baseline: str = "-"
    ratio: str = "-"
    goal: str = "-"
    met: str = "-"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("yes" if ok else "NO")


def print_table(rows: Sequence[Row]) -> None:
    header = Row("scenario", "mode", "figure", "baseline", "ratio", "goal", "met")
    table = [header, *rows]
    columns = ("scenario", "mode", "figure", "baseline", "ratio", "goal", "met")
    widths = {c: max(len(str(getattr(r, c))) for r in table) for c in columns}
    for row in table:
        print("  ".join(str(getattr(row, c)).ljust(widths[c]) for c in columns).rstrip())


# ---------------------------------------------------------------------------------------------
# Prometheus text


METRIC_LINE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Metrics:
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Metrics:
        samples = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            match = METRIC_LINE.match(line)
            if match is None:
                continue
            name, labels, value = match.groups()
            samples.append((name, dict(LABEL.findall(labels or "")), float(value)))
        return cls(samples)

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples named `name` whose labels include `labels` (0 when none)."""
        return sum(
            v
            for n, ls, v in self.samples
            if n == name and all(ls.get(k) == want for k, want in labels.items())
        )


# ---------------------------------------------------------------------------------------------
# The router under test


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def retrying(action: Callable[[], Awaitable[None]], attempts: int = 15) -> None:
    """Run a cleanup step, retrying for ~30 s while Redis or RabbitMQ is away (restarted)."""
    for attempt in range(attempts):
        try:
            await action()
            return
        except (OSError, aio_pika.exceptions.AMQPError, redis.exceptions.RedisError) as exc:
            if attempt == attempts - 1:
                raise
            print(f"  cleanup retrying: {exc!r}", file=sys.stderr)
            await asyncio.sleep(2)


def delay_tiers() -> tuple[int, ...]:
    """The router's retry delay tiers (a queue and an exchange each), if this version has any."""
    try:
        from router import retry
    except ImportError:
        return ()
    tiers: tuple[int, ...] = tuple(getattr(retry, "TIERS_MS", ()))
    return tiers


class Router:
    """One `router serve` process in its own namespace, plus cleanup of what it created."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        namespace: str | None = None,
        settings: Mapping[str, str] | None = None,
        workers: int = 1,
    ) -> None:
        self.session = session
        self.workers = workers  # `serve --workers`: router processes on the port
        self.namespace = namespace or f"bench-{secrets.token_hex(4)}"
        # `ROUTER_*` settings beyond what every run needs (see `environment`): none unless a
        # scenario needs one; read at each start, so a scenario may change them in between.
        self.settings: dict[str, str] = dict(settings or {})
        # What `python -m` runs: the router, or the leases scenario's baseline (bench.unleased).
        self.module = "router"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.functions: set[str] = set()
        self.exchanges: set[str] = set()
        self.queues: set[str] = set()
        self._process: asyncio.subprocess.Process | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept for the router's lifetime
            prefix=f"{self.namespace}-", suffix=".log", delete=False
        )

    def environment(self) -> dict[str, str]:
        """What every router the bench starts is given: where it runs, what it may load and
        the bench's token. None of it is a performance setting: every other `ROUTER_*`
        variable, the calling shell's included, is left out, so the router runs at the
        service's defaults."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
        return {
            **inherited,
            "ROUTER_NAMESPACE": self.namespace,
            "ROUTER_PORT": str(self.port),
            "ROUTER_REDIS_URL": REDIS_URL,
            "ROUTER_AMQP_URL": AMQP_URL,
            "ROUTER_ADMIN_TOKEN": ADMIN_TOKEN,
            "PYTHONPATH": f"{BENCH_DIR}:{REPO_ROOT}",
            # Only the bench's functions: the default `handlers` package declares its own.
            "ROUTER_HANDLERS": HANDLERS,
            # Only with more than one: one is the default, and the default is not set.
            **({"ROUTER_WORKERS": str(self.workers)} if self.workers > 1 else {}),
        }

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the router is not running")
        return self._process.pid

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            "serve",
            env={**self.environment(), **self.settings},
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.returncode is not None:
                raise RuntimeError(f"router exited with {self._process.returncode}: {self.tail()}")
            if await self._all_ready():
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"router not ready after {READY_TIMEOUT_S:.0f} s: {self.tail()}")

    async def _all_ready(self) -> bool:
        """/readyz answers 200; with several workers, twenty times in a row on new connections
        (the kernel picks a worker per connection), so that every worker is asked."""
        for _ in range(1 if self.workers == 1 else 20):
            try:
                headers = {"Connection": "close"} if self.workers > 1 else {}
                async with self.session.get(f"{self.base}/readyz", headers=headers) as response:
                    if response.status != 200:
                        return False
            except aiohttp.ClientError:
                return False
        return True

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        await self._remember_functions()
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            print(f"  router {self.namespace} ignored SIGTERM; killing it", file=sys.stderr)
            process.kill()
            await process.wait()

    async def _remember_functions(self) -> None:
        """Note every registered function (declared ones too), so cleanup finds its queues."""
        try:
            status, body = await self.call("GET", "/api/v1/functions")
        except aiohttp.ClientError:
            return
        if status == 200 and isinstance(body, dict):
            self.functions.update(str(f["name"]) for f in body.get("functions", []))

    def tail(self, lines: int = 20) -> str:
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    async def cleanup(self) -> None:
        await self.stop()
        # The namespace's local files first (they need no service): its unpacked code bundles
        # and the worker's path.
        local = default_directory(self.namespace).parent
        await asyncio.to_thread(shutil.rmtree, local, ignore_errors=True)
        try:
            await retrying(self._clean_redis)
            await retrying(self._clean_rabbitmq)
        finally:  # the router's log goes even when a service stayed away
            if KEEP_LOGS:
                print(f"  router log kept: {self._log.name}", file=sys.stderr)
            else:
                await asyncio.to_thread(os.unlink, self._log.name)

    async def _clean_redis(self) -> None:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            keys = [key async for key in client.scan_iter(match=f"{self.namespace}:*", count=500)]
            for start in range(0, len(keys), 500):
                await client.delete(*keys[start : start + 500])
        finally:
            await client.aclose()

    async def _clean_rabbitmq(self) -> None:
        async with await aio_pika.connect(AMQP_URL) as connection:
            queues = {
                *self.queues,
                *(f"{self.namespace}.fn.{f}" for f in self.functions),
                *(f"{self.namespace}.fn.{f}.dlq" for f in self.functions),
            }
            delays = {f"{self.namespace}.delay.{tier}" for tier in delay_tiers()}
            queues |= delays
            exchanges = {
                *self.exchanges,
                *delays,
                f"{self.namespace}.work",
                f"{self.namespace}.dlx",
            }
            for queue in sorted(queues):
                async with connection.channel() as channel:
                    await channel.queue_delete(queue)
            for exchange in sorted(exchanges):
                async with connection.channel() as channel:
                    await channel.exchange_delete(exchange)

    # The admin API

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, f"{self.base}{path}", json=body) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text) if text else None
            except json.JSONDecodeError:
                return response.status, text

    async def put_function(
        self, name: str, handler: str, isolation: str, maximum: int, minimum: int = 0
    ) -> None:
        spec = {"handler": f"{HANDLERS}:{handler}", "isolation": isolation}
        await self._put_function(name, spec, maximum, minimum)

    async def deploy(
        self,
        name: str,
        code: Code,
        maximum: int,
        env: dict[str, str] | None = None,
    ) -> None:
        """A function with uploaded code (the same limits as put_function's)."""
        spec = {
            "runtime": code.runtime,
            "handler": code.handler,
            "code": {"zip": base64.b64encode(code.zip).decode()},
            "env": env or {},
        }
        await self._put_function(name, spec, maximum, 0)

    async def _put_function(
        self, name: str, spec: dict[str, Any], maximum: int, minimum: int
    ) -> None:
        self.functions.add(name)
        spec = {
            **spec,
            "timeout_s": 10,
            "memory_mb": 128,
            "concurrency": {"min": minimum, "max": maximum},
        }
        status, body = await self.call("PUT", f"/api/v1/functions/{name}", spec)
        if status not in (200, 201):
            raise RuntimeError(f"PUT function {name}: {status} {body}")

    async def put_trigger(self, name: str, trigger: dict[str, Any]) -> None:
        if trigger.get("type") == "amqp":
            self.exchanges.add(str(trigger["exchange"]))
        status, body = await self.call("PUT", f"/api/v1/triggers/{name}", trigger)
        if status not in (200, 201):
            raise RuntimeError(f"PUT trigger {name}: {status} {body}")

    async def invoke(self, function: str, event: Any) -> Any:
        status, body = await self.call("POST", f"/api/v1/functions/{function}/invoke", event)
        if status != 200:
            raise RuntimeError(f"invoke {function}: {status} {body}")
        return body

    async def metrics(self) -> Metrics:
        async with self.session.get(f"{self.base}/metrics") as response:
            return Metrics.parse(await response.text())


@dataclass
class Options:
    quick: bool


Scenario = Callable[[aiohttp.ClientSession, Options], Awaitable[list[Row]]]


async def with_router(
    session: aiohttp.ClientSession,
    body: Callable[[Router], Awaitable[list[Row]]],
    settings: Mapping[str, str] | None = None,
    workers: int = 1,
) -> list[Row]:
    """Run `body` with a router at the defaults (`workers` processes, `serve --workers`), or with
    `settings` named in every row."""
    router = Router(session, settings=settings, workers=workers)
    try:
        await router.start()
        rows = await body(router)
    finally:
        await router.cleanup()
    note = "".join(f" [{k}={v}]" for k, v in sorted((settings or {}).items()))
    return [dataclasses.replace(row, figure=row.figure + note) for row in rows]


async def wait_for_metric(
    router: Router, check: Callable[[Metrics], bool], timeout_s: float, every_s: float = 0.02
) -> float | None:
    """Seconds until `check(metrics)` holds, polling every `every_s`; None on timeout."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if check(await router.metrics()):
            return time.perf_counter() - started
        await asyncio.sleep(every_s)
    return None


# ---------------------------------------------------------------------------------------------
# 1. scale-up


async def scale_up(session: aiohttp.ClientSession, options: Options) -> list[Row]:
    events, maximum, sleep_s = 16, 4, 2.0

    async def body(router: Router) -> list[Row]:
        fn = "scale"
        await router.put_function(fn, "sleep", "process", maximum)

        async def enqueue() -> int:
            url = f"{router.base}/api/v1/functions/{fn}/invoke?mode=async"
            async with session.post(url, json={"sleep": sleep_s}) as response:
                return response.status

        started = time.perf_counter()
        sends = asyncio.gather(*(enqueue() for _ in range(events)))
        reached: float | None = None
        while time.perf_counter() - started < 10.0:
            metrics = await router.metrics()
            if metrics.value("router_workers", function=fn, state="busy") >= maximum:
                reached = time.perf_counter() - started
                break
            await asyncio.sleep(0.02)
        statuses = await sends
        accepted = sum(1 for s in statuses if s == 202)
        cold = (await router.metrics()).value("router_cold_starts_total", function=fn)
        figure = (
            f"{reached:.2f} s to {maximum} busy" if reached is not None else "not reached in 10 s"
        )
        figure += f" ({accepted}/{events} accepted, {cold:.0f} cold starts)"
        ok = reached is not None and reached < 1.0 and accepted == events
        return [Row("scale-up", "process", figure, goal="< 1 s", met=verdict(ok))]

    return await with_router(session, body)


# ---------------------------------------------------------------------------------------------
# 2. cold-start


@dataclass
class ColdStarts:
    """One function's cold starts: each a sync invoke with no environment, then a warm one."""

    function: str
    cold_ms: list[float] = field(default_factory=list)
    warm_ms: list[float] = field(default_factory=list)
    net_ms: list[float] = field(default_factory=list)  # cold minus the warm right after
    missed: int = 0  # runs that did not start exactly one environment

    async def measure(self, router: Router) -> None:
        """One run; the function's pool must have no environment (see `scaled_to_zero`)."""
        fn = self.function
        starts = (await router.metrics()).value("router_cold_starts_total", function=fn)
        t0 = time.perf_counter()
        await router.invoke(fn, {"n": 1})
        t1 = time.perf_counter()
        await router.invoke(fn, {"n": 2})
        t2 = time.perf_counter()
        after = (await router.metrics()).value("router_cold_starts_total", function=fn)
        if after - starts != 1:
            self.missed += 1
        self.cold_ms.append((t1 - t0) * 1000)
        self.warm_ms.append((t2 - t1) * 1000)
        self.net_ms.append((t1 - t0 - (t2 - t1)) * 1000)

    @property
    def runs(self) -> int:
        return len(self.net_ms)

    def note(self) -> str:
        return f" [{self.missed} runs without exactly 1 cold start]" if self.missed else ""


async def scaled_to_zero(router: Router, functions: Sequence[str]) -> None:
    """Wait until none of `functions` has an idle or busy environment."""

    def none_left(m: Metrics) -> bool:
        return all(
            m.value("router_workers", function=fn, state=state) == 0
            for fn in functions
            for state in ("idle", "busy")
        )

    if await wait_for_metric(router, none_left, 15.0, 0.05) is None:
        raise RuntimeError("the pool did not scale back to zero within 15 s")


def init_avg_ms(before: Metrics, after: Metrics, fn: str) -> tuple[float, float]:
    """(mean router_init_duration in ms, inits counted) between two scrapes."""
    name = "router_init_duration_seconds"
    inits = after.value(f"{name}_count", function=fn) - before.value(f"{name}_count", function=fn)
    total = after.value(f"{name}_sum", function=fn) - before.value(f"{name}_sum", function=fn)
    return (total / inits * 1000 if inits else float("nan")), inits


async def cold_start(session: aiohttp.ClientSession, options: Options) -> list[Row]:
    runs = 5 if options.quick else 15

    async def body(router: Router) -> list[Row]:
        fn = "cold"
        await router.put_function(fn, "noop", "process", 2)
        samples = ColdStarts(fn)
        before = await router.metrics()
        for _ in range(runs):
            await scaled_to_zero(router, [fn])
            await samples.measure(router)
        init_avg, inits = init_avg_ms(before, await router.metrics(), fn)
        cold_ms, warm_ms, net_ms = samples.cold_ms, samples.warm_ms, samples.net_ms
        warm50 = percentile(warm_ms, 50)
        p50, p95 = percentile(net_ms, 50), percentile(net_ms, 95)
        return [
            Row(
                "cold-start",
                "process",
                f"p50 {p50:.0f} ms cold-warm (raw {percentile(cold_ms, 50):.0f} ms), n={runs}"
                + samples.note(),
                f"warm p50 {warm50:.1f} ms",
                f"{percentile(cold_ms, 50) / warm50:.0f}x",
                "p50 < 250 ms",
                verdict(p50 < 250),
            ),
            Row(
                "cold-start",
                "process",
                f"p95 {p95:.0f} ms cold-warm (raw {percentile(cold_ms, 95):.0f} ms)",
                f"warm p95 {percentile(warm_ms, 95):.1f} ms",
            ),
            Row(
                "cold-start",
                "process",
                f"init avg {init_avg:.0f} ms over {inits:.0f} inits (router_init_duration)",
            ),
        ]

    return await with_router(session, body, SCALE_TO_ZERO)


# ---------------------------------------------------------------------------------------------
# 3. warm-overhead


async def timed_loop(
    session: aiohttp.ClientSession, url: str, count: int, warmup: int
) -> list[float]:
    """Milliseconds per sequential POST of a small JSON event (after `warmup` unmeasured)."""
    event = {"n": 1}
    samples: list[float] = []
    for i in range(warmup + count):
        t0 = time.perf_counter()
        async with session.post(url, json=event) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"POST {url}: {response.status}")
        if i >= warmup:
            samples.append((time.perf_counter() - t0) * 1000)
    return samples


async def bare_server() -> tuple[web.AppRunner, str]:
    """The baseline: an aiohttp server answering the same route with the same JSON."""

    async def invoke(request: web.Request) -> web.Response:
        await request.json()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/api/v1/functions/{name}/invoke", invoke)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


@dataclass
class WarmBaseline:
    p50: float
    p99: float
    count: int

    @classmethod
    async def measure(cls, session: aiohttp.ClientSession, count: int, warmup: int) -> Self:
        runner, base = await bare_server()
        try:
            samples = await timed_loop(session, f"{base}/api/v1/functions/x/invoke", count, warmup)
        finally:
            await runner.cleanup()
        return cls(percentile(samples, 50), percentile(samples, 99), count)

    def row(self, scenario: str) -> Row:
        return Row(
            scenario,
            "baseline",
            f"p50 {self.p50:.2f} ms  p99 {self.p99:.2f} ms (bare aiohttp, n={self.count})",
        )


async def warm_row(
    router: Router,
    path: str,
    fn: str,
    baseline: WarmBaseline,
    warmup: int,
    row: tuple[str, str],
    goal_ms: float | None,
) -> Row:
    """Sequential sync requests to `path` (running `fn`): latency and overhead over the
    baseline's p50, with the router's own mean run time for reference."""
    before = await router.metrics()
    samples = await timed_loop(router.session, f"{router.base}{path}", baseline.count, warmup)
    after = await router.metrics()
    name = "router_invocation_duration_seconds"
    runs = after.value(f"{name}_count", function=fn) - before.value(f"{name}_count", function=fn)
    handler_s = after.value(f"{name}_sum", function=fn) - before.value(f"{name}_sum", function=fn)
    handler_ms = handler_s / runs * 1000 if runs else float("nan")
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    overhead = p50 - baseline.p50
    return Row(
        *row,
        f"p50 {p50:.2f} ms  p99 {p99:.2f} ms; overhead p50 {overhead:+.2f} ms"
        f" p99 {p99 - baseline.p99:+.2f} ms (router-measured run avg {handler_ms:.2f} ms)",
        f"p50 {baseline.p50:.2f} ms",
        f"{p50 / baseline.p50:.1f}x",
        f"overhead < {goal_ms:g} ms" if goal_ms is not None else "-",
        verdict(overhead < goal_ms) if goal_ms is not None else "-",
    )


async def warm_overhead(session: aiohttp.ClientSession, options: Options) -> list[Row]:
    count, warmup = (100, 20) if options.quick else (500, 50)
    modes = (("inline", "noop_async"), ("thread", "noop"), ("process", "noop"))
    goals = {"inline": 1.0, "process": 3.0}

    async def body(router: Router) -> list[Row]:
        for mode, handler in modes:
            await router.put_function(f"warm-{mode}", handler, mode, 4)
        hook = {
            "function": "warm-inline",
            "type": "webhook",
            "mode": "sync",
            "verify": {"scheme": "none"},
        }
        await router.put_trigger("warm-hook", hook)
        baseline = await WarmBaseline.measure(session, count, warmup)
        rows = [baseline.row("warm-overhead")]
        targets = [
            (mode, f"warm-{mode}", f"/api/v1/functions/warm-{mode}/invoke") for mode, _ in modes
        ]
        targets.append(("webhook", "warm-inline", "/hooks/warm-hook"))  # inline, via a trigger
        for mode, fn, path in targets:
            row = ("warm-overhead", mode)
            rows.append(await warm_row(router, path, fn, baseline, warmup, row, goals.get(mode)))
        return rows

    return await with_router(session, body)


# ---------------------------------------------------------------------------------------------
# Helper processes (load generators, ceilings, peers): started and stopped by their own pid


def child_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "BENCH_AMQP_URL": AMQP_URL,
        "BENCH_REDIS_URL": REDIS_URL,
        **extra,
    }


async def run_json(argv: Sequence[str], timeout_s: float, env: dict[str, str] | None = None) -> Any:
    """Run a short-lived helper; returns the JSON of its last stdout line starting with `{`."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=REPO_ROOT,
        env=env or child_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        name = " ".join(argv[1:4])
        raise RuntimeError(f"{name} ran over {timeout_s:.0f} s") from None
    lines = [line for line in out.decode(errors="replace").splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        tail = " | ".join(err.decode(errors="replace").splitlines()[-3:])
        raise RuntimeError(f"{' '.join(argv[1:4])} exited {process.returncode}: {tail}")
    return json.loads(lines[-1])


class Child:
    """A long-running helper (a peer's workers, the bare server) in its own process group."""

    def __init__(self, name: str, argv: Sequence[str], env: dict[str, str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept for the child's lifetime
            prefix=f"bench-{name}-", suffix=".log", delete=False
        )

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # its own group: a kill reaches its forked workers too
        )

    def check(self) -> None:
        if self.process is not None and self.process.returncode is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.tail()}")

    async def stop(self, grace_s: float = 15.0) -> None:
        process, self.process = self.process, None
        try:
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), grace_s)
                except TimeoutError:
                    print(f"  {self.name} ignored SIGTERM; killing it", file=sys.stderr)
                if process.returncode is None:
                    os.killpg(process.pid, signal.SIGKILL)
                    await process.wait()
            if process is not None:
                with contextlib.suppress(ProcessLookupError):  # forked workers left over
                    os.killpg(process.pid, signal.SIGKILL)
        finally:
            self._log.close()
            if KEEP_LOGS:
                print(f"  {self.name} log kept: {self._log.name}", file=sys.stderr)
            else:
                await asyncio.to_thread(os.unlink, self._log.name)

    def tail(self, lines: int = 5) -> str:
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace")
        return " | ".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------
# 4. drain

# The uploaded-code drain: `handlers.incr` (bench/handlers.py) from a python3.11 bundle, with
# redis-py vendored; in processes as `process` is, with the same window.
BUNDLE = "python3.11 zip"
DRAIN_MAX = {"inline": 32, "thread": 32, "process": 8, BUNDLE: 8}  # concurrency.max
PREFETCH_MULTIPLIER = Settings.prefetch_multiplier  # the router's default
# The bare consumer's window: the router's inline prefetch.
CEILING_PREFETCH = DRAIN_MAX["inline"] * PREFETCH_MULTIPLIER
PUBLISH_TIMEOUT_S = 30.0  # for one publisher confirm
CELERY_DELAYED = "celery_delayed"  # Celery's native delayed delivery topology (quorum queues)


async def publish(exchange_name: str, routing_key: str, key: str, count: int) -> float:
    """Publish `count` persistent messages with publisher confirms; returns seconds taken."""
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = (
            channel.default_exchange
            if exchange_name == ""
            else await channel.get_exchange(exchange_name, ensure=True)
        )
        started = time.perf_counter()
        batch = 250
        for first in range(0, count, batch):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            payload.body(key, seq),
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        routing_key=routing_key,
                        # aio-pika waits for ever by default (a broker restarting, a blocked
                        # connection): fail the scenario instead.
                        timeout=PUBLISH_TIMEOUT_S,
                    )
                    for seq in range(first, min(count, first + batch))
                )
            )
        return time.perf_counter() - started


async def queue_depth(queue: str) -> int:
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


async def wait_depth(queue: str, count: int, timeout_s: float = 20.0) -> None:
    """Wait until `queue` holds `count` ready messages (a producer without confirms)."""
    deadline = time.perf_counter() + timeout_s
    depth = 0
    while time.perf_counter() < deadline:
        depth = await queue_depth(queue)
        if depth >= count:
            if depth != count:
                raise RuntimeError(f"{queue} holds {depth}, expected {count}")
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{queue} holds {depth}, expected {count}")


async def watch_counter(
    key: str,
    target: int,
    timeout_s: float,
    alive: Callable[[], None] | None = None,
    started: Callable[[], None] | None = None,
) -> tuple[float, int]:
    """Poll the counter every 10 ms; (seconds from first seen >= 1 to >= target, last value).
    `started` is called when the counter is first seen >= 1."""
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        first: float | None = None
        deadline = time.perf_counter() + timeout_s
        value = 0
        while time.perf_counter() < deadline:
            value = int(await client.get(key) or 0)
            now = time.perf_counter()
            if value >= 1 and first is None:
                first = now
                if started is not None:
                    started()
            if value >= target and first is not None:
                return now - first, value
            if alive is not None:
                alive()
            await asyncio.sleep(0.01)
        raise RuntimeError(f"counter {key} reached only {value}/{target} in {timeout_s:.0f} s")
    finally:
        await client.aclose()


async def delete_topology(queues: Sequence[str], exchanges: Sequence[str] = ()) -> None:
    async with await aio_pika.connect(AMQP_URL) as connection:
        for queue in queues:
            async with connection.channel() as channel:
                await channel.queue_delete(queue)
        for exchange in exchanges:
            async with connection.channel() as channel:
                await channel.exchange_delete(exchange)


async def exchange_exists(name: str) -> bool:
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        try:
            await channel.declare_exchange(name, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return False
        return True


async def bare_consumer(namespace: str, count: int) -> tuple[float, float]:
    """The ceiling: a bare aio-pika consumer (`bench.loadgen consume`, its own process, prefetch
    CEILING_PREFETCH, manual ack) doing the same INCR on messages queued before it starts.

    Returns (events/s from first to last handled, publish seconds).
    """
    queue_name = f"{namespace}.baseline"
    key = f"{namespace}:drain:baseline"
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        published = await publish("", queue_name, key, count)
        argv = [sys.executable, "-m", "bench.loadgen", "consume", "--queue", queue_name]
        argv += ["--count", str(count), "--prefetch", str(CEILING_PREFETCH)]
        consumer = asyncio.ensure_future(run_json(argv, 150.0))
        try:
            elapsed, _ = await watch_counter(key, count, 150.0)
        finally:
            await consumer
        return (count - 1) / elapsed, published
    finally:
        async with connection.channel() as cleanup:
            await cleanup.queue_delete(queue_name)
        await connection.close()


@dataclass
class Peer:
    name: str
    worker: list[str]
    queues: list[str]
    exchanges: list[str]


def peers(namespace: str) -> list[Peer]:
    celery_q, dramatiq_q = f"{namespace}.celery", f"{namespace}.dramatiq"
    return [
        Peer(
            "celery",
            ["celery", "-A", "bench.peers.celery_app", "worker", "-P", "prefork", "-c", "2"],
            [celery_q],
            [celery_q],
        ),
        Peer(
            "dramatiq",
            ["dramatiq", "bench.peers.dramatiq_app", "-p", "2", "-t", "8"],
            [dramatiq_q, f"{dramatiq_q}.DQ", f"{dramatiq_q}.XQ"],
            [],
        ),
    ]


PEER_FLAGS = {
    "celery": ["--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
    "dramatiq": [],
}
PEER_DESCRIPTION = {
    "celery": "Celery prefork -c 2, acks_late, prefetch x4",
    "dramatiq": "Dramatiq -p 2 -t 8",
}


async def peer_drain(peer: Peer, router: Router, count: int) -> tuple[float, float]:
    """(events/s from the peer's first INCR to its N-th, seconds its producers took)."""
    if shutil.which(peer.worker[0]) is None:
        raise RuntimeError(f"{peer.worker[0]} not installed (pip install -e '.[bench]')")
    router.queues.update(peer.queues)  # cleanup deletes them even if this fails half-way
    router.exchanges.update(peer.exchanges)
    key = f"{router.namespace}:drain:{peer.name}"
    env = child_env(BENCH_PEER_QUEUE=peer.queues[0])
    own_delayed = peer.name == "celery" and not await exchange_exists(f"{CELERY_DELAYED}_delivery")
    worker = Child(peer.name, [*peer.worker, *PEER_FLAGS[peer.name]], env)
    try:
        # Two producer processes, each half of the events: Celery's client costs ~1 ms a message.
        halves = [(0, count // 2), (count // 2, count - count // 2)]
        produce = [sys.executable, "-m", "bench.peers.produce", peer.name, "--key", key]
        started = time.perf_counter()
        await asyncio.gather(
            *(
                run_json([*produce, "--start", str(start), "--count", str(n)], 120.0, env)
                for start, n in halves
            )
        )
        produced_s = time.perf_counter() - started
        await wait_depth(peer.queues[0], count)
        await worker.start()
        elapsed, value = await watch_counter(key, count, 150.0, worker.check)
        if value != count:
            print(f"  {peer.name}: counter {value}, expected {count}", file=sys.stderr)
        return (count - 1) / elapsed, produced_s
    finally:
        await worker.stop()
        await retrying(lambda: delete_topology(peer.queues, peer.exchanges))
        if own_delayed:  # Celery declared its delayed-delivery levels for our quorum queue
            queues = [f"{CELERY_DELAYED}_{level}" for level in range(28)]
            await retrying(lambda: delete_topology(queues, [*queues, f"{CELERY_DELAYED}_delivery"]))


def rate_row(mode: str, rate: float | None, detail: str) -> Row:
    if rate is None:
        return Row("drain", mode, f"ERROR {detail}")
    return Row("drain", mode, f"{rate:.0f} ev/s ({detail})")


def comparison(
    mode: str, rate: float | None, other: str, other_rate: float | None, goal: float
) -> Row:
    if rate is None or other_rate is None:
        return Row("drain", f"{mode} vs {other}", "-", "-", "-", f">= {goal:g}x", "-")
    ratio = rate / other_rate
    return Row(
        "drain",
        f"{mode} vs {other}",
        f"{rate:.0f} ev/s",
        f"{other_rate:.0f} ev/s",
        f"{ratio:.2f}",
        f">= {goal:g}x",
        verdict(ratio >= goal),
    )


def drain_function(mode: str) -> str:
    return "drain-bundle" if mode == BUNDLE else f"drain-{mode}"


async def put_drain_function(router: Router, exchange: str, mode: str, handler: str) -> None:
    """`drain-<mode>` running `handler`, on an amqp trigger from `exchange`."""
    fn = drain_function(mode)
    await router.put_function(fn, handler, mode, DRAIN_MAX[mode])
    await put_drain_trigger(router, exchange, fn)


async def put_drain_trigger(router: Router, exchange: str, fn: str) -> None:
    trigger = {
        "function": fn,
        "type": "amqp",
        "exchange": exchange,
        "exchange_type": "topic",
        "routing_key": f"bench.{fn}.#",
    }
    await router.put_trigger(fn, trigger)


@dataclass
class DrainRun:
    count: int
    elapsed: float  # from the first handled event to the count-th
    counter: int  # the counter's value at the end (the count, unless something ran twice)
    published_s: float
    cpu_us: float  # CPU of the router and its environments per event

    @property
    def rate(self) -> float:
        return (self.count - 1) / self.elapsed

    def describe(self) -> str:
        return (
            f"{self.elapsed:.2f} s for {self.count}; published in {self.published_s:.1f} s;"
            f" CPU {self.cpu_us:.0f} us/event"
        ) + (f" [counter {self.counter}]" if self.counter != self.count else "")


async def router_drain(
    router: Router, exchange: str, fn: str, count: int, tag: str = ""
) -> DrainRun:
    """With the router stopped, queue `count` events for `fn`; then start the router (with
    its current settings), time the drain, and stop it again. `tag` makes the counter's key
    unique when a function is drained more than once."""
    await router.stop()
    key = f"{router.namespace}:drain:{fn}{tag}"
    published = await publish(exchange, f"bench.{fn}.x", key, count)
    await wait_depth(f"{router.namespace}.fn.{fn}", count, 5.0)
    await router.start()
    cpu = CpuClock(router.pid)
    elapsed, value = await watch_counter(key, count, 150.0, started=cpu.start)
    cpu_us = cpu.seconds() / (count - 1) * 1e6
    await router.stop()
    return DrainRun(count, elapsed, value, published, cpu_us)


async def drain(session: aiohttp.ClientSession, options: Options) -> list[Row]:
    count = 5000 if options.quick else 20000
    modes = (("inline", "incr_async"), ("thread", "incr"), ("process", "incr"))
    print("  building the python3.11 bundle", file=sys.stderr, flush=True)
    code = await bundles.python_with_redis("incr")

    async def body(router: Router) -> list[Row]:
        exchange = f"{router.namespace}.bench"
        for mode, handler in modes:
            await put_drain_function(router, exchange, mode, handler)
        # Uploaded code sees only Lambda's variables and its own `env`: the Redis URL goes there,
        # under the name handlers.py reads on the router's path too.
        redis_env = {"ROUTER_REDIS_URL": REDIS_URL}
        await router.deploy(drain_function(BUNDLE), code, DRAIN_MAX[BUNDLE], redis_env)
        await put_drain_trigger(router, exchange, drain_function(BUNDLE))
        await router.stop()
        print("  ceiling (bare aio-pika)", file=sys.stderr, flush=True)
        ceiling, published_s = await bare_consumer(router.namespace, count)
        rates: dict[str, float | None] = {"ceiling": ceiling}
        rows = [
            rate_row(
                "ceiling",
                ceiling,
                f"bare aio-pika+INCR, prefetch {CEILING_PREFETCH}, n={count};"
                f" published in {published_s:.1f} s",
            )
        ]
        for peer in peers(router.namespace):
            print(f"  {peer.name}", file=sys.stderr, flush=True)
            try:
                rate, produced_s = await peer_drain(peer, router, count)
            except Exception as exc:
                rates[peer.name] = None
                rows.append(rate_row(peer.name, None, f"{type(exc).__name__}: {exc}"[:300]))
                continue
            rates[peer.name] = rate
            rows.append(
                rate_row(
                    peer.name,
                    rate,
                    f"{PEER_DESCRIPTION[peer.name]}; 2 producers took {produced_s:.1f} s",
                )
            )
        for mode in (*(m for m, _ in modes), BUNDLE):  # the bundle right after `process`
            print(f"  router {mode}", file=sys.stderr, flush=True)
            run = await router_drain(router, exchange, drain_function(mode), count)
            rate = rates[mode] = run.rate
            rows.append(
                Row(
                    "drain",
                    mode,
                    f"{rate:.0f} ev/s (max {DRAIN_MAX[mode]}; {run.describe()})",
                    f"{ceiling:.0f} ev/s",
                    f"{rate / ceiling:.2f}",
                    ">= 0.8x" if mode == "inline" else "-",
                    verdict(rate / ceiling >= 0.8) if mode == "inline" else "-",
                )
            )
        rows += [
            comparison("inline", rates["inline"], "celery", rates["celery"], 2.0),
            comparison("inline", rates["inline"], "dramatiq", rates["dramatiq"], 1.2),
            comparison("process", rates["process"], "celery", rates["celery"], 1.5),
            comparison(BUNDLE, rates[BUNDLE], "process", rates["process"], 0.9),
        ]
        if any(rates[p] is None for p in ("celery", "dramatiq")):
            rows.append(Row("drain", "-", "ERROR a peer did not run (see its row)"))
        return rows

    return await with_router(session, body)


# ---------------------------------------------------------------------------------------------
# 5. webhook-sync and 6. webhook-async: 32 connections for a fixed time

CONNECTIONS = 32
WRK_SCRIPT = """wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{{"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f, "non2xx": %d, "errors": %d}}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass
class Load:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    errors: int
    tool: str

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def describe(self) -> str:
        bad = self.non2xx + self.errors
        failures = f"; {self.non2xx} non-2xx, {self.errors} errors" if bad else ""
        return (
            f"{self.rate:.0f} req/s p50 {self.p50_ms:.2f} ms p99 {self.p99_ms:.2f} ms"
            f" ({self.tool}{failures})"
        )


def hook_body() -> bytes:
    return payload.body("bench:webhook", 0)


async def http_load(url: str, duration_s: float, warmup_s: float) -> Load:
    """Closed-loop POSTs of the ~300-byte JSON body from CONNECTIONS connections: wrk (one
    thread) when installed, else `bench.loadgen http` (aiohttp, its own process)."""
    wrk = shutil.which("wrk")
    timeout = duration_s + warmup_s + 30
    if wrk is None:
        with tempfile.NamedTemporaryFile(suffix=".json") as body_file:
            body_file.write(hook_body())
            body_file.flush()
            argv = [sys.executable, "-m", "bench.loadgen", "http", "--url", url]
            argv += ["--body-file", body_file.name, "--connections", str(CONNECTIONS)]
            argv += ["--duration", str(duration_s), "--warmup", str(warmup_s)]
            result = await run_json(argv, timeout)
        return Load(**result)
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT.format(body=hook_body().decode()))
        script.flush()
        base = [wrk, "-t1", f"-c{CONNECTIONS}", "--timeout", "5s", "-s", script.name]
        if warmup_s > 0:
            await run_json([*base, f"-d{warmup_s:g}s", url], timeout)
            await asyncio.sleep(0.5)  # let the warm-up's last requests finish first
        result = await run_json([*base, f"-d{duration_s:g}s", url], timeout)
    return Load(tool="wrk -t1 -c32", **result)


async def wait_http(url: str, session: aiohttp.ClientSession, child: Child) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        child.check()
        try:
            async with session.post(url, data=b"{}") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{child.name} not answering {url}")


def unexpected_answers(before: Metrics, after: Metrics, trigger: str, expected: str) -> str:
    """The router's answers other than `expected` during a run (warm-up included), e.g.
    ` [router answered 429 x3]`; empty when there were none."""
    name = "router_webhook_requests_total"
    statuses = {ls.get("status", "") for n, ls, _ in after.samples if n == name}
    counts = {
        status: after.value(name, trigger=trigger, status=status)
        - before.value(name, trigger=trigger, status=status)
        for status in sorted(statuses - {expected})
    }
    shown = ", ".join(f"{status} x{n:.0f}" for status, n in counts.items() if n)
    return f" [router answered {shown}]" if shown else ""


def webhook_trigger(function: str, mode: str) -> dict[str, Any]:
    return {"function": function, "type": "webhook", "mode": mode, "verify": {"scheme": "none"}}


def durations(options: Options) -> tuple[float, float]:
    """(measured seconds, warm-up seconds) of one load run."""
    return (3.0, 1.0) if options.quick else (10.0, 1.0)


async def webhook_sync(session: aiohttp.ClientSession, options: Options) -> list[Row]:
    duration_s, warmup_s = durations(options)
    # max 64 inline: 32 connections are never throttled (a sync webhook answers 429 at max);
    # process max 32: one environment per connection, started during a longer warm-up.
    functions = (("inline", "noop_async", 64, warmup_s), ("process", "noop", 32, 3.0))

    async def body(router: Router) -> list[Row]:
        for mode, handler, maximum, _ in functions:
            await router.put_function(f"hook-{mode}", handler, mode, maximum)
            await router.put_trigger(f"hook-{mode}", webhook_trigger(f"hook-{mode}", "sync"))
        port = free_port()
        bare = Child("bare-aiohttp", [sys.executable, "-m", "bench.loadgen", "serve"], child_env())
        bare.argv += ["--port", str(port)]
        await bare.start()
        try:
            url = f"http://127.0.0.1:{port}/hooks/bare"
            await wait_http(url, session, bare)
            ceiling = await http_load(url, duration_s, warmup_s)
        finally:
            await bare.stop()
        rows = [Row("webhook-sync", "ceiling", f"{ceiling.describe()}; bare aiohttp, 1 process")]
        for mode, _, maximum, warm_s in functions:
            before = await router.metrics()
            load = await http_load(f"{router.base}/hooks/hook-{mode}", duration_s, warm_s)
            answers = unexpected_answers(before, await router.metrics(), f"hook-{mode}", "200")
            ratio = load.rate / ceiling.rate
            clean = load.non2xx + load.errors == 0
            goal, met = "-", "-"
            if mode == "inline":
                goal = ">= 0.5x, p99 < 10 ms"
                met = verdict(ratio >= 0.5 and load.p99_ms < 10 and clean)
            rows.append(
                Row(
                    "webhook-sync",
                    mode,
                    f"{load.describe()}; max {maximum}{answers}",
                    f"{ceiling.rate:.0f} req/s",
                    f"{ratio:.2f}",
                    goal,
                    met,
                )
            )
        return rows

    return await with_router(session, body)


async def bare_ceiling(
    session: aiohttp.ClientSession, processes: int, duration_s: float, warmup_s: float
) -> Load:
    """The bare aiohttp app in `processes` processes on one port (SO_REUSEPORT when several)."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.loadgen", "serve", "--port", str(port)]
    argv += ["--reuse-port"] if processes > 1 else []
    bares = [Child(f"bare-aiohttp-{i}", argv, child_env()) for i in range(processes)]
    try:
        for bare in bares:
            await bare.start()
        url = f"http://127.0.0.1:{port}/hooks/bare"
        for bare in bares:  # each answers: new connections until all have started
            await wait_http(url, session, bare)
        await asyncio.sleep(1.0)  # the last ones to start are listening too
        return await http_load(url, duration_s, warmup_s)
    finally:
        for bare in bares:
            await bare.stop()


WORKER_COUNTS = (1, 2)


async def webhook_workers(session: aiohttp.ClientSession, options: Options) -> list[Row]:
    """webhook-sync's inline load against `serve --workers N` and bare aiohttp in N processes
    on one port, for each N in WORKER_COUNTS, at the service's defaults otherwise."""
    duration_s, warmup_s = durations(options)
    rows: list[Row] = []
    rates: dict[int, float] = {}
    for count in WORKER_COUNTS:
        ceiling = await bare_ceiling(session, count, duration_s, warmup_s)
        how = "1 process" if count == 1 else f"{count} processes, SO_REUSEPORT"
        detail = f"{ceiling.describe()}; bare aiohttp, {how}"
        rows.append(Row("webhook-workers", f"ceiling {count}p", detail))

        async def body(router: Router, ceiling: Load = ceiling, count: int = count) -> list[Row]:
            await router.put_function("hook-inline", "noop_async", "inline", 64)
            await router.put_trigger("hook-inline", webhook_trigger("hook-inline", "sync"))
            before = await router.metrics()
            load = await http_load(f"{router.base}/hooks/hook-inline", duration_s, warmup_s)
            answers = unexpected_answers(before, await router.metrics(), "hook-inline", "200")
            rates[count] = load.rate
            return [
                Row(
                    "webhook-workers",
                    f"inline {count}w",
                    f"{load.describe()}; --workers {count}, max 64{answers}",
                    f"{ceiling.rate:.0f} req/s",
                    f"{load.rate / ceiling.rate:.2f}",
                )
            ]

        rows += await with_router(session, body, workers=count)
    if len(rates) == len(WORKER_COUNTS):
        first, last = WORKER_COUNTS[0], WORKER_COUNTS[-1]
        scale = rates[last] / rates[first]
        rows.append(
            Row("webhook-workers", f"{last}w / {first}w", f"router req/s ratio {scale:.2f}")
        )
    return rows


async def publish_ceiling(namespace: str, duration_s: float, warmup_s: float) -> Load:
    queue = f"{namespace}.ceiling-async"
    try:
        with tempfile.NamedTemporaryFile(suffix=".json") as body_file:
            body_file.write(hook_body())
            body_file.flush()
            argv = [sys.executable, "-m", "bench.loadgen", "publish", "--queue", queue]
            argv += ["--body-file", body_file.name, "--inflight", str(CONNECTIONS)]
            argv += ["--duration", str(duration_s), "--warmup", str(warmup_s)]
            result = await run_json(argv, duration_s + warmup_s + 30)
    finally:
        await retrying(lambda: delete_topology([queue]))
    return Load(non2xx=0, errors=0, tool="aio-pika, 32 in flight", **result)


async def webhook_async(session: aiohttp.ClientSession, options: Options) -> list[Row]:
    duration_s, warmup_s = durations(options)

    async def body(router: Router) -> list[Row]:
        # The function's own consumer would run the events while they are accepted; it runs
        # one at a time and each sleeps 1 s, so what is measured is accepting, not running.
        await router.put_function("hook-async", "sleep_async", "inline", 1)
        await router.put_trigger("hook-async", webhook_trigger("hook-async", "async"))
        ceiling = await publish_ceiling(router.namespace, duration_s, warmup_s)
        before = await router.metrics()
        load = await http_load(f"{router.base}/hooks/hook-async", duration_s, warmup_s)
        answers = unexpected_answers(before, await router.metrics(), "hook-async", "202")
        ratio = load.rate / ceiling.rate
        clean = load.non2xx + load.errors == 0
        return [
            Row(
                "webhook-async",
                "ceiling",
                f"{ceiling.describe()}; confirmed persistent publishes, quorum queue",
            ),
            Row(
                "webhook-async",
                "inline",
                f"{load.describe()}; 202 after the confirm{answers}",
                f"{ceiling.rate:.0f} msg/s",
                f"{ratio:.2f}",
                ">= 0.5x",
                verdict(ratio >= 0.5 and clean),
            ),
        ]

    return await with_router(session, body)


# ---------------------------------------------------------------------------------------------
# 7. memory


def rss_mb(pid: int) -> float:
    """VmRSS of a process, in MB (MiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def environment_pids(router_pid: int) -> list[int]:
    pids = []
    for pid in children(router_pid):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"router.executors.worker" in cmdline:
                pids.append(pid)
    return pids


async def bare_interpreter_mb() -> float:
    """RSS of an idle `python -c` waiting on stdin: what any Python process costs."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; sys.stdin.read()", stdin=asyncio.subprocess.PIPE
    )
    try:
        await asyncio.sleep(0.5)
        return rss_mb(process.pid)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        await asyncio.wait_for(process.wait(), 5)


async def memory(session: aiohttp.ClientSession, options: Options) -> list[Row]:
    async def body(router: Router) -> list[Row]:
        await asyncio.sleep(2.0)  # settle: registry loaded, consumers and scaler running
        idle_mb = rss_mb(router.pid)
        fn = "mem"
        await router.put_function(fn, "noop", "process", 1)
        await router.invoke(fn, {"n": 1})

        def one_idle(m: Metrics) -> bool:
            return m.value("router_workers", function=fn, state="idle") == 1

        if await wait_for_metric(router, one_idle, 5.0) is None:
            raise RuntimeError("no idle environment after the invoke")
        pids = environment_pids(router.pid)
        if len(pids) != 1:
            raise RuntimeError(f"expected one environment process, found {pids}")
        env_mb = rss_mb(pids[0])
        after_mb = rss_mb(router.pid)
        bare_mb = await bare_interpreter_mb()
        return [
            Row(
                "memory",
                "router idle",
                f"{idle_mb:.1f} MB VmRSS (after start-up; {after_mb:.1f} MB after one invoke)",
                goal="< 80 MB",
                met=verdict(idle_mb < 80),
            ),
            Row(
                "memory",
                "environment",
                f"{env_mb:.1f} MB VmRSS (one warm process environment, `noop`)",
                f"{bare_mb:.1f} MB bare python",
                f"{env_mb / bare_mb:.1f}x",
                "< 40 MB",
                verdict(env_mb < 40),
            ),
        ]

    return await with_router(session, body)


# ---------------------------------------------------------------------------------------------
# 8. runtimes: cold start and warm overhead of uploaded code, per runtime


@dataclass(frozen=True)
class Runtime:
    mode: str  # the table's name for it
    function: str
    cold_goal_ms: float | None
    warm_goal_ms: float | None


RUNTIMES = (
    Runtime("python3.11 zip", "rt-python", 250, None),
    Runtime("nodejs20.x", "rt-node", 250, 2),
    Runtime("provided bash", "rt-bash", None, None),
    Runtime("provided go", "rt-go", None, 2),
    Runtime("process (ref)", "rt-process", None, None),  # today's path, `bench.handlers:noop`
)
RUNTIME_MAX = 2  # concurrency.max, as the cold-start scenario's


async def runtime_code() -> dict[str, Code]:
    """Every uploaded function's code, by function name (the Go program is built here)."""
    return {
        "rt-python": bundles.python("noop"),
        "rt-node": bundles.node(),
        "rt-bash": bundles.bash(),
        "rt-go": await bundles.go(),
    }


async def runtimes(session: aiohttp.ClientSession, options: Options) -> list[Row]:
    rounds = 5 if options.quick else 15
    count, warmup = (100, 20) if options.quick else (500, 50)
    print("  building the bundles", file=sys.stderr, flush=True)
    code = await runtime_code()

    async def body(router: Router) -> list[Row]:
        for runtime in RUNTIMES:
            fn = runtime.function
            if fn in code:
                await router.deploy(fn, code[fn], RUNTIME_MAX)
            else:
                await router.put_function(fn, "noop", "process", RUNTIME_MAX)
            await router.invoke(fn, {"n": 0})  # unmeasured: unpacks the bundle, proves it runs
        colds = await runtime_cold_starts(router, rounds)
        baseline = await WarmBaseline.measure(session, count, warmup)
        rows = [baseline.row("runtimes")]
        for runtime in RUNTIMES:
            fn, goal = runtime.function, runtime.warm_goal_ms
            path = f"/api/v1/functions/{fn}/invoke"
            row = ("runtimes", f"{runtime.mode} warm")
            rows += [colds[fn], await warm_row(router, path, fn, baseline, warmup, row, goal)]
        return rows

    return await with_router(session, body, SCALE_TO_ZERO)


async def runtime_cold_starts(router: Router, rounds: int) -> dict[str, Row]:
    """Rounds of one cold start per runtime, each round started with every pool at zero; the
    order rotates so that no runtime always goes first (or last)."""
    functions = [r.function for r in RUNTIMES]
    samples = {fn: ColdStarts(fn) for fn in functions}
    before = await router.metrics()
    for turn in range(rounds):
        await scaled_to_zero(router, functions)
        shift = turn % len(functions)
        for fn in functions[shift:] + functions[:shift]:
            await samples[fn].measure(router)
    after = await router.metrics()
    rows = {}
    for runtime in RUNTIMES:
        cold = samples[runtime.function]
        init_avg, _ = init_avg_ms(before, after, runtime.function)
        p50, p95 = percentile(cold.net_ms, 50), percentile(cold.net_ms, 95)
        goal = runtime.cold_goal_ms
        rows[runtime.function] = Row(
            "runtimes",
            f"{runtime.mode} cold",
            f"p50 {p50:.0f} ms p95 {p95:.0f} ms cold-warm (raw p50"
            f" {percentile(cold.cold_ms, 50):.0f} ms); init avg {init_avg:.0f} ms;"
            f" n={cold.runs}{cold.note()}",
            f"warm p50 {percentile(cold.warm_ms, 50):.1f} ms",
            f"{percentile(cold.cold_ms, 50) / percentile(cold.warm_ms, 50):.0f}x",
            f"p50 < {goal:g} ms" if goal is not None else "-",
            verdict(p50 < goal) if goal is not None else "-",
        )
    return rows


# ---------------------------------------------------------------------------------------------
# 9. leases: what leasing `concurrency.max` in Redis costs a process drain

LEASES_FN = "leases-process"


async def leases(session: aiohttp.ClientSession, options: Options) -> list[Row]:
    """The `process` drain (`incr`, max 8), with leases (the default) and, as the baseline,
    with slots per replica only (the router started through bench.unleased, whose lease layer
    never asks Redis)."""
    count = 5000 if options.quick else 20000

    async def body(router: Router) -> list[Row]:
        exchange = f"{router.namespace}.bench"
        await router.put_function(LEASES_FN, "incr", "process", DRAIN_MAX["process"])
        trigger = {"function": LEASES_FN, "type": "amqp", "exchange": exchange}
        trigger |= {"exchange_type": "topic", "routing_key": f"bench.{LEASES_FN}.#"}
        await router.put_trigger(LEASES_FN, trigger)
        await router.stop()
        # ABBA: each mode drains twice, in mirrored order, so that a load on the shared
        # machine that rises or falls through the scenario weighs on both alike.
        order = [("per-replica slots", "bench.unleased"), ("leases", "router")]
        runs: dict[str, list[tuple[float, float]]] = {"per-replica slots": [], "leases": []}
        for mode, module in [*order, *reversed(order)]:
            print(f"  router process, {mode}", file=sys.stderr, flush=True)
            runs[mode].append(await leased_drain(router, exchange, count, module))
        base, base_detail = summary(runs["per-replica slots"], count)
        rate, detail = summary(runs["leases"], count)
        return [
            Row("leases", "process, per-replica slots", f"{base:.0f} ev/s ({base_detail})"),
            Row(
                "leases",
                "process, leases (default)",
                f"{rate:.0f} ev/s ({detail})",
                f"{base:.0f} ev/s",
                f"{rate / base:.2f}",
                ">= 0.9x",
                verdict(rate / base >= 0.9),
            ),
        ]

    return await with_router(session, body)


# ---------------------------------------------------------------------------------------------
# 9. log-cost: the defaults against the quietest configuration, on the throughput workloads

CONFIGS = (("defaults", {}), ("ERROR", QUIET))  # (name, ROUTER_* settings)
WORKLOADS = (("webhook sync inline", "req/s"), ("drain inline", "ev/s"), ("drain process", "ev/s"))
MAX_COST = 0.10  # what the defaults may cost, in throughput, against the quietest


@dataclass
class Sample:
    rate: float  # requests or events a second
    cpu_us: float  # CPU of the router (and its environments) per request or event


async def webhook_run(router: Router, trigger: str, duration_s: float, warmup_s: float) -> Sample:
    """The webhook-sync load on `trigger`, with the router's CPU per request over the measured
    part (the warm-up runs first, on its own)."""
    url = f"{router.base}/hooks/{trigger}"
    await http_load(url, warmup_s, 0.0)
    await asyncio.sleep(0.5)  # the warm-up's last requests finish first
    cpu = CpuClock(router.pid)
    cpu.start()
    load = await http_load(url, duration_s, 0.0)
    if load.non2xx + load.errors:
        raise RuntimeError(f"{trigger}: {load.describe()}")
    return Sample(load.rate, cpu.seconds() / load.requests * 1e6)


def cost_row(workload: str, unit: str, default: list[Sample], quiet: list[Sample]) -> Row:
    """The defaults' throughput against the quietest's (medians over the rounds, each round's
    figures listed: one round disturbed by the shared machine moves a median less than a
    mean) and the CPU per item of each."""
    rate, quiet_rate = median([s.rate for s in default]), median([s.rate for s in quiet])
    cpu, quiet_cpu = median([s.cpu_us for s in default]), median([s.cpu_us for s in quiet])
    cost = 1 - rate / quiet_rate
    runs = ", ".join(f"{s.rate:.0f}" for s in default)
    quiet_runs = ", ".join(f"{s.rate:.0f}" for s in quiet)
    return Row(
        "log-cost",
        workload,
        f"defaults {rate:.0f} {unit} ({runs}; CPU {cpu:.0f} us); cost {cost:+.1%}"
        f" (CPU {cpu / quiet_cpu - 1:+.1%})",
        f"{quiet_rate:.0f} {unit} at {QUIET_NAME} ({quiet_runs}; CPU {quiet_cpu:.0f} us)",
        f"{rate / quiet_rate:.2f}",
        f"cost <= {MAX_COST:.0%}",
        verdict(cost <= MAX_COST),
    )


async def log_cost(session: aiohttp.ClientSession, options: Options) -> list[Row]:
    """webhook-sync's inline load and drain's inline and process drains, each run by a router
    at the defaults and by one at the quietest configuration: per workload, defaults, quietest,
    quietest, defaults (one pair with --quick), so that each pair runs close in time. The
    webhook load, whose rounds are short, runs that four times over, mirrored every other time
    (ABBA BAAB ABBA BAAB), each round half as long: eight rounds per configuration."""
    count = 5000 if options.quick else 20000
    duration_s, warmup_s = durations(options)
    abba = (0, 1) if options.quick else (0, 1, 1, 0)  # indexes in CONFIGS
    webhook_s = duration_s if options.quick else duration_s / 2

    def rounds(workload: str) -> tuple[int, ...]:
        if workload != "webhook sync inline" or options.quick:
            return abba
        # Eight rounds a configuration: a fresh router's rate varies by a few percent from
        # one process to the next, as much as the cost measured (py-spy: ~3% of the CPU).
        return (abba + tuple(1 - index for index in abba)) * 2

    async def measure(router: Router, workload: str, tag: str) -> Sample:
        """One run of `workload` by a router started afresh with its current settings."""
        if workload == "webhook sync inline":
            await router.stop()
            await router.start()
            return await webhook_run(router, "hook-inline", webhook_s, warmup_s)
        fn = drain_function(workload.removeprefix("drain "))
        run = await router_drain(router, f"{router.namespace}.bench", fn, count, tag)
        return Sample(run.rate, run.cpu_us)

    async def body(router: Router) -> list[Row]:
        await router.put_function("hook-inline", "noop_async", "inline", 64)
        await router.put_trigger("hook-inline", webhook_trigger("hook-inline", "sync"))
        for mode, handler in (("inline", "incr_async"), ("process", "incr")):
            await put_drain_function(router, f"{router.namespace}.bench", mode, handler)
        samples: dict[tuple[str, str], list[Sample]] = {}
        for workload, _ in WORKLOADS:
            for turn, index in enumerate(rounds(workload)):
                name, settings = CONFIGS[index]
                router.settings = dict(settings)
                sample = await measure(router, workload, f":{name}:{turn}")
                samples.setdefault((workload, name), []).append(sample)
                progress = f"{sample.rate:.0f}/s, CPU {sample.cpu_us:.0f} us"
                print(f"  {workload}, {name}: {progress}", file=sys.stderr, flush=True)
        quiet = CONFIGS[1][0]
        return [
            cost_row(workload, unit, samples[workload, "defaults"], samples[workload, quiet])
            for workload, unit in WORKLOADS
        ]

    return await with_router(session, body)


async def leased_drain(
    router: Router, exchange: str, count: int, module: str
) -> tuple[float, float]:
    """(events/s, CPU us/event) of one drain of `count` events queued before the router
    (`python -m module`) starts."""
    key = f"{router.namespace}:drain:{LEASES_FN}:{secrets.token_hex(3)}"
    await publish(exchange, f"bench.{LEASES_FN}.x", key, count)
    await wait_depth(f"{router.namespace}.fn.{LEASES_FN}", count, 5.0)
    router.module = module
    await router.start()
    cpu = CpuClock(router.pid)
    elapsed, value = await watch_counter(key, count, 150.0, started=cpu.start)
    cpu_us = cpu.seconds() / (count - 1) * 1e6
    await router.stop()
    router.module = "router"
    if value != count:
        print(f"  leases drain: counter {value}, expected {count}", file=sys.stderr)
    return (count - 1) / elapsed, cpu_us


def summary(runs: list[tuple[float, float]], count: int) -> tuple[float, str]:
    """The mean rate of a mode's drains, and each drain's figures."""
    rate = sum(r for r, _ in runs) / len(runs)
    each = ", ".join(f"{r:.0f} ev/s CPU {cpu:.0f} us/event" for r, cpu in runs)
    return rate, f"max {DRAIN_MAX['process']}, n={count}, mean of {each}"


# ---------------------------------------------------------------------------------------------


SCENARIOS: dict[str, Scenario] = {
    "scale-up": scale_up,
    "cold-start": cold_start,
    "warm-overhead": warm_overhead,
    "drain": drain,
    "webhook-sync": webhook_sync,
    "webhook-workers": webhook_workers,
    "webhook-async": webhook_async,
    "memory": memory,
    "runtimes": runtimes,
    "leases": leases,
    "log-cost": log_cost,
}
BUDGET_S = {
    "scale-up": 45.0,
    "cold-start": 120.0,
    "warm-overhead": 90.0,
    "drain": 420.0,
    "webhook-sync": 120.0,
    "webhook-workers": 180.0,
    "webhook-async": 90.0,
    "memory": 45.0,
    "runtimes": 360.0,  # the Go build included (8 s here; more where Go builds its std first)
    "leases": 480.0,
    "log-cost": 900.0,  # 16 webhook rounds, 4 runs of each drain; ~5 min on a quiet machine
}


async def main_async(names: Sequence[str], options: Options) -> list[Row]:
    rows: list[Row] = []
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=32)
    # Every request carries the token, the baselines' too, so they send the same bytes.
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with aiohttp.ClientSession(
        timeout=timeout, connector=connector, headers=headers
    ) as session:
        for name in names:
            started = time.perf_counter()
            print(f"running {name} ...", file=sys.stderr, flush=True)
            try:
                rows += await asyncio.wait_for(
                    SCENARIOS[name](session, options), BUDGET_S[name] / (2 if options.quick else 1)
                )
            except Exception as exc:  # report and go on with the other scenarios
                message = f"{type(exc).__name__}: {exc}".replace("\n", " | ")
                rows.append(Row(name, "-", f"ERROR {message[:300]}"))
            print(f"  {name} took {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append")
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args(argv)
    names = args.scenario or list(SCENARIOS)
    started = time.perf_counter()
    rows = asyncio.run(main_async(names, Options(quick=args.quick)))
    print()
    print_table(rows)
    print(f"\n({time.perf_counter() - started:.0f} s; {os.cpu_count()} CPUs)")
    return 1 if any(r.figure.startswith("ERROR") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
