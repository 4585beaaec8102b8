"""Plain-text tables for the CLI's listings on a terminal (JSON stays the format for pipes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MAX_WIDTH = 48  # a cell longer than this is cut, so one long value never wraps every row


def render(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """`columns` of each row, aligned, under an upper-case header; dotted columns reach into
    nested objects (`concurrency.max`)."""
    cells = [[_cell(_value(row, column)) for column in columns] for row in rows]
    header = [column.upper() for column in columns]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(columns))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *cells]
    )


def _value(row: Mapping[str, Any], column: str) -> Any:
    value: Any = row
    for part in column.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        value = ",".join(str(v) for v in value)
    text = str(value).replace("\n", " ")
    return text if len(text) <= MAX_WIDTH else text[: MAX_WIDTH - 1] + "…"
