"""Tests for router.filters: AWS-style event patterns."""

from __future__ import annotations

import operator
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from router import filters

ORDER = {
    "body": {"region": "eu", "total": 12, "currency": "EUR", "items": [{"sku": "a1"}]},
    "routing_key": "order.eu.created",
    "headers": {"x-tenant": "acme", "x-retry": None},
}

# (pattern, event, expected)
MATCH_ROWS: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    # exact values, AND across keys, OR within a list
    ({"body": {"region": ["eu"]}}, ORDER, True),
    ({"body": {"region": ["us"]}}, ORDER, False),
    ({"body": {"region": ["us", "eu"]}}, ORDER, True),
    ({"body": {"region": ["eu"]}, "routing_key": ["order.eu.created"]}, ORDER, True),
    ({"body": {"region": ["eu"]}, "routing_key": ["order.us.created"]}, ORDER, False),
    ({"body": {"region": ["eu"], "total": [12]}}, ORDER, True),
    ({"body": {"region": ["eu"], "total": [13]}}, ORDER, False),
    ({}, ORDER, True),
    # numbers compare numerically, but bools are not numbers and strings are not numbers
    ({"n": [5]}, {"n": 5.0}, True),
    ({"n": [5.0]}, {"n": 5}, True),
    ({"n": [5]}, {"n": "5"}, False),
    ({"n": ["5"]}, {"n": 5}, False),
    ({"n": [1]}, {"n": True}, False),
    ({"n": [True]}, {"n": 1}, False),
    ({"n": [True]}, {"n": True}, True),
    ({"n": [False]}, {"n": 0}, False),
    ({"n": [False]}, {"n": False}, True),
    # null and the empty string are different things, and neither is a missing field
    ({"x": [None]}, {"x": None}, True),
    ({"x": [None]}, {"x": ""}, False),
    ({"x": [""]}, {"x": None}, False),
    ({"x": [""]}, {"x": ""}, True),
    ({"x": [None]}, {}, False),
    ({"headers": {"x-retry": [None]}}, ORDER, True),
    # exact values are case-sensitive
    ({"s": ["EU"]}, {"s": "eu"}, False),
    # missing fields and wrong shapes
    ({"missing": ["eu"]}, ORDER, False),
    ({"body": {"missing": ["eu"]}}, ORDER, False),
    ({"nope": {"deeper": ["eu"]}}, ORDER, False),
    ({"body": ["eu"]}, ORDER, False),  # a list of matchers never matches an object
    ({"routing_key": {"x": ["eu"]}}, ORDER, False),  # a string has no fields
    # nested objects
    ({"a": {"b": {"c": [1]}}}, {"a": {"b": {"c": 1}}}, True),
    ({"a": {"b": {"c": [1]}}}, {"a": {"b": {"c": 2}}}, False),
    ({"a": {"b": {"c": [1]}}}, {"a": {"c": 1}}, False),
    # list-valued event fields: any element may match
    ({"tags": ["red"]}, {"tags": ["blue", "red"]}, True),
    ({"tags": ["green"]}, {"tags": ["blue", "red"]}, False),
    ({"tags": ["red"]}, {"tags": []}, False),
    ({"tags": ["red"]}, {"tags": [["blue"], ["red"]]}, True),
    ({"tags": [{"prefix": "re"}]}, {"tags": ["blue", "red"]}, True),
    ({"tags": [{"numeric": [">", 10]}]}, {"tags": [1, 2, 30]}, True),
    ({"tags": [{"numeric": [">", 10]}]}, {"tags": [1, 2, 3]}, False),
    ({"tags": [{"anything-but": "red"}]}, {"tags": ["red", "blue"]}, True),
    ({"tags": [{"anything-but": "red"}]}, {"tags": ["red", "red"]}, False),
    # lists of objects: a nested pattern may match any one of them, as a whole
    ({"body": {"items": {"sku": ["a1"]}}}, ORDER, True),
    ({"body": {"items": {"sku": ["b2"]}}}, ORDER, False),
    (
        {"items": {"sku": ["a1"], "qty": [2]}},
        {"items": [{"sku": "a1", "qty": 1}, {"sku": "b2", "qty": 2}]},
        False,
    ),
    (
        {"items": {"sku": ["b2"], "qty": [2]}},
        {"items": [{"sku": "a1", "qty": 1}, {"sku": "b2", "qty": 2}]},
        True,
    ),
    # prefix / suffix, with and without equals-ignore-case
    ({"routing_key": [{"prefix": "order."}]}, ORDER, True),
    ({"routing_key": [{"prefix": "invoice."}]}, ORDER, False),
    ({"routing_key": [{"prefix": ""}]}, ORDER, True),
    ({"routing_key": [{"prefix": "ORDER."}]}, ORDER, False),
    ({"routing_key": [{"prefix": {"equals-ignore-case": "ORDER."}}]}, ORDER, True),
    ({"routing_key": [{"suffix": ".created"}]}, ORDER, True),
    ({"routing_key": [{"suffix": ".deleted"}]}, ORDER, False),
    ({"routing_key": [{"suffix": {"equals-ignore-case": ".CREATED"}}]}, ORDER, True),
    ({"routing_key": [{"suffix": {"equals-ignore-case": ".DELETED"}}]}, ORDER, False),
    ({"n": [{"prefix": "1"}]}, {"n": 12}, False),  # prefix only applies to strings
    ({"n": [{"suffix": "2"}]}, {"n": 12}, False),
    ({"n": [{"prefix": "n"}]}, {"n": None}, False),
    # equals-ignore-case
    ({"body": {"currency": [{"equals-ignore-case": "eur"}]}}, ORDER, True),
    ({"body": {"currency": [{"equals-ignore-case": "usd"}]}}, ORDER, False),
    ({"body": {"currency": [{"equals-ignore-case": "eu"}]}}, ORDER, False),
    ({"n": [{"equals-ignore-case": "12"}]}, {"n": 12}, False),
    # anything-but
    ({"state": [{"anything-but": "initializing"}]}, {"state": "running"}, True),
    ({"state": [{"anything-but": "initializing"}]}, {"state": "initializing"}, False),
    ({"state": [{"anything-but": "initializing"}]}, {}, False),  # needs the field
    ({"state": [{"anything-but": "initializing"}]}, {"state": {"a": 1}}, False),
    ({"state": [{"anything-but": ["stopped", "overloaded"]}]}, {"state": "stopped"}, False),
    ({"state": [{"anything-but": ["stopped", "overloaded"]}]}, {"state": "running"}, True),
    ({"x": [{"anything-but": 123}]}, {"x": 123}, False),
    ({"x": [{"anything-but": 123}]}, {"x": 123.0}, False),
    ({"x": [{"anything-but": 123}]}, {"x": 124}, True),
    ({"x": [{"anything-but": [100, 200]}]}, {"x": 200}, False),
    ({"x": [{"anything-but": [100, 200]}]}, {"x": 300}, True),
    ({"x": [{"anything-but": 1}]}, {"x": True}, True),  # true is not the number 1
    ({"state": [{"anything-but": {"prefix": "init"}}]}, {"state": "initializing"}, False),
    ({"state": [{"anything-but": {"prefix": "init"}}]}, {"state": "running"}, True),
    ({"state": [{"anything-but": {"prefix": "init"}}]}, {"state": 5}, False),
    ({"f": [{"anything-but": {"suffix": ".png"}}]}, {"f": "a.png"}, False),
    ({"f": [{"anything-but": {"suffix": ".png"}}]}, {"f": "a.jpg"}, True),
    ({"s": [{"anything-but": {"equals-ignore-case": "ON"}}]}, {"s": "on"}, False),
    ({"s": [{"anything-but": {"equals-ignore-case": "ON"}}]}, {"s": "off"}, True),
    ({"s": [{"anything-but": {"equals-ignore-case": ["ON", "Off"]}}]}, {"s": "oFF"}, False),
    ({"s": [{"anything-but": {"equals-ignore-case": ["ON", "Off"]}}]}, {"s": "idle"}, True),
    ({"p": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"p": "/usr/lib/x"}, False),
    ({"p": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"p": "/usr/bin/x"}, True),
    # numeric
    ({"body": {"total": [{"numeric": [">", 10]}]}}, ORDER, True),
    ({"body": {"total": [{"numeric": [">", 12]}]}}, ORDER, False),
    ({"body": {"total": [{"numeric": [">=", 12]}]}}, ORDER, True),
    ({"body": {"total": [{"numeric": ["<", 12]}]}}, ORDER, False),
    ({"body": {"total": [{"numeric": ["<=", 12]}]}}, ORDER, True),
    ({"body": {"total": [{"numeric": ["=", 12]}]}}, ORDER, True),
    ({"body": {"total": [{"numeric": ["=", 12.5]}]}}, ORDER, False),
    ({"body": {"total": [{"numeric": [">", 0, "<=", 12]}]}}, ORDER, True),
    ({"body": {"total": [{"numeric": [">", 0, "<", 12]}]}}, ORDER, False),
    ({"body": {"total": [{"numeric": ["<", 100, ">=", 12]}]}}, ORDER, True),
    ({"price": [{"numeric": [">", 0, "<=", 150.5]}]}, {"price": 150.5}, True),
    ({"price": [{"numeric": [">", 0, "<=", 150.5]}]}, {"price": 0}, False),
    ({"price": [{"numeric": [">", -1.5]}]}, {"price": -1}, True),
    ({"price": [{"numeric": [">", 0]}]}, {"price": "5"}, False),  # strings are not numbers
    ({"price": [{"numeric": [">", 0]}]}, {"price": True}, False),  # nor are bools
    ({"price": [{"numeric": [">", 0]}]}, {"price": None}, False),
    ({"price": [{"numeric": [">", 0]}]}, {}, False),
    # exists: only leaves exist; null is a leaf, objects and empty lists are not
    ({"headers": {"x-tenant": [{"exists": True}]}}, ORDER, True),
    ({"headers": {"x-tenant": [{"exists": False}]}}, ORDER, False),
    ({"headers": {"x-missing": [{"exists": True}]}}, ORDER, False),
    ({"headers": {"x-missing": [{"exists": False}]}}, ORDER, True),
    ({"headers": {"x-retry": [{"exists": True}]}}, ORDER, True),
    ({"headers": {"x-retry": [{"exists": False}]}}, ORDER, False),
    ({"x": [{"exists": True}]}, {"x": ""}, True),
    ({"x": [{"exists": True}]}, {"x": False}, True),
    ({"x": [{"exists": True}]}, {"x": 0}, True),
    ({"x": [{"exists": True}]}, {"x": ["a"]}, True),
    ({"x": [{"exists": True}]}, {"x": []}, False),
    ({"x": [{"exists": False}]}, {"x": []}, True),
    ({"x": [{"exists": True}]}, {"x": {"y": 1}}, False),
    ({"x": [{"exists": False}]}, {"x": {"y": 1}}, True),
    ({"x": [{"exists": True}]}, {"x": [{"y": 1}]}, False),
    ({"a": {"b": [{"exists": False}]}}, {}, True),  # missing parents: the leaf is missing
    ({"a": {"b": [{"exists": False}]}}, {"a": "text"}, True),
    ({"a": {"b": [{"exists": True}]}}, {}, False),
    # exists combined with other matchers in the same list (OR)
    ({"x": [{"exists": False}, "eu"]}, {}, True),
    ({"x": [{"exists": False}, "eu"]}, {"x": "eu"}, True),
    ({"x": [{"exists": False}, "eu"]}, {"x": "us"}, False),
    # wildcard
    ({"f": [{"wildcard": "dir/*.png"}]}, {"f": "dir/a.png"}, True),
    ({"f": [{"wildcard": "dir/*.png"}]}, {"f": "dir/sub/a.png"}, True),
    ({"f": [{"wildcard": "dir/*.png"}]}, {"f": "dir/a.jpg"}, False),
    ({"f": [{"wildcard": "dir/*.png"}]}, {"f": "other/a.png"}, False),
    ({"f": [{"wildcard": "*"}]}, {"f": ""}, True),
    ({"f": [{"wildcard": "a*a"}]}, {"f": "a"}, False),  # the pieces may not overlap
    ({"f": [{"wildcard": "a*a"}]}, {"f": "aa"}, True),
    ({"f": [{"wildcard": "*a*b*"}]}, {"f": "xxbxxa"}, False),
    ({"f": [{"wildcard": "*a*b*"}]}, {"f": "xaxxbx"}, True),
    ({"f": [{"wildcard": "*ab*ba*"}]}, {"f": "aba"}, False),
    ({"f": [{"wildcard": "*ab*ba*"}]}, {"f": "abba"}, True),
    ({"f": [{"wildcard": "*\\**"}]}, {"f": "x*y"}, True),
    ({"f": [{"wildcard": "*\\**"}]}, {"f": "xy"}, False),
    ({"f": [{"wildcard": "exact"}]}, {"f": "exact"}, True),
    ({"f": [{"wildcard": "exact"}]}, {"f": "exactly"}, False),
    ({"f": [{"wildcard": r"a\*b"}]}, {"f": "a*b"}, True),
    ({"f": [{"wildcard": r"a\*b"}]}, {"f": "axb"}, False),
    ({"f": [{"wildcard": r"a\\*"}]}, {"f": "a\\anything"}, True),
    ({"f": [{"wildcard": "*"}]}, {"f": 5}, False),
    # cidr
    ({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.0.255"}, True),
    ({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.1.0"}, False),
    ({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "not an ip"}, False),
    ({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "::1"}, False),
    ({"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": 167772161}, False),
    ({"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db8::1"}, True),
    ({"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db9::1"}, False),
    # $or
    ({"$or": [{"a": [1]}, {"b": [2]}]}, {"a": 1}, True),
    ({"$or": [{"a": [1]}, {"b": [2]}]}, {"b": 2}, True),
    ({"$or": [{"a": [1]}, {"b": [2]}]}, {"a": 2, "b": 1}, False),
    ({"c": [3], "$or": [{"a": [1]}, {"b": [2]}]}, {"a": 1, "c": 3}, True),
    ({"c": [3], "$or": [{"a": [1]}, {"b": [2]}]}, {"a": 1, "c": 4}, False),
    ({"body": {"$or": [{"region": ["us"]}, {"total": [{"numeric": [">", 10]}]}]}}, ORDER, True),
    ({"body": {"$or": [{"region": ["us"]}, {"total": [{"numeric": [">", 20]}]}]}}, ORDER, False),
    ({"$or": [{"a": {"$or": [{"b": [1]}, {"c": [1]}]}}, {"d": [1]}]}, {"a": {"c": 1}}, True),
]


@pytest.mark.parametrize(("pattern", "event", "expected"), MATCH_ROWS)
def test_matches(pattern: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    filters.validate(pattern)  # every row must be a valid pattern
    assert filters.matches(pattern, event) is expected


def _nested(depth: int) -> dict[str, Any]:
    pattern: dict[str, Any] = {"leaf": ["x"]}
    for _ in range(depth - 1):
        pattern = {"k": pattern}
    return pattern


VALID_EDGE_CASES: list[dict[str, Any]] = [
    {},
    _nested(filters.MAX_DEPTH),
    {"a": [None, True, 1, 1.5, "s"]},
    {"n": [{"numeric": ["=", 10**30]}]},
    {"ip": [{"cidr": "10.0.0.1/24"}]},  # host bits set: accepted, as on AWS
    {"$or": [{"a": ["x"]}]},
]


@pytest.mark.parametrize("pattern", VALID_EDGE_CASES)
def test_valid_edge_cases(pattern: dict[str, Any]) -> None:
    filters.validate(pattern)


# (pattern, expected substring of the error message)
INVALID_ROWS: list[tuple[Any, str]] = [
    (["eu"], 'pattern: a pattern must be an object, got ["eu"]'),
    ("eu", 'pattern: a pattern must be an object, got "eu"'),
    (None, "pattern: a pattern must be an object, got null"),
    ({"body": {"region": "eu"}}, 'body.region: must be a list of matchers, got "eu"'),
    ({"body": {"total": 12}}, "body.total: must be a list of matchers, got 12"),
    ({"body": {"ok": None}}, "body.ok: must be a list of matchers, got null"),
    ({"body": {"region": []}}, "body.region: an empty list of matchers"),
    ({"body": {}}, "body: an empty object is not a pattern"),
    ({"body": {"x": [{"prefixx": "a"}]}}, 'body.x: unknown matcher "prefixx"'),
    ({"body": {"x": [{}]}}, "body.x: a matcher object needs exactly one key"),
    ({"x": [{"prefix": "a", "suffix": "b"}]}, "x: a matcher object needs exactly one key"),
    ({"x": [["a"]]}, "x: a matcher cannot be a list"),
    ({"x": [{1, 2}]}, "x: a matcher must be a JSON value"),
    ({"x": [float("nan")]}, "x: exact value needs a finite number"),
    ({1: ["a"]}, "pattern: field names must be strings, got 1"),
    ({"a": {2: ["a"]}}, "a: field names must be strings"),
    # prefix / suffix / equals-ignore-case
    ({"body": {"x": [{"prefix": 5}]}}, "body.x: prefix needs a string"),
    ({"x": [{"prefix": None}]}, "x: prefix needs a string"),
    ({"x": [{"prefix": {"equals-ignore-case": 5}}]}, "x: prefix needs a string or"),
    ({"x": [{"prefix": {"nope": "a"}}]}, "x: prefix needs a string or"),
    ({"x": [{"suffix": ["a"]}]}, "x: suffix needs a string"),
    ({"x": [{"equals-ignore-case": 5}]}, "x: equals-ignore-case needs a string"),
    ({"x": [{"equals-ignore-case": ["a"]}]}, "x: equals-ignore-case needs a string"),
    # numeric
    ({"body": {"price": [{"numeric": 5}]}}, "body.price: numeric needs [op, number]"),
    ({"body": {"price": [{"numeric": []}]}}, "body.price: numeric needs [op, number]"),
    ({"body": {"price": [{"numeric": [">"]}]}}, "body.price: numeric needs [op, number]"),
    ({"p": [{"numeric": [">", 1, "<"]}]}, "p: numeric needs [op, number]"),
    ({"p": [{"numeric": [">", 1, "<", 2, "=", 3]}]}, "p: numeric needs [op, number]"),
    ({"p": [{"numeric": ["!=", 1]}]}, 'p: numeric has unknown operator "!="'),
    ({"p": [{"numeric": [1, ">"]}]}, "p: numeric has unknown operator 1"),
    ({"p": [{"numeric": [[">"], 1]}]}, 'p: numeric has unknown operator [">"]'),
    ({"p": [{"numeric": [">", "1"]}]}, 'p: numeric needs a number, got "1"'),
    ({"p": [{"numeric": [">", True]}]}, "p: numeric needs a number, got true"),
    ({"p": [{"numeric": [">", None]}]}, "p: numeric needs a number, got null"),
    ({"p": [{"numeric": [">", float("inf")]}]}, "p: numeric needs a finite number"),
    ({"p": [{"numeric": [">", 1, ">", 2]}]}, "p: numeric with two comparisons needs"),
    ({"p": [{"numeric": ["<", 1, "<=", 2]}]}, "p: numeric with two comparisons needs"),
    ({"p": [{"numeric": ["=", 1, "<", 2]}]}, "p: numeric with two comparisons needs"),
    # exists
    ({"x": [{"exists": "true"}]}, 'x: exists needs true or false, got "true"'),
    ({"x": [{"exists": 1}]}, "x: exists needs true or false, got 1"),
    ({"x": [{"exists": None}]}, "x: exists needs true or false"),
    # anything-but
    ({"s": [{"anything-but": None}]}, "s: anything-but needs a string, a number"),
    ({"s": [{"anything-but": True}]}, "s: anything-but needs a string, a number"),
    ({"s": [{"anything-but": []}]}, "s: anything-but needs a non-empty list"),
    ({"s": [{"anything-but": ["a", 1]}]}, "s: anything-but needs a non-empty list"),
    ({"s": [{"anything-but": [None]}]}, "s: anything-but needs a non-empty list"),
    ({"s": [{"anything-but": [1, float("nan")]}]}, "s: anything-but needs a finite number"),
    ({"s": [{"anything-but": float("inf")}]}, "s: anything-but needs a finite number"),
    ({"s": [{"anything-but": {"numeric": [">", 1]}}]}, "s: anything-but takes one of"),
    ({"s": [{"anything-but": {}}]}, "s: anything-but takes one of"),
    ({"s": [{"anything-but": {"prefix": 1}}]}, "s: anything-but prefix needs a string"),
    ({"s": [{"anything-but": {"suffix": None}}]}, "s: anything-but suffix needs a string"),
    (
        {"s": [{"anything-but": {"equals-ignore-case": []}}]},
        "s: anything-but equals-ignore-case needs a string",
    ),
    (
        {"s": [{"anything-but": {"equals-ignore-case": ["a", 1]}}]},
        "s: anything-but equals-ignore-case needs a string, got 1",
    ),
    ({"s": [{"anything-but": {"wildcard": "a**"}}]}, "s: wildcard"),
    # wildcard
    ({"f": [{"wildcard": 5}]}, "f: wildcard needs a string"),
    ({"f": [{"wildcard": "a**b"}]}, 'f: wildcard "a**b": consecutive * are not allowed'),
    ({"f": [{"wildcard": "a\\"}]}, 'f: wildcard "a\\\\": a trailing backslash'),
    ({"f": [{"wildcard": "a\\b"}]}, "only * and \\ may follow a backslash"),
    # cidr
    ({"ip": [{"cidr": "10.0.0.0/33"}]}, 'ip: cidr needs an IP network like 10.0.0.0/24, got "10'),
    ({"ip": [{"cidr": "banana"}]}, "ip: cidr needs an IP network"),
    ({"ip": [{"cidr": 10}]}, "ip: cidr needs a string"),
    # $or
    ({"$or": {"a": ["x"]}}, "$or: $or needs a non-empty list of patterns"),
    ({"$or": []}, "$or: $or needs a non-empty list of patterns"),
    ({"body": {"$or": [{"a": ["x"]}, "b"]}}, 'body.$or[1]: a pattern must be an object, got "b"'),
    ({"$or": [{"a": ["x"]}, {}]}, "$or[1]: an empty object is not a pattern"),
    ({"$or": [{"a": ["x"]}, {"b": "y"}]}, '$or[1].b: must be a list of matchers, got "y"'),
    ({"$or": [{"a": [{"numeric": [">", "1"]}]}]}, "$or[0].a: numeric needs a number"),
    # depth
    (_nested(filters.MAX_DEPTH + 1), "patterns may nest at most 32 objects deep"),
    (_nested(500), "k.k.k"),
    ({"$or": [_nested(filters.MAX_DEPTH)]}, "patterns may nest at most 32 objects deep"),
    # the first bad part is reported even after good ones
    ({"a": ["ok"], "b": {"c": ["ok"], "d": [{"exists": 0}]}}, "b.d: exists needs true or false"),
]


@pytest.mark.parametrize(("pattern", "message"), INVALID_ROWS)
def test_validate_rejects(pattern: Any, message: str) -> None:
    with pytest.raises(filters.FilterError) as caught:
        filters.validate(pattern)
    assert message in str(caught.value)


def test_filter_error_is_a_value_error() -> None:
    # pydantic turns ValueError raised in a validator into a field error; keep that working
    assert issubclass(filters.FilterError, ValueError)


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(filters.FilterError) as caught:
        filters.validate({"x": "y" * 1000})
    assert len(str(caught.value)) < 200


def test_deeply_nested_event_lists_do_not_recurse() -> None:
    value: Any = "deep"
    for _ in range(5000):
        value = [value]
    assert filters.matches({"x": ["deep"]}, {"x": value})
    assert not filters.matches({"x": ["shallow"]}, {"x": value})


def test_matches_accepts_any_mapping() -> None:
    from types import MappingProxyType

    event = MappingProxyType({"a": MappingProxyType({"b": 1})})
    assert filters.matches({"a": {"b": [1]}}, event)
    assert not filters.matches({"a": {"b": [2]}}, event)


# --- properties ------------------------------------------------------------------------------

KEYS = st.text(alphabet="abcdefgh_-", min_size=1, max_size=6)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=20,
)
EVENTS = st.dictionaries(KEYS, JSON, max_size=6)


def _leaf_paths(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every scalar in `value` with the field names that lead to it (lists add no name)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaf_paths(item, (*path, key))
    elif isinstance(value, list):
        for item in value:
            yield from _leaf_paths(item, path)
    elif path:
        yield path, value


def _pattern_at(path: tuple[str, ...], rule: list[Any]) -> dict[str, Any]:
    pattern: dict[str, Any] = {path[-1]: rule}
    for key in reversed(path[:-1]):
        pattern = {key: pattern}
    return pattern


@settings(deadline=None)
@given(event=EVENTS, data=st.data())
def test_exact_value_from_the_event_matches_it(event: dict[str, Any], data: st.DataObject) -> None:
    leaves = [leaf for leaf in _leaf_paths(event) if len(leaf[0]) < filters.MAX_DEPTH]
    assume(leaves)
    path, value = data.draw(st.sampled_from(leaves))
    pattern = _pattern_at(path, [value])
    filters.validate(pattern)
    assert filters.matches(pattern, event)


def _object_leaf_paths(
    value: Any, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Like _leaf_paths, but only through objects: lists are followed to their scalars only."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _object_leaf_paths(item, (*path, key))
    elif isinstance(value, list):
        yield from ((path, leaf) for leaf in value if not isinstance(leaf, dict | list))
    elif path:
        yield path, value


@settings(deadline=None)
@given(event=EVENTS, data=st.data())
def test_exists_true_on_a_leaf_path_matches(event: dict[str, Any], data: st.DataObject) -> None:
    # Through a list of objects, exists:false may also hold (for another element), so the
    # exact complement is only checked on paths made of objects.
    leaves = [leaf for leaf in _object_leaf_paths(event) if len(leaf[0]) < filters.MAX_DEPTH]
    assume(leaves)
    path, _ = data.draw(st.sampled_from(leaves))
    assert filters.matches(_pattern_at(path, [{"exists": True}]), event)
    assert not filters.matches(_pattern_at(path, [{"exists": False}]), event)


@settings(deadline=None)
@given(event=EVENTS, path=st.lists(KEYS, min_size=1, max_size=4))
def test_exists_false_is_the_complement_of_exists_true(
    event: dict[str, Any], path: list[str]
) -> None:
    present = filters.matches(_pattern_at(tuple(path), [{"exists": True}]), event)
    absent = filters.matches(_pattern_at(tuple(path), [{"exists": False}]), event)
    # Through a list of several objects both can hold (different elements), never neither.
    assert present or absent


@settings(deadline=None)
@given(event=EVENTS, key=KEYS)
def test_exists_on_a_top_level_field_follows_the_field(event: dict[str, Any], key: str) -> None:
    value = event.get(key)
    if isinstance(value, list):
        has_leaf = _has_scalar(value)
    else:
        has_leaf = key in event and not isinstance(value, dict)
    assert filters.matches({key: [{"exists": True}]}, event) is has_leaf
    assert filters.matches({key: [{"exists": False}]}, event) is (not has_leaf)


def _has_scalar(value: list[Any]) -> bool:
    return any(
        _has_scalar(item) if isinstance(item, list) else not isinstance(item, dict)
        for item in value
    )


ANYTHING_BUT_VALUES = (
    st.text(max_size=10) | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
)


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: one number type, and true/false are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return bool(a == b)
    return type(a) is type(b) and a == b


@settings(deadline=None)
@given(value=ANYTHING_BUT_VALUES, other=ANYTHING_BUT_VALUES | st.none() | st.booleans())
def test_anything_but_a_value_never_matches_it(value: Any, other: Any) -> None:
    pattern = {"x": [{"anything-but": value}]}
    filters.validate(pattern)
    assert not filters.matches(pattern, {"x": value})
    assert not filters.matches({"x": [{"anything-but": [value]}]}, {"x": [value, value]})
    different = not _json_equal(value, other)
    assert filters.matches(pattern, {"x": other}) is different
    # exact match and anything-but are complements on a single scalar
    assert filters.matches({"x": [value]}, {"x": other}) is not different


COMPARISONS = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
NUMBERS = st.integers(min_value=-(10**9), max_value=10**9) | st.floats(
    min_value=-1e9, max_value=1e9, allow_nan=False
)


@settings(deadline=None)
@given(op=st.sampled_from(sorted(COMPARISONS)), bound=NUMBERS, value=NUMBERS)
def test_numeric_single_comparison_agrees_with_python(op: str, bound: float, value: float) -> None:
    pattern = {"v": [{"numeric": [op, bound]}]}
    filters.validate(pattern)
    assert filters.matches(pattern, {"v": value}) is COMPARISONS[op](value, bound)


@settings(deadline=None)
@given(
    low_op=st.sampled_from([">", ">="]),
    high_op=st.sampled_from(["<", "<="]),
    low=NUMBERS,
    high=NUMBERS,
    value=NUMBERS,
    swap=st.booleans(),
)
def test_numeric_range_agrees_with_python(
    low_op: str, high_op: str, low: float, high: float, value: float, swap: bool
) -> None:
    terms: list[Any] = [low_op, low, high_op, high]
    if swap:
        terms = terms[2:] + terms[:2]
    pattern = {"v": [{"numeric": terms}]}
    filters.validate(pattern)
    expected = COMPARISONS[low_op](value, low) and COMPARISONS[high_op](value, high)
    assert filters.matches(pattern, {"v": value}) is expected


def _wildcard_oracle(pattern: str, value: str) -> bool:
    regex = ".*".join(re.escape(piece) for piece in pattern.split("*"))
    return re.fullmatch(regex, value, re.DOTALL) is not None


WILDCARDS = st.text(alphabet="ab*", max_size=8).filter(lambda text: "**" not in text)


@settings(deadline=None)
@given(pattern=WILDCARDS, value=st.text(alphabet="ab", max_size=10))
def test_wildcard_agrees_with_a_regex(pattern: str, value: str) -> None:
    rule = {"f": [{"wildcard": pattern}]}
    filters.validate(rule)
    assert filters.matches(rule, {"f": value}) is _wildcard_oracle(pattern, value)


@settings(deadline=None)
@given(value=st.text(max_size=20), cuts=st.lists(st.integers(min_value=0, max_value=20)))
def test_wildcard_with_stars_cut_into_a_string_matches_it(value: str, cuts: list[int]) -> None:
    escaped = [char.replace("\\", "\\\\").replace("*", "\\*") for char in value]
    for cut in sorted(set(cuts), reverse=True):
        if cut <= len(escaped):
            escaped.insert(cut, "*")
    pattern = "".join(escaped)
    rule = {"f": [{"wildcard": pattern}]}
    filters.validate(rule)
    assert filters.matches(rule, {"f": value})


@settings(deadline=None)
@given(prefix=st.text(max_size=5), rest=st.text(max_size=5))
def test_prefix_and_suffix_agree_with_str_methods(prefix: str, rest: str) -> None:
    value = prefix + rest
    assert filters.matches({"s": [{"prefix": prefix}]}, {"s": value})
    assert filters.matches({"s": [{"suffix": rest}]}, {"s": value})
    assert filters.matches({"s": [{"prefix": rest}]}, {"s": value}) is value.startswith(rest)


@settings(deadline=None)
@given(shape=EVENTS, event=EVENTS)
def test_matching_random_events_never_raises(shape: dict[str, Any], event: dict[str, Any]) -> None:
    # Valid patterns of mixed matchers, shaped like one random event, tried on another.
    leaves = [leaf for leaf in _leaf_paths(shape) if len(leaf[0]) < filters.MAX_DEPTH]
    assume(leaves)
    rules: list[Any] = [
        {"prefix": "a"},
        {"numeric": [">", 0]},
        {"anything-but": "b"},
        {"exists": False},
        {"wildcard": "*a*"},
        {"cidr": "10.0.0.0/8"},
        {"equals-ignore-case": "A"},
    ]
    for path, value in leaves:
        pattern = _pattern_at(path, [*rules, value])
        filters.validate(pattern)
        assert isinstance(filters.matches(pattern, event), bool)
