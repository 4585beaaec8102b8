"""Handlers the end-to-end tests register. Each records its runs in a Redis ledger so tests can
count executions exactly (the ledger key lives under the test run's namespace)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import redis

_client = redis.Redis.from_url(os.environ.get("ROUTER_REDIS_URL", "redis://localhost:6379/0"))


def ledger_key(function: str) -> str:
    return f"{os.environ['ROUTER_NAMESPACE']}:ledger:{function}"


def _record(event: Any, context: Any) -> None:
    entry = {
        "event": event,
        "request_id": context.aws_request_id,
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "request_id": context.request_id,
            "invoked_function_arn": context.invoked_function_arn,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
    }
    _client.rpush(ledger_key(context.function_name), json.dumps(entry))


def record(event: Any, context: Any) -> dict[str, Any]:
    _record(event, context)
    return {"ok": True, "request_id": context.aws_request_id}


async def record_async(event: Any, context: Any) -> dict[str, Any]:
    await asyncio.sleep(0)
    _record(event, context)
    return {"ok": True, "async": True}


def fail(event: Any, context: Any) -> None:
    _record(event, context)
    raise ValueError("boom")


async def slow_async(event: Any, context: Any) -> dict[str, Any]:
    await asyncio.sleep(float(event.get("sleep", 5)) if isinstance(event, dict) else 5)
    return {"slept": True}


def slow(event: Any, context: Any) -> dict[str, Any]:
    time.sleep(float(event.get("sleep", 5)) if isinstance(event, dict) else 5)
    return {"slept": True}


def respond(event: Any, context: Any) -> Any:
    """Returns what the request body asks for: exercises the function URL response mapping."""
    return json.loads(event["body"])


def unserialisable(event: Any, context: Any) -> Any:
    return {"when": object()}


def lambda_tutorial(event: Any, context: Any) -> dict[str, Any]:
    """As written in AWS's function URL tutorials, unmodified."""
    body = json.loads(event["body"]) if event.get("body") else {}
    name = (event.get("queryStringParameters") or {}).get("name", "world")
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-Custom": "yes"},
        "cookies": ["session=abc; Path=/"],
        "body": json.dumps(
            {
                "message": f"Hello, {name}!",
                "method": event["requestContext"]["http"]["method"],
                "received": body,
            }
        ),
    }


def hang(event: Any, context: Any) -> None:
    time.sleep(600)


def hog(event: Any, context: Any) -> int:
    blocks = [bytearray(16 * 1024 * 1024) for _ in range(int(event.get("blocks", 64)))]
    return len(blocks)


def crash(event: Any, context: Any) -> None:
    how = event.get("how", "exit")
    if how == "exit":
        os._exit(3)
    if how == "kill":
        os.kill(os.getpid(), 9)
    import ctypes

    ctypes.string_at(0)  # segfault


def environment(event: Any, context: Any) -> dict[str, Any]:
    names = (
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "GREETING",
    )
    if isinstance(event, dict) and "names" in event:
        names = tuple(event["names"])
    return {
        "env": {name: os.environ.get(name) for name in names},
        "pid": os.getpid(),
        "remaining_ms": context.get_remaining_time_in_millis(),
        "log_stream_name": context.log_stream_name,
        "function_version": context.function_version,
        "event": event,
    }


def sleep_then_pid(event: Any, context: Any) -> int:
    time.sleep(float(event.get("sleep", 1)) if isinstance(event, dict) else 1)
    return os.getpid()


async def pid_async(event: Any, context: Any) -> dict[str, int]:
    """Inline: the pid of the router process (the worker) that ran it."""
    return {"pid": os.getpid()}


def _now_entry(event: Any, context: Any) -> None:
    _client.rpush(
        ledger_key(context.function_name),
        json.dumps({"event": event, "request_id": context.aws_request_id, "at": time.time()}),
    )


def permanent(event: Any, context: Any) -> None:
    import router

    _now_entry(event, context)
    raise router.PermanentError("this order can never be valid")


def retry_later(event: Any, context: Any) -> str:
    import router

    _now_entry(event, context)
    if len(_client.lrange(ledger_key(context.function_name), 0, -1)) < 2:
        raise router.Retry("not yet", after=0.6)
    return "done"


def failing_with_time(event: Any, context: Any) -> None:
    _now_entry(event, context)
    raise RuntimeError(f"attempt failed for {event}")


def fixable(event: Any, context: Any) -> str:
    """Fails until the test sets the `fixed` key: a bug fixed after events were dead-lettered."""
    _now_entry(event, context)
    if not _client.get(f"{os.environ['ROUTER_NAMESPACE']}:fixed:{context.function_name}"):
        raise ValueError("bug")
    return "fixed"


def ledger_entry(event: Any, context: Any) -> str:
    """Fault tests' handler: appends the event's id to a file ledger named in the event.

    A file, not Redis, so the ledger survives the Redis restarts some fault tests make.
    Short O_APPEND writes are atomic, so concurrent environments never interleave lines.
    """
    payload = _payload(event)
    if payload["id"] == "poison":
        with open(payload["ledger"] + ".poison", "a") as poison:
            poison.write(f"{time.time()}\n")
        raise ValueError("poison event")
    time.sleep(float(payload.get("sleep", 0)))
    with open(payload["ledger"], "a") as ledger:
        ledger.write(f"{payload['id']}\n")
    return str(payload["id"])


def tally(event: Any, context: Any) -> str:
    """Replica fault tests' handler: counts the runs of each event id in a Redis hash.

    Redis, not a file: an environment in process isolation has a /tmp of its own, where a file
    ledger would be out of the test's sight.
    """
    event_id = str(_payload(event)["id"])
    _client.hincrby(f"{os.environ['ROUTER_NAMESPACE']}:tally:{context.function_name}", event_id)
    return event_id


def _payload(event: Any) -> Any:
    """What the sender sent: a webhook's body is a string, an AMQP event's a decoded dict."""
    if isinstance(event, dict) and isinstance(event.get("body"), str):
        return json.loads(event["body"])
    if isinstance(event, dict) and isinstance(event.get("body"), dict):
        return event["body"]
    return event


def chatty(event: Any, context: Any) -> str:
    import logging
    import sys

    print(f"printed {event['n']}")
    print(f"to stderr {event['n']}", file=sys.stderr)
    logging.getLogger("app").warning("logged %s", event["n"])
    return "said"


async def chatty_async(event: Any, context: Any) -> str:
    return chatty(event, context)


def spawn(event: Any, context: Any) -> dict[str, Any]:
    """Starts a child in a session of its own that would outlive its environment, then sleeps
    (`sleep`) or returns at once."""
    import subprocess

    child = subprocess.Popen(
        ["sleep", "300"],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    print(f"child {child.pid}", flush=True)
    time.sleep(float(event.get("sleep", 0)))
    return {"child": child.pid, "pid": os.getpid()}


def write_file(event: Any, context: Any) -> dict[str, Any]:
    """Writes `mb` megabytes to `path` (in /tmp by default); says how far it got."""
    path = event.get("path") or os.path.join(os.environ.get("TMPDIR", "/tmp"), "big.bin")
    written = 0
    error = None
    try:
        with open(path, "wb") as out:
            for _ in range(int(event["mb"])):
                out.write(b"\0" * (1024 * 1024))
                out.flush()
                written += 1
    except OSError as exc:
        error = exc.strerror
    return {"written_mb": written, "error": error, "path": path}


def tmp_files(event: Any, context: Any) -> dict[str, Any]:
    """Leaves a marker in /tmp and lists what is there."""
    marker = event.get("marker")
    tmp = os.environ.get("TMPDIR", "/tmp")
    if marker:
        with open(os.path.join(tmp, marker), "w") as out:
            out.write("here")
    return {"tmp": tmp, "files": sorted(os.listdir(tmp)), "pid": os.getpid()}


def type_error(event: Any, context: Any) -> None:
    return len(5)  # type: ignore[arg-type, no-any-return]


def forge_reply(event: Any, context: Any) -> str:
    """Writes to every pipe or socket it holds besides stdin/stdout/stderr: the worker's own
    reply channel among them (a socketpair under uvloop). `huge` claims a 4 GB frame;
    otherwise a frame that is no JSON object."""
    import struct

    frame = b"\xff\xff\xff\xff" if event.get("huge") else struct.pack(">I", 5) + b"[1,2]"
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if fd > 2 and os.readlink(f"/proc/self/fd/{fd}").startswith(("pipe:", "socket:")):
                os.write(fd, frame)
        except OSError:
            pass
    time.sleep(1)
    return "not reached"


def _payload(event: Any) -> dict[str, Any]:
    """An invoke's event, or the JSON body of a webhook's or an AMQP message's."""
    if isinstance(event, dict) and "body" in event:
        body = event["body"]
        return json.loads(body) if isinstance(body, str) else dict(body)
    return dict(event)


def nap(event: Any, context: Any) -> dict[str, Any]:
    """Sleeps `sleep` seconds of the payload; touches no Redis."""
    time.sleep(float(_payload(event).get("sleep", 0.2)))
    return {"napped": True}


def span(event: Any, context: Any) -> dict[str, Any]:
    """Sleeps `sleep` seconds and records when it started and ended, with the payload's `mark`,
    so tests can compute how many ran at once and that each accepted event ran."""
    started = time.time()
    payload = _payload(event)
    time.sleep(float(payload.get("sleep", 0.2)))
    entry = {"mark": payload.get("mark"), "start": started, "end": time.time(), "pid": os.getpid()}
    key = f"{os.environ['ROUTER_NAMESPACE']}:spans:{context.function_name}"
    _client.rpush(key, json.dumps(entry))
    return {"mark": payload.get("mark")}
