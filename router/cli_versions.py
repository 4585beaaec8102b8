"""`trigger-router versions publish|list` and `aliases put|list|delete`: the admin API's
versions and aliases from the command line."""

from __future__ import annotations

import argparse
from typing import Any

from router.cli import CliError, _call, _client, _quoted, _show

VERSION_COLUMNS = ("version", "description", "code_sha256", "published_at")
ALIAS_COLUMNS = ("name", "function_version", "routing", "description")


def add_parsers(commands: Any) -> None:
    versions = commands.add_parser("versions", help="a function's published versions")
    actions = versions.add_subparsers(dest="action", required=True)
    publish = _client(actions.add_parser("publish", help="publish $LATEST as a new version"))
    publish.add_argument("function")
    publish.add_argument("--description")
    publish.set_defaults(run=_publish)
    listing = _client(actions.add_parser("list", help="list published versions"))
    listing.add_argument("function")
    listing.set_defaults(
        run=lambda a: _show(a, _call(a, "GET", f"{_path(a)}/versions"), VERSION_COLUMNS, "versions")
    )
    delete = _client(actions.add_parser("delete", help="delete a published version"))
    delete.add_argument("function")
    delete.add_argument("version")
    delete.set_defaults(
        run=lambda a: _show(a, _call(a, "DELETE", f"{_path(a)}/versions/{_quoted(a.version)}"))
    )
    _alias_parsers(commands)


def _alias_parsers(commands: Any) -> None:
    aliases = commands.add_parser("aliases", help="a function's aliases")
    actions = aliases.add_subparsers(dest="action", required=True)
    put = _client(actions.add_parser("put", help="create or move an alias"))
    put.add_argument("function")
    put.add_argument("alias")
    put.add_argument("--version", required=True, help="the version it names ($LATEST or N)")
    put.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="VERSION=WEIGHT",
        help="send that share (0-1) of invocations to another version, e.g. 3=0.1",
    )
    put.add_argument("--description")
    put.set_defaults(run=_put_alias)
    listing = _client(actions.add_parser("list", help="list aliases"))
    listing.add_argument("function")
    listing.set_defaults(
        run=lambda a: _show(a, _call(a, "GET", f"{_path(a)}/aliases"), ALIAS_COLUMNS, "aliases")
    )
    delete = _client(actions.add_parser("delete", help="delete an alias"))
    delete.add_argument("function")
    delete.add_argument("alias")
    delete.set_defaults(
        run=lambda a: _show(a, _call(a, "DELETE", f"{_path(a)}/aliases/{_quoted(a.alias)}"))
    )


def _publish(args: argparse.Namespace) -> int:
    body = {} if args.description is None else {"description": args.description}
    return _show(args, _call(args, "POST", f"{_path(args)}/versions", body))


def _put_alias(args: argparse.Namespace) -> int:
    routing: dict[str, float] = {}
    for item in args.weight:
        version, equals, weight = item.partition("=")
        try:
            routing[version] = float(weight)
        except ValueError:
            equals = ""
        if not equals:
            raise CliError(f"--weight takes VERSION=WEIGHT (e.g. 3=0.1), got {item!r}")
    body: dict[str, Any] = {"function_version": args.version, "routing": routing}
    if args.description is not None:
        body["description"] = args.description
    return _show(args, _call(args, "PUT", f"{_path(args)}/aliases/{_quoted(args.alias)}", body))


def _path(args: argparse.Namespace) -> str:
    return f"/functions/{_quoted(args.function)}"
