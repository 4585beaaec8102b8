"""Finding handlers: `module:attr` strings to callables, and decorated handlers in modules.

Also imported by execution environments' processes, so it imports little at module level.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

Handler = Callable[[Any, Any], Any]
_IDENTIFIERS = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def split(handler: str) -> tuple[str, str] | None:
    """(module, attribute) of a Python handler string, or None if it is not one.

    `module:attr` as before; Lambda's `file.function`, where the file part may be a path
    (`pkg/mod.fn`) or dotted (`pkg.mod.fn`): the last dot separates the function.
    """
    if ":" in handler:
        module, _, attr = handler.partition(":")
    else:
        path, _, attr = handler.rpartition(".")
        module = path.replace("/", ".")
    if not _IDENTIFIERS.match(module) or not _IDENTIFIERS.match(attr):
        return None
    return module, attr


class HandlerError(Exception):
    """The handler cannot be loaded; `kind` is Lambda's error type for it."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def load(reference: str, *, fresh: bool = False) -> Handler:
    """The handler a reference names; `fresh` re-executes its module if it was imported."""
    parts = split(reference)
    if parts is None:
        raise HandlerError("Runtime.MalformedHandlerName", f"Bad handler {reference!r}")
    module_name, attr = parts
    try:
        module = importlib.import_module(module_name)
        if fresh:
            module = importlib.reload(module)
    except Exception as exc:
        raise HandlerError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise HandlerError(
            "Runtime.HandlerNotFound", f"Handler '{attr}' missing on module '{module_name}'"
        )
    handler: Handler = target
    return handler


def module_exists(reference: str) -> bool:
    """Whether the handler's module can be found, without running its code."""
    import importlib.util

    parts = split(reference)
    if parts is None:
        return False
    module_name = parts[0]
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


def source_sha256(reference: str) -> str | None:
    """Lambda's CodeSha256 of the handler's module file on the router's path (base64), so a
    changed file makes a new version when the function is put again."""
    import base64
    import hashlib
    import importlib.util

    parts = split(reference)
    try:
        found = importlib.util.find_spec(parts[0]) if parts else None
    except (ImportError, ValueError):
        return None
    if found is None or not found.origin or not found.has_location:
        return None
    try:
        with open(found.origin, "rb") as source:
            return base64.b64encode(hashlib.sha256(source.read()).digest()).decode()
    except OSError:
        return None


CO_COROUTINE = 0x80  # inspect.CO_COROUTINE; inspect itself is slow to import in a cold start


def is_async(handler: Handler) -> bool:
    code = getattr(handler, "__code__", None)
    return code is not None and bool(code.co_flags & CO_COROUTINE)


def walk_modules(names: tuple[str, ...]) -> Iterator[ModuleType]:
    """Import the named modules and, for packages, every module inside them."""
    import pkgutil

    for name in names:
        module = importlib.import_module(name)
        yield module
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), f"{name}."):
            if not info.name.endswith(".__main__"):  # a package's script, not its code
                yield importlib.import_module(info.name)
