"""Lambda's shapes from the registry's records: FunctionConfiguration, AliasConfiguration, ARNs,
function names as the API takes them, and paging."""

from __future__ import annotations

import base64
import math
import platform
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from router import runtimes
from router.context import ARN_PREFIX
from router.lambdaapi.errors import invalid
from router.specs import LATEST, NAME_PATTERN, AliasSpec, FunctionSpec

T = TypeVar("T")
MAX_ITEMS = 50  # Lambda's page size when MaxItems is not given
_NAME = re.compile(NAME_PATTERN)
# `name`, `name:qualifier`, `123456789012:function:name[:q]` or the whole ARN (any region and
# account: the router is one of each).
FUNCTION_NAME = re.compile(
    r"^(?:arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:|\d{12}:function:)?"
    r"(?P<name>[^:]+)(?::(?P<qualifier>\$LATEST|[A-Za-z0-9_-]{1,128}))?$"
)
ARCHITECTURE = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
REVISIONS = uuid.UUID("7a1c0a4e-1f1b-4f55-9a38-2f5f8d1f0c31")  # the namespace of RevisionIds


def function_name(value: str, qualifier: str | None = None) -> tuple[str, str | None]:
    """The function and qualifier a `FunctionName` (and `Qualifier`) name."""
    match = FUNCTION_NAME.match(value)
    if match is None or not _NAME.match(match["name"]):
        raise invalid(
            f"invalid FunctionName {value!r}: a name (1-64 letters, digits, '.', '_', '-'), "
            "optionally with :version or :alias, or a function ARN"
        )
    named = match["qualifier"]
    if qualifier is not None and named is not None and named != qualifier:
        raise invalid(
            "The derived qualifier from the function name does not match the specified qualifier."
        )
    return match["name"], qualifier or named


def arn(function: str, qualifier: str | None = None) -> str:
    return ARN_PREFIX + function + (f":{qualifier}" if qualifier else "")


def timestamp(epoch: float | None) -> str:
    """Lambda's LastModified: `2024-01-31T12:00:00.000+0000`."""
    moment = datetime.fromtimestamp(epoch or 0, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def revision_id(function: str, version: str, spec: FunctionSpec) -> str:
    """A RevisionId naming one state of a function version (its change counter)."""
    return str(uuid.uuid5(REVISIONS, f"{function}:{version}:{spec.version}:{spec.updated_at}"))


def alias_revision_id(function: str, alias: str, spec: AliasSpec) -> str:
    return str(uuid.uuid5(REVISIONS, f"{function}@{alias}:{spec.revision}"))


def configuration(function: str, version: str, spec: FunctionSpec) -> dict[str, Any]:
    """FunctionConfiguration: always Active and Successful (a write is done when answered),
    so the SDK waiters function_active_v2 and function_updated_v2 pass at once."""
    conf: dict[str, Any] = {
        "FunctionName": function,
        "FunctionArn": arn(function, None if version == LATEST else version),
        "Runtime": spec.runtime or runtimes.own_python(),
        "Handler": spec.handler,
        "CodeSize": spec.code.size if spec.code else 0,
        "Description": spec.description,
        "Timeout": math.ceil(spec.timeout_s),
        "MemorySize": spec.memory_mb,
        "LastModified": timestamp(spec.updated_at),
        "CodeSha256": spec.code.sha256 if spec.code else (spec.source_sha256 or ""),
        "Version": version,
        "RevisionId": revision_id(function, version, spec),
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": [ARCHITECTURE],
        "EphemeralStorage": {"Size": spec.ephemeral_storage_mb},
        "TracingConfig": {"Mode": "PassThrough"},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{function}"},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
    }
    if spec.role:
        conf["Role"] = spec.role
    if spec.env:
        conf["Environment"] = {"Variables": dict(spec.env)}
    return conf


def alias_configuration(function: str, alias: str, spec: AliasSpec) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "AliasArn": arn(function, alias),
        "Name": alias,
        "FunctionVersion": spec.function_version,
        "Description": spec.description,
        "RevisionId": alias_revision_id(function, alias, spec),
    }
    if spec.routing:
        conf["RoutingConfig"] = {"AdditionalVersionWeights": dict(spec.routing)}
    return conf


def page(
    items: Sequence[T], marker: str | None, max_items: str | None
) -> tuple[list[T], str | None]:
    """One page of `items` after the marker, and the next page's marker if there is one.
    Markers are opaque to clients."""
    size = _max_items(max_items)
    start = _position(marker) if marker else 0
    if start > len(items):
        raise invalid(f"invalid Marker {marker!r}")
    following = start + size
    return list(items[start:following]), (_marker(following) if following < len(items) else None)


def _max_items(raw: str | None) -> int:
    if raw is None:
        return MAX_ITEMS
    if not raw.isdigit() or not 1 <= int(raw) <= 10_000:
        raise invalid(f"MaxItems must be 1 to 10000, got {raw!r}")
    return int(raw)


def _marker(position: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"after": position})).decode()


def _position(marker: str) -> int:
    try:
        position = orjson.loads(base64.urlsafe_b64decode(marker.encode()))["after"]
    except (ValueError, TypeError, KeyError):
        raise invalid(f"invalid Marker {marker!r}") from None
    if not isinstance(position, int) or position < 0:
        raise invalid(f"invalid Marker {marker!r}")
    return position
