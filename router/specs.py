"""The registry's records: validated function and trigger specs.

Pydantic gives us the validation and the JSON Schema for the OpenAPI document; every error
names the field that caused it. Unknown fields are refused so a typo never silently means
"default".
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from router import filters, loader, schedules, signatures
from router.names import is_router_exchange

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
LATEST = "$LATEST"  # the editable version of a function; published versions are numbers
ALIAS_PATTERN = r"^(?![0-9]+$)[A-Za-z0-9_-]{1,128}$"  # Lambda's: not all digits
# What a trigger or an invoke may name: `fn`, `fn:$LATEST`, `fn:7` (a version), `fn:live` (an alias)
TARGET_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(:(\$LATEST|[0-9]{1,9}|[A-Za-z0-9_-]{1,128}))?$"
HANDLER_PATTERN = r"^\S{1,128}$"  # Lambda's; each runtime checks its own form below
_NAME = re.compile(NAME_PATTERN)
_TARGET = re.compile(TARGET_PATTERN)
RUNTIME_PATTERN = r"^(python3\.(9|1\d)|nodejs\d{2}\.x|provided(\.al2|\.al2023)?)$"

# Server-managed fields a client may send back unchanged (GET, edit, PUT) and that we ignore.
READ_ONLY_FIELDS = (
    "name",
    "version",
    "updated_at",
    "code_sha256",
    "code_size",
    "source_sha256",
)


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


def valid_target(target: str) -> bool:
    return bool(_TARGET.match(target))


def split_target(target: str) -> tuple[str, str | None]:
    """`fn:live` -> ("fn", "live"); `fn` -> ("fn", None). Function names have no colon."""
    function, _, qualifier = target.partition(":")
    return function, qualifier or None


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Concurrency(Spec):
    min: int = Field(0, ge=0, le=1000, description="environments kept warm; 0 scales to zero")
    max: int = Field(10, ge=1, le=1000, description="most invocations at once, across all replicas")
    per_replica: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="most at once in one replica (default: max); the only limit while Redis"
        " is away",
    )

    @model_validator(mode="after")
    def _min_not_above_max(self) -> Concurrency:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        if self.per_replica is not None and self.per_replica > self.max:
            raise ValueError(f"per_replica ({self.per_replica}) must not exceed max ({self.max})")
        return self

    @property
    def replica_cap(self) -> int:
        """The most one replica runs at once: its environments, and its prefetch's base."""
        return self.per_replica or self.max


class RetryPolicy(Spec):
    max_attempts: int = Field(3, ge=1, le=100, description="runs before dead-lettering")
    backoff_s: float = Field(1.0, ge=0, le=3600)
    backoff_max_s: float = Field(300.0, ge=0, le=86400)
    max_event_age_s: float = Field(21600.0, gt=0, le=7 * 86400)


class Code(Spec):
    """An uploaded bundle, by content: the zip itself lives once per hash in Redis."""

    sha256: str = Field(description="base64 of the zip's SHA-256, as Lambda's CodeSha256")
    size: int = Field(ge=1, description="the zip's size in bytes")


class FunctionSpec(Spec):
    # Validated in this order, each against those before it: code, runtime, handler, isolation.
    code: Code | None = Field(None, description='set with {"zip": "<base64>"} on PUT')
    runtime: str | None = Field(
        None,
        pattern=RUNTIME_PATTERN,
        validate_default=True,
        description="python3.x, nodejsNN.x or provided(.al2|.al2023); required with `code`",
    )
    handler: str = Field(
        pattern=HANDLER_PATTERN,
        description="`module:attr` or Lambda's `file.function` (`pkg/mod.fn`, `index.handler`)",
    )
    isolation: Literal["process", "thread", "inline"] = "process"
    timeout_s: float = Field(3.0, gt=0, le=900)
    memory_mb: int = Field(128, ge=32, le=10240)
    ephemeral_storage_mb: int = Field(
        512, ge=512, le=10240, description="the environment's private /tmp, as Lambda's"
    )
    concurrency: Concurrency = Concurrency()
    retry: RetryPolicy = RetryPolicy()
    env: dict[str, str] = Field(default_factory=dict)
    idempotent: bool = False
    description: str = Field("", max_length=1024)
    log_max_entries: int | None = Field(
        None, ge=1, le=1_000_000, description="invocations kept in the logs (else the router's)"
    )
    log_retention_s: int | None = Field(
        None, ge=60, le=90 * 86400, description="how long they are kept (else the router's)"
    )
    role: str = Field(
        "", max_length=2048, description="Lambda's execution role ARN: kept, not used"
    )
    version: int = Field(0, ge=0, description="bumped by the registry on every change")
    updated_at: float | None = Field(None, description="set by the registry: last change")
    source_sha256: str | None = Field(
        None, description="set by the router: the handler module's file, for code on its path"
    )

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for key in env:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"invalid environment variable name {key!r}")
        return env

    @field_validator("runtime")
    @classmethod
    def _runtime_fits(cls, runtime: str | None, info: ValidationInfo) -> str | None:
        code = info.data.get("code")
        if code is not None and runtime is None:
            raise ValueError("required with `code` (e.g. python3.11, nodejs20.x, provided.al2023)")
        if code is None and runtime_family(runtime) != "python":
            raise ValueError(f"{runtime!r} runs uploaded code: give `code` too")
        return runtime

    @field_validator("handler")
    @classmethod
    def _handler_fits(cls, handler: str, info: ValidationInfo) -> str:
        family = runtime_family(info.data.get("runtime"))
        if family == "python" and loader.split(handler) is None:
            raise ValueError(
                f"{handler!r} must be `module:attr` or `file.function` "
                "(e.g. lambda_function.lambda_handler)"
            )
        if family == "nodejs" and not NODE_HANDLER.match(handler):
            raise ValueError(f"{handler!r} must be `file.function` (e.g. index.handler)")
        return handler

    @field_validator("isolation")
    @classmethod
    def _isolation_fits(cls, isolation: str, info: ValidationInfo) -> str:
        if info.data.get("code") is not None and isolation != "process":
            raise ValueError("functions with `code` run in processes: isolation must be 'process'")
        return isolation

    @property
    def family(self) -> str:
        """How the function runs: `python`, `nodejs` or `provided`."""
        return runtime_family(self.runtime)

    def same_definition(self, other: FunctionSpec) -> bool:
        """Equal apart from what the registry manages (change counter and time)."""
        managed = {"version", "updated_at"}
        return self.model_dump(exclude=managed) == other.model_dump(exclude=managed)


NODE_HANDLER = re.compile(r"^[\w./-]*[\w-]\.[A-Za-z_$][\w$.]*$")


def runtime_family(runtime: str | None) -> str:
    if runtime is None or runtime.startswith("python"):
        return "python"
    return "nodejs" if runtime.startswith("nodejs") else "provided"


REDACTED = "<redacted>"


class Verify(Spec):
    """How a webhook's sender is verified. `none` must be chosen explicitly."""

    scheme: Literal["none", "standard-webhooks", "github", "stripe", "slack", "hmac", "aws-iam"]
    secrets: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="all accepted at once, for rotation; write-only",
    )
    tolerance_s: int = Field(300, ge=1, le=3600, description="timestamp tolerance, ± seconds")
    replay_window_s: int = Field(
        86400,
        ge=1,
        le=30 * 86400,
        description="how long delivery ids are remembered (schemes without a timestamp)",
    )
    header: str = Field("", max_length=100, description="hmac: the signature header")
    algorithm: Literal["sha256", "sha1", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = Field("", max_length=50, description='hmac: e.g. "sha256="')
    timestamp_header: str = Field("", max_length=100, description="hmac: signed timestamp")
    id_header: str = Field("", max_length=100, description="hmac: delivery id header")

    @model_validator(mode="after")
    def _consistent(self) -> Verify:
        if self.scheme in ("none", "aws-iam"):  # aws-iam: the keys of ROUTER_AWS_CREDENTIALS
            if self.secrets:
                raise ValueError(f"scheme {self.scheme!r} takes no secrets")
            return self
        if not self.secrets or any(not s for s in self.secrets):
            raise ValueError(f"scheme {self.scheme!r} needs at least one non-empty secret")
        if self.scheme == "hmac" and not self.header:
            raise ValueError("scheme 'hmac' needs 'header', the signature header's name")
        if self.scheme == "standard-webhooks":
            for secret in self.secrets:
                _standard_secret(secret)
        return self

    def check(self) -> signatures.Check:
        return signatures.Check(
            secrets=self.secrets,
            tolerance_s=self.tolerance_s,
            header=self.header,
            algorithm=self.algorithm,
            encoding=self.encoding,
            prefix=self.prefix,
            timestamp_header=self.timestamp_header,
            id_header=self.id_header,
        )

    def window_s(self) -> int:
        """How long a delivery id must be remembered to refuse its replays."""
        timed = self.scheme in signatures.TIMESTAMPED or bool(self.timestamp_header)
        return 2 * self.tolerance_s if timed else self.replay_window_s

    def redacted(self) -> dict[str, Any]:
        return {**self.model_dump(), "secrets": [REDACTED] * len(self.secrets)}


def _standard_secret(secret: str) -> None:
    if secret == REDACTED:
        return
    if not secret.startswith("whsec_"):
        raise ValueError("Standard Webhooks secrets start with 'whsec_'")
    try:
        signatures.standard_key(secret)
    except ValueError:
        raise ValueError("Standard Webhooks secrets are 'whsec_' then base64") from None


class RateLimit(Spec):
    per_second: float = Field(gt=0, le=100_000)
    burst: int = Field(ge=1, le=1_000_000)


class TriggerBase(Spec):
    function: str = Field(
        pattern=TARGET_PATTERN,
        description="`name`, `name:7` (a published version) or `name:alias`",
    )
    filter: dict[str, Any] | None = Field(
        None, description="an AWS event pattern matched against the event"
    )
    description: str = Field("", max_length=1024)

    @field_validator("filter")
    @classmethod
    def _filter_compiles(cls, pattern: dict[str, Any] | None) -> dict[str, Any] | None:
        if pattern is not None:
            filters.validate(pattern)
        return pattern


Method = Literal["*", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]


def _post_only() -> list[Method]:
    return ["POST"]


class WebhookTrigger(TriggerBase):
    type: Literal["webhook"]
    mode: Literal["sync", "async"] = "sync"
    methods: list[Method] = Field(
        default_factory=_post_only, min_length=1, description='HTTP methods; "*" for any'
    )
    verify: Verify = Field(description='required: {"scheme": "none"} to accept unsigned calls')
    max_body_bytes: int = Field(6 * 1024 * 1024, ge=1, le=64 * 1024 * 1024)
    rate_limit: RateLimit | None = None


class AmqpTrigger(TriggerBase):
    type: Literal["amqp"]
    exchange: str = Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.:-]+$")
    exchange_type: Literal["direct", "topic", "fanout", "headers"] = "topic"
    routing_key: str = Field("#", max_length=255)

    @field_validator("exchange")
    @classmethod
    def _not_the_routers(cls, exchange: str) -> str:
        if exchange == "amq.default":
            raise ValueError("the default exchange cannot be bound")
        if is_router_exchange(exchange):
            raise ValueError(
                f"{exchange!r} is named like one of the router's own exchanges (names ending in"
                " '.work' or '.dlx', or containing '.delay.'): binding it would read the router's"
                " internal traffic, of this namespace or another"
            )
        return exchange


class AliasSpec(Spec):
    """A name for a published version (or $LATEST), optionally splitting traffic with a second
    version by weight, as Lambda's aliases and their RoutingConfig do."""

    function_version: str = Field(pattern=r"^(\$LATEST|[0-9]{1,9})$")
    description: str = Field("", max_length=256)
    routing: dict[str, float] = Field(
        default_factory=dict,
        description='{"<version>": weight}: that share of invocations runs the other version',
    )
    revision: int = Field(0, ge=0, description="bumped by the registry on every change")

    @model_validator(mode="after")
    def _routing_fits(self) -> AliasSpec:
        if len(self.routing) > 1:
            raise ValueError("routing takes one additional version")
        for version, weight in self.routing.items():
            if not version.isdigit():
                raise ValueError(f"routing version {version!r} must be a published version")
            if not 0.0 <= weight <= 1.0:
                raise ValueError(f"routing weight {weight} must be between 0 and 1")
            if version == self.function_version:
                raise ValueError("the additional version must differ from function_version")
            if self.function_version == LATEST:
                raise ValueError("routing needs function_version to be a published version")
        return self

    def versions(self) -> list[str]:
        return [self.function_version, *self.routing]


class ScheduleTrigger(TriggerBase):
    type: Literal["schedule"]
    timezone: str = Field(
        "UTC", max_length=64, description="IANA time zone of `cron` and `at` (e.g. Europe/Berlin)"
    )
    schedule: str = Field(
        max_length=256,
        description="rate(5 minutes), cron(0 12 * * ? *) or at(2026-12-01T09:00:00);"
        " rate(N seconds) too",
    )
    input: dict[str, Any] | None = Field(
        None, description="the event each tick sends; else EventBridge's Scheduled Event"
    )
    catch_up: schedules.CatchUp = Field(
        "latest",
        description="ticks missed while no replica could fire them: run the latest once, or none",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, timezone: str) -> str:
        schedules.time_zone(timezone)
        return timezone

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, schedule: str, info: ValidationInfo) -> str:
        if "timezone" in info.data:  # else the time zone's own error is the one to read
            schedules.compiled(schedule, info.data["timezone"])
        return schedule

    @field_validator("filter")
    @classmethod
    def _no_filter(cls, pattern: dict[str, Any] | None) -> None:
        if pattern is not None:
            raise ValueError("schedule triggers take no filter: every tick fires")
        return None

    def timing(self) -> tuple[str, str]:
        """What decides when ticks fall: a change restarts the schedule's count."""
        return (self.schedule, self.timezone)


TriggerSpec = Annotated[WebhookTrigger | AmqpTrigger | ScheduleTrigger, Field(discriminator="type")]


def strip_read_only(payload: Any) -> Any:
    """Drop server-managed fields from a client payload, so GET output can be PUT back."""
    if isinstance(payload, dict):
        return {k: v for k, v in payload.items() if k not in READ_ONLY_FIELDS}
    return payload
