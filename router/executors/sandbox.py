"""Confining an execution environment's process, before any function code runs in it.

Applied by the environment's own first process: the Python worker calls `confine` before it
imports the handler; any other runtime is started through this file as a launcher
(`python -I -S sandbox.py '<config>' command...`), which confines itself and then execs the
runtime. Standard library only, so the launcher costs an interpreter start and nothing more.

What it does, each step only where the machine allows it:
- dies with its parent, the router (parent-death signal; a router SIGKILLed leaves no worker);
- joins its own cgroup (v2), so the environment's whole process tree is killed as one, even
  children that started sessions of their own;
- limits processes, file size and open files (rlimits) and never dumps core;
- gets a private /tmp of `ephemeral_storage_mb` (a tmpfs in a mount namespace of its own when
  the router is root; otherwise a private TMPDIR removed with the environment);
- drops to an unprivileged uid of its own (when the router is root and asked to).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
from typing import Any

PR_SET_PDEATHSIG = 1
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_NOSUID = 0x2
MS_NODEV = 0x4


class ConfineError(Exception):
    pass


def confine(config: dict[str, Any]) -> None:
    """Apply `config` (built by the router's `router.executors.cells`) to this process."""
    if config.get("cgroup"):
        _join_cgroup(str(config["cgroup"]))
    if config.get("tmpfs_mb"):
        uid = config.get("uid")
        _private_tmp(int(config["tmpfs_mb"]), -1 if uid is None else int(uid))
    _limit(config.get("limits", {}))
    if config.get("uid") is not None:
        _drop_privileges(int(config["uid"]), int(config["gid"]))
    # Last: a change of credentials clears the parent-death signal.
    _die_with_parent(int(config["parent"]))


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def _die_with_parent(parent: int) -> None:
    if _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise ConfineError(f"prctl(PR_SET_PDEATHSIG) failed: errno {ctypes.get_errno()}")
    if os.getppid() != parent:  # the router died before the signal was armed
        os._exit(1)


def _join_cgroup(path: str) -> None:
    with open(os.path.join(path, "cgroup.procs"), "w") as procs:
        procs.write("0")  # this process; everything it starts from now on follows it


def _private_tmp(size_mb: int, uid: int) -> None:
    libc = _libc()
    if libc.unshare(CLONE_NEWNS) != 0:
        raise ConfineError(f"unshare(CLONE_NEWNS) failed: errno {ctypes.get_errno()}")
    # Our mounts must not propagate back to the host's namespace.
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise ConfineError(f"making mounts private failed: errno {ctypes.get_errno()}")
    owner = f",uid={uid},gid={uid}" if uid >= 0 else ""
    options = f"size={size_mb}m,mode=1777{owner}".encode()
    if libc.mount(b"tmpfs", b"/tmp", b"tmpfs", MS_NOSUID | MS_NODEV, options) != 0:
        raise ConfineError(f"mounting a private /tmp failed: errno {ctypes.get_errno()}")


def _limit(limits: dict[str, int]) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for name, value in limits.items():
        kind = getattr(resource, f"RLIMIT_{name.upper()}")
        hard = resource.getrlimit(kind)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(kind, (value, value))


def _drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise ConfineError("could not drop privileges")


def launch(argv: list[str]) -> None:
    """`sandbox.py '<config json>' command args...`: confine, then become the command."""
    config = json.loads(argv[0])
    try:
        confine(config)
    except (ConfineError, OSError) as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        os._exit(126)
    try:
        os.execvp(argv[1], argv[1:])
    except OSError as exc:
        print(f"sandbox: cannot run {argv[1]}: {exc.strerror}", file=sys.stderr)
        os._exit(127)


if __name__ == "__main__":
    launch(sys.argv[1:])
