"""CreateFunction, GetFunction(Configuration), ListFunctions, UpdateFunctionCode,
UpdateFunctionConfiguration, DeleteFunction: Lambda's shapes over the registry's functions, so a
function made here is the one the admin API, the CLI and every trigger see."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from router.archive import MAX_ZIPPED, ArchiveError
from router.bundles import Bundle
from router.lambdaapi import errors, shapes, urls
from router.lambdaapi.gateway import Backend, LambdaRequest, answer
from router.registry import PreconditionFailed, Snapshot, Target
from router.sigv4 import EMPTY_SHA256, AuthError, Message
from router.specs import LATEST, FunctionSpec

MAX_CODE_BODY = MAX_ZIPPED * 4 // 3 + 1024 * 1024  # a JSON body with a base64 zip
CODE_URL_EXPIRES_S = 600  # Code.Location is good for ten minutes, as Lambda's
TRIES = 3  # read-modify-write attempts when another write comes in between
# Lambda's request fields -> the spec's, for what takes a plain value.
FIELDS = {
    "Runtime": "runtime",
    "Handler": "handler",
    "Description": "description",
    "Timeout": "timeout_s",
    "MemorySize": "memory_mb",
    "Role": "role",
}
LAMBDA_NAMES = {
    **{spec: name for name, spec in FIELDS.items()},
    "env": "Environment.Variables",
    "ephemeral_storage_mb": "EphemeralStorage.Size",
    "code": "Code.ZipFile",
    "concurrency": "ReservedConcurrentExecutions",
}
# Settings that change what runs and that the router cannot honour: refused, never ignored.
UNSUPPORTED = ("Layers", "FileSystemConfigs", "ImageConfig", "CapacityProviderConfig")


async def create_function(call: LambdaRequest) -> web.StreamResponse:
    document = call.document()
    name, qualifier = shapes.function_name(str(document.get("FunctionName", "")))
    if qualifier is not None:
        raise errors.invalid("FunctionName of a new function takes no qualifier")
    _refuse_unsupported(document)
    if document.get("PackageType", "Zip") != "Zip":
        raise errors.invalid("PackageType Image is not supported: upload a zip (Code.ZipFile)")
    code = document.get("Code")
    if not isinstance(code, dict):
        raise errors.invalid("Code is required: {'ZipFile': <the zip>}")
    bundle = await _bundle(code)
    fields = {**_fields(document), "code": {"sha256": bundle.sha256, "size": len(bundle.data)}}
    spec = validated(fields)
    stored, _ = await call.backend.registration.put_function(name, spec, bundle, expect=0)
    version = LATEST
    if document.get("Publish") is True:
        version, stored, _ = await call.backend.registration.publish_version(name)
    return answer(shapes.configuration(name, version, stored), status=201)


async def get_function(call: LambdaRequest) -> web.StreamResponse:
    snapshot = await call.backend.registry.store.load()
    target = found(snapshot, *call.target())
    code: dict[str, Any] = {"RepositoryType": "S3"}
    if target.spec.code is not None:
        code["Location"] = code_location(call, target.spec.code.sha256)
    return answer(
        {
            "Configuration": shapes.configuration(target.function, target.version, target.spec),
            "Code": code,
            "Tags": {},
            "Concurrency": {"ReservedConcurrentExecutions": target.spec.concurrency.max},
        }
    )


async def get_configuration(call: LambdaRequest) -> web.StreamResponse:
    snapshot = await call.backend.registry.store.load()
    target = found(snapshot, *call.target())
    return answer(shapes.configuration(target.function, target.version, target.spec))


async def list_functions(call: LambdaRequest) -> web.StreamResponse:
    """`$LATEST` of every function; with FunctionVersion=ALL, every published version too."""
    snapshot = await call.backend.registry.store.load()
    every = call.query.get("FunctionVersion")
    if every not in (None, "ALL"):
        raise errors.invalid(f"FunctionVersion must be ALL, got {every!r}")
    listed: list[tuple[str, str, FunctionSpec]] = []
    for name, spec in sorted(snapshot.functions.items()):
        listed.append((name, LATEST, spec))
        if every == "ALL":
            listed.extend((name, n, s) for n, s in _numbered(snapshot.versions.get(name, {})))
    chunk, marker = shapes.page(listed, call.query.get("Marker"), call.query.get("MaxItems"))
    document: dict[str, Any] = {"Functions": [shapes.configuration(*item) for item in chunk]}
    if marker:
        document["NextMarker"] = marker
    return answer(document)


async def update_code(call: LambdaRequest) -> web.StreamResponse:
    name = unqualified(call)
    document = call.document()
    bundle = await _bundle(document)
    code = {"sha256": bundle.sha256, "size": len(bundle.data)}
    return await _update(call, name, document, lambda fields: {**fields, "code": code}, bundle)


async def update_configuration(call: LambdaRequest) -> web.StreamResponse:
    name = unqualified(call)
    document = call.document()
    _refuse_unsupported(document)
    return await _update(call, name, document, lambda fields: {**fields, **_fields(document)})


async def _update(
    call: LambdaRequest,
    name: str,
    document: dict[str, Any],
    change: Callable[[dict[str, Any]], dict[str, Any]],
    bundle: Bundle | None = None,
) -> web.StreamResponse:
    """Read, change, write only if nobody wrote in between (else read again): RevisionId, when
    given, must be the one read."""
    stored = await rewrite(
        call,
        name,
        change,
        document.get("RevisionId"),
        bundle,
        dry_run=document.get("DryRun") is True,
    )
    version = LATEST
    if document.get("Publish") is True:
        version, stored, _ = await call.backend.registration.publish_version(name)
    return answer(shapes.configuration(name, version, stored))


async def rewrite(
    call: LambdaRequest,
    name: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    revision: object = None,
    bundle: Bundle | None = None,
    *,
    dry_run: bool = False,
) -> FunctionSpec:
    for attempt in range(TRIES):
        current = await call.backend.registry.store.get_function(name)
        if revision is not None and revision != shapes.revision_id(name, LATEST, current):
            raise PreconditionFailed(f"RevisionId {revision} is not $LATEST's current one")
        fields = current.model_dump(exclude={"version", "updated_at", "source_sha256"})
        spec = validated(change(fields))
        if dry_run:
            return spec.model_copy(update={"version": current.version})
        try:
            stored, _ = await call.backend.registration.put_function(
                name, spec, bundle, expect=current.version
            )
            return stored
        except PreconditionFailed:
            if revision is not None or attempt == TRIES - 1:
                raise
    raise AssertionError("unreachable")


async def delete_function(call: LambdaRequest) -> web.StreamResponse:
    """The whole function (with its versions, aliases and function URLs), or one version."""
    name, qualifier = call.target()
    backend = call.backend
    if qualifier is None:
        snapshot = await backend.registry.store.load()
        if name not in snapshot.functions:
            raise errors.not_found(f"Function not found: {shapes.arn(name)}")
        own = await urls.triggers_of(backend, name)
        others = [t for t in snapshot.users_of(name) if t not in own]
        if others:
            raise errors.conflict(
                f"function {name!r} is used by triggers: {', '.join(others)}; delete them first"
            )
        await urls.delete_all(backend, name)
        await backend.registration.delete_function(name)
    elif qualifier.isdigit():
        await backend.registration.delete_version(name, qualifier)
    else:
        raise errors.invalid(
            f"Qualifier {qualifier!r}: DeleteFunction deletes a published version (a number) or, "
            "without a qualifier, the whole function; use DeleteAlias for aliases"
        )
    return web.Response(status=204)


async def download_code(backend: Backend, request: web.Request) -> web.StreamResponse:
    """The zip behind a Code.Location URL: presigned, so it needs no other credentials."""
    verifier = backend.verifier
    message = Message.of(request.method, request.raw_path, request.headers.items())
    try:
        claim = verifier.claimed(message)
        if claim.expires_s is None:
            raise AuthError("InvalidSignatureException", "this URL is presigned only")
        verifier.verify(claim, message, EMPTY_SHA256)
    except AuthError as exc:
        return errors.response(errors.LambdaError(403, exc.error_type, str(exc)), "")
    digest = request.match_info["digest"]
    data = await backend.redis.get(backend.names.code(digest))
    if data is None:
        return errors.response(errors.not_found("no such code bundle (any more)"), "")
    return web.Response(body=data, content_type="application/zip")


def code_location(call: LambdaRequest, sha256: str) -> str:
    request = call.request
    path = f"/lambda/code/{base64.b64decode(sha256).hex()}"
    query = call.backend.verifier.presign(call.access_key, request.host, path, CODE_URL_EXPIRES_S)
    return f"{request.scheme}://{request.host}{path}?{query}"


def found(snapshot: Snapshot, function: str, qualifier: str | None) -> Target:
    """The version a name resolves to (an alias: the version it points at)."""
    routing = snapshot.routing(f"{function}:{qualifier}" if qualifier else function)
    if routing is None:
        raise errors.not_found(f"Function not found: {shapes.arn(function, qualifier)}")
    return routing.primary


def unqualified(call: LambdaRequest) -> str:
    name, qualifier = call.target()
    if qualifier not in (None, LATEST):
        raise errors.invalid("only $LATEST can be changed: published versions are immutable")
    return name


def validated(fields: dict[str, Any]) -> FunctionSpec:
    try:
        return FunctionSpec.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        location = [str(part) for part in first["loc"]]
        field = LAMBDA_NAMES.get(location[0], location[0]) if location else "request"
        raise errors.invalid(f"invalid {field}: {first['msg']}") from None


def _fields(document: dict[str, Any]) -> dict[str, Any]:
    fields = {FIELDS[k]: v for k, v in document.items() if k in FIELDS}
    if "Environment" in document:
        environment = document["Environment"] or {}
        if not isinstance(environment, dict):
            raise errors.invalid("Environment must be {'Variables': {...}}")
        fields["env"] = environment.get("Variables") or {}
    storage = document.get("EphemeralStorage")
    if isinstance(storage, dict) and "Size" in storage:
        fields["ephemeral_storage_mb"] = storage["Size"]
    return fields


def _refuse_unsupported(document: dict[str, Any]) -> None:
    for key in UNSUPPORTED:
        if document.get(key):
            raise errors.invalid(f"{key} is not supported by the router: put it in the zip")


async def _bundle(code: dict[str, Any]) -> Bundle:
    if any(code.get(k) for k in ("S3Bucket", "S3Key", "ImageUri")):
        raise errors.invalid("only ZipFile is supported: upload the zip itself")
    raw = code.get("ZipFile")
    if not isinstance(raw, str) or not raw:
        raise errors.invalid("ZipFile is required: the zip, base64-encoded in the JSON body")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise errors.invalid("ZipFile is not base64") from None
    try:
        return await asyncio.to_thread(Bundle.check, data)
    except ArchiveError as exc:
        entry = f" ({exc.entry})" if exc.entry else ""
        if exc.status == 413:
            raise errors.too_large(f"Could not unzip uploaded file: {exc}{entry}") from None
        raise errors.invalid(f"Could not unzip uploaded file: {exc}{entry}") from None


def _numbered(versions: dict[str, FunctionSpec] | Any) -> list[tuple[str, FunctionSpec]]:
    return sorted(versions.items(), key=lambda item: int(item[0]))
