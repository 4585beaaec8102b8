"""Functions declared in code: `@router.function(...)` on a Lambda-style handler.

The decorator only attaches the validated spec to the handler (no global registry filled at
import time); `serve` finds the declarations in the modules named by `ROUTER_HANDLERS` and
registers them, leaving the registry's version alone when nothing changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

from router.registry import TRIGGER, Trigger
from router.specs import FunctionSpec

F = TypeVar("F", bound=Callable[..., Any])
ATTRIBUTE = "__router_function__"


@dataclass(frozen=True)
class Declared:
    name: str
    spec: FunctionSpec
    triggers: Mapping[str, Trigger] = field(default_factory=dict)


def function(
    name: str | None = None,
    *,
    triggers: Mapping[str, Mapping[str, Any]] | None = None,
    **spec: Any,
) -> Callable[[F], F]:
    """Declare a handler as a function, with optional triggers by name::

    @router.function("echo", timeout_s=10, triggers={"gh": {"type": "webhook"}})
    def handler(event, context): ...
    """

    def wrap(handler: F) -> F:
        function_name = name or handler.__name__
        reference = f"{handler.__module__}:{handler.__qualname__}"
        declared = Declared(
            function_name,
            FunctionSpec(handler=reference, **spec),
            {
                trigger: TRIGGER.validate_python({"function": function_name, **fields})
                for trigger, fields in (triggers or {}).items()
            },
        )
        setattr(handler, ATTRIBUTE, declared)
        return handler

    return wrap


def declarations(modules: Iterable[ModuleType]) -> list[Declared]:
    found: dict[str, Declared] = {}
    for module in modules:
        for value in vars(module).values():
            declared = getattr(value, ATTRIBUTE, None)
            if isinstance(declared, Declared):
                found[declared.name] = declared
    return [found[name] for name in sorted(found)]
