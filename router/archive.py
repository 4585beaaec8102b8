"""Code bundles as zips: checked and unpacked as hostile input.

A zip says what it holds in headers anyone can write, so nothing here trusts them: every entry's
name is checked against the root, sizes are counted while inflating (a bomb is stopped by what
it really inflates to, not by what its header claims), and symlinks may only point inside the
bundle. Unpacking writes into a fresh directory that nothing runs until it is complete.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MB = 1024 * 1024
MAX_ZIPPED = 50 * MB  # Lambda's direct upload quota
MAX_UNZIPPED = 250 * MB  # Lambda's unzipped deployment package quota
MAX_ENTRIES = 30_000  # a node_modules tree stays well under it
MAX_RATIO = 200  # inflated : compressed, past the first MB of an entry
RATIO_GRACE = MB
CHUNK = 256 * 1024


class ArchiveError(Exception):
    """A zip refused; `status` is the HTTP status, `entry` the offending entry if any."""

    def __init__(self, message: str, *, status: int = 400, entry: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.entry = entry


@dataclass(frozen=True)
class Contents:
    """What a checked zip holds."""

    files: int
    unzipped_size: int
    executables: frozenset[str]  # regular files with an executable bit, by path

    def has_executable(self, path: str) -> bool:
        return path in self.executables


@dataclass(frozen=True)
class _Entry:
    info: zipfile.ZipInfo
    path: PurePosixPath  # normalised, relative to the root
    mode: int  # unix mode bits from the zip, 0 when the zip was made elsewhere

    @property
    def is_dir(self) -> bool:
        return self.info.is_dir() or stat.S_ISDIR(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)

    @property
    def executable(self) -> bool:
        return bool(self.mode & 0o111)


def check(data: bytes) -> Contents:
    """Validate a bundle completely (inflating every entry) without writing anything."""
    return _walk(data, None)


def unpack(data: bytes, destination: Path) -> Contents:
    """Unpack into `destination`, which must not exist yet; on any refusal nothing is left."""
    destination.mkdir(mode=0o755)
    try:
        return _walk(data, destination)
    except BaseException:
        _remove_tree(destination)
        raise


def _walk(data: bytes, root: Path | None) -> Contents:
    if len(data) > MAX_ZIPPED:
        raise ArchiveError(
            f"the zip is {len(data)} bytes, over Lambda's 50 MB limit for uploaded code",
            status=413,
        )
    entries = _entries(_open(data))
    links = {str(e.path) for e in entries if e.is_symlink}
    total = 0
    executables = []
    with _open(data) as archive:
        for entry in entries:
            _no_link_on_the_way(entry, links)
            if entry.is_dir:
                if root is not None:
                    (root / entry.path).mkdir(mode=0o755, parents=True, exist_ok=True)
                continue
            size = _inflate(archive, entry, total, root, links)
            total += size
            if entry.is_symlink:
                continue
            if entry.executable:
                executables.append(str(entry.path))
    files = sum(1 for e in entries if not e.is_dir)
    return Contents(files, total, frozenset(executables))


def _open(data: bytes) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise ArchiveError(f"the code is not a valid zip file: {exc}") from None


def _entries(archive: zipfile.ZipFile) -> list[_Entry]:
    with archive:
        infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise ArchiveError(f"the zip has {len(infos)} entries, more than {MAX_ENTRIES}")
    if not infos:
        raise ArchiveError("the zip is empty")
    seen: set[PurePosixPath] = set()
    entries = []
    for info in infos:
        path = _safe_path(info.filename)
        if path in seen and not info.is_dir():
            raise ArchiveError(
                f"entry {info.filename!r} appears twice in the zip", entry=info.filename
            )
        seen.add(path)
        mode = info.external_attr >> 16 if info.create_system == 3 else 0
        entries.append(_Entry(info, path, mode))
    return entries


def _safe_path(name: str) -> PurePosixPath:
    """The entry's path inside the root; refuses anything that could land outside it."""
    unified = name.replace("\\", "/")
    path = PurePosixPath(unified)
    bad = (
        not unified.strip("/")
        or "\x00" in unified
        or unified.startswith("/")
        or (len(unified) > 1 and unified[1] == ":")  # a drive letter: C:/...
        or any(part in ("..", "") for part in unified.rstrip("/").split("/"))
    )
    if bad:
        raise ArchiveError(f"entry {name!r} has a path outside the bundle's root", entry=name)
    return path


def _no_link_on_the_way(entry: _Entry, links: set[str]) -> None:
    """Nothing is written through a symlink of the zip's own (`a -> /etc`, then `a/passwd`)."""
    for parent in entry.path.parents:
        if str(parent) in links:
            raise ArchiveError(
                f"entry {entry.info.filename!r} is inside symlink {str(parent)!r}",
                entry=entry.info.filename,
            )


def _inflate(
    archive: zipfile.ZipFile, entry: _Entry, total: int, root: Path | None, links: set[str]
) -> int:
    """Inflate one entry, counting real bytes; write it under `root` when given."""
    name = entry.info.filename
    target = None if root is None else root / entry.path
    if target is not None:
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    content = bytearray() if entry.is_symlink else None
    size = 0
    try:
        with archive.open(entry.info) as source, _sink(target, entry) as sink:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                size += len(chunk)
                _within_limits(entry, size, total)
                if content is not None:
                    content += chunk
                    if len(content) > 4096:
                        raise ArchiveError(f"symlink {name!r} is too long", entry=name)
                elif sink is not None:
                    sink.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise ArchiveError(f"entry {name!r} cannot be read: {exc}", entry=name) from None
    if content is not None:
        _symlink(entry, bytes(content), target, links)
    elif target is not None:
        _keep_time(target, entry.info.date_time)
    return size


def _keep_time(target: Path, date_time: tuple[int, int, int, int, int, int]) -> None:
    """The entry's time from the zip, as unzip keeps it (tools that compare times need it)."""
    with contextlib.suppress(OverflowError, ValueError, OSError):
        stamp = time.mktime((*date_time, 0, 0, -1))
        os.utime(target, (stamp, stamp), follow_symlinks=False)


def _within_limits(entry: _Entry, size: int, total: int) -> None:
    name = entry.info.filename
    if total + size > MAX_UNZIPPED:
        raise ArchiveError(
            f"the zip inflates to more than Lambda's 250 MB unzipped limit (at entry {name!r})",
            status=413,
            entry=name,
        )
    if size > RATIO_GRACE and size > MAX_RATIO * max(entry.info.compress_size, 1):
        raise ArchiveError(
            f"entry {name!r} inflates more than {MAX_RATIO} times its compressed size "
            "(a compression bomb)",
            entry=name,
        )


class _NoSink:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _sink(target: Path | None, entry: _Entry) -> _NoSink | io.BufferedWriter:
    if target is None or entry.is_symlink:
        return _NoSink()
    # O_EXCL|O_NOFOLLOW: never write through something already there (a link, a duplicate).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(target, flags, 0o755 if entry.executable else 0o644)
    return open(descriptor, "wb")  # closed by the caller's `with`


def _symlink(entry: _Entry, content: bytes, target: Path | None, links: set[str]) -> None:
    name = entry.info.filename
    try:
        link = content.decode()
    except UnicodeDecodeError:
        raise ArchiveError(f"symlink {name!r} has an undecodable target", entry=name) from None
    pointed = PurePosixPath(link)
    resolved = _normalised(entry.path.parent / pointed, links)
    if not link or "\x00" in link or pointed.is_absolute() or resolved is None:
        raise ArchiveError(f"symlink {name!r} points outside the bundle ({link!r})", entry=name)
    if target is not None:
        os.symlink(link, target)


def _normalised(path: PurePosixPath, links: set[str]) -> PurePosixPath | None:
    """`path` with `..` resolved lexically; None if it climbs above the root or passes
    through another of the zip's symlinks on the way (where `..` would mean something else)."""
    parts: list[str] = []
    for part in path.parts:
        if parts and "/".join(parts) in links:
            return None
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part not in (".", ""):
            parts.append(part)
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _remove_tree(root: Path) -> None:
    for path in _bottom_up(root):
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
        else:
            path.rmdir()


def _bottom_up(root: Path) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(root, topdown=False):
        base = Path(directory)
        for name in files:
            yield base / name
        for name in subdirs:
            yield base / name
    yield root
