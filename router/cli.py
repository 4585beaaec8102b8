"""`trigger-router`: run the service (`serve`) or drive a running one through the admin API."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from router import logformat
from router.settings import Settings, SettingsError

SPEC_FLAGS = {
    "functions": ("handler", "isolation", "timeout_s", "memory_mb", "description"),
    "triggers": (
        "function",
        "type",
        "mode",
        "exchange",
        "exchange_type",
        "routing_key",
        "description",
    ),
}


class CliError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        result: int = args.run(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return result


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="trigger-router", description="A self-hosted, AWS Lambda-style function platform."
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_parser(commands)
    for kind in ("functions", "triggers"):
        _registry_parser(commands, kind)
    invoke = _client(commands.add_parser("invoke", help="invoke a function (Lambda's Invoke)"))
    invoke.add_argument("name")
    invoke.add_argument("event", nargs="?", help="the event as JSON (default {})")
    invoke.add_argument("-f", "--file", help="read the event from a JSON file ('-' for stdin)")
    invoke.add_argument(
        "--async", dest="is_async", action="store_true", help="queue it and print the invocation id"
    )
    invoke.set_defaults(run=run_invoke)
    invocations = commands.add_parser("invocations", help="async invocation records")
    inv_commands = invocations.add_subparsers(dest="action", required=True)
    get = _client(inv_commands.add_parser("get", help="show one invocation"))
    get.add_argument("id")
    get.set_defaults(run=lambda a: _print(_call(a, "GET", f"/invocations/{a.id}")))
    _dlq_parser(commands)
    _observe_parsers(commands)
    return top


def _observe_parsers(commands: Any) -> None:
    logs = _client(commands.add_parser("logs", help="a function's invocation output"))
    logs.add_argument("function")
    logs.add_argument("--request-id", help="only this invocation")
    logs.add_argument("--limit", type=int, default=100, help="entries to show (default 100)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    logs.set_defaults(run=run_logs)
    usage = _client(commands.add_parser("usage", help="invocations, billed time, GB-seconds"))
    usage.add_argument("--since", default="24h", help="24h, 7d, 30m or an ISO 8601 time")
    usage.add_argument("--until", help="ISO 8601 time (default: now)")
    usage.set_defaults(run=run_usage)


def run_logs(args: argparse.Namespace) -> int:
    query = {"limit": str(args.limit)}
    if args.request_id:
        query["request_id"] = args.request_id
    try:
        while True:
            path = f"/functions/{args.function}/logs?{urllib.parse.urlencode(query)}"
            for entry in _call(args, "GET", path)["entries"]:
                print(entry["text"], end="", flush=True)
                query["after"] = entry["id"]
            if not args.follow:
                return 0
            time.sleep(1)
    except KeyboardInterrupt:
        return 0


def run_usage(args: argparse.Namespace) -> int:
    query = {"since": args.since, **({"until": args.until} if args.until else {})}
    return _print(_call(args, "GET", f"/usage?{urllib.parse.urlencode(query)}"))


def _dlq_parser(commands: Any) -> None:
    dlq = commands.add_parser("dlq", help="a function's dead-letter queue")
    actions = dlq.add_subparsers(dest="action", required=True)
    listing = _client(actions.add_parser("list", help="list dead letters"))
    listing.add_argument("function")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(
        run=lambda a: _print(_call(a, "GET", f"/functions/{a.function}/dlq?limit={a.limit}"))
    )
    show = _client(actions.add_parser("show", help="one dead letter, with every attempt's error"))
    show.add_argument("function")
    show.add_argument("id")
    show.set_defaults(run=lambda a: _print(_call(a, "GET", f"/functions/{a.function}/dlq/{a.id}")))
    replay = _client(actions.add_parser("replay", help="run dead letters again"))
    replay.add_argument("function")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="the dead letter's id")
    which.add_argument("--all", action="store_true", help="replay every dead letter")
    replay.set_defaults(
        run=lambda a: _print(
            _call(
                a,
                "POST",
                f"/functions/{a.function}/dlq/replay",
                {"all": True} if a.all else {"id": a.id},
            )
        )
    )
    purge = _client(actions.add_parser("purge", help="delete dead letters (all, or one by id)"))
    purge.add_argument("function")
    purge.add_argument("id", nargs="?")
    purge.set_defaults(
        run=lambda a: _print(
            _call(a, "DELETE", f"/functions/{a.function}/dlq" + (f"/{a.id}" if a.id else ""))
        )
    )


def _serve_parser(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the service")
    defaults = Settings()
    for option, help_text in (
        ("host", f"address to listen on (ROUTER_HOST, default {defaults.host})"),
        ("port", f"port (ROUTER_PORT, default {defaults.port})"),
        ("amqp-url", "RabbitMQ URL (ROUTER_AMQP_URL)"),
        ("redis-url", "Redis URL (ROUTER_REDIS_URL)"),
        (
            "namespace",
            f"prefix of Redis keys and AMQP names (ROUTER_NAMESPACE, default {defaults.namespace})",
        ),
        ("admin-token", "bearer token for /api/v1 (ROUTER_ADMIN_TOKEN)"),
        ("handlers", "comma-separated modules with decorated handlers (ROUTER_HANDLERS)"),
        ("log-level", "DEBUG, INFO, WARNING or ERROR (ROUTER_LOG_LEVEL)"),
        ("log-format", "json, plain, or auto: plain on a terminal (ROUTER_LOG_FORMAT)"),
    ):
        serve.add_argument(f"--{option}", help=help_text)
    serve.set_defaults(run=run_serve)


def _registry_parser(commands: Any, kind: str) -> None:
    singular = kind[:-1]
    group = commands.add_parser(kind, help=f"manage {kind}")
    actions = group.add_subparsers(dest="action", required=True)
    _client(actions.add_parser("list", help=f"list {kind}")).set_defaults(
        run=lambda a: _print(_call(a, "GET", f"/{kind}"))
    )
    for action, method in (("get", "GET"), ("delete", "DELETE")):
        sub = _client(actions.add_parser(action, help=f"{action} a {singular}"))
        sub.add_argument("name")
        sub.set_defaults(run=_named(kind, method))
    put = _client(actions.add_parser("put", help=f"create or replace a {singular}"))
    put.add_argument("name")
    put.add_argument("spec", nargs="?", help=f"the {singular} spec as JSON")
    put.add_argument("-f", "--file", help="read the spec from a JSON file ('-' for stdin)")
    for field in SPEC_FLAGS[kind]:
        put.add_argument(f"--{field.replace('_', '-')}", dest=field)
    if kind == "triggers":
        put.add_argument("--filter", help="an event pattern as JSON")
    put.set_defaults(run=lambda a: _print(_call(a, "PUT", f"/{kind}/{a.name}", _spec(a, kind))))


def _named(kind: str, method: str) -> Callable[[argparse.Namespace], int]:
    return lambda a: _print(_call(a, method, f"/{kind}/{a.name}"))


def _client(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
    port = os.environ.get("ROUTER_PORT", "8080")
    sub.add_argument(
        "--url",
        default=os.environ.get("ROUTER_URL", f"http://127.0.0.1:{port}"),
        help="the router's base URL (ROUTER_URL)",
    )
    sub.add_argument(
        "--token",
        default=os.environ.get("ROUTER_ADMIN_TOKEN", ""),
        help="admin token (ROUTER_ADMIN_TOKEN)",
    )
    return sub


def _read_json(text: str | None, file: str | None, what: str) -> Any:
    if file:
        text = sys.stdin.read() if file == "-" else _read_file(file)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{what} is not valid JSON: {exc}") from None


def _read_file(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def _spec(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    spec = _read_json(args.spec, args.file, "the spec") or {}
    if not isinstance(spec, dict):
        raise CliError("the spec must be a JSON object")
    for field in SPEC_FLAGS[kind]:
        value = getattr(args, field)
        if value is not None:
            spec[field] = value
    if kind == "triggers" and args.filter:
        spec["filter"] = _read_json(args.filter, None, "--filter")
    return spec


def run_invoke(args: argparse.Namespace) -> int:
    event = _read_json(args.event, args.file, "the event")
    path = f"/functions/{args.name}/invoke" + ("?mode=async" if args.is_async else "")
    return _print(_call(args, "POST", path, {} if event is None else event))


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    url = args.url.rstrip("/") + "/api/v1" + path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if args.token:
        request.add_header("Authorization", f"Bearer {args.token}")
    try:
        with urllib.request.urlopen(request, timeout=960) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise CliError(f"HTTP {exc.code}: {_error_text(exc.read())}") from None
    except urllib.error.URLError as exc:
        raise CliError(f"cannot reach the router at {args.url}: {exc.reason}") from None
    return json.loads(raw) if raw else None


def _error_text(raw: bytes) -> str:
    try:
        document = json.loads(raw)
    except json.JSONDecodeError:
        return raw.decode(errors="replace")
    return json.dumps(document)


def _print(document: Any) -> int:
    if document is not None:
        print(json.dumps(document, indent=2))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    overrides = {
        "host": args.host,
        "port": args.port,
        "amqp_url": args.amqp_url,
        "redis_url": args.redis_url,
        "namespace": args.namespace,
        "admin_token": args.admin_token,
        "handlers": args.handlers,
        "log_level": args.log_level,
        "log_format": args.log_format,
    }
    settings = Settings.from_env(**overrides)
    logformat.configure(settings.log_level, settings.log_format)
    from router import runner

    _install_uvloop()
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # handler modules are found where the service runs
    return runner.run(settings)


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
