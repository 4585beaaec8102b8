"""Open HTTP connections and file descriptors: the cap that keeps the router inside its
open-file limit, and what `/readyz` says when either runs short.

Every connection is a file descriptor, and so are the router's own Redis and RabbitMQ
connections, its environments' pipes and its log files. Past RLIMIT_NOFILE, accept() fails:
the kernel resets new connections and nothing reaches the router to answer, log or count. The
cap keeps a reserve below the limit and refuses connections beyond it with a 503, counted and
logged, so the router itself can still reach Redis, RabbitMQ and its environments.
"""

from __future__ import annotations

import logging
import math
import os
import resource
import time

from router.metrics import Metrics

log = logging.getLogger("router.connections")
RESERVE_SHARE = 4  # a quarter of the descriptors stays for the router's own use
# Beyond this many, an idle connection's memory (some kilobytes each) matters more than the
# descriptors: a host with a huge open-file limit still gets a bounded default.
DEFAULT_CAP_MAX = 65_536
NEAR = 0.9  # the share of a limit from which /readyz says degraded
LOG_EVERY_S = 10.0  # refusals are logged at most this often (each one is counted)
FD_COUNT_TTL_S = 1.0  # where descriptors are counted by listing them: not on every /readyz


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one (no privilege needed); the limit in force.
    A hard limit of 'unlimited' is left alone: the kernel's own ceiling is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and (soft == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
    return fd_limit()


def fd_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 2**31 if soft == resource.RLIM_INFINITY else soft


def default_cap(limit: int) -> int:
    """Connections allowed when ROUTER_MAX_CONNECTIONS is 0: three quarters of the open-file
    limit, at most DEFAULT_CAP_MAX."""
    return max(1, min(limit - limit // RESERVE_SHARE, DEFAULT_CAP_MAX))


class Descriptors:
    """The process's open file descriptors."""

    def __init__(self) -> None:
        self._listed: int | None = None
        self._listed_at = -math.inf

    def count(self) -> int | None:
        """None where /proc is not there to ask."""
        try:
            size = os.stat("/proc/self/fd").st_size  # Linux 6.2 on: the count, at no cost
        except OSError:
            return None
        return size if size > 0 else self._list()

    def _list(self) -> int | None:
        """Listing takes ~1 ms per thousand descriptors: done at most once a second."""
        now = time.monotonic()
        if now - self._listed_at >= FD_COUNT_TTL_S:
            try:
                self._listed = len(os.listdir("/proc/self/fd")) - 1  # less listdir's own
            except OSError:
                self._listed = None
            self._listed_at = now
        return self._listed

    def problems(self) -> list[str]:
        used, limit = self.count(), fd_limit()
        if used is not None and used >= NEAR * limit:
            return [f"file descriptors nearly exhausted: {used} of {limit} open"]
        return []


class Connections:
    """Counts open HTTP connections and decides whether one more may be let in."""

    def __init__(self, cap: int, metrics: Metrics) -> None:
        self.cap = cap
        self.open = 0
        self.refused = 0
        self._gauge = metrics.http_connections
        self._refusals = metrics.http_refused
        self._unlogged = 0
        self._logged_at = -math.inf

    def admit(self) -> bool:
        """Take a place for a new connection; False (counted, logged) when the cap is reached."""
        if self.open >= self.cap:
            self._refuse()
            return False
        self.open += 1
        self._gauge.inc()
        return True

    def release(self) -> None:
        self.open -= 1
        self._gauge.dec()

    def _refuse(self) -> None:
        self.refused += 1
        self._refusals.inc()
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning(
                "%d HTTP connections open, the cap (ROUTER_MAX_CONNECTIONS): "
                "refused %d new ones since the last warning",
                self.open,
                self._unlogged,
            )
            self._logged_at, self._unlogged = now, 0

    def problems(self) -> list[str]:
        if self.open >= NEAR * self.cap:
            return [f"HTTP connections near the cap: {self.open} of {self.cap} open"]
        return []
