"""`trigger-router serve`: the process from binding its port to exiting.

- The port is bound first: a router that cannot listen says why and exits, before it has
  connected to anything, consumed or run anything.
- SIGTERM or SIGINT, at any moment (while starting, while Redis or RabbitMQ are away, under
  load), starts one shutdown whose every step is bounded by ROUTER_SHUTDOWN_GRACE_S plus a
  margin (`router.shutdown`). A second signal exits at once.
- As a last resort a watchdog thread ends the process once that time is up, whatever the event
  loop, a library or a handler's thread is doing: a thread cannot be cancelled, and Python
  waits for such threads at exit.
- A worker of `serve --workers N` (router.supervised) runs exactly this, binding the port
  beside its siblings (SO_REUSEPORT) and telling its supervisor once it listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from types import FrameType

from aiohttp import web

from router import connections
from router.app import create_app, drain
from router.server import BindError, HttpServer, bind
from router.services import SERVICES, Services
from router.settings import Settings
from router.shutdown import MARGIN_S, Deadline, bounded
from router.supervised import Supervised

log = logging.getLogger("router")
EXIT_S = 1.0  # after the shutdown's deadline: for the event loop and the interpreter to end
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run(settings: Settings, supervised: Supervised | None = None) -> int:
    """Serve until a signal; the process's exit code."""
    if supervised is not None and not supervised.attach():
        log.error("cannot start: the supervisor of this worker is gone")
        return 1
    try:
        joining = supervised is not None and supervised.when_ready
        sockets = bind(
            settings.host, settings.port, reuse_port=supervised is not None, listen=not joining
        )
    except BindError as exc:
        log.error("cannot start: %s", exc)
        return 1
    limit = connections.raise_fd_limit()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    stop = Stop(loop, settings.shutdown_grace_s + MARGIN_S + EXIT_S)
    code = 1
    try:
        code = loop.run_until_complete(_serve(settings, sockets, stop, limit, supervised))
    finally:
        stop.exiting(code)
        _close_loop(loop)
    return code


class Stop:
    """The signals that end the router, and the watchdogs that make sure they do."""

    def __init__(self, loop: asyncio.AbstractEventLoop, within_s: float) -> None:
        self._loop = loop
        self._within_s = within_s
        self._requested = asyncio.Event()
        self._signalled_once = False
        self._code = 1  # a process ended by a watchdog before the loop was done failed
        # Plain signal handlers rather than the loop's: they also run while the loop is stuck
        # (in a handler module's import, say), so the watchdog is armed either way.
        for signum in SIGNALS:
            signal.signal(signum, self._signalled)

    def _signalled(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._signalled_once:
            _exit(128 + signum, f"{name} again: exiting now")
        self._signalled_once = True
        log.info("%s: shutting down", name)
        self._watch(self._within_s)
        with contextlib.suppress(RuntimeError):  # the loop has already ended
            self._loop.call_soon_threadsafe(self._requested.set)

    async def wait(self) -> None:
        await self._requested.wait()

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def exiting(self, code: int) -> None:
        """The event loop is done: closing it and the interpreter's exit get EXIT_S (Python
        waits for every thread at exit, a handler's that never ends too)."""
        self._code = code
        self._watch(EXIT_S)

    def _watch(self, seconds: float) -> None:
        threading.Thread(
            target=self._expire, args=(seconds,), name="router-exit-watchdog", daemon=True
        ).start()

    def _expire(self, seconds: float) -> None:
        time.sleep(seconds)
        _exit(self._code, f"the router did not exit within {seconds:.0f} s: exiting now")


def _exit(code: int, why: str) -> None:
    """End the process now. Logging and flushing (os._exit skips them) run on a thread of
    their own, waited for briefly: the main thread may hold a log handler's lock, stuck."""

    def say() -> None:
        log.error(why)
        logging.shutdown()
        sys.stdout.flush()

    speaker = threading.Thread(target=say, daemon=True)
    speaker.start()
    speaker.join(EXIT_S / 2)
    os._exit(code)


async def _serve(
    settings: Settings,
    sockets: list[socket.socket],
    stop: Stop,
    limit: int,
    supervised: Supervised | None,
) -> int:
    app = create_app(settings)
    svc = app[SERVICES]
    runner = web.AppRunner(app, handle_signals=False)
    try:
        await runner.setup()  # imports handler modules; connecting goes on in the background
    except Exception:
        log.exception("cannot start")
        return 1
    cap = settings.max_connections or connections.default_cap(limit)
    assert runner.server is not None
    http = HttpServer(runner.server, connections.Connections(cap, svc.metrics), settings)
    svc.readiness.connections = http.connections
    if supervised is not None and supervised.when_ready:
        await _started(svc, stop)
    if not stop.requested:
        await http.start(sockets)
        names = ", ".join(_name(sock) for sock in sockets)
        log.info("listening on %s (at most %d connections, open-file limit %d)", names, cap, limit)
        if supervised is not None:
            supervised.listening()
        await stop.wait()
    await shut_down(runner, http, svc)
    return 0


async def _started(svc: Services, stop: Stop) -> None:
    """Until the router has reached Redis and RabbitMQ and loaded the registry (or is told to
    stop): a worker started in place of a dead one joins its serving siblings only then."""
    waiters = [
        asyncio.ensure_future(svc.lifecycle.started_event.wait()),
        asyncio.ensure_future(stop.wait()),
    ]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()


async def shut_down(runner: web.AppRunner, http: HttpServer, svc: Services) -> None:
    """aiohttp's graceful shutdown, with its steps bounded by one deadline and requests in
    flight waited for together with running invocations (each gets the grace, not one after
    the other)."""
    stopping = svc.lifecycle.stopping = Deadline(svc.settings.shutdown_grace_s + MARGIN_S)
    server = runner.server
    assert server is not None
    http.stop_listening()
    server.pre_shutdown()  # idle kept-alive connections close now
    await bounded("stopping consumers", runner.app.shutdown(), stopping.left(keep_s=MARGIN_S))
    grace_s = stopping.left(keep_s=MARGIN_S)
    requests = bounded("running requests", server.shutdown(grace_s), grace_s)
    await asyncio.gather(requests, bounded("running invocations", drain(svc), grace_s))
    await bounded("closing", runner.app.cleanup(), stopping.left())


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what is left, waiting briefly: a task that swallows its cancellation (aio-pika's
    reconnection does) is left behind, not waited for as asyncio.run would."""
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.wait(tasks, timeout=EXIT_S / 2))
    stuck = [task.get_name() for task in tasks if not task.done()]
    if stuck:
        log.warning("left behind at exit (they ignored cancellation): %s", ", ".join(stuck))
        return  # closing the loop would only warn about them again
    closing = loop.create_task(loop.shutdown_asyncgens())
    loop.run_until_complete(asyncio.wait([closing], timeout=EXIT_S / 4))
    if closing.done():
        loop.close()


def _name(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
