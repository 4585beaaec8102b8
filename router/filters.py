"""Event patterns with the semantics of AWS Lambda event filtering / Amazon EventBridge.

A pattern is a JSON object that mirrors the event. Each key names a field of the event; its
value is either an object (descend into the field) or a list of matchers (the field matches
when any matcher does). Every key of an object must match; event fields the pattern does not
name are ignored. Like AWS, a list in the event is matched element by element: the field
matches when any element does.

Matchers: an exact JSON scalar, ``prefix``, ``suffix``, ``equals-ignore-case``, ``wildcard``,
``anything-but``, ``numeric``, ``exists`` and ``cidr``; ``{"$or": [pattern, ...]}`` works at any
object level.

`validate` is called once when a trigger is registered and `matches` once per event, so
`matches` trusts its pattern and does no checking of its own.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

__all__ = ["MAX_DEPTH", "FilterError", "matches", "validate"]

MAX_DEPTH: Final = 32
OR_KEY: Final = "$or"
IGNORE_CASE: Final = "equals-ignore-case"

_EMPTY: Final[Mapping[str, Any]] = {}

# Separate lower and upper bounds so that a two-comparison range must be a real interval:
# AWS refuses [">", 1, ">", 2], and so do we.
_LOWER: Final = {">": operator.gt, ">=": operator.ge}
_UPPER: Final = {"<": operator.lt, "<=": operator.le}
_COMPARISONS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "=": operator.eq,
    **_LOWER,
    **_UPPER,
}


class FilterError(ValueError):
    """A pattern that is not valid; the message names the path of the bad part."""


class _Missing:
    """The value of a field the event does not have (distinct from a JSON null)."""


_MISSING: Final = _Missing()


# --- validation ------------------------------------------------------------------------------


def validate(pattern: dict[str, Any]) -> None:
    """Raise FilterError, naming the dotted path of the problem, if `pattern` is not valid."""
    # The root may be empty: `{}` is the pattern that matches every event.
    if isinstance(pattern, dict) and not pattern:
        return
    _validate_object(pattern, "", 1)


def _validate_object(pattern: object, path: str, depth: int) -> None:
    if not isinstance(pattern, dict):
        raise _error(path, f"a pattern must be an object, got {_show(pattern)}")
    if depth > MAX_DEPTH:
        raise _error(path, f"patterns may nest at most {MAX_DEPTH} objects deep")
    if not pattern:
        raise _error(path, "an empty object is not a pattern; leave the field out instead")
    for key, rule in pattern.items():
        if not isinstance(key, str):
            raise _error(path, f"field names must be strings, got {_show(key)}")
        _validate_rule(rule, key, _child(path, key), depth)


def _validate_rule(rule: object, key: str, path: str, depth: int) -> None:
    if key == OR_KEY:
        _validate_or(rule, path, depth)
    elif isinstance(rule, dict):
        _validate_object(rule, path, depth + 1)
    elif isinstance(rule, list):
        _validate_matchers(rule, path)
    else:
        # AWS requires leaf values to be arrays; a bare "eu" is a common slip for ["eu"].
        raise _error(path, f"must be a list of matchers, got {_show(rule)}")


def _validate_or(rule: object, path: str, depth: int) -> None:
    if not isinstance(rule, list) or not rule:
        raise _error(path, f"$or needs a non-empty list of patterns, got {_show(rule)}")
    for index, alternative in enumerate(rule):
        # Each alternative counts as a level so that $or cannot dodge the depth limit.
        _validate_object(alternative, f"{path}[{index}]", depth + 1)


def _validate_matchers(rules: list[Any], path: str) -> None:
    if not rules:
        raise _error(path, "an empty list of matchers never matches; give at least one")
    for rule in rules:
        _validate_matcher(rule, path)


def _validate_matcher(rule: object, path: str) -> None:
    if rule is None or isinstance(rule, str | bool):
        return
    if isinstance(rule, int | float):
        _require_finite(rule, path, "exact value")
    elif isinstance(rule, dict):
        _validate_operator(rule, path)
    elif isinstance(rule, list):
        raise _error(path, f"a matcher cannot be a list, got {_show(rule)}")
    else:
        raise _error(path, f"a matcher must be a JSON value, got {_show(rule)}")


def _validate_operator(rule: dict[Any, Any], path: str) -> None:
    if len(rule) != 1:
        raise _error(path, f"a matcher object needs exactly one key, got {_show(rule)}")
    ((name, operand),) = rule.items()
    check = _OPERAND_CHECKS.get(name)
    if check is None:
        raise _error(path, f"unknown matcher {_show(name)}")
    check(operand, path)


def _check_string(name: str) -> Callable[[object, str], None]:
    def check(operand: object, path: str) -> None:
        if not isinstance(operand, str):
            raise _error(path, f"{name} needs a string, got {_show(operand)}")

    return check


def _check_affix(name: str) -> Callable[[object, str], None]:
    def check(operand: object, path: str) -> None:
        if isinstance(operand, str) or _is_ignore_case_string(operand):
            return
        raise _error(
            path, f'{name} needs a string or {{"{IGNORE_CASE}": string}}, got {_show(operand)}'
        )

    return check


def _is_ignore_case_string(operand: object) -> bool:
    return (
        isinstance(operand, dict)
        and len(operand) == 1
        and isinstance(operand.get(IGNORE_CASE), str)
    )


def _check_wildcard(operand: object, path: str) -> None:
    if not isinstance(operand, str):
        raise _error(path, f"wildcard needs a string, got {_show(operand)}")
    problem = _wildcard_problem(operand)
    if problem:
        raise _error(path, f"wildcard {_show(operand)}: {problem}")


def _wildcard_problem(text: str) -> str:
    escaped = False
    previous_star = False
    for char in text:
        if escaped:
            if char not in "*\\":
                return f"only * and \\ may follow a backslash, not {char!r}"
            escaped, previous_star = False, False
        elif char == "\\":
            escaped = True
        elif char == "*" and previous_star:
            # AWS refuses "**": it means nothing more than "*".
            return "consecutive * are not allowed"
        else:
            previous_star = char == "*"
    return "a trailing backslash escapes nothing" if escaped else ""


def _check_cidr(operand: object, path: str) -> None:
    if not isinstance(operand, str):
        raise _error(path, f"cidr needs a string, got {_show(operand)}")
    try:
        ipaddress.ip_network(operand, strict=False)
    except ValueError:
        message = f"cidr needs an IP network like 10.0.0.0/24, got {_show(operand)}"
        raise _error(path, message) from None


def _check_exists(operand: object, path: str) -> None:
    if not isinstance(operand, bool):
        raise _error(path, f"exists needs true or false, got {_show(operand)}")


def _check_numeric(operand: object, path: str) -> None:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise _error(
            path,
            f"numeric needs [op, number] or [op, number, op, number], got {_show(operand)}",
        )
    ops = operand[0::2]
    for op in ops:
        if not isinstance(op, str) or op not in _COMPARISONS:
            raise _error(path, f"numeric has unknown operator {_show(op)}; use = < <= > >=")
    for bound in operand[1::2]:
        _require_finite(bound, path, "numeric")
    if len(ops) == 2 and not _is_interval(ops[0], ops[1]):
        raise _error(path, "numeric with two comparisons needs one of > >= and one of < <=")


def _is_interval(first: str, second: str) -> bool:
    return (first in _LOWER and second in _UPPER) or (first in _UPPER and second in _LOWER)


def _check_anything_but(operand: object, path: str) -> None:
    if isinstance(operand, dict):
        _check_anything_but_operator(operand, path)
    elif isinstance(operand, list):
        _check_anything_but_list(operand, path)
    elif not (isinstance(operand, str) or _is_number(operand)):
        raise _error(
            path,
            "anything-but needs a string, a number, a list of them, or an object with "
            f"prefix, suffix, {IGNORE_CASE} or wildcard, got {_show(operand)}",
        )
    elif not isinstance(operand, str):
        _require_finite(operand, path, "anything-but")


def _check_anything_but_list(operand: list[Any], path: str) -> None:
    all_strings = all(isinstance(item, str) for item in operand)
    all_numbers = all(_is_number(item) for item in operand)
    if not operand or not (all_strings or all_numbers):
        raise _error(
            path,
            "anything-but needs a non-empty list of only strings or only numbers, "
            f"got {_show(operand)}",
        )
    if all_numbers:
        for item in operand:
            _require_finite(item, path, "anything-but")


def _check_anything_but_operator(operand: dict[Any, Any], path: str) -> None:
    if len(operand) != 1 or next(iter(operand)) not in _ANYTHING_BUT_TESTS:
        raise _error(
            path,
            f"anything-but takes one of prefix, suffix, {IGNORE_CASE}, wildcard, "
            f"got {_show(operand)}",
        )
    ((name, inner),) = operand.items()
    if name == IGNORE_CASE and isinstance(inner, list) and inner:
        for item in inner:
            _check_string(f"anything-but {name}")(item, path)
    elif name == "wildcard":
        _check_wildcard(inner, path)
    else:
        _check_string(f"anything-but {name}")(inner, path)


def _require_finite(value: object, path: str, what: str) -> None:
    if not _is_number(value):
        raise _error(path, f"{what} needs a number, got {_show(value)}")
    # Only floats can be infinite or NaN, and math.isfinite overflows on huge ints.
    if isinstance(value, float) and not math.isfinite(value):
        raise _error(path, f"{what} needs a finite number, got {_show(value)}")


_OPERAND_CHECKS: Final[dict[str, Callable[[Any, str], None]]] = {
    "prefix": _check_affix("prefix"),
    "suffix": _check_affix("suffix"),
    IGNORE_CASE: _check_string(IGNORE_CASE),
    "wildcard": _check_wildcard,
    "anything-but": _check_anything_but,
    "numeric": _check_numeric,
    "exists": _check_exists,
    "cidr": _check_cidr,
}


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _error(path: str, message: str) -> FilterError:
    return FilterError(f"{path or 'pattern'}: {message}")


def _show(value: object) -> str:
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- matching --------------------------------------------------------------------------------


def matches(pattern: dict[str, Any], event: Mapping[str, Any]) -> bool:
    """True if `event` satisfies `pattern`, which must already have passed `validate`."""
    return _match_object(pattern, event)


def _match_object(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    for key, rule in pattern.items():
        if key == OR_KEY:
            if not any(_match_object(alternative, event) for alternative in rule):
                return False
        elif isinstance(rule, dict):
            if not any(_match_object(rule, inner) for inner in _objects(event, key)):
                return False
        elif not _match_leaf(rule, _leaves(event.get(key, _MISSING))):
            return False
    return True


def _objects(event: Mapping[str, Any], key: str) -> Iterator[Mapping[str, Any]]:
    """The objects a nested pattern is tried against: any one of them may match.

    A missing field, or one holding no object, still yields an empty object, so that
    `{"a": {"b": [{"exists": false}]}}` matches an event without `a`, as it does on AWS.
    """
    value = event.get(key, _MISSING)
    if isinstance(value, Mapping):
        yield value
        return
    found = False
    if isinstance(value, list):
        for item in _flatten(value):
            if isinstance(item, Mapping):
                found = True
                yield item
    if not found:
        yield _EMPTY


def _leaves(value: object) -> tuple[object, ...]:
    """The scalar values a list of matchers is tried against.

    AWS matchers only apply to leaf nodes: an object holds no leaf, a list holds the
    scalars inside it at any depth, a missing field holds none, and null is a leaf.
    """
    if isinstance(value, _Missing | Mapping):
        return ()
    if isinstance(value, list):
        return tuple(item for item in _flatten(value) if not isinstance(item, Mapping))
    return (value,)


def _flatten(items: list[Any]) -> Iterator[Any]:
    # Iterative, so that a deeply nested event list cannot exhaust the recursion limit.
    stack = [iter(items)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            yield item
        else:
            stack.pop()


def _match_leaf(rules: list[Any], leaves: tuple[object, ...]) -> bool:
    return any(_match_matcher(rule, leaves) for rule in rules)


def _match_matcher(rule: Any, leaves: tuple[object, ...]) -> bool:
    if not isinstance(rule, dict):
        return any(_same_value(rule, leaf) for leaf in leaves)
    ((name, operand),) = rule.items()
    if name == "exists":
        # exists looks at whether the field holds a leaf at all, so it cannot be tested leaf
        # by leaf. Following AWS ("exists matching only works on leaf nodes"): a field with
        # a scalar, null included, or a list holding one exists; a field that is missing,
        # holds an object or an empty list does not. exists:false is thus exactly
        # not exists:true.
        return bool(leaves) is operand
    test = _LEAF_TESTS[name]
    return any(test(operand, leaf) for leaf in leaves)


def _same_value(expected: object, actual: object) -> bool:
    # JSON has one number type, so 5 equals 5.0. _is_number refuses bools, so Python's
    # True == 1 falls to the type check below and does not leak through.
    if _is_number(expected) and _is_number(actual):
        return bool(expected == actual)
    return type(expected) is type(actual) and expected == actual


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _match_prefix(operand: Any, value: object) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(operand, dict):
        return value.casefold().startswith(operand[IGNORE_CASE].casefold())
    return value.startswith(operand)


def _match_suffix(operand: Any, value: object) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(operand, dict):
        return value.casefold().endswith(operand[IGNORE_CASE].casefold())
    return value.endswith(operand)


def _match_ignore_case(operand: Any, value: object) -> bool:
    if not isinstance(value, str):
        return False
    options = operand if isinstance(operand, list) else (operand,)
    folded = value.casefold()
    return any(folded == option.casefold() for option in options)


def _match_numeric(operand: Any, value: object) -> bool:
    if not _is_number(value):
        return False
    pairs = zip(operand[0::2], operand[1::2], strict=True)
    return all(_COMPARISONS[op](value, bound) for op, bound in pairs)


def _match_anything_but(operand: Any, value: object) -> bool:
    if isinstance(operand, dict):
        ((name, inner),) = operand.items()
        # The string forms say nothing about non-strings, and AWS does not match them.
        return isinstance(value, str) and not _ANYTHING_BUT_TESTS[name](inner, value)
    excluded = operand if isinstance(operand, list) else (operand,)
    return not any(_same_value(item, value) for item in excluded)


def _match_wildcard(operand: Any, value: object) -> bool:
    if not isinstance(value, str):
        return False
    pieces = _wildcard_pieces(operand)
    if len(pieces) == 1:
        return value == pieces[0]
    first, *middle, last = pieces
    if len(value) < len(first) + len(last):
        return False
    if not (value.startswith(first) and value.endswith(last)):
        return False
    position, end = len(first), len(value) - len(last)
    # With `*` as the only metacharacter, taking each piece at its leftmost place is
    # always safe, which keeps this linear where a regex could backtrack badly.
    for piece in middle:
        found = value.find(piece, position, end)
        if found < 0:
            return False
        position = found + len(piece)
    return True


@functools.lru_cache(maxsize=1024)
def _wildcard_pieces(pattern: str) -> tuple[str, ...]:
    """The literal text between the unescaped stars of a validated wildcard."""
    pieces: list[str] = []
    current: list[str] = []
    chars = iter(pattern)
    for char in chars:
        if char == "\\":
            current.append(next(chars))
        elif char == "*":
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return tuple(pieces)


def _match_cidr(operand: Any, value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return address in _network(operand)


@functools.lru_cache(maxsize=1024)
def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


_LEAF_TESTS: Final[dict[str, Callable[[Any, object], bool]]] = {
    "prefix": _match_prefix,
    "suffix": _match_suffix,
    IGNORE_CASE: _match_ignore_case,
    "wildcard": _match_wildcard,
    "anything-but": _match_anything_but,
    "numeric": _match_numeric,
    "cidr": _match_cidr,
}

_ANYTHING_BUT_TESTS: Final[dict[str, Callable[[Any, str], bool]]] = {
    "prefix": _match_prefix,
    "suffix": _match_suffix,
    IGNORE_CASE: _match_ignore_case,
    "wildcard": _match_wildcard,
}
