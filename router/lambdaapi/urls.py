"""Function URLs and reserved concurrency, mapped onto what the router has: a function URL is a
sync webhook trigger (its URL the router's `/hooks/{id}/`), reserved concurrency is
`concurrency.max`."""

from __future__ import annotations

import contextlib
import secrets
import time
from typing import Any, Literal

import orjson
from aiohttp import web

from router.lambdaapi import errors, shapes
from router.lambdaapi.gateway import Backend, LambdaRequest, answer
from router.registry import NotFound
from router.specs import LATEST, Concurrency, Verify, WebhookTrigger

DEFAULT_CONCURRENCY = Concurrency().max
AUTH_SCHEMES: dict[str, Literal["none", "aws-iam"]] = {"NONE": "none", "AWS_IAM": "aws-iam"}


async def create_url(call: LambdaRequest) -> web.StreamResponse:
    backend = call.backend
    target = _url_target(call)
    document = call.document()
    auth_type = document.get("AuthType")
    if auth_type not in AUTH_SCHEMES:
        raise errors.invalid(
            "AuthType is required: AWS_IAM (callers sign with a key of ROUTER_AWS_CREDENTIALS) "
            "or NONE (anyone with the URL may call it)"
        )
    if document.get("InvokeMode", "BUFFERED") != "BUFFERED":
        raise errors.invalid("InvokeMode RESPONSE_STREAM is not supported: use BUFFERED")
    if await _existing(backend, target):
        raise errors.conflict(f"{shapes.arn(target)} has a function URL already")
    trigger = f"url-{secrets.token_hex(14)}"  # unguessable, as Lambda's URL ids are
    spec = WebhookTrigger(
        type="webhook",
        function=target,
        mode="sync",
        methods=["*"],
        verify=Verify(scheme=AUTH_SCHEMES[auth_type]),
        description=f"function URL of {target} (Lambda API)",
    )
    await backend.registration.put_trigger(trigger, spec)
    now = time.time()
    config = {
        "trigger": trigger,
        "auth_type": auth_type,
        "cors": document.get("Cors"),
        "created": now,
        "modified": now,
    }
    await backend.redis.hset(backend.names.function_urls, target, orjson.dumps(config))
    return answer(_url_view(call, target, config), status=201)


async def get_url(call: LambdaRequest) -> web.StreamResponse:
    target = _url_target(call)
    config = await _config(call.backend, target)
    return answer(
        {**_url_view(call, target, config), "LastModifiedTime": _time(config["modified"])}
    )


async def delete_url(call: LambdaRequest) -> web.StreamResponse:
    target = _url_target(call)
    await _config(call.backend, target)
    await delete_config(call.backend, target)
    return web.Response(status=204)


async def put_concurrency(call: LambdaRequest) -> web.StreamResponse:
    name, _ = call.target()
    reserved = call.document().get("ReservedConcurrentExecutions")
    if not isinstance(reserved, int) or isinstance(reserved, bool) or reserved < 1:
        raise errors.invalid(
            "ReservedConcurrentExecutions must be 1 or more (the router has no 0 'off switch': "
            "delete the function's triggers to stop it)"
        )
    await _set_concurrency(call, name, reserved)
    return answer({"ReservedConcurrentExecutions": reserved})


async def delete_concurrency(call: LambdaRequest) -> web.StreamResponse:
    name, _ = call.target()
    await _set_concurrency(call, name, DEFAULT_CONCURRENCY)
    return web.Response(status=204)


async def get_concurrency(call: LambdaRequest) -> web.StreamResponse:
    name, _ = call.target()
    spec = await call.backend.registry.store.get_function(name)
    return answer({"ReservedConcurrentExecutions": spec.concurrency.max})


async def _set_concurrency(call: LambdaRequest, name: str, maximum: int) -> None:
    from router.lambdaapi.functions import rewrite

    def change(fields: dict[str, Any]) -> dict[str, Any]:
        # Reserved concurrency is `max`; `min` and a per-replica cap are kept, within it.
        concurrency = {**fields["concurrency"], "max": maximum}
        for bounded in ("min", "per_replica"):
            if concurrency.get(bounded) is not None:
                concurrency[bounded] = min(concurrency[bounded], maximum)
        return {**fields, "concurrency": concurrency}

    await rewrite(call, name, change)


async def triggers_of(backend: Backend, function: str) -> set[str]:
    """The triggers of the function's URLs (its own and its aliases')."""
    configs = await backend.redis.hgetall(backend.names.function_urls)
    return {
        orjson.loads(raw)["trigger"]
        for target, raw in configs.items()
        if _text(target).partition(":")[0] == function
    }


async def delete_all(backend: Backend, function: str) -> None:
    for target in await backend.redis.hkeys(backend.names.function_urls):
        if _text(target).partition(":")[0] == function:
            await delete_config(backend, _text(target))


async def delete_config(backend: Backend, target: str) -> None:
    """A function URL and its trigger (none there: nothing to do)."""
    raw = await backend.redis.hget(backend.names.function_urls, target)
    if raw is None:
        return
    with contextlib.suppress(NotFound):  # deleted through the admin API already
        await backend.registration.delete_trigger(orjson.loads(raw)["trigger"])
    await backend.redis.hdel(backend.names.function_urls, target)


async def _existing(backend: Backend, target: str) -> dict[str, Any] | None:
    """The function URL's config, if its trigger is still there (deleting the trigger through
    the admin API deletes the URL)."""
    raw = await backend.redis.hget(backend.names.function_urls, target)
    config: dict[str, Any] | None = None if raw is None else orjson.loads(raw)
    if config is None or config["trigger"] not in backend.registry.snapshot.triggers:
        return None
    return config


async def _config(backend: Backend, target: str) -> dict[str, Any]:
    config = await _existing(backend, target)
    if config is None:
        raise errors.not_found(f"The resource you requested does not exist: {shapes.arn(target)}")
    return config


def _url_target(call: LambdaRequest) -> str:
    name, qualifier = call.target()
    if name not in call.backend.registry.snapshot.functions:
        raise errors.not_found(f"Function not found: {shapes.arn(name)}")
    if qualifier in (None, LATEST):
        return name
    if qualifier.isdigit():
        raise errors.invalid("a function URL names $LATEST or an alias, not a version number")
    if qualifier not in call.backend.registry.snapshot.aliases.get(name, {}):
        raise errors.not_found(f"Alias not found: {shapes.arn(name, qualifier)}")
    return f"{name}:{qualifier}"


def _url_view(call: LambdaRequest, target: str, config: dict[str, Any]) -> dict[str, Any]:
    request = call.request
    view: dict[str, Any] = {
        "FunctionUrl": f"{request.scheme}://{request.host}/hooks/{config['trigger']}/",
        "FunctionArn": shapes.arn(target),
        "AuthType": config["auth_type"],
        "CreationTime": _time(config["created"]),
        "InvokeMode": "BUFFERED",
    }
    if config.get("cors"):
        view["Cors"] = config["cors"]
    return view


def _time(epoch: float) -> str:
    return shapes.timestamp(epoch).replace("+0000", "Z")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
