"""The admin API's versions and aliases: publish a function's `$LATEST` as an immutable numbered
version, name versions with aliases (optionally splitting traffic by weight), as Lambda does."""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web
from pydantic import TypeAdapter

from router.api import name_of, validated
from router.bodies import read_limited
from router.jsonhttp import HttpError, json_response
from router.registration import Registration
from router.registry import RegistryStore
from router.specs import ALIAS_PATTERN, AliasSpec, FunctionSpec

PREFIX = "/api/v1"
MAX_BODY = 64 * 1024
ALIAS = TypeAdapter(AliasSpec)
_ALIAS = re.compile(ALIAS_PATTERN)


def version_view(function: str, number: str, spec: FunctionSpec) -> dict[str, Any]:
    return {
        "function": function,
        "version": number,
        "description": spec.description,
        "code_sha256": spec.code.sha256 if spec.code else spec.source_sha256,
        "code_size": spec.code.size if spec.code else None,
        "runtime": spec.runtime,
        "handler": spec.handler,
        "published_at": spec.updated_at,
        "revision": spec.version,  # the change of $LATEST it was published from
    }


def alias_view(function: str, alias: str, spec: AliasSpec) -> dict[str, Any]:
    return {"function": function, "name": alias, **spec.model_dump()}


def _alias(request: web.Request) -> str:
    alias = request.match_info["alias"]
    if not _ALIAS.match(alias):
        raise HttpError(
            400,
            f"invalid alias {alias!r}: 1-128 letters, digits, '-' or '_', not all digits",
            field="alias",
        )
    return alias


def _number(request: web.Request) -> str:
    number = request.match_info["version"]
    if not number.isascii() or not number.isdigit() or len(number) > 9:
        raise HttpError(
            400, f"invalid version {number!r}: a published version's number", field="version"
        )
    return number


async def _body(request: web.Request) -> dict[str, Any]:
    """A JSON object; an empty body is `{}`."""
    raw = await read_limited(request, MAX_BODY)
    if not raw.strip():
        return {}
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise HttpError(400, "the body must be a JSON object", field="body")
    return document


class VersionRoutes:
    def __init__(self, store: RegistryStore, registration: Registration) -> None:
        self._store = store
        self._registration = registration

    async def publish(self, request: web.Request) -> web.Response:
        """`$LATEST` as the next version (201), or the last version when nothing changed (200)."""
        name = name_of(request)
        document = await _body(request)
        description = document.get("description")
        if set(document) - {"description"} or not isinstance(description, str | None):
            raise HttpError(400, 'give {"description": "..."} or nothing', field="description")
        number, spec, created = await self._registration.publish_version(name, description)
        return json_response(version_view(name, number, spec), status=201 if created else 200)

    async def list_versions(self, request: web.Request) -> web.Response:
        name = name_of(request)
        snapshot = await self._store.load()
        if name not in snapshot.functions:
            raise HttpError(404, f"function {name!r} does not exist")
        published = sorted(snapshot.versions.get(name, {}).items(), key=lambda item: int(item[0]))
        return json_response({"versions": [version_view(name, n, s) for n, s in published]})

    async def get_version(self, request: web.Request) -> web.Response:
        name, number = name_of(request), _number(request)
        snapshot = await self._store.load()
        spec = snapshot.versions.get(name, {}).get(number)
        if spec is None:
            raise HttpError(404, f"function {name!r} has no version {number}")
        return json_response(version_view(name, number, spec))

    async def delete_version(self, request: web.Request) -> web.Response:
        await self._registration.delete_version(name_of(request), _number(request))
        return web.Response(status=204)

    async def list_aliases(self, request: web.Request) -> web.Response:
        name = name_of(request)
        snapshot = await self._store.load()
        if name not in snapshot.functions:
            raise HttpError(404, f"function {name!r} does not exist")
        aliases = sorted(snapshot.aliases.get(name, {}).items())
        return json_response({"aliases": [alias_view(name, a, s) for a, s in aliases]})

    async def get_alias(self, request: web.Request) -> web.Response:
        name, alias = name_of(request), _alias(request)
        snapshot = await self._store.load()
        spec = snapshot.aliases.get(name, {}).get(alias)
        if spec is None:
            raise HttpError(404, f"function {name!r} has no alias {alias!r}")
        return json_response(alias_view(name, alias, spec))

    async def put_alias(self, request: web.Request) -> web.Response:
        """Create or replace; what GET answers may be sent back (its `function` and `revision`
        are ignored)."""
        name, alias = name_of(request), _alias(request)
        document = {
            k: v for k, v in (await _body(request)).items() if k not in ("function", "revision")
        }
        spec: AliasSpec = validated(ALIAS, document)
        stored, created = await self._registration.put_alias(name, alias, spec)
        return json_response(alias_view(name, alias, stored), status=201 if created else 200)

    async def delete_alias(self, request: web.Request) -> web.Response:
        await self._registration.delete_alias(name_of(request), _alias(request))
        return web.Response(status=204)

    def routes(self) -> list[web.RouteDef]:
        function = f"{PREFIX}/functions/{{name}}"
        return [
            web.get(f"{function}/versions", self.list_versions),
            web.post(f"{function}/versions", self.publish),
            web.get(f"{function}/versions/{{version}}", self.get_version),
            web.delete(f"{function}/versions/{{version}}", self.delete_version),
            web.get(f"{function}/aliases", self.list_aliases),
            web.get(f"{function}/aliases/{{alias}}", self.get_alias),
            web.put(f"{function}/aliases/{{alias}}", self.put_alias),
            web.delete(f"{function}/aliases/{{alias}}", self.delete_alias),
        ]
