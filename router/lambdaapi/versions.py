"""PublishVersion, ListVersionsByFunction and the alias operations, with
`RoutingConfig.AdditionalVersionWeights` (a canary's weighted split between two versions)."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from router.lambdaapi import errors, shapes, urls
from router.lambdaapi.functions import unqualified
from router.lambdaapi.gateway import LambdaRequest, answer
from router.registry import NotFound, Snapshot
from router.specs import ALIAS_PATTERN, LATEST, AliasSpec

_ALIAS = re.compile(ALIAS_PATTERN)


async def publish_version(call: LambdaRequest) -> web.StreamResponse:
    name = unqualified(call)
    document = call.document()
    backend = call.backend
    expect = None
    revision = document.get("RevisionId")
    if revision is not None:
        current = await backend.registry.store.get_function(name)
        if revision != shapes.revision_id(name, LATEST, current):
            raise errors.LambdaError(
                412, "PreconditionFailedException", f"RevisionId {revision} is not $LATEST's"
            )
        expect = current.version
    description = document.get("Description")
    if description is not None and not isinstance(description, str):
        raise errors.invalid("Description must be a string")
    number, spec, _ = await backend.registration.publish_version(
        name, description, document.get("CodeSha256"), expect
    )
    return answer(shapes.configuration(name, number, spec), status=201)


async def list_versions(call: LambdaRequest) -> web.StreamResponse:
    name = unqualified(call)
    snapshot = await call.backend.registry.store.load()
    latest = snapshot.functions.get(name)
    if latest is None:
        raise errors.not_found(f"Function not found: {shapes.arn(name)}")
    published = sorted(snapshot.versions.get(name, {}).items(), key=lambda item: int(item[0]))
    listed = [(LATEST, latest), *published]
    chunk, marker = shapes.page(listed, call.query.get("Marker"), call.query.get("MaxItems"))
    document: dict[str, Any] = {
        "Versions": [shapes.configuration(name, number, spec) for number, spec in chunk]
    }
    if marker:
        document["NextMarker"] = marker
    return answer(document)


async def create_alias(call: LambdaRequest) -> web.StreamResponse:
    name = unqualified(call)
    document = call.document()
    alias = _alias_name(document.get("Name"))
    spec = _alias_spec(
        document.get("FunctionVersion"), document.get("Description", ""), _weights(document)
    )
    stored, _ = await call.backend.registration.put_alias(name, alias, spec, create=True)
    return answer(shapes.alias_configuration(name, alias, stored), status=201)


async def get_alias(call: LambdaRequest) -> web.StreamResponse:
    name = unqualified(call)
    alias = call.request.match_info["alias"]
    snapshot = await call.backend.registry.store.load()
    return answer(shapes.alias_configuration(name, alias, _existing(snapshot, name, alias)))


async def update_alias(call: LambdaRequest) -> web.StreamResponse:
    name = unqualified(call)
    alias = call.request.match_info["alias"]
    document = call.document()
    current = _existing(await call.backend.registry.store.load(), name, alias)
    revision = document.get("RevisionId")
    if revision is not None and revision != shapes.alias_revision_id(name, alias, current):
        raise errors.LambdaError(
            412, "PreconditionFailedException", f"RevisionId {revision} is not the alias's"
        )
    routing = _weights(document) if "RoutingConfig" in document else current.routing
    spec = _alias_spec(
        document.get("FunctionVersion", current.function_version),
        document.get("Description", current.description),
        routing,
    )
    stored, _ = await call.backend.registration.put_alias(
        name, alias, spec, create=False, expect=current.revision
    )
    return answer(shapes.alias_configuration(name, alias, stored))


async def delete_alias(call: LambdaRequest) -> web.StreamResponse:
    """Idempotent, as Lambda's: a missing alias is not an error. Its function URL goes too."""
    name = unqualified(call)
    alias = call.request.match_info["alias"]
    await urls.delete_config(call.backend, f"{name}:{alias}")
    with contextlib.suppress(NotFound):
        await call.backend.registration.delete_alias(name, alias)
    return web.Response(status=204)


async def list_aliases(call: LambdaRequest) -> web.StreamResponse:
    name = unqualified(call)
    snapshot = await call.backend.registry.store.load()
    if name not in snapshot.functions:
        raise errors.not_found(f"Function not found: {shapes.arn(name)}")
    version = call.query.get("FunctionVersion")
    aliases = [
        (alias, spec)
        for alias, spec in sorted(snapshot.aliases.get(name, {}).items())
        if version is None or version in spec.versions()
    ]
    chunk, marker = shapes.page(aliases, call.query.get("Marker"), call.query.get("MaxItems"))
    document: dict[str, Any] = {
        "Aliases": [shapes.alias_configuration(name, alias, spec) for alias, spec in chunk]
    }
    if marker:
        document["NextMarker"] = marker
    return answer(document)


def _existing(snapshot: Snapshot, name: str, alias: str) -> AliasSpec:
    if name not in snapshot.functions:
        raise errors.not_found(f"Function not found: {shapes.arn(name)}")
    spec = snapshot.aliases.get(name, {}).get(alias)
    if spec is None:
        raise errors.not_found(f"Alias not found: {shapes.arn(name, alias)}")
    return spec


def _alias_name(value: object) -> str:
    if not isinstance(value, str) or not _ALIAS.match(value) or value == LATEST:
        raise errors.invalid(
            f"invalid alias Name {value!r}: 1-128 letters, digits, '-' or '_', not all digits"
        )
    return value


def _weights(document: dict[str, Any]) -> dict[str, float]:
    routing = document.get("RoutingConfig") or {}
    if not isinstance(routing, dict):
        raise errors.invalid("RoutingConfig must be {'AdditionalVersionWeights': {...}}")
    weights = routing.get("AdditionalVersionWeights") or {}
    if not isinstance(weights, dict):
        raise errors.invalid("AdditionalVersionWeights must map a version to a weight")
    return weights


def _alias_spec(version: object, description: object, routing: dict[str, Any]) -> AliasSpec:
    try:
        return AliasSpec.model_validate(
            {"function_version": version, "description": description, "routing": routing}
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        names = {"function_version": "FunctionVersion", "description": "Description"}
        location = [str(part) for part in first["loc"]]
        field = names.get(location[0], "RoutingConfig") if location else "RoutingConfig"
        raise errors.invalid(f"invalid {field}: {first['msg']}") from None
