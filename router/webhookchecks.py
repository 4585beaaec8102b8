"""What a webhook request must pass before its function hears of it: its signature (SigV4 for a
function URL with AuthType AWS_IAM), the trigger's rate limit, and the replay check."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from aiohttp import web

from router import signatures
from router.jsonhttp import json_error
from router.metrics import Metrics
from router.ratelimit import RateLimiter
from router.replays import Replays
from router.sigv4 import AuthError, Message, Verifier

if TYPE_CHECKING:
    from router.webhooks import HookRequest


class WebhookChecks:
    def __init__(
        self, verifier: Verifier, rate_limiter: RateLimiter, replays: Replays, metrics: Metrics
    ) -> None:
        self._verifier = verifier
        self._rate_limiter = rate_limiter
        self._replays = replays
        self._metrics = metrics

    async def check(self, incoming: HookRequest) -> str | web.Response | None:
        """Returns the claimed replay key (None when the trigger is unverified) or the response
        refusing the request."""
        name, verify = incoming.name, incoming.trigger.verify
        replay_key = None
        if verify.scheme == "aws-iam":
            refused = self._aws_iam(incoming)
            if refused is not None:
                return refused
        elif verify.scheme in signatures.SCHEMES:
            verdict = signatures.SCHEMES[verify.scheme](
                verify.check(), incoming.headers, incoming.body, time.time()
            )
            if not verdict.ok:
                self._metrics.rejected(name, verdict.reason)
                message = (
                    "missing signature headers" if verdict.status == 400 else "invalid signature"
                )
                return json_error(verdict.status, message)
            replay_key = verdict.replay_key
        limit = incoming.trigger.rate_limit
        if limit is not None:
            wait_s = await self._rate_limiter.retry_after(name, limit)
            if wait_s is not None:
                self._metrics.rejected(name, "rate_limited")
                return json_error(
                    429,
                    f"trigger {name!r} is over its rate limit",
                    headers={"Retry-After": str(max(1, math.ceil(wait_s)))},
                )
        if replay_key is not None and not await self._replays.claim(
            name, replay_key, verify.window_s()
        ):
            self._metrics.rejected(name, "replay")
            return web.json_response({"duplicate": True}, status=200)
        return replay_key

    def release(self, name: str, replay_key: str) -> Coroutine[Any, Any, None]:
        """A claimed delivery that was not accepted: the sender's retry may run."""
        return self._replays.release(name, replay_key)

    def _aws_iam(self, incoming: HookRequest) -> web.Response | None:
        """A function URL with AuthType AWS_IAM: the request is SigV4-signed (service `lambda`)
        with a key of ROUTER_AWS_CREDENTIALS, over the bytes as sent. None lets it through."""
        request = incoming.request
        message = Message.of(request.method, request.raw_path, request.headers.items())
        verifier = self._verifier
        try:
            verifier.verify(
                verifier.claimed(message), message, hashlib.sha256(incoming.body).hexdigest()
            )
        except AuthError as exc:
            self._metrics.rejected(incoming.name, "signature")
            return json_error(403, str(exc).split("\n", 1)[0], type=exc.error_type)
        return None
