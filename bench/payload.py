"""The event every throughput scenario sends: a JSON document of about 300 bytes.

Shared by `bench/run.py` (the router and the aio-pika ceilings), `bench/loadgen.py` and the
peers' producer (`bench/peers/produce.py`), so every contender handles the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

SIZE = 300


def document(key: str, seq: int) -> dict[str, Any]:
    """The event: `key` names the Redis counter the handler increments."""
    doc: dict[str, Any] = {"key": key, "seq": seq, "source": "bench", "pad": ""}
    size = len(json.dumps(doc).encode())
    doc["pad"] = "x" * max(0, SIZE - size)
    return doc


def body(key: str, seq: int) -> bytes:
    return json.dumps(document(key, seq)).encode()
