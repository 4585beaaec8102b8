"""The code bundles the bench uploads, one zip per runtime, built as a Lambda user builds them.

- Python (`python3.11`): `bench/handlers.py` itself, as `handlers.py` at the zip's root, so the
  uploaded `handlers.noop` and `handlers.incr` are byte for byte the router-path functions
  `bench.handlers:noop` and `bench.handlers:incr`. For the drain, redis-py is vendored next to
  it with `pip install --target` (an uploaded bundle sees none of the router's packages).
- Node.js (`nodejs20.x`): `functions/node/index.js`.
- provided, bash: `functions/bash/`, the custom-runtime tutorial's bootstrap and handler.
- provided, Go: `functions/go/main.go`, built here (`CGO_ENABLED=0 go build -o bootstrap`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from router.cli import bundle

BENCH_DIR = Path(__file__).resolve().parent
FUNCTIONS = BENCH_DIR / "functions"
BUILD_TIMEOUT_S = 300.0
PYTHON = "python3.11"
PROVIDED = "provided.al2023"


@dataclass(frozen=True)
class Code:
    """What a function with uploaded code is deployed with."""

    runtime: str
    handler: str
    zip: bytes


def python(handler: str) -> Code:
    """`handlers.<handler>` from a zip holding only bench/handlers.py."""
    with tempfile.TemporaryDirectory(prefix="bench-python-") as folder:
        shutil.copy(BENCH_DIR / "handlers.py", Path(folder) / "handlers.py")
        return Code(PYTHON, f"handlers.{handler}", bundle(Path(folder)))


async def python_with_redis(handler: str) -> Code:
    """The same, plus the redis-py version the router's own path has, vendored."""
    version = metadata.version("redis")
    with tempfile.TemporaryDirectory(prefix="bench-python-redis-") as folder:
        shutil.copy(BENCH_DIR / "handlers.py", Path(folder) / "handlers.py")
        argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        # async-timeout too: redis-py imports it on Pythons before 3.11.3, which the bundle's
        # interpreter may be (Debian's python3.11 is 3.11.2) although pip runs on a later one.
        argv += ["--target", folder, f"redis=={version}", "async-timeout>=4.0.3"]
        await _run(argv, "pip install redis")
        return Code(PYTHON, f"handlers.{handler}", bundle(Path(folder)))


def node() -> Code:
    return Code("nodejs20.x", "index.handler", bundle(FUNCTIONS / "node"))


def bash() -> Code:
    return Code(PROVIDED, "function.handler", bundle(FUNCTIONS / "bash"))


async def go() -> Code:
    """The Go program, built as Lambda's docs build one: a static binary named bootstrap."""
    if shutil.which("go") is None:
        raise RuntimeError("`go` is not installed (Debian: apt-get install golang-go)")
    with tempfile.TemporaryDirectory(prefix="bench-go-") as folder:
        argv = ["go", "build", "-o", str(Path(folder) / "bootstrap"), "main.go"]
        await _run(argv, "go build", cwd=FUNCTIONS / "go", env={**os.environ, "CGO_ENABLED": "0"})
        return Code(PROVIDED, "bootstrap", bundle(Path(folder)))


async def _run(
    argv: list[str], name: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), BUILD_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"{name} ran over {BUILD_TIMEOUT_S:.0f} s") from None
    if process.returncode != 0:
        tail = " | ".join(out.decode(errors="replace").splitlines()[-3:])
        raise RuntimeError(f"{name} exited {process.returncode}: {tail}")
