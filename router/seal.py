"""The namespace's seal: the keys that sign the envelopes the router writes.

The keys live in a Redis set under the namespace. The first replica to find it empty adds a
random key; every replica reads the set at start-up and keeps it in memory, so sealing and
checking a message never waits for Redis. The smallest key signs and every known key verifies,
so replicas agree on one key without coordinating.

Every KEEP_S a replica writes the keys it knows back and reads the set again: a Redis that
came back empty (no persistence) gets them back, as the registry does, and a key another replica
added meanwhile is learned. A message that fails its check on the router's own exchange may
ask for such a read at once (at most every REFRESH_S), in case it was sealed with a key this
replica has not learned yet.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from router.envelope import SEAL, SEALED, Envelope, Keyed, Unsealed, keyed, mac, verified
from router.names import Names

log = logging.getLogger("router.seal")
KEY_BYTES = 32
MAX_KEY_BYTES = 64  # BLAKE2b's longest key
KEEP_S = 5.0
REFRESH_S = 1.0
INVOCATION_ID = SEALED[0]

# Restore the keys given (all but the first) and, if the set is still empty, add the first:
# a new namespace gets exactly one key whichever replicas start together.
_KEEP = """
for i = 2, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end
if redis.call('SCARD', KEYS[1]) == 0 then redis.call('SADD', KEYS[1], ARGV[1]) end
return redis.call('SMEMBERS', KEYS[1])
"""


class SealError(Exception):
    """No key to seal with yet: the replica has not read the namespace's keys."""


class Seal:
    def __init__(self, redis: Redis | None, names: Names) -> None:
        self._redis = redis
        self._names = names
        self._keys: tuple[bytes, ...] = ()  # the signing key first
        self._macs: tuple[Keyed, ...] = ()  # the same, ready to use
        self._refreshed = 0.0
        self._refreshing: asyncio.Task[bool] | None = None

    @property
    def loaded(self) -> bool:
        return bool(self._keys)

    async def load(self) -> None:
        """Read the namespace's keys (creating the first); without Redis (a tool, a test), a
        key of this process only. Raises RedisError when Redis cannot be reached, SealError
        when the set holds no usable key."""
        if self._redis is None:
            self._use(self._keys or (os.urandom(KEY_BYTES),))
            return
        await self._exchange()
        if not self._keys:  # only garbage in the set: trusting nothing would dead-letter all
            raise SealError(f"no usable key in Redis set {self._names.envelope_keys}")

    async def keep(self) -> None:
        """Write the known keys back and learn new ones, every KEEP_S, forever."""
        while self._redis is not None:
            await asyncio.sleep(KEEP_S)
            await self.refresh(0.0)

    async def refresh(self, min_interval_s: float = REFRESH_S) -> bool:
        """Read the keys again unless that was done within `min_interval_s`; True when a key
        was learned. Concurrent callers share one read; a Redis error is logged, not raised."""
        if self._redis is None or time.monotonic() - self._refreshed < min_interval_s:
            return False
        if self._refreshing is None:
            self._refreshing = asyncio.ensure_future(self._learn())
            self._refreshing.add_done_callback(self._refreshed_now)
        return await asyncio.shield(self._refreshing)

    def _refreshed_now(self, _: object) -> None:
        self._refreshing = None

    async def _learn(self) -> bool:
        before = set(self._keys)
        try:
            await self._exchange()
        except RedisError as exc:
            log.warning("cannot read the envelope keys from Redis: %s", exc)
            return False
        finally:
            self._refreshed = time.monotonic()
        return not set(self._keys) <= before

    async def _exchange(self) -> None:
        assert self._redis is not None
        fresh = os.urandom(KEY_BYTES).hex()
        known = [key.hex() for key in self._keys]
        members = await self._redis.eval(_KEEP, 1, self._names.envelope_keys, fresh, *known)
        keys = {key for key in map(_key, members) if key is not None}
        keys |= set(self._keys)
        self._use(tuple(sorted(keys)))

    def _use(self, keys: tuple[bytes, ...]) -> None:
        self._keys, self._macs = keys, tuple(map(keyed, keys))

    def headers(self, envelope: Envelope, function: str, body: bytes) -> dict[str, Any]:
        """The envelope's headers, sealed for this function and body."""
        if not self._macs:
            raise SealError("the envelope keys are not loaded yet")
        headers = envelope.headers()
        headers[SEAL] = mac(self._macs[0], function, headers, body)
        return headers

    def open(self, headers: Mapping[str, Any], function: str, body: bytes) -> Envelope | None:
        """The envelope of a message the router wrote for this function, None for a message
        with no envelope at all; Unsealed when envelope headers are there without a valid seal
        (a replica with no key loaded trusts none)."""
        if SEAL not in headers and INVOCATION_ID not in headers:
            return None
        if not verified(self._macs, function, headers, body):
            raise Unsealed("the envelope's seal is missing or wrong")
        try:
            envelope = Envelope.from_headers(headers)
        except (ValueError, TypeError, KeyError) as exc:  # sealed, so a bug of ours
            raise Unsealed(f"a sealed envelope that cannot be read: {exc!r}") from exc
        if envelope is None:
            raise Unsealed("a seal without an envelope")
        return envelope


def _key(member: bytes | str) -> bytes | None:
    """A key from its hex form in Redis; None (logged) for anything else someone put there."""
    try:
        key = bytes.fromhex(member.decode() if isinstance(member, bytes) else member)
    except (UnicodeDecodeError, ValueError):
        key = b""
    if not 16 <= len(key) <= MAX_KEY_BYTES:
        log.error("ignoring a member of the envelope keys that is not a key: %r", member[:80])
        return None
    return key
