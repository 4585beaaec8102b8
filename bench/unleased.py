"""`python -m bench.unleased serve`: the router with its concurrency slots per replica only,
never leased in Redis. The `leases` scenario's baseline, to measure what leasing costs. It
lives in the bench on purpose: the router itself has no way to turn leases off.

It swaps the router's lease layer for one that acts as if Redis were away (each replica runs
up to its per-replica cap, router.slots) without ever asking Redis, counting, or warning."""

from __future__ import annotations

import runpy

from redis.asyncio import Redis

from router import app
from router.leases import LEASE_TTL_S, Leases
from router.metrics import Metrics
from router.names import Names


class Unleased(Leases):
    def __init__(
        self, redis: Redis, names: Names, metrics: Metrics, ttl_s: float = LEASE_TTL_S
    ) -> None:
        super().__init__(redis, names, metrics, ttl_s)
        self.checked = False  # slots come from the per-replica cap (router.slots.Slots.leased)

    def unchecked(self, function: str) -> None:
        """Not counted: nothing here is unchecked by accident."""

    async def renew(self) -> None:
        """Nothing held, nothing to renew, and no Redis to probe."""

    async def give_back(self) -> None:
        """Nothing held."""


if __name__ == "__main__":
    app.Leases = Unleased  # type: ignore[attr-defined]  # what build_services constructs
    runpy.run_module("router", run_name="__main__", alter_sys=True)
