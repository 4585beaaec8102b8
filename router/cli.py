"""`trigger-router`: run the service (`serve`) or drive a running one through the admin API."""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from router import logformat, tables, tokens
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
        "schedule",
        "timezone",
        "catch_up",
        "description",
    ),
}


FLAG_TYPES: dict[str, Callable[[str], Any]] = {"timeout_s": float, "memory_mb": int}
LIST_COLUMNS = {
    "functions": ("name", "runtime", "handler", "isolation", "version", "timeout_s", "memory_mb"),
    "triggers": (
        "name",
        "function",
        "type",
        "mode",
        "exchange",
        "routing_key",
        "schedule",
        "verify.scheme",
    ),
}
DLQ_COLUMNS = ("id", "kind", "attempts", "errors", "accepted_at")
USAGE_COLUMNS = ("function", "invocations", "billed_duration_ms", "gb_seconds")
FIELD_VALUE = ("field", "value")


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
    get.set_defaults(run=lambda a: _show(a, _call(a, "GET", f"/invocations/{_quoted(a.id)}")))
    _dlq_parser(commands)
    _observe_parsers(commands)
    _deploy_parser(commands)
    from router import cli_versions  # imports this module's client helpers

    cli_versions.add_parsers(commands)
    return top


def _deploy_parser(commands: Any) -> None:
    deploy = _client(
        commands.add_parser("deploy", help="upload code (a folder or a .zip) as a function")
    )
    deploy.add_argument("name")
    deploy.add_argument("path", help="a folder to zip, or a .zip file")
    deploy.add_argument("--runtime", help="python3.11, nodejs20.x, provided.al2023, ...")
    deploy.add_argument("--handler", help="e.g. lambda_function.lambda_handler, index.handler")
    deploy.add_argument("--timeout-s", type=float)
    deploy.add_argument("--memory-mb", type=int)
    deploy.add_argument("--description")
    deploy.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="a variable (repeat)"
    )
    deploy.set_defaults(run=run_deploy)


def run_deploy(args: argparse.Namespace) -> int:
    """Create the function, or update its code and the given fields; prints the new hash."""
    data = bundle(Path(args.path))
    spec = _existing(args) or {}
    for field in ("runtime", "handler", "timeout_s", "memory_mb", "description"):
        if getattr(args, field) is not None:
            spec[field] = getattr(args, field)
    for item in args.env:
        key, equals, value = item.partition("=")
        if not equals:
            raise CliError(f"--env takes KEY=VALUE, got {item!r}")
        spec.setdefault("env", {})[key] = value
    spec["code"] = {"zip": base64.b64encode(data).decode()}
    stored = _call(args, "PUT", f"/functions/{_quoted(args.name)}", spec)
    print(stored["code_sha256"])
    return 0


def _existing(args: argparse.Namespace) -> dict[str, Any] | None:
    try:
        current: dict[str, Any] = _call(args, "GET", f"/functions/{_quoted(args.name)}")
    except CliError as exc:
        if str(exc).startswith("HTTP 404"):
            return None
        raise
    return current


def bundle(path: Path) -> bytes:
    """A .zip file's bytes, or a folder zipped with its files' modes (a bootstrap stays
    executable) and relative symlinks."""
    if path.is_file():
        return path.read_bytes()
    if not path.is_dir():
        raise CliError(f"{path} is neither a folder nor a .zip file")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(path.rglob("*")):
            if file.is_dir() and not file.is_symlink():
                continue
            info = zipfile.ZipInfo(file.relative_to(path).as_posix())
            info.create_system = 3  # unix: the mode below is read back
            mode = file.lstat().st_mode
            info.external_attr = (mode & 0xFFFF) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            content = os.readlink(file).encode() if file.is_symlink() else file.read_bytes()
            archive.writestr(info, content)
    return buffer.getvalue()


def _observe_parsers(commands: Any) -> None:
    logs = _client(commands.add_parser("logs", help="a function's invocation logs, newest last"))
    logs.add_argument("function")
    logs.add_argument("--request-id", help="only this invocation")
    logs.add_argument("--since", help="only since: 10m, 24h, 7d or an ISO 8601 time")
    logs.add_argument("--filter", help="only entries containing this text")
    logs.add_argument("--limit", type=int, default=100, help="the newest N entries (100)")
    logs.add_argument("-f", "--follow", action="store_true", help="then keep printing new entries")
    logs.set_defaults(run=run_logs)
    usage = _client(commands.add_parser("usage", help="invocations, billed time, GB-seconds"))
    usage.add_argument("--since", default="24h", help="24h, 7d, 30m or an ISO 8601 time")
    usage.add_argument("--until", help="ISO 8601 time (default: now)")
    usage.set_defaults(run=run_usage)


def run_logs(args: argparse.Namespace) -> int:
    """The newest entries; with --follow, then whatever comes, polled twice a second."""
    path = f"/functions/{_quoted(args.function)}/logs"
    query = {"limit": str(args.limit)}
    for key, value in (("request_id", args.request_id), ("filter", args.filter)):
        if value:
            query[key] = value
    first = {**query, **({"since": args.since} if args.since else {})}
    try:
        page = _call(args, "GET", f"{path}?{urllib.parse.urlencode(first)}")
        while True:
            for entry in page["entries"]:
                print(entry["text"], end="", flush=True)
            if not args.follow:
                return 0
            cursor = page.get("cursor") or "0-0"
            time.sleep(0.5)
            follow = {**query, "limit": "1000", "after": cursor}
            page = _call(args, "GET", f"{path}?{urllib.parse.urlencode(follow)}")
    except KeyboardInterrupt:
        return 0


def _quoted(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def run_usage(args: argparse.Namespace) -> int:
    query = {"since": args.since, **({"until": args.until} if args.until else {})}
    usage = _call(args, "GET", f"/usage?{urllib.parse.urlencode(query)}")
    return _show(args, usage, USAGE_COLUMNS, "functions")


def _dlq_parser(commands: Any) -> None:
    dlq = commands.add_parser("dlq", help="a function's dead-letter queue")
    actions = dlq.add_subparsers(dest="action", required=True)
    listing = _client(actions.add_parser("list", help="list dead letters"))
    listing.add_argument("function")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--after", help="the page after this dead letter id (`next`)")
    listing.set_defaults(run=run_dlq_list)
    show = _client(actions.add_parser("show", help="one dead letter, with every attempt's error"))
    show.add_argument("function")
    show.add_argument("id")
    show.set_defaults(run=lambda a: _show(a, _call(a, "GET", f"{_dlq(a)}/{_quoted(a.id)}")))
    replay = _client(actions.add_parser("replay", help="run dead letters again"))
    replay.add_argument("function")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="the dead letter's id")
    which.add_argument("--all", action="store_true", help="replay every dead letter")
    replay.set_defaults(
        run=lambda a: _show(
            a, _call(a, "POST", f"{_dlq(a)}/replay", {"all": True} if a.all else {"id": a.id})
        )
    )
    purge = _client(actions.add_parser("purge", help="delete dead letters (all, or one by id)"))
    purge.add_argument("function")
    purge.add_argument("id", nargs="?")
    purge.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(run=run_dlq_purge)


def _dlq(args: argparse.Namespace) -> str:
    return f"/functions/{_quoted(args.function)}/dlq"


def run_dlq_list(args: argparse.Namespace) -> int:
    query = {"limit": str(args.limit), **({"after": args.after} if args.after else {})}
    page = _call(args, "GET", f"{_dlq(args)}?{urllib.parse.urlencode(query)}")
    return _show(args, page, DLQ_COLUMNS, "messages")


def run_dlq_purge(args: argparse.Namespace) -> int:
    """Asks first on a terminal: purged dead letters are gone."""
    what = f"dead letter {args.id}" if args.id else "every dead letter"
    if not args.yes and sys.stdin.isatty():
        answer = input(f"purge {what} of {args.function}? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            print("nothing purged", file=sys.stderr)
            return 1
    path = _dlq(args) + (f"/{_quoted(args.id)}" if args.id else "")
    return _show(args, _call(args, "DELETE", path))


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
        (
            "workers",
            "router processes on the port, or auto: one per core (ROUTER_WORKERS, default 1)",
        ),
    ):
        serve.add_argument(f"--{option}", help=help_text)
    serve.set_defaults(run=run_serve)


def _registry_parser(commands: Any, kind: str) -> None:
    singular = kind[:-1]
    group = commands.add_parser(kind, help=f"manage {kind}")
    actions = group.add_subparsers(dest="action", required=True)
    _client(actions.add_parser("list", help=f"list {kind}")).set_defaults(
        run=lambda a: _show(a, _call(a, "GET", f"/{kind}"), LIST_COLUMNS[kind], kind)
    )
    for action, method in (("get", "GET"), ("delete", "DELETE")):
        sub = _client(actions.add_parser(action, help=f"{action} a {singular}"))
        sub.add_argument("name")
        sub.set_defaults(run=_named(kind, method))
    put = _client(actions.add_parser("put", help=f"create or replace a {singular}"))
    put.add_argument("name")
    put.add_argument("spec", nargs="?", help=f"the {singular} spec as JSON")
    put.add_argument("-f", "--file", help="read the spec from a JSON file ('-' for stdin)")
    _spec_flags(put, kind)
    put.set_defaults(
        run=lambda a: _show(a, _call(a, "PUT", f"/{kind}/{_quoted(a.name)}", _spec(a, kind)))
    )
    if kind == "functions":
        update = _client(actions.add_parser("update", help="change some fields of a function"))
        update.add_argument("name")
        _spec_flags(update, kind)
        update.set_defaults(
            run=lambda a: _show(a, _call(a, "PATCH", f"/functions/{_quoted(a.name)}", _fields(a)))
        )


def _spec_flags(sub: argparse.ArgumentParser, kind: str) -> None:
    for field in SPEC_FLAGS[kind]:
        sub.add_argument(
            f"--{field.replace('_', '-')}", dest=field, type=FLAG_TYPES.get(field, str)
        )
    if kind == "triggers":
        sub.add_argument("--filter", help="an event pattern as JSON")
        sub.add_argument("--input", help="schedule: the event of every tick, as JSON")
        sub.add_argument("--verify-scheme", help="webhook: none, github, standard-webhooks, ...")
        sub.add_argument(
            "--secret", action="append", default=[], help="webhook: a verify secret (repeat)"
        )


def _named(kind: str, method: str) -> Callable[[argparse.Namespace], int]:
    return lambda a: _show(a, _call(a, method, f"/{kind}/{_quoted(a.name)}"))


def _client(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
    port = os.environ.get("ROUTER_PORT", "8080")
    sub.add_argument(
        "--url",
        default=os.environ.get("ROUTER_URL", f"http://127.0.0.1:{port}"),
        help="the router's base URL (ROUTER_URL)",
    )
    sub.add_argument(
        "--token",
        default=os.environ.get("ROUTER_ADMIN_TOKEN")
        or tokens.read(tokens.token_file(os.environ.get("ROUTER_TOKEN_FILE", ""))),
        help="admin token (ROUTER_ADMIN_TOKEN; else the one `serve` generated on this host)",
    )
    sub.add_argument(
        "-o",
        "--output",
        choices=("json", "table"),
        help="json (the default when piped) or table (the default for lists on a terminal)",
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
    return {**spec, **_fields(args)}


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The spec fields given as flags."""
    fields = {f: getattr(args, f) for f in SPEC_FLAGS[args.command] if getattr(args, f) is not None}
    if args.command == "triggers":
        if args.filter:
            fields["filter"] = _read_json(args.filter, None, "--filter")
        if args.input:
            fields["input"] = _read_json(args.input, None, "--input")
        if args.verify_scheme or args.secret:
            fields["verify"] = {"scheme": args.verify_scheme or "hmac", "secrets": args.secret}
    return fields


def run_invoke(args: argparse.Namespace) -> int:
    event = _read_json(args.event, args.file, "the event")
    path = f"/functions/{_quoted(args.name)}/invoke" + ("?mode=async" if args.is_async else "")
    answer = _call(args, "POST", path, {} if event is None else event)
    if args.is_async and args.output is None:
        print(answer["invocation_id"])  # as its help says: the id, to follow up with
        return 0
    return _show(args, answer)


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


def _show(
    args: argparse.Namespace,
    document: Any,
    columns: Sequence[str] | None = None,
    rows: str | None = None,
) -> int:
    """JSON, or a table of a listing's `rows` when asked for or printing to a terminal."""
    if document is None:
        return 0
    output = args.output or ("table" if columns and sys.stdout.isatty() else "json")
    if output == "table" and columns and rows:
        print(tables.render(document.get(rows) or [], columns))
    elif output == "table" and isinstance(document, dict):
        print(tables.render([{"field": k, "value": v} for k, v in document.items()], FIELD_VALUE))
    else:
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
        "workers": args.workers,
    }
    settings = Settings.from_env(**overrides)
    logformat.configure(settings.log_level, settings.log_format)
    if settings.workers > 1:
        from router import supervisor

        return supervisor.run(settings, overrides)
    from router import runner
    from router.supervised import Supervised

    _install_uvloop()
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # handler modules are found where the service runs
    return runner.run(settings, Supervised.from_env(os.environ))


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
