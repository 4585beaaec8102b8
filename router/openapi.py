"""The admin API's OpenAPI 3.1 document, built from the same pydantic models that validate."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter

from router.invocations import Invocation
from router.jsonhttp import json_response
from router.specs import (
    ALIAS_PATTERN,
    NAME_PATTERN,
    TARGET_PATTERN,
    AliasSpec,
    FunctionSpec,
    TriggerSpec,
)

REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, **(_json(schema) if schema else {})}


ERRORS = {
    "400": _answer("invalid input; the body names the field", _ref("Error")),
    "401": _answer("missing or wrong bearer token", _ref("Error")),
    "404": _answer("not found", _ref("Error")),
    "413": _answer("the body is over a limit (the error names it)", _ref("Error")),
    "503": _answer("Redis or RabbitMQ unavailable", _ref("Error")),
}
NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": NAME_PATTERN},
}


def _crud(kind: str, schema: str, listing: str) -> dict[str, Any]:
    item = _ref(schema + "Record")
    return {
        f"/{listing}": {
            "get": {
                "summary": f"List {listing}",
                "operationId": f"list_{listing}",
                "responses": {
                    "200": _answer(
                        "all",
                        {
                            "type": "object",
                            "required": [listing],
                            "properties": {listing: {"type": "array", "items": item}},
                        },
                    ),
                    **ERRORS,
                },
            }
        },
        f"/{listing}/{{name}}": {
            "parameters": [NAME],
            "get": {
                "summary": f"Get a {kind}",
                "operationId": f"get_{kind}",
                "responses": {"200": _answer(kind, item), **ERRORS},
            },
            "put": {
                "summary": f"Create or replace a {kind}",
                "operationId": f"put_{kind}",
                "requestBody": {"required": True, **_json(_ref(schema))},
                "responses": {
                    "200": _answer("replaced", item),
                    "201": _answer("created", item),
                    "409": _answer("conflict", _ref("Error")),
                    **ERRORS,
                },
            },
            **(
                {
                    "patch": {
                        "summary": "Change some fields of a function, keeping the rest",
                        "operationId": "patch_function",
                        "requestBody": {
                            "required": True,
                            **_json({"type": "object", "additionalProperties": True}),
                        },
                        "responses": {"200": _answer("changed", item), **ERRORS},
                    }
                }
                if kind == "function"
                else {}
            ),
            "delete": {
                "summary": f"Delete a {kind}",
                "operationId": f"delete_{kind}",
                "responses": {
                    "204": _answer("deleted"),
                    "409": _answer("still in use", _ref("Error")),
                    **ERRORS,
                },
            },
        },
    }


def _invoke() -> dict[str, Any]:
    target = {**NAME, "schema": {"type": "string", "pattern": TARGET_PATTERN}}
    return {
        "/functions/{name}/invoke": {
            "post": {
                "summary": "Invoke `name`, `name:7` or `name:alias` with the body as its event",
                "operationId": "invoke",
                "parameters": [
                    target,
                    {
                        "name": "mode",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["sync", "async"], "default": "sync"},
                    },
                ],
                "requestBody": {"required": True, **_json({})},
                "responses": {
                    "200": _answer("the function's result", {}),
                    "202": _answer("queued", _ref("Accepted")),
                    "502": _answer("the function failed", _ref("FunctionError")),
                    "504": _answer("the function timed out", _ref("FunctionError")),
                    "413": _answer("event too large", _ref("Error")),
                    **ERRORS,
                },
            }
        }
    }


def _invocations() -> dict[str, Any]:
    return {
        "/invocations/{id}": {
            "get": {
                "summary": "An async invocation's record",
                "operationId": "get_invocation",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": _answer("the record", _ref("Invocation")), **ERRORS},
            }
        }
    }


def _dlq() -> dict[str, Any]:
    letter = _ref("DeadLetter")
    dead_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    limit = {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100},
    }
    after = {
        "name": "after",
        "in": "query",
        "required": False,
        "description": "the `next` of the previous page",
        "schema": {"type": "string"},
    }
    purged = {
        "type": "object",
        "required": ["purged"],
        "properties": {"purged": {"type": "integer"}},
    }
    return {
        "/functions/{name}/dlq": {
            "parameters": [NAME],
            "get": {
                "summary": "List dead letters",
                "operationId": "list_dead_letters",
                "parameters": [limit, after],
                "responses": {
                    "200": _answer(
                        "a page of dead letters, oldest first",
                        {
                            "type": "object",
                            "required": ["function", "count", "messages", "next"],
                            "properties": {
                                "function": {"type": "string"},
                                "count": {"type": "integer"},
                                "messages": {"type": "array", "items": letter},
                                "next": {"type": ["string", "null"]},
                            },
                        },
                    ),
                    **ERRORS,
                },
            },
            "delete": {
                "summary": "Purge all dead letters",
                "operationId": "purge_dead_letters",
                "responses": {"200": _answer("purged", purged), **ERRORS},
            },
        },
        "/functions/{name}/dlq/replay": {
            "post": {
                "summary": "Replay one dead letter or all",
                "operationId": "replay_dead_letters",
                "parameters": [NAME],
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "oneOf": [
                                {
                                    "type": "object",
                                    "required": ["id"],
                                    "properties": {"id": {"type": "string"}},
                                    "additionalProperties": False,
                                },
                                {
                                    "type": "object",
                                    "required": ["all"],
                                    "properties": {"all": {"const": True}},
                                    "additionalProperties": False,
                                },
                            ]
                        }
                    ),
                },
                "responses": {
                    "200": _answer(
                        "replayed",
                        {
                            "type": "object",
                            "required": ["replayed"],
                            "properties": {
                                "replayed": {"type": "integer"},
                                "skipped": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "id": {"type": "string"},
                                            "reason": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    ),
                    "409": _answer("a malformed dead letter: purge it", _ref("Error")),
                    **ERRORS,
                },
            }
        },
        "/functions/{name}/dlq/{id}": {
            "parameters": [NAME, dead_id],
            "get": {
                "summary": "One dead letter",
                "operationId": "get_dead_letter",
                "responses": {"200": _answer("the dead letter", letter), **ERRORS},
            },
            "delete": {
                "summary": "Purge one dead letter",
                "operationId": "purge_dead_letter",
                "responses": {"200": _answer("purged", purged), **ERRORS},
            },
        },
    }


def _versions() -> dict[str, Any]:
    version = {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"},
    }
    alias = {
        "name": "alias",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": ALIAS_PATTERN},
    }
    listing = {
        "type": "object",
        "properties": {"versions": {"type": "array", "items": _ref("Version")}},
    }
    aliases = {
        "type": "object",
        "properties": {"aliases": {"type": "array", "items": _ref("AliasRecord")}},
    }
    publish_body = {
        "type": "object",
        "properties": {"description": {"type": "string", "maxLength": 1024}},
        "additionalProperties": False,
    }
    conflict = {"409": _answer("in use by an alias or a trigger", _ref("Error"))}
    return {
        "/functions/{name}/versions": {
            "parameters": [NAME],
            "get": {
                "summary": "Published versions",
                "operationId": "list_versions",
                "responses": {"200": _answer("versions, oldest first", listing), **ERRORS},
            },
            "post": {
                "summary": "Publish $LATEST as an immutable version",
                "operationId": "publish_version",
                "requestBody": {"required": False, **_json(publish_body)},
                "responses": {
                    "201": _answer("published", _ref("Version")),
                    "200": _answer(
                        "unchanged since the last version: that version", _ref("Version")
                    ),
                    "412": _answer("changed meanwhile", _ref("Error")),
                    **ERRORS,
                },
            },
        },
        "/functions/{name}/versions/{version}": {
            "parameters": [NAME, version],
            "get": {
                "summary": "A published version",
                "operationId": "get_version",
                "responses": {"200": _answer("the version", _ref("Version")), **ERRORS},
            },
            "delete": {
                "summary": "Delete a published version",
                "operationId": "delete_version",
                "responses": {"204": _answer("deleted"), **conflict, **ERRORS},
            },
        },
        "/functions/{name}/aliases": {
            "parameters": [NAME],
            "get": {
                "summary": "Aliases",
                "operationId": "list_aliases",
                "responses": {"200": _answer("aliases", aliases), **ERRORS},
            },
        },
        "/functions/{name}/aliases/{alias}": {
            "parameters": [NAME, alias],
            "get": {
                "summary": "An alias",
                "operationId": "get_alias",
                "responses": {"200": _answer("the alias", _ref("AliasRecord")), **ERRORS},
            },
            "put": {
                "summary": "Create or replace an alias",
                "operationId": "put_alias",
                "requestBody": {"required": True, **_json(_ref("Alias"))},
                "responses": {
                    "200": _answer("replaced", _ref("AliasRecord")),
                    "201": _answer("created", _ref("AliasRecord")),
                    "412": _answer("changed meanwhile", _ref("Error")),
                    **ERRORS,
                },
            },
            "delete": {
                "summary": "Delete an alias",
                "operationId": "delete_alias",
                "responses": {"204": _answer("deleted"), **conflict, **ERRORS},
            },
        },
    }


def _record(schema: dict[str, Any]) -> dict[str, Any]:
    """What GET answers: the spec as stored, with its name."""
    record = copy.deepcopy(schema)
    record["properties"] = {"name": {"type": "string"}, **record["properties"]}
    record["required"] = ["name", *record.get("required", [])]
    record["title"] = f"{record.get('title', '')}Record"
    return record


def _function_input(schema: dict[str, Any]) -> dict[str, Any]:
    """What PUT takes: `code` is an upload (or null to remove it); the rest as stored."""
    upload = copy.deepcopy(schema)
    upload["properties"].pop("source_sha256", None)
    upload["properties"]["code"] = {
        "anyOf": [
            {
                "type": "object",
                "required": ["zip"],
                "additionalProperties": False,
                "properties": {
                    "zip": {"type": "string", "contentEncoding": "base64", "description": "a zip"}
                },
            },
            {"type": "null"},
        ],
        "description": "upload code; omitted keeps the current code, null removes it",
    }
    return upload


def _function_record(schema: dict[str, Any]) -> dict[str, Any]:
    """What GET answers: the code by hash and size, never the bytes."""
    record = _record(schema)
    record["properties"].pop("code", None)
    record["properties"].pop("source_sha256", None)
    record["properties"]["code_sha256"] = {
        "type": ["string", "null"],
        "description": "base64 SHA-256 of the code (Lambda's CodeSha256)",
    }
    record["properties"]["code_size"] = {"type": ["integer", "null"]}
    return record


def _code() -> dict[str, Any]:
    return {
        "/functions/{name}/code": {
            "parameters": [NAME],
            "get": {
                "summary": "Download the function's code (a zip)",
                "operationId": "get_code",
                "responses": {
                    "200": {
                        "description": "the zip",
                        "content": {"application/zip": {"schema": {"type": "string"}}},
                    },
                    **ERRORS,
                },
            },
            "put": {
                "summary": "Replace only the code (Lambda's UpdateFunctionCode)",
                "operationId": "put_code",
                "requestBody": {
                    "required": True,
                    "content": {
                        media: {"schema": {"type": "string", "format": "binary"}}
                        for media in ("application/zip", "application/octet-stream")
                    },
                },
                "responses": {
                    "200": _answer("updated", _ref("FunctionRecord")),
                    **ERRORS,
                },
            },
        }
    }


def _observability() -> dict[str, Any]:
    query = [
        {"name": "request_id", "in": "query", "required": False, "schema": {"type": "string"}},
        {
            "name": "after",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "pattern": "^[0-9]+(-[0-9]+)?$"},
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100},
        },
        {
            "name": "since",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "description": "10m, 24h, 7d or an ISO 8601 time"},
        },
        {"name": "filter", "in": "query", "required": False, "schema": {"type": "string"}},
    ]
    entry = {
        "type": "object",
        "required": ["id", "request_id", "time", "text"],
        "properties": {
            "id": {"type": "string"},
            "request_id": {"type": "string"},
            "time": {"type": "number"},
            "text": {"type": "string"},
        },
    }
    row = {
        "type": "object",
        "properties": {
            "function": {"type": "string"},
            "invocations": {"type": "integer"},
            "billed_duration_ms": {"type": "integer"},
            "gb_seconds": {"type": "number"},
        },
    }
    span = {"type": "string", "description": "24h, 7d, 30m or an ISO 8601 time"}
    return {
        "/functions/{name}/logs": {
            "get": {
                "summary": "A function's invocation output: the newest entries, oldest first",
                "operationId": "logs",
                "parameters": [NAME, *query],
                "responses": {
                    "200": _answer(
                        "entries",
                        {
                            "type": "object",
                            "required": ["function", "entries"],
                            "properties": {
                                "function": {"type": "string"},
                                "entries": {"type": "array", "items": entry},
                                "cursor": {
                                    "type": ["string", "null"],
                                    "description": "follow with ?after=<cursor>",
                                },
                            },
                        },
                    ),
                    **ERRORS,
                },
            }
        },
        "/usage": {
            "get": {
                "summary": "Invocations, billed duration and GB-seconds per function",
                "operationId": "usage",
                "parameters": [
                    {"name": "since", "in": "query", "required": False, "schema": span},
                    {"name": "until", "in": "query", "required": False, "schema": span},
                ],
                "responses": {
                    "200": _answer(
                        "usage by function",
                        {
                            "type": "object",
                            "required": ["since", "until", "functions", "total"],
                            "properties": {
                                "since": {"type": "string"},
                                "until": {"type": "string"},
                                "functions": {"type": "array", "items": row},
                                "total": row,
                            },
                        },
                    ),
                    **ERRORS,
                },
            }
        },
    }


def _schemas() -> dict[str, Any]:
    adapter: TypeAdapter[Any] = TypeAdapter(TriggerSpec)
    defs: dict[str, Any] = {}
    function = FunctionSpec.model_json_schema(ref_template=REF + "{model}")
    alias = AliasSpec.model_json_schema(ref_template=REF + "{model}")
    alias["properties"].pop("revision", None)
    alias_record = copy.deepcopy(alias)
    alias_record["properties"] = {
        "function": {"type": "string"},
        "name": {"type": "string"},
        **alias_record["properties"],
        "revision": {"type": "integer"},
    }
    alias_record["required"] = ["function", "name", "function_version", "revision"]
    trigger = adapter.json_schema(ref_template=REF + "{model}")
    invocation = Invocation.model_json_schema(ref_template=REF + "{model}")
    for schema in (function, trigger, invocation):
        defs.update(schema.pop("$defs", {}))
    kinds = {"webhook": "WebhookTrigger", "amqp": "AmqpTrigger", "schedule": "ScheduleTrigger"}
    records = {f"{kind}Record": _record(defs[kind]) for kind in kinds.values()}
    function_record = _function_record(function)
    function = _function_input(function)
    trigger_record = {
        "oneOf": [_ref(name) for name in records],
        "discriminator": {
            "propertyName": "type",
            "mapping": {tag: f"{REF}{kind}Record" for tag, kind in kinds.items()},
        },
    }
    return {
        **defs,
        **records,
        "Function": function,
        "FunctionRecord": function_record,
        "Trigger": trigger,
        "TriggerRecord": trigger_record,
        "Invocation": invocation,
        "Alias": alias,
        "AliasRecord": alias_record,
        "Version": {
            "type": "object",
            "required": ["function", "version"],
            "properties": {
                "function": {"type": "string"},
                "version": {"type": "string"},
                "description": {"type": "string"},
                "code_sha256": {"type": ["string", "null"]},
                "code_size": {"type": ["integer", "null"]},
                "runtime": {"type": ["string", "null"]},
                "handler": {"type": "string"},
                "published_at": {"type": ["number", "null"]},
                "revision": {"type": "integer"},
            },
        },
        "DeadLetter": {
            "type": "object",
            "required": ["id", "kind", "errors", "event", "size"],
            "properties": {
                "id": {"type": "string"},
                "kind": {"enum": ["sealed", "raw", "malformed"]},
                "malformed": {"type": ["string", "null"], "description": "what is wrong"},
                "size": {"type": "integer", "description": "bytes of the body"},
                "truncated": {"type": "boolean"},
                "preview": {"type": "string", "description": "the body's start, when truncated"},
                "event_id": {"type": ["string", "null"]},
                "trigger": {"type": ["string", "null"]},
                "attempts": {"type": ["integer", "null"]},
                "errors": {"type": "array", "items": {"type": "object"}},
                "function_version": {"type": ["string", "integer", "null"]},
                "accepted_at": {"type": ["number", "null"]},
                "reason": {},
                "event": {},
            },
        },
        "Accepted": {
            "type": "object",
            "required": ["invocation_id"],
            "properties": {"invocation_id": {"type": "string"}},
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string"},
                "field": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        },
        "FunctionError": {
            "type": "object",
            "required": ["errorType", "errorMessage"],
            "properties": {
                "errorType": {"type": "string"},
                "errorMessage": {"type": "string"},
                "stackTrace": {"type": "array", "items": {"type": "string"}},
                "requestId": {"type": "string"},
            },
        },
    }


@cache
def build() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "trigger-router admin API", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            **_crud("function", "Function", "functions"),
            **_crud("trigger", "Trigger", "triggers"),
            **_code(),
            **_invoke(),
            **_invocations(),
            **_dlq(),
            **_observability(),
            **_versions(),
        },
    }


async def document(request: web.Request) -> web.Response:
    return json_response(build())
