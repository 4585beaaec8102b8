"""Code bundles: zips stored once per content hash in Redis, unpacked by each replica.

The registry writes a bundle in the same transaction as the function that first uses it and
deletes it in the one that drops its last user, so Redis never holds an orphan for long nor
loses a bundle still named. Each replica unpacks what it runs into its own cache directory:
into a temporary directory first, renamed into place when complete, so no environment ever
starts in a half-unpacked bundle.
"""

from __future__ import annotations

import asyncio
import base64
import compileall
import contextlib
import hashlib
import logging
import os
import py_compile
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from redis.asyncio import Redis

from router import archive
from router.names import Names

if TYPE_CHECKING:
    from router.registry import Snapshot

log = logging.getLogger("router.bundles")


class MissingBundle(Exception):
    """The registry names a bundle Redis does not have (lost with a Redis without persistence)."""


@dataclass(frozen=True)
class Bundle:
    """A checked zip."""

    data: bytes
    sha256: str  # base64, Lambda's CodeSha256
    contents: archive.Contents

    @classmethod
    def check(cls, data: bytes) -> Bundle:
        """Raises archive.ArchiveError naming what is wrong."""
        contents = archive.check(data)
        return cls(data, base64.b64encode(hashlib.sha256(data).digest()).decode(), contents)

    @property
    def digest(self) -> str:
        return digest(self.sha256)


def digest(sha256: str) -> str:
    """The hex form of a base64 CodeSha256: what names keys and directories."""
    return base64.b64decode(sha256).hex()


def default_directory(namespace: str) -> Path:
    """Outside /tmp, which environments get a private one of their own over."""
    if os.geteuid() == 0:
        return Path("/var/lib/trigger-router") / namespace / "code"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trigger-router" / namespace / "code"


class Bundles:
    def __init__(self, redis: Redis, names: Names, directory: Path) -> None:
        self._redis = redis
        self._names = names
        self.directory = directory
        self._unpacking: dict[str, asyncio.Future[Path]] = {}
        self._users: dict[str, int] = {}  # environments running in each unpacked bundle

    def prepare(self) -> None:
        """Create the cache directory (ours alone: nobody else may plant code in it) and
        remove what a previous run left half-unpacked."""
        self.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        for path in (self.directory, *self.directory.parents):
            if not _trusted(path.lstat()):
                raise PermissionError(
                    f"code cache directory {self.directory}: {path} may be changed by another "
                    "user; choose a directory only this user (or root) can write"
                )
        for leftover in self.directory.glob(".partial-*"):
            if not _unpacking_now(leftover):
                _removed(leftover)

    async def zip(self, sha256: str) -> bytes | None:
        raw = await self._redis.get(self._names.code(digest(sha256)))
        return raw if raw is None or isinstance(raw, bytes) else raw.encode()

    def hold(self, sha256: str) -> None:
        """An environment runs in this bundle: keep it unpacked until `release`."""
        self._users[sha256] = self._users.get(sha256, 0) + 1

    def release(self, sha256: str) -> None:
        left = self._users.get(sha256, 0) - 1
        if left > 0:
            self._users[sha256] = left
        else:
            self._users.pop(sha256, None)

    async def path(self, sha256: str) -> Path:
        """The unpacked bundle, fetched from Redis and unpacked on first use."""
        hexdigest = digest(sha256)
        target = self.directory / hexdigest
        if target.is_dir():
            return target
        pending = self._unpacking.get(hexdigest)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(sha256, target))
            self._unpacking[hexdigest] = pending
            pending.add_done_callback(lambda _: self._unpacking.pop(hexdigest, None))
        return await asyncio.shield(pending)

    async def _fetch(self, sha256: str, target: Path) -> Path:
        data = await self.zip(sha256)
        if data is None:
            raise MissingBundle(f"code bundle {sha256} is not in Redis")
        await asyncio.to_thread(_unpack, data, target)
        return target

    async def reconcile(self, snapshot: Snapshot) -> None:
        """Remove unpacked bundles no function or published version uses any more (a
        registry change listener)."""
        from router.registry import code_of

        keep = code_of(snapshot)
        await asyncio.to_thread(self.prune, keep | set(self._users))

    def prune(self, keep: set[str]) -> None:
        """Remove unpacked bundles whose hashes (base64) are not in `keep`."""
        wanted = {digest(sha) for sha in keep}
        for entry in self.directory.iterdir():
            if entry.name not in wanted and not entry.name.startswith("."):
                _removed(entry)
                log.info("removed unpacked bundle %s", entry.name)


def _compile(root: Path) -> None:
    """Byte-compile the bundle's Python once, here, for the router's Python version: marked
    never to be checked (the bundle never changes), so no environment recompiles it at each cold
    start, which it could not write back anyway (the bundle is read-only to it). `.pyc` files
    the zip brought were made for other file times and would be stale. Compiling runs nothing."""
    compileall.compile_dir(  # quiet=2: says nothing, even of files that do not compile
        root,
        quiet=2,
        force=True,
        workers=1,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )


def _read_only(root: Path) -> None:
    """Every function with this code shares the unpacked bundle: none may change it for the
    others (Lambda's /var/task is read-only too)."""
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, stat.S_IMODE(mode) & ~0o222)
        os.chmod(directory, 0o555)


def _removed(path: Path) -> None:
    """Remove an unpacked bundle, read-only as it is."""

    def writable(function: object, name: str, exc: object) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o755)
            function(name)  # type: ignore[operator]

    for directory, _, _ in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(directory, 0o755)
    shutil.rmtree(path, onerror=writable)


def _unpacking_now(partial: Path) -> bool:
    """Whether a live process (another worker of `serve --workers`, another router on this
    host) is still unpacking into `partial` (`.partial-<digest>-<pid>-<random>`)."""
    owner = partial.name.rsplit("-", 2)[-2]
    if not owner.isdigit() or int(owner) == os.getpid():
        return False
    try:
        os.kill(int(owner), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _trusted(info: os.stat_result) -> bool:
    """Owned by us or root, and writable by nobody else (a sticky /tmp is fine)."""
    if info.st_uid not in (0, os.getuid()) or stat.S_ISLNK(info.st_mode):
        return False
    shared = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    return not shared or bool(info.st_mode & stat.S_ISVTX)


def _unpack(data: bytes, target: Path) -> None:
    if target.is_dir():
        return
    partial = target.parent / f".partial-{target.name}-{os.getpid()}-{os.urandom(4).hex()}"
    archive.unpack(data, partial)
    _compile(partial)
    _read_only(partial)
    try:
        partial.rename(target)  # atomic: the bundle appears complete or not at all
    except OSError:
        _removed(partial)  # another process won the race
        if not target.is_dir():
            raise
