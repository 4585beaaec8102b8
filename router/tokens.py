"""The admin token: configured (`ROUTER_ADMIN_TOKEN`), or generated once and kept in a file only
its user can read, where the CLI on the same host finds it without configuration.

No token ships with the router and no client is trusted for where it connects from: loopback
is not a credential (a reverse proxy, or a function's own code, connects from there too).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

MIN_LENGTH = 16


def default_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "trigger-router" / "admin-token"


def token_file(configured: str) -> Path:
    return Path(configured) if configured else default_file()


def read(path: Path) -> str:
    """The token kept in `path`, or "" when there is none."""
    with contextlib.suppress(OSError):
        return path.read_text().strip()
    return ""


def ensure(path: Path) -> str:
    """The token in `path`, generated (0600, its directory 0700) when there is none yet."""
    existing = read(path)
    if len(existing) >= MIN_LENGTH:
        return existing
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(token + "\n")
    try:
        os.link(partial, path)  # never overwrites a token another router just wrote
    except FileExistsError:
        token = read(path)
        if len(token) < MIN_LENGTH:
            raise ValueError(f"{path} holds no usable admin token; remove it or fix it") from None
    finally:
        partial.unlink(missing_ok=True)
    return token
