"""One typed settings object, built once from the environment (and `serve` flags) and passed in."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from router.sigv4 import Credentials

PREFIX = "ROUTER_"
MIN_TOKEN = 16  # a guessable token is no token


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    amqp_url: str = "amqp://guest:guest@localhost:5672/"
    redis_url: str = "redis://localhost:6379/0"
    host: str = "127.0.0.1"
    port: int = 8080
    namespace: str = "router"
    admin_token: str = ""
    handlers: tuple[str, ...] = ("handlers",)
    invocation_ttl_s: int = 86400
    log_max_entries: int = 10_000
    log_retention_s: int = 86400
    idempotency_window_s: int = 86400
    registry_poll_s: float = 0.5
    publish_timeout_s: float = 5.0
    max_body_bytes: int = 6 * 1024 * 1024
    max_event_bytes: int = 6 * 1024 * 1024  # AMQP messages from users' exchanges
    body_timeout_s: float = 30.0
    thread_workers: int = 32
    prefetch_multiplier: int = 2
    scale_interval_s: float = 0.25
    keep_warm_s: float = 60.0
    max_environments: int = 64
    shutdown_grace_s: float = 25.0
    workers: int = 1  # router processes on the port (`auto`: one per core; router.supervisor)
    code_dir: str = ""  # where this replica unpacks code bundles (see bundles.default_directory)
    token_file: str = ""  # where a generated admin token is kept (see tokens.default_file)
    header_timeout_s: float = 10.0
    keepalive_timeout_s: float = 75.0
    max_connections: int = 0  # 0: derived from the open-file limit (router.connections)
    log_level: str = "INFO"
    log_format: str = "auto"
    # Lambda API access keys, `AKID:SECRET[,AKID:SECRET...]`; never shown (repr, logs, errors).
    aws_credentials: str = field(default="", repr=False)
    extra: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read `ROUTER_*` variables; explicit overrides (CLI flags) win over the environment."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            raw = overrides.get(f.name)
            if raw is None:
                raw = env.get(PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _coerce(f, raw)
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError(f"ROUTER_PORT must be 1-65535, got {self.port}")
        if not self.namespace or not self.namespace.replace("-", "").replace("_", "").isalnum():
            raise SettingsError(
                f"ROUTER_NAMESPACE must be letters, digits, '-' or '_', got {self.namespace!r}"
            )
        if self.log_format not in ("auto", "json", "plain"):
            raise SettingsError(
                f"ROUTER_LOG_FORMAT must be auto, json or plain, got {self.log_format!r}"
            )
        if self.admin_token and len(self.admin_token) < MIN_TOKEN:
            raise SettingsError(
                f"ROUTER_ADMIN_TOKEN must be at least {MIN_TOKEN} characters (or unset, for "
                "one generated)"
            )
        self._check_bounds()
        self._check_urls()
        try:
            Credentials.parse(self.aws_credentials)
        except ValueError as exc:
            raise SettingsError(f"ROUTER_AWS_CREDENTIALS: {exc}") from None

    def _check_bounds(self) -> None:
        for name, least in (
            ("prefetch_multiplier", 1),
            ("max_event_bytes", 1),
            ("max_connections", 0),  # 0: derived from the open-file limit
            ("workers", 1),
        ):
            if getattr(self, name) < least:
                raise SettingsError(
                    f"ROUTER_{name.upper()} must be {least} or more, got {getattr(self, name)}"
                )
        for name in ("header_timeout_s", "keepalive_timeout_s", "body_timeout_s"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"ROUTER_{name.upper()} must be more than 0")

    def _check_urls(self) -> None:
        for name in ("amqp_url", "redis_url"):
            url = getattr(self, name)
            scheme = url.split("://", 1)[0]
            expected = ("amqp", "amqps") if name == "amqp_url" else ("redis", "rediss", "unix")
            if scheme not in expected or "://" not in url:
                raise SettingsError(f"ROUTER_{name.upper()} must be a {expected[0]}:// URL")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def parse_workers(raw: str) -> int:
    """`ROUTER_WORKERS` / `--workers`: a whole number of 1 or more, or `auto` (one per core)."""
    text = raw.strip().lower()
    if text == "auto":
        return os.cpu_count() or 1
    if not text.isdigit() or int(text) < 1:
        raise SettingsError(
            f"ROUTER_WORKERS (--workers) must be a whole number of 1 or more, or auto; got {raw!r}"
        )
    return int(text)


def _coerce(f: dataclasses.Field[Any], raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    if f.name == "workers":
        return parse_workers(raw)
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    variable = PREFIX + f.name.upper()
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise SettingsError(f"{variable} must be a number, got {raw!r}") from None
    if kind.startswith("tuple"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw
