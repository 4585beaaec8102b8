"""The admin API under `/api/v1`: functions, triggers, invocations."""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from router.amqp import BrokerError
from router.archive import MAX_ZIPPED, ArchiveError
from router.bundles import Bundle
from router.dlq import UnknownDeadLetter
from router.events import new_id
from router.registry import TRIGGER, NotFound, Trigger
from router.responses import BodyTooLarge, HttpError, json_response, read_json, read_limited
from router.services import services
from router.slots import Throttled
from router.specs import (
    REDACTED,
    FunctionSpec,
    WebhookTrigger,
    strip_read_only,
    valid_name,
    valid_target,
)
from router.usage import parse_time
from router.webhooks import throttled

log = logging.getLogger("router.api")
PREFIX = "/api/v1"
MAX_SPEC_BYTES = 1024 * 1024
MAX_FUNCTION_BYTES = MAX_ZIPPED * 4 // 3 + MAX_SPEC_BYTES  # a spec with a base64 zip


def _name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not valid_name(name):
        raise HttpError(
            400, f"invalid name {name!r}: use 1-64 letters, digits, '.', '_' or '-'", field="name"
        )
    return name


def _validated(model: Any, payload: Any) -> Any:
    try:
        return model.validate_python(strip_read_only(payload))
    except ValidationError as exc:
        tag = payload.get("type") if isinstance(payload, dict) else None
        details = [
            {"field": _field(err["loc"], tag), "message": err["msg"]}
            for err in exc.errors(include_url=False)
        ]
        raise HttpError(
            400,
            f"invalid {details[0]['field']}: {details[0]['message']}",
            field=details[0]["field"],
            details=details,
        ) from None


def _field(location: tuple[int | str, ...], tag: object) -> str:
    """The dotted field name, without the union's tag pydantic puts first (`webhook.verify`)."""
    parts = list(location[1:] if location and location[0] == tag else location)
    return ".".join(str(p) for p in parts) or "body"


FUNCTION = TypeAdapter(FunctionSpec)


def _function_view(name: str, spec: FunctionSpec) -> dict[str, Any]:
    """The spec as stored, with its code by hash and size (never the bytes) and `env` values
    write-only, like webhook secrets (a PUT that sends `<redacted>` back keeps them)."""
    view = {"name": name, **spec.model_dump(exclude={"code", "source_sha256"})}
    view["code_sha256"] = spec.code.sha256 if spec.code else spec.source_sha256
    view["code_size"] = spec.code.size if spec.code else None
    view["env"] = dict.fromkeys(spec.env, REDACTED)
    return view


def _trigger_view(name: str, trigger: Trigger) -> dict[str, Any]:
    """Secrets are write-only: shown redacted (and a redacted one PUT back is kept)."""
    view = {"name": name, **trigger.model_dump()}
    if isinstance(trigger, WebhookTrigger):
        view["verify"] = trigger.verify.redacted()
    return view


async def list_functions(request: web.Request) -> web.Response:
    snapshot = await services(request).registry.store.load()
    return json_response(
        {"functions": [_function_view(n, s) for n, s in sorted(snapshot.functions.items())]}
    )


async def get_function(request: web.Request) -> web.Response:
    name = _name(request)
    spec = await services(request).registry.store.get_function(name)
    return json_response(_function_view(name, spec))


async def put_function(request: web.Request) -> web.Response:
    """A spec; `"code": {"zip": "<base64>"}` uploads code, `"code": null` removes it, and a
    spec without `code` keeps the function's current code (so GET, edit, PUT works)."""
    svc = services(request)
    name = _name(request)
    payload = await read_json(request, MAX_FUNCTION_BYTES)
    bundle = None
    if isinstance(payload, dict):
        payload, bundle = await _with_code(request, name, payload)
    spec: FunctionSpec = _validated(FUNCTION, payload)
    stored, created = await svc.admin.put_function(name, spec, bundle)
    return json_response(_function_view(name, stored), status=201 if created else 200)


async def patch_function(request: web.Request) -> web.Response:
    """Change some fields, keeping the rest (a `trigger-router functions update`)."""
    svc = services(request)
    name = _name(request)
    current = await svc.registry.store.get_function(name)
    patch = await read_json(request, MAX_FUNCTION_BYTES)
    if not isinstance(patch, dict):
        raise HttpError(400, "a PATCH body is a JSON object of the fields to change", field="body")
    patch, bundle = await _with_code(request, name, patch)
    kept = current.model_dump(exclude={"version", "source_sha256"}, exclude_none=True)
    spec: FunctionSpec = _validated(FUNCTION, {**kept, **strip_read_only(patch)})
    stored, _ = await svc.admin.put_function(name, spec, bundle)
    return json_response(_function_view(name, stored))


async def _with_code(
    request: web.Request, name: str, payload: dict[str, Any]
) -> tuple[dict[str, Any], Bundle | None]:
    if "code" not in payload:
        current = await _current(request, name)
        if current is not None and current.code is not None:
            payload = {**payload, "code": current.code.model_dump()}
        return payload, None
    code = payload["code"]
    if code is None:
        return payload, None
    if not isinstance(code, dict) or set(code) != {"zip"} or not isinstance(code["zip"], str):
        raise HttpError(400, 'invalid code: give {"zip": "<base64 of a zip>"}', field="code")
    try:
        data = base64.b64decode(code["zip"], validate=True)
    except ValueError:  # binascii.Error, or characters base64 never has
        raise HttpError(400, "invalid code.zip: not base64", field="code.zip") from None
    bundle = await _bundle(data)
    return {**payload, "code": {"sha256": bundle.sha256, "size": len(data)}}, bundle


async def _current(request: web.Request, name: str) -> FunctionSpec | None:
    try:
        return await services(request).registry.store.get_function(name)
    except NotFound:
        return None


async def _bundle(data: bytes) -> Bundle:
    """A checked bundle; inflating it to check is slow work, kept off the event loop."""
    try:
        return await asyncio.to_thread(Bundle.check, data)
    except ArchiveError as exc:
        extra = {"entry": exc.entry} if exc.entry else {}
        raise HttpError(exc.status, f"invalid code: {exc}", field="code", **extra) from None


async def put_code(request: web.Request) -> web.Response:
    """Replace only the code, with a raw zip body (Lambda's UpdateFunctionCode)."""
    svc = services(request)
    name = _name(request)
    current = await svc.registry.store.get_function(name)
    try:
        data = await read_limited(request, MAX_ZIPPED)
    except BodyTooLarge:
        raise HttpError(
            413, "the zip is over Lambda's 50 MB limit for uploaded code", field="code"
        ) from None
    bundle = await _bundle(data)
    fields = {**current.model_dump(exclude={"version", "source_sha256"})}
    fields["code"] = {"sha256": bundle.sha256, "size": len(data)}
    spec: FunctionSpec = _validated(FUNCTION, fields)
    stored, _ = await svc.admin.put_function(name, spec, bundle)
    return json_response(_function_view(name, stored))


async def get_code(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    name = _name(request)
    spec = await svc.registry.store.get_function(name)
    data = await svc.bundles.zip(spec.code.sha256) if spec.code else None
    if data is None:
        raise HttpError(404, f"function {name!r} has no uploaded code")
    return web.Response(
        body=data,
        content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}.zip"'},
    )


async def delete_function(request: web.Request) -> web.Response:
    await services(request).admin.delete_function(_name(request))
    return web.Response(status=204)


async def list_triggers(request: web.Request) -> web.Response:
    snapshot = await services(request).registry.store.load()
    return json_response(
        {"triggers": [_trigger_view(n, t) for n, t in sorted(snapshot.triggers.items())]}
    )


async def get_trigger(request: web.Request) -> web.Response:
    name = _name(request)
    trigger = await services(request).registry.store.get_trigger(name)
    return json_response(_trigger_view(name, trigger))


async def put_trigger(request: web.Request) -> web.Response:
    name = _name(request)
    trigger: Trigger = _validated(TRIGGER, await read_json(request, MAX_SPEC_BYTES))
    created = await services(request).admin.put_trigger(name, trigger)
    return json_response(_trigger_view(name, trigger), status=201 if created else 200)


async def delete_trigger(request: web.Request) -> web.Response:
    await services(request).admin.delete_trigger(_name(request))
    return web.Response(status=204)


async def invoke(request: web.Request) -> web.Response:
    """Lambda's Invoke: the body is the event; sync answers the result, async an id. The name
    may be `fn`, `fn:7` (a published version) or `fn:alias`."""
    svc = services(request)
    name = request.match_info["name"]
    if not valid_target(name):
        raise HttpError(
            400,
            f"invalid name {name!r}: give `function`, `function:7` or `function:alias`",
            field="name",
        )
    mode = request.query.get("mode", "sync")
    if mode not in ("sync", "async"):
        raise HttpError(400, f"mode must be 'sync' or 'async', got {mode!r}", field="mode")
    target = svc.registry.snapshot.resolve(name)
    if target is None:
        raise HttpError(404, f"function {name!r} does not exist")
    event = await read_json(request, svc.settings.max_body_bytes, empty={})
    if mode == "async":
        try:
            event_id = request.headers.get("Idempotency-Key")
            invocation_id = await svc.ingress.enqueue(
                target.function, target.version, event, event_id, None
            )
        except BrokerError as exc:
            raise HttpError(503, f"the event could not be queued: {exc}") from exc
        return json_response({"invocation_id": invocation_id}, status=202)
    request_id = new_id()
    try:
        outcome = await svc.invoker.invoke(
            target.function,
            target.spec,
            event,
            request_id,
            event_id=request.headers.get("Idempotency-Key"),
            wait=False,
            version=target.version,
            qualifier=target.qualifier,
        )
    except Throttled:
        return throttled(target.function)
    executed = {"X-Request-Id": request_id, "X-Amz-Executed-Version": target.version}
    if outcome.error is not None:
        status = 504 if outcome.status == "timed_out" else 502
        return json_response(
            {**outcome.error.as_dict(), "requestId": request_id},
            status=status,
            headers={"X-Amz-Function-Error": "Unhandled", **executed},
        )
    return json_response(outcome.result, headers=executed)


def _known_function(request: web.Request) -> str:
    name = _name(request)
    if name not in services(request).registry.snapshot.functions:
        raise HttpError(404, f"function {name!r} does not exist")
    return name


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise HttpError(400, f"limit must be 1-10000, got {raw!r}", field="limit")
    return int(raw)


async def list_dead_letters(request: web.Request) -> web.Response:
    """A page of dead letters, oldest first: `?limit=`, `?after=<id>` for the next page."""
    svc = services(request)
    function = _known_function(request)
    limit = _limit(request)
    after = request.query.get("after") or None
    try:
        page = await svc.dead_letters.page(function, limit, after)
        # A page that read the whole queue counted it; quorum queues report depth a bit late.
        count = page.count if page.count is not None else await svc.dead_letters.count(function)
    except UnknownDeadLetter:
        raise HttpError(
            404,
            f"no dead letter {after!r} to list after (replayed or purged since?): list again"
            " without after",
            field="after",
        ) from None
    except BrokerError as exc:
        raise HttpError(503, f"RabbitMQ is unavailable: {exc}") from exc
    return json_response(
        {"function": function, "count": count, "messages": page.messages, "next": page.next}
    )


async def get_dead_letter(request: web.Request) -> web.Response:
    svc = services(request)
    function, wanted = _known_function(request), request.match_info["id"]
    try:
        return json_response(await svc.dead_letters.get(function, wanted))
    except UnknownDeadLetter:
        raise HttpError(404, f"no dead letter {wanted!r} for {function!r}") from None
    except BrokerError as exc:
        raise HttpError(503, f"RabbitMQ is unavailable: {exc}") from exc


async def replay_dead_letters(request: web.Request) -> web.Response:
    """Body `{"id": "..."}` replays one, `{"all": true}` every dead letter; malformed ones are
    skipped, each with its reason."""
    svc = services(request)
    function = _known_function(request)
    wanted = _selection(await read_json(request, MAX_SPEC_BYTES))
    try:
        result = await svc.dead_letters.replay(function, wanted)
    except BrokerError as exc:
        raise HttpError(503, f"RabbitMQ is unavailable: {exc}") from exc
    if wanted is not None and result.replayed == 0:
        if result.skipped:
            reason = result.skipped[0]["reason"]
            raise HttpError(
                409, f"dead letter {wanted!r} cannot be replayed ({reason}); purge it", field="id"
            )
        raise HttpError(404, f"no dead letter {wanted!r} for {function!r}")
    answer: dict[str, Any] = {"replayed": result.replayed}
    if result.skipped:
        answer["skipped"] = result.skipped
    return json_response(answer)


async def purge_dead_letters(request: web.Request) -> web.Response:
    svc = services(request)
    function = _known_function(request)
    wanted = request.match_info.get("id")
    try:
        purged = await svc.dead_letters.purge(function, wanted)
    except BrokerError as exc:
        raise HttpError(503, f"RabbitMQ is unavailable: {exc}") from exc
    if wanted and purged == 0:
        raise HttpError(404, f"no dead letter {wanted!r} for {function!r}")
    return json_response({"purged": purged})


def _selection(selection: object) -> str | None:
    """The id to replay, or None for all."""
    if isinstance(selection, dict) and selection.get("all") is True and "id" not in selection:
        return None
    if isinstance(selection, dict) and isinstance(selection.get("id"), str) and len(selection) == 1:
        wanted: str = selection["id"]
        return wanted
    raise HttpError(400, 'give {"id": "<dead letter id>"} or {"all": true}', field="body")


async def function_logs(request: web.Request) -> web.Response:
    """Invocation output, oldest first: the newest `limit` entries (`since` a time, of one
    `request_id`, containing `filter`), or those `after` an entry id, to follow."""
    svc = services(request)
    function = _known_function(request)
    after = request.query.get("after")
    if after is not None and not _stream_id(after):
        raise HttpError(
            400, f"after must be an entry id like 1700000000000-0, got {after!r}", field="after"
        )
    entries, cursor = await svc.logs.read(
        function,
        after=after,
        since_ms=_since_ms(request),
        limit=_limit(request),
        request_id=request.query.get("request_id") or None,
        contains=request.query.get("filter") or None,
    )
    return json_response({"function": function, "entries": entries, "cursor": cursor})


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


MAX_STREAM_PART = 2**64 - 1


def _stream_id(value: str) -> bool:
    """A Redis stream entry id something can follow: `<ms>` or `<ms>-<seq>`, each part an
    unsigned 64-bit number (Redis refuses larger ones), and not the very last id."""
    millis, dash, sequence = value.partition("-")
    parts = [millis, sequence] if dash else [millis]
    if not all(p.isascii() and p.isdigit() and int(p) <= MAX_STREAM_PART for p in parts):
        return False
    return parts != [str(MAX_STREAM_PART)] * 2


async def usage(request: web.Request) -> web.Response:
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
    return json_response(await services(request).usage.report(since, until))


async def get_invocation(request: web.Request) -> web.Response:
    invocation_id = request.match_info["id"]
    record = await services(request).store.get(invocation_id)
    if record is None:
        raise HttpError(404, f"no invocation {invocation_id!r} (unknown, or past retention)")
    return json_response(record.model_dump())


def routes() -> list[web.RouteDef]:
    return [
        web.get(f"{PREFIX}/functions", list_functions),
        web.get(f"{PREFIX}/functions/{{name}}", get_function),
        web.put(f"{PREFIX}/functions/{{name}}", put_function),
        web.patch(f"{PREFIX}/functions/{{name}}", patch_function),
        web.get(f"{PREFIX}/functions/{{name}}/code", get_code),
        web.put(f"{PREFIX}/functions/{{name}}/code", put_code),
        web.delete(f"{PREFIX}/functions/{{name}}", delete_function),
        web.post(f"{PREFIX}/functions/{{name}}/invoke", invoke),
        web.get(f"{PREFIX}/triggers", list_triggers),
        web.get(f"{PREFIX}/triggers/{{name}}", get_trigger),
        web.put(f"{PREFIX}/triggers/{{name}}", put_trigger),
        web.delete(f"{PREFIX}/triggers/{{name}}", delete_trigger),
        web.get(f"{PREFIX}/invocations/{{id}}", get_invocation),
        web.get(f"{PREFIX}/functions/{{name}}/logs", function_logs),
        web.get(f"{PREFIX}/usage", usage),
        web.get(f"{PREFIX}/functions/{{name}}/dlq", list_dead_letters),
        web.delete(f"{PREFIX}/functions/{{name}}/dlq", purge_dead_letters),
        web.post(f"{PREFIX}/functions/{{name}}/dlq/replay", replay_dead_letters),
        web.get(f"{PREFIX}/functions/{{name}}/dlq/{{id}}", get_dead_letter),
        web.delete(f"{PREFIX}/functions/{{name}}/dlq/{{id}}", purge_dead_letters),
    ]
