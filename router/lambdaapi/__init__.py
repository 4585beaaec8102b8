"""The AWS Lambda API (2015-03-31) on the router's port: boto3, the AWS CLI and the JavaScript
SDK work against it with only an endpoint URL, authenticated by SigV4 against
`ROUTER_AWS_CREDENTIALS`. Each operation translates Lambda's shapes to the registry's records,
so what is made here is what the admin API, the CLI and every trigger see."""

from __future__ import annotations

import functools

from aiohttp import web

from router.events import new_id
from router.lambdaapi import errors, functions, invoke, operations, urls, versions
from router.lambdaapi.gateway import MAX_BODY, Backend, LambdaRequest, Operation, operation
from router.sigv4 import AuthError, Message

FUNCTION = "/2015-03-31/functions/{function}"
# (method, path, operation name, implementation, largest body)
OPERATIONS: tuple[tuple[str, str, str, Operation, int], ...] = (
    ("POST", "/2015-03-31/functions", "CreateFunction", functions.create_function,
     functions.MAX_CODE_BODY),
    ("GET", "/2015-03-31/functions/", "ListFunctions", functions.list_functions, 0),
    ("GET", FUNCTION, "GetFunction", functions.get_function, 0),
    ("DELETE", FUNCTION, "DeleteFunction", functions.delete_function, 0),
    ("GET", FUNCTION + "/configuration", "GetFunctionConfiguration",
     functions.get_configuration, 0),
    ("PUT", FUNCTION + "/configuration", "UpdateFunctionConfiguration",
     functions.update_configuration, 0),
    ("PUT", FUNCTION + "/code", "UpdateFunctionCode", functions.update_code,
     functions.MAX_CODE_BODY),
    ("POST", FUNCTION + "/invocations", "Invoke", invoke.invoke, invoke.MAX_SYNC_PAYLOAD),
    ("POST", FUNCTION + "/versions", "PublishVersion", versions.publish_version, 0),
    ("GET", FUNCTION + "/versions", "ListVersionsByFunction", versions.list_versions, 0),
    ("POST", FUNCTION + "/aliases", "CreateAlias", versions.create_alias, 0),
    ("GET", FUNCTION + "/aliases", "ListAliases", versions.list_aliases, 0),
    ("GET", FUNCTION + "/aliases/{alias}", "GetAlias", versions.get_alias, 0),
    ("PUT", FUNCTION + "/aliases/{alias}", "UpdateAlias", versions.update_alias, 0),
    ("DELETE", FUNCTION + "/aliases/{alias}", "DeleteAlias", versions.delete_alias, 0),
    ("PUT", "/2017-10-31/functions/{function}/concurrency", "PutFunctionConcurrency",
     urls.put_concurrency, 0),
    ("DELETE", "/2017-10-31/functions/{function}/concurrency", "DeleteFunctionConcurrency",
     urls.delete_concurrency, 0),
    ("GET", "/2019-09-30/functions/{function}/concurrency", "GetFunctionConcurrency",
     urls.get_concurrency, 0),
    ("POST", "/2021-10-31/functions/{function}/url", "CreateFunctionUrlConfig",
     urls.create_url, 0),
    ("GET", "/2021-10-31/functions/{function}/url", "GetFunctionUrlConfig", urls.get_url, 0),
    ("DELETE", "/2021-10-31/functions/{function}/url", "DeleteFunctionUrlConfig",
     urls.delete_url, 0),
)  # fmt: skip
IMPLEMENTED = tuple(name for _, _, name, _, _ in OPERATIONS)


def routes(backend: Backend) -> list[web.RouteDef]:
    served = [
        web.route(method, path, operation(backend, name, run, limit or MAX_BODY))
        for method, path, name, run, limit in OPERATIONS
    ]
    # ListFunctions is `/functions/` to the SDKs; the path without the slash is the same list.
    served.append(web.get("/2015-03-31/functions", served[1].handler))
    code = functools.partial(functions.download_code, backend)
    served.append(web.get("/lambda/code/{digest:[0-9a-f]+}", code))
    # Anything else under a dated prefix is an operation the router does not implement: it is
    # answered by name, after the same authentication, never with a bare 404.
    unknown = functools.partial(unknown_operation, backend)
    served.append(web.route("*", "/{date:[0-9]+-[0-9]+-[0-9]+}/{rest:.*}", unknown))
    return served


async def unknown_operation(backend: Backend, request: web.Request) -> web.StreamResponse:
    request_id = new_id()
    try:
        backend.verifier.claimed(
            Message.of(request.method, request.raw_path, request.headers.items())
        )
    except AuthError as exc:
        return errors.response(errors.LambdaError(403, exc.error_type, str(exc)), request_id)
    names = operations.named(request.method, request.path)
    what = " or ".join(names) if names else f"{request.method} {request.path}"
    message = (
        f"the router does not implement the Lambda operation {what}; it implements "
        f"{', '.join(IMPLEMENTED)}"
        if names
        else f"{what} is no Lambda API operation"
    )
    status = 501 if names else 404
    error_type = "UnsupportedOperationException" if names else "UnknownOperationException"
    return errors.response(errors.LambdaError(status, error_type, message), request_id)


__all__ = ["Backend", "LambdaRequest", "routes"]
