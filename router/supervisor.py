"""`trigger-router serve --workers N`: N router processes on one port, under this supervisor.

- Each worker is a whole router (`python -m router serve`, router.supervised) binding the port
  with SO_REUSEPORT: the kernel spreads new connections over the workers' sockets. With
  `--workers 1` there is no supervisor at all: the router is the process, as it always was.
- The port is tried here first (bound alone, then let go), so a port that another program holds
  ends the start at once, with the reason, before any worker runs; and a worker that exits
  before it ever listened (a handler module that does not import, say) ends the start too.
- A worker that dies later is started again after a backoff that doubles with each failure in
  a row, so a crash loop does not spin, and starts afresh once a worker has run for STEADY_S.
  The new worker joins the port once it is ready (router.supervised): its siblings serve
  meanwhile.
- SIGTERM or SIGINT is passed to every worker, which drains as a single router does within
  ROUTER_SHUTDOWN_GRACE_S; the supervisor exits once all have, 0 if each exited cleanly. A
  second signal is passed on too (the workers exit at once). Workers run in a process group of
  their own, so a terminal's Ctrl-C reaches them once, through here; should the supervisor die,
  the kernel sends them SIGTERM (router.supervised).
- Metrics: the workers share a directory of prometheus_client's multiprocess files (see
  router.metrics), made here for the run and removed at exit; when a worker dies its live
  gauges are dropped and its counters kept, so sums never go down.
- One admin token for all: a generated one is made here, before the workers read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping

from router import tokens
from router.metrics import SHARED_DIR, forget_process
from router.server import BindError, bind
from router.settings import Settings
from router.shutdown import MARGIN_S
from router.supervised import INDEX, READY_FD, SUPERVISOR, WHEN_READY

log = logging.getLogger("router.supervisor")
SIGNALS = (signal.SIGTERM, signal.SIGINT)
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
STEADY_S = 30.0  # a worker that ran this long was healthy: a failure after it is a first one
# Past a worker's own bound (grace, margin, its exit watchdog's second): then it is killed.
KILL_AFTER_S = MARGIN_S + 1.0 + 3.0


def backoff_s(failures: int) -> float:
    """Seconds before starting a worker again after `failures` failures in a row (1 or more)."""
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2.0 ** max(0, failures - 1))


def describe(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def worker_environment(overrides: Mapping[str, object], directory: str) -> dict[str, str]:
    """A worker's environment: this one, the `serve` flags as ROUTER_* variables (a worker
    reads its settings as any router does), one worker each, and the shared metrics."""
    flags = {f"ROUTER_{k.upper()}": str(v) for k, v in overrides.items() if v is not None}
    return {
        **os.environ,
        **flags,
        "ROUTER_WORKERS": "1",
        SHARED_DIR: directory,  # read by prometheus_client when the worker imports it
        SUPERVISOR: str(os.getpid()),
    }


def run(settings: Settings, overrides: Mapping[str, object]) -> int:
    """Supervise `settings.workers` workers until a signal; the exit code."""
    try:
        for sock in bind(settings.host, settings.port):
            sock.close()  # the workers bind it themselves, together
    except BindError as exc:
        log.error("cannot start: %s", exc)
        return 1
    if not settings.admin_token:
        try:
            tokens.ensure(tokens.token_file(settings.token_file))
        except (OSError, ValueError) as exc:
            log.error("cannot start: admin token: %s", exc)
            return 1
    directory = tempfile.mkdtemp(prefix="trigger-router-metrics-")
    try:
        environment = worker_environment(overrides, directory)
        supervisor = Supervisor(settings.workers, environment, directory, settings)
        return asyncio.run(supervisor.run())
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class Supervisor:
    def __init__(
        self, count: int, environment: dict[str, str], directory: str, settings: Settings
    ) -> None:
        self._count = count
        self._environment = environment
        self._directory = directory
        self._stop_within_s = settings.shutdown_grace_s + KILL_AFTER_S
        self._running: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = asyncio.Event()
        self._signal: int | None = None
        self._failed = False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in SIGNALS:
            loop.add_signal_handler(signum, self._signalled, signum)
        log.info("starting %d workers", self._count)
        await asyncio.gather(*(self._keep(index) for index in range(1, self._count + 1)))
        log.info("all workers have exited")
        return 1 if self._failed else 0

    async def _keep(self, index: int) -> None:
        """Run worker `index` until the supervisor stops, starting it again when it dies."""
        failures, listened_once = 0, False
        while not self._stopping.is_set():
            started = time.monotonic()
            code, listened = await self._run_once(index, again=listened_once)
            listened_once = listened_once or listened
            if self._stopping.is_set():
                self._check_exit(index, code, listened)
                return
            if not listened_once:
                log.error("worker %d %s before it listened: stopping", index, describe(code))
                self._failed = True
                self._stop(signal.SIGTERM)
                return
            steady = time.monotonic() - started >= STEADY_S
            failures = 1 if steady else failures + 1
            delay = backoff_s(failures)
            log.error("worker %d %s; starting it again in %.1f s", index, describe(code), delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _run_once(self, index: int, again: bool) -> tuple[int, bool]:
        """Start the worker and wait for it to exit: its exit code, and whether it listened.
        `again`: in place of one that served, so it joins its siblings once ready."""
        ready, writer = os.pipe()
        environment = {**self._environment, INDEX: str(index), READY_FD: str(writer)}
        if again:
            environment[WHEN_READY] = "1"
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "router", "serve"),
                env=environment,
                pass_fds=(writer,),
                process_group=0,  # a terminal's Ctrl-C is passed on once, from here
            )
        except OSError as exc:  # out of processes or memory: a failure like a crash
            log.error("worker %d could not be started: %s", index, exc)
            os.close(ready)
            return 1, False
        finally:
            os.close(writer)  # the worker's copy is the only one: its exit is an end of file
        self._running[index] = process
        if self._signal is not None:  # a stop began while it was starting
            process.send_signal(self._signal)
        log.info("worker %d started (pid %d)", index, process.pid)
        listened = await asyncio.to_thread(_wait_listening, ready)
        code = await process.wait()
        del self._running[index]
        forget_process(process.pid, self._directory)
        return code, listened

    def _check_exit(self, index: int, code: int, listened: bool) -> None:
        """During a stop: 0 is a clean exit, and so is ending by the signal passed on before
        the worker had anything to drain."""
        if code == 0 or (not listened and -code == self._signal):
            return
        log.error("worker %d %s while stopping", index, describe(code))
        self._failed = True

    def _signalled(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self._signal is None:
            log.info("%s: stopping %d workers", name, len(self._running))
        else:
            log.info("%s again: the workers exit now", name)
        self._stop(signum)

    def _stop(self, signum: int) -> None:
        if self._signal is None:
            self._signal = signum
            self._stopping.set()
            asyncio.get_running_loop().call_later(self._stop_within_s, self._kill)
        for process in list(self._running.values()):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)

    def _kill(self) -> None:
        for index, process in list(self._running.items()):
            log.error(
                "worker %d still running %.0f s after the stop: killing it",
                index,
                self._stop_within_s,
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        self._failed = self._failed or bool(self._running)


def _wait_listening(ready: int) -> bool:
    """Whether the worker said it listens before it exited (an end of file)."""
    try:
        return os.read(ready, 1) == b"1"
    finally:
        os.close(ready)
