"""The admin API under `/api/v1`: functions with their code, triggers, and Invoke. (Dead
letters: router.deadletterapi; logs, usage and invocation records: router.recordsapi.)"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from router import answers
from router.amqp import BrokerError
from router.archive import MAX_ZIPPED, ArchiveError
from router.bodies import BodyTooLarge, read_json, read_limited
from router.bundles import Bundle, Bundles
from router.events import new_id
from router.invocation import InvocationService, Throttling
from router.jsonhttp import HttpError, json_response
from router.registration import Registration
from router.registry import TRIGGER, NotFound, Registry, RegistryStore, Trigger
from router.specs import (
    REDACTED,
    FunctionSpec,
    WebhookTrigger,
    strip_read_only,
    valid_name,
    valid_target,
)

log = logging.getLogger("router.api")
PREFIX = "/api/v1"
MAX_SPEC_BYTES = 1024 * 1024
MAX_FUNCTION_BYTES = MAX_ZIPPED * 4 // 3 + MAX_SPEC_BYTES  # a spec with a base64 zip


def name_of(request: web.Request) -> str:
    name = request.match_info["name"]
    if not valid_name(name):
        raise HttpError(
            400, f"invalid name {name!r}: use 1-64 letters, digits, '.', '_' or '-'", field="name"
        )
    return name


def validated(model: Any, payload: Any) -> Any:
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


class FunctionRoutes:
    """Functions and their code: read from the registry's store, written through registration."""

    def __init__(
        self,
        store: RegistryStore,
        registration: Registration,
        bundles: Bundles,
        body_timeout_s: float,
    ) -> None:
        self._store = store
        self._registration = registration
        self._bundles = bundles
        self._body_timeout_s = body_timeout_s

    async def list_functions(self, request: web.Request) -> web.Response:
        snapshot = await self._store.load()
        return json_response(
            {"functions": [_function_view(n, s) for n, s in sorted(snapshot.functions.items())]}
        )

    async def get_function(self, request: web.Request) -> web.Response:
        name = name_of(request)
        spec = await self._store.get_function(name)
        return json_response(_function_view(name, spec))

    async def put_function(self, request: web.Request) -> web.Response:
        """A spec; `"code": {"zip": "<base64>"}` uploads code, `"code": null` removes it, and a
        spec without `code` keeps the function's current code (so GET, edit, PUT works)."""
        name = name_of(request)
        payload = await read_json(request, MAX_FUNCTION_BYTES, self._body_timeout_s)
        bundle = None
        if isinstance(payload, dict):
            payload, bundle = await self._with_code(name, payload)
        spec: FunctionSpec = validated(FUNCTION, payload)
        stored, created = await self._registration.put_function(name, spec, bundle)
        return json_response(_function_view(name, stored), status=201 if created else 200)

    async def patch_function(self, request: web.Request) -> web.Response:
        """Change some fields, keeping the rest (a `trigger-router functions update`)."""
        name = name_of(request)
        current = await self._store.get_function(name)
        patch = await read_json(request, MAX_FUNCTION_BYTES, self._body_timeout_s)
        if not isinstance(patch, dict):
            raise HttpError(
                400, "a PATCH body is a JSON object of the fields to change", field="body"
            )
        patch, bundle = await self._with_code(name, patch)
        kept = current.model_dump(exclude={"version", "source_sha256"}, exclude_none=True)
        spec: FunctionSpec = validated(FUNCTION, {**kept, **strip_read_only(patch)})
        stored, _ = await self._registration.put_function(name, spec, bundle)
        return json_response(_function_view(name, stored))

    async def _with_code(
        self, name: str, payload: dict[str, Any]
    ) -> tuple[dict[str, Any], Bundle | None]:
        if "code" not in payload:
            current = await self._current(name)
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

    async def _current(self, name: str) -> FunctionSpec | None:
        try:
            return await self._store.get_function(name)
        except NotFound:
            return None

    async def put_code(self, request: web.Request) -> web.Response:
        """Replace only the code, with a raw zip body (Lambda's UpdateFunctionCode)."""
        name = name_of(request)
        current = await self._store.get_function(name)
        try:
            data = await read_limited(request, MAX_ZIPPED)
        except BodyTooLarge:
            raise HttpError(
                413, "the zip is over Lambda's 50 MB limit for uploaded code", field="code"
            ) from None
        bundle = await _bundle(data)
        fields = {**current.model_dump(exclude={"version", "source_sha256"})}
        fields["code"] = {"sha256": bundle.sha256, "size": len(data)}
        spec: FunctionSpec = validated(FUNCTION, fields)
        stored, _ = await self._registration.put_function(name, spec, bundle)
        return json_response(_function_view(name, stored))

    async def get_code(self, request: web.Request) -> web.StreamResponse:
        name = name_of(request)
        spec = await self._store.get_function(name)
        data = await self._bundles.zip(spec.code.sha256) if spec.code else None
        if data is None:
            raise HttpError(404, f"function {name!r} has no uploaded code")
        return web.Response(
            body=data,
            content_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}.zip"'},
        )

    async def delete_function(self, request: web.Request) -> web.Response:
        await self._registration.delete_function(name_of(request))
        return web.Response(status=204)

    def routes(self) -> list[web.RouteDef]:
        function = f"{PREFIX}/functions/{{name}}"
        return [
            web.get(f"{PREFIX}/functions", self.list_functions),
            web.get(function, self.get_function),
            web.put(function, self.put_function),
            web.patch(function, self.patch_function),
            web.get(f"{function}/code", self.get_code),
            web.put(f"{function}/code", self.put_code),
            web.delete(function, self.delete_function),
        ]


async def _bundle(data: bytes) -> Bundle:
    """A checked bundle; inflating it to check is slow work, kept off the event loop."""
    try:
        return await asyncio.to_thread(Bundle.check, data)
    except ArchiveError as exc:
        extra = {"entry": exc.entry} if exc.entry else {}
        raise HttpError(exc.status, f"invalid code: {exc}", field="code", **extra) from None


class TriggerRoutes:
    def __init__(
        self, store: RegistryStore, registration: Registration, body_timeout_s: float
    ) -> None:
        self._store = store
        self._registration = registration
        self._body_timeout_s = body_timeout_s

    async def list_triggers(self, request: web.Request) -> web.Response:
        snapshot = await self._store.load()
        return json_response(
            {"triggers": [_trigger_view(n, t) for n, t in sorted(snapshot.triggers.items())]}
        )

    async def get_trigger(self, request: web.Request) -> web.Response:
        name = name_of(request)
        trigger = await self._store.get_trigger(name)
        return json_response(_trigger_view(name, trigger))

    async def put_trigger(self, request: web.Request) -> web.Response:
        name = name_of(request)
        document = await read_json(request, MAX_SPEC_BYTES, self._body_timeout_s)
        trigger: Trigger = validated(TRIGGER, document)
        created = await self._registration.put_trigger(name, trigger)
        return json_response(_trigger_view(name, trigger), status=201 if created else 200)

    async def delete_trigger(self, request: web.Request) -> web.Response:
        await self._registration.delete_trigger(name_of(request))
        return web.Response(status=204)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(f"{PREFIX}/triggers", self.list_triggers),
            web.get(f"{PREFIX}/triggers/{{name}}", self.get_trigger),
            web.put(f"{PREFIX}/triggers/{{name}}", self.put_trigger),
            web.delete(f"{PREFIX}/triggers/{{name}}", self.delete_trigger),
        ]


class InvokeRoute:
    """Lambda's Invoke in the admin API's shapes: the body is the event; sync answers the
    result, async an id. The name may be `fn`, `fn:7` (a published version) or `fn:alias`."""

    def __init__(
        self,
        registry: Registry,
        invocations: InvocationService,
        max_body_bytes: int,
        body_timeout_s: float,
    ) -> None:
        self._registry = registry
        self._invocations = invocations
        self._max_body_bytes = max_body_bytes
        self._body_timeout_s = body_timeout_s

    async def invoke(self, request: web.Request) -> web.Response:
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
        target = self._registry.snapshot.resolve(name)
        if target is None:
            raise HttpError(404, f"function {name!r} does not exist")
        event = await read_json(request, self._max_body_bytes, self._body_timeout_s, empty={})
        event_id = request.headers.get("Idempotency-Key")
        if mode == "async":
            try:
                invocation_id = await self._invocations.enqueue(target, event, event_id=event_id)
            except BrokerError as exc:
                raise HttpError(503, f"the event could not be queued: {exc}") from exc
            return json_response({"invocation_id": invocation_id}, status=202)
        request_id = new_id()
        outcome = await self._invocations.run(target, event, request_id, event_id=event_id)
        if isinstance(outcome, Throttling):
            return answers.throttled(outcome)
        return answers.invoked(outcome, request_id, target.version)

    def routes(self) -> list[web.RouteDef]:
        return [web.post(f"{PREFIX}/functions/{{name}}/invoke", self.invoke)]


def known_function(request: web.Request, registry: Registry) -> str:
    """The path's function, which this replica's registry knows (else 404)."""
    name = name_of(request)
    if name not in registry.snapshot.functions:
        raise HttpError(404, f"function {name!r} does not exist")
    return name


def limit_of(request: web.Request) -> int:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise HttpError(400, f"limit must be 1-10000, got {raw!r}", field="limit")
    return int(raw)
