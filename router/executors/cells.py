"""The router's side of confinement: one cell per execution environment.

A cell is what `sandbox.confine` applies in the environment's process (cgroup, private /tmp,
rlimits, uid) plus what the router needs to end it: every process of the environment is
killed with it, including children that started sessions of their own, and what it leaves
behind is removed. Where the machine allows less (no writable cgroup v2, not root), a cell
does less and `Cells.abilities` says what.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("router.cells")

PR_SET_CHILD_SUBREAPER = 36
PR_SET_DUMPABLE = 4
UID_BASE = 100_000
UID_SLOTS = 1024
NOFILE = 1024  # Lambda's file descriptor quota
NPROC = 1024  # Lambda's process/thread quota


@dataclass
class Cell:
    config: dict[str, Any]  # for sandbox.confine in the environment's process
    env: dict[str, str] = field(default_factory=dict)  # variables it adds (TMPDIR)
    cgroup: Path | None = None
    tmpdir: Path | None = None
    uid: int | None = None
    on_release: list[Callable[[], None]] = field(default_factory=list)

    def processes(self, root: int | None) -> list[int]:
        """Every live process of the environment: its cgroup's, or the root's descendants."""
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                return [int(p) for p in (self.cgroup / "cgroup.procs").read_text().split()]
        return [] if root is None or root <= 0 else [root, *descendants(root)]

    def kill(self, root: int | None) -> None:
        """SIGKILL the whole environment at once."""
        if self.cgroup is not None:
            with contextlib.suppress(OSError):
                (self.cgroup / "cgroup.kill").write_text("1")
                return
        for pid in self.processes(root):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


class Cells:
    def __init__(self, namespace: str, *, isolate_uids: bool = True) -> None:
        self._namespace = namespace
        self._root = os.geteuid() == 0
        self._cgroups = _cgroup_base(namespace) if self._root else None
        self._isolate_uids = isolate_uids and self._root
        self._free_slots = list(range(UID_SLOTS - 1, -1, -1))
        self._serial = 0
        self._tmp = Path(tempfile.gettempdir()) / f"trigger-router-{os.getuid()}" / "tmp"
        self._code_under_tmp = _code_under_tmp()

    @property
    def abilities(self) -> dict[str, bool]:
        return {
            "cgroup": self._cgroups is not None,
            "private_tmp": self._root,
            "own_uid": self._isolate_uids,
        }

    def start(self) -> None:
        """Once per router: adopt orphans of environments (to reap or kill them), and end
        what a previous router of this namespace left behind."""
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None)
            libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            # Not dumpable: no process of the same user (a function's, say) can read the
            # router's memory or /proc/<pid>/environ, which hold its token and passwords.
            libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        if self._cgroups is not None:
            _end_stale(self._cgroups)

    def create(self, *, untrusted: bool, storage_mb: int, task_root: Path | None) -> Cell:
        self._serial += 1
        limits = {"nofile": NOFILE, "fsize": storage_mb * 1024 * 1024}
        config: dict[str, Any] = {"parent": os.getpid(), "limits": limits}
        cell = Cell(config)
        if self._isolate_uids and untrusted and self._free_slots:
            cell.uid = UID_BASE + (os.getpid() % 2_000_000) * UID_SLOTS + self._free_slots.pop()
            config.update(uid=cell.uid, gid=cell.uid)
            limits["nproc"] = NPROC  # counted per uid: meaningful only with a uid of its own
        self._place(cell, storage_mb, task_root)
        return cell

    def _place(self, cell: Cell, storage_mb: int, task_root: Path | None) -> None:
        if self._cgroups is not None:
            cell.cgroup = self._cgroups / f"env-{self._serial}"
            try:
                cell.cgroup.mkdir()
                cell.config["cgroup"] = str(cell.cgroup)
            except OSError as exc:
                log.warning("no cgroup for an environment (%s); using process trees", exc)
                cell.cgroup = None
        under_tmp = self._code_under_tmp or (task_root is not None and _under_tmp(task_root))
        if self._root and not under_tmp:
            cell.config["tmpfs_mb"] = storage_mb  # a private /tmp, gone with the namespace
            cell.env["TMPDIR"] = "/tmp"
            return
        cell.tmpdir = self._tmp / f"{os.getpid()}-{self._serial}"
        cell.tmpdir.mkdir(mode=0o700, parents=True)
        if cell.uid is not None:
            os.chown(cell.tmpdir, cell.uid, cell.uid)
        cell.env["TMPDIR"] = str(cell.tmpdir)

    def release(self, cell: Cell, root: int | None) -> None:
        """After the environment's process exited: kill stragglers, remove what it left."""
        cell.kill(root)
        if cell.cgroup is not None:
            with contextlib.suppress(OSError):
                cell.cgroup.rmdir()  # refused while a killed process is still dying; see start
        if cell.tmpdir is not None:
            shutil.rmtree(cell.tmpdir, ignore_errors=True)
        if cell.uid is not None:
            self._free_slots.append((cell.uid - UID_BASE) % UID_SLOTS)
            cell.uid = None
        callbacks, cell.on_release = cell.on_release, []  # once, however often released
        for callback in callbacks:
            callback()
        reap_orphans()

    def close(self) -> None:
        """The router is stopping: nothing of its environments may outlive it."""
        if self._cgroups is not None:
            _remove(self._cgroups)
        reap_orphans()


def descendants(root: int) -> list[int]:
    """Processes below `root`, from /proc (no /proc/<pid>/task/<tid>/children everywhere)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in _parents():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def reap_orphans() -> None:
    """Collect orphans adopted by the router (a subreaper) that have exited: zombies whose
    parent is us and that nobody else waits for (asyncio waits only for its own children)."""
    me = os.getpid()
    for pid, ppid in _parents(zombies_only=True):
        if ppid == me:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _parents(zombies_only: bool = False) -> list[tuple[int, int]]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if zombies_only and fields[0] != b"Z":
            continue
        found.append((int(entry.name), int(fields[1])))
    return found


def _cgroup_base(namespace: str) -> Path | None:
    """A cgroup v2 directory of ours for this router's environments, if one can be made."""
    mount = _cgroup2_mount()
    if mount is None:
        return None
    own = _own_cgroup()
    base = mount / own.lstrip("/") / f"trigger-router.{namespace}.{os.getpid()}"
    try:
        base.mkdir(exist_ok=True)
        probe = base / "probe"
        probe.mkdir(exist_ok=True)
        probe.rmdir()
    except OSError as exc:
        log.info("cgroup v2 at %s not writable (%s): environments end by process tree", mount, exc)
        return None
    return base


def _cgroup2_mount() -> Path | None:
    with contextlib.suppress(OSError), open("/proc/self/mounts") as mounts:
        for line in mounts:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                return Path(parts[1])
    return None


def _own_cgroup() -> str:
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as groups:
        for line in groups:
            if line.startswith("0::"):
                return line[3:].strip()
    return "/"


def _end_stale(base: Path) -> None:
    """Kill and remove the environments of routers of this namespace that are gone (a
    SIGKILLed router's environments' own children would otherwise live on)."""
    prefix = base.name.rsplit(".", 1)[0]
    for other in base.parent.glob(f"{prefix}.*"):
        owner = other.name.rsplit(".", 1)[1]
        if owner.isdigit() and other != base and not _alive(int(owner)):
            _remove(other)


def _remove(base: Path) -> None:
    with contextlib.suppress(OSError):
        (base / "cgroup.kill").write_text("1")  # the whole subtree
    for cell in [*base.glob("env-*"), base]:
        with contextlib.suppress(OSError):
            cell.rmdir()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _under_tmp(path: Path) -> bool:
    return Path("/tmp") in path.resolve().parents


def _code_under_tmp() -> bool:
    """Whether the code a router-path function imports (the router's working directory and
    import path: a checkout in /tmp, say) lives under /tmp, which a private /tmp would hide
    from its environments; then environments get a TMPDIR of their own instead."""
    places = [os.getcwd(), os.path.dirname(os.path.dirname(__file__)), *sys.path]
    return any(_under_tmp(Path(place)) for place in places if place)
