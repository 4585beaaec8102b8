"""The admin API's records of what ran: a function's invocation output (logs), usage by hour,
and an async invocation's record by id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from router.api import PREFIX, known_function, limit_of
from router.invocations import InvocationStore
from router.jsonhttp import HttpError, json_response
from router.logstore import LogStore
from router.registry import Registry
from router.usage import Usage, parse_time

MAX_STREAM_PART = 2**64 - 1


class RecordRoutes:
    def __init__(
        self, registry: Registry, logs: LogStore, usage: Usage, store: InvocationStore
    ) -> None:
        self._registry = registry
        self._logs = logs
        self._usage = usage
        self._store = store

    async def function_logs(self, request: web.Request) -> web.Response:
        """Invocation output, oldest first: the newest `limit` entries (`since` a time, of one
        `request_id`, containing `filter`), or those `after` an entry id, to follow."""
        function = known_function(request, self._registry)
        after = request.query.get("after")
        if after is not None and not _stream_id(after):
            raise HttpError(
                400, f"after must be an entry id like 1700000000000-0, got {after!r}", field="after"
            )
        entries, cursor = await self._logs.read(
            function,
            after=after,
            since_ms=_since_ms(request),
            limit=limit_of(request),
            request_id=request.query.get("request_id") or None,
            contains=request.query.get("filter") or None,
        )
        return json_response({"function": function, "entries": entries, "cursor": cursor})

    async def usage(self, request: web.Request) -> web.Response:
        """Invocations, billed duration and GB-seconds per function, by whole hours (UTC)."""
        now = datetime.now(UTC)
        try:
            since = parse_time(request.query.get("since", "24h"), now)
            until = parse_time(request.query["until"], now) if "until" in request.query else now
        except ValueError as exc:
            raise HttpError(
                400, f"since/until must be like 24h, 7d or an ISO 8601 time: {exc}", field="since"
            ) from None
        if since > until:
            raise HttpError(400, "since is after until", field="since")
        if until - since > timedelta(days=400):
            raise HttpError(400, "at most 400 days at a time", field="since")
        return json_response(await self._usage.report(since, until))

    async def get_invocation(self, request: web.Request) -> web.Response:
        invocation_id = request.match_info["id"]
        record = await self._store.get(invocation_id)
        if record is None:
            raise HttpError(404, f"no invocation {invocation_id!r} (unknown, or past retention)")
        return json_response(record.model_dump())

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{PREFIX}/invocations/{{id}}", self.get_invocation),
            web.get(f"{PREFIX}/functions/{{name}}/logs", self.function_logs),
            web.get(f"{PREFIX}/usage", self.usage),
        ]


def _since_ms(request: web.Request) -> int | None:
    raw = request.query.get("since")
    if raw is None:
        return None
    try:
        return int(parse_time(raw, datetime.now(UTC)).timestamp() * 1000)
    except (ValueError, OverflowError, OSError):
        raise HttpError(
            400, f"since must be like 10m, 24h, 7d or an ISO 8601 time, got {raw!r}", field="since"
        ) from None


def _stream_id(value: str) -> bool:
    """A Redis stream entry id something can follow: `<ms>` or `<ms>-<seq>`, each part an
    unsigned 64-bit number (Redis refuses larger ones), and not the very last id."""
    millis, dash, sequence = value.partition("-")
    parts = [millis, sequence] if dash else [millis]
    if not all(p.isascii() and p.isdigit() and int(p) <= MAX_STREAM_PART for p in parts):
        return False
    return parts != [str(MAX_STREAM_PART)] * 2
