"""A worker's side of `serve --workers N`: what the supervisor (router.supervisor) tells it
through its environment, and what it tells the supervisor back.

A worker is a whole router. It binds the port with SO_REUSEPORT beside its siblings, writes one
byte to the supervisor's pipe once it is listening (so that a worker that cannot start ends the
start at once), and is sent SIGTERM by the kernel if the supervisor dies without stopping it,
so that it drains rather than runs on unsupervised.

A worker started again in place of a dead one (`when_ready`) joins the port only once it has
reached Redis and RabbitMQ and loaded the registry: its siblings serve meanwhile, and a worker
listening sooner would answer its share of new connections 503 while it loads.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger("router")
READY_FD = "ROUTER_WORKER_READY_FD"  # the pipe to write a byte to once listening
INDEX = "ROUTER_WORKER_INDEX"  # 1..N, for the logs
SUPERVISOR = "ROUTER_SUPERVISOR_PID"
WHEN_READY = "ROUTER_WORKER_WHEN_READY"  # "1": join the port once ready (a restarted worker)
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Supervised:
    index: int
    ready_fd: int
    supervisor: int
    when_ready: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Supervised | None:
        """The supervisor's instructions, or None for a router on its own."""
        if READY_FD not in environ:
            return None
        return cls(
            int(environ[INDEX]),
            int(environ[READY_FD]),
            int(environ[SUPERVISOR]),
            environ.get(WHEN_READY) == "1",
        )

    def attach(self) -> bool:
        """Be sent SIGTERM when the supervisor dies; False if it already has."""
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        return os.getppid() == self.supervisor

    def listening(self) -> None:
        """Tell the supervisor this worker is serving."""
        try:
            os.write(self.ready_fd, b"1")
            os.close(self.ready_fd)
        except OSError as exc:  # the supervisor is gone: SIGTERM (PDEATHSIG) follows
            log.warning("could not tell the supervisor this worker listens: %s", exc)
