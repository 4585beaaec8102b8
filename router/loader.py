"""Finding handlers: `module:attr` strings to callables, and decorated handlers in modules.

Also imported by execution environments' processes, so it imports little at module level.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

Handler = Callable[[Any, Any], Any]


class HandlerError(Exception):
    """The handler cannot be loaded; `kind` is Lambda's error type for it."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def load(reference: str) -> Handler:
    module_name, _, attr = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
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

    module_name = reference.partition(":")[0]
    try:
        return importlib.util.find_spec(module_name) is not None
    except (ImportError, ValueError):
        return False


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
