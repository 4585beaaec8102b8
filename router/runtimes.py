"""Runtimes: which program an execution environment runs, and whether this machine has it.

`python3.x` runs the router's own fast worker (`router.executors.worker`) on that interpreter
with the bundle first on `sys.path`; `nodejsNN.x` runs the machine's `node` with the runtime
client shipped in `router/runtimes/nodejs/`; `provided*` runs the bundle's own `bootstrap`. Every
runtime but Python's worker speaks the Lambda Runtime API to the router.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import router

PACKAGE_PARENT = Path(router.__file__).resolve().parent.parent
NODE_CLIENT = Path(router.__file__).resolve().parent / "runtimes" / "nodejs" / "runtime.mjs"
_PYTHON = re.compile(r"^python3\.(\d{1,2})$")


class RuntimeUnavailable(Exception):
    """The machine cannot run this runtime; the message names what it can run."""


def own_python() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def python_interpreter(runtime: str | None) -> str:
    """The interpreter for a `python3.x` runtime (the router's own when it matches)."""
    if runtime is None or runtime == own_python():
        return sys.executable
    found = _interpreter(runtime)
    if found is None:
        raise RuntimeUnavailable(
            f"runtime {runtime!r} is not installed on this machine; it has "
            + ", ".join(available_pythons())
        )
    return found


def available_pythons() -> list[str]:
    names = {own_python()}
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        for candidate in Path(directory).glob("python3.*") if directory else ():
            if _PYTHON.match(candidate.name) and _interpreter(candidate.name):
                names.add(candidate.name)
    return sorted(names, key=lambda name: int(name.split(".")[1]))


@functools.cache
def _interpreter(name: str, path: str | None = None) -> str | None:
    """The real executable behind `name` (on PATH, or at `path`), if it runs and is that
    version (a version manager's shim may be on PATH for a version it will not run)."""
    found = path or shutil.which(name)
    if found is None:
        return None
    wanted = name.removeprefix("python")
    probe = "import os, sys; print(sys.executable); print('%d.%d' % sys.version_info[:2])"
    try:
        run = subprocess.run(
            [found, "-c", probe], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = run.stdout.split()
    if run.returncode != 0 or len(lines) != 2 or lines[1] != wanted:
        return None
    return lines[0]


def for_everyone(runtime: str | None) -> str | None:
    """An interpreter for `runtime` that any user can run, standard library included, so
    that uploaded code can run under a uid of its own: the router's, or else one the machine
    has (Debian's /usr/bin/python3.x beside a Python under /root, say)."""
    interpreter = python_interpreter(runtime)
    if readable_by_all(_library_of(interpreter)):
        return interpreter
    name = runtime or own_python()
    for candidate in (f"/usr/bin/{name}", f"/usr/local/bin/{name}"):
        found = _interpreter(name, candidate) if os.path.exists(candidate) else None
        if found and readable_by_all(_library_of(found)):
            return found
    return None


@functools.cache
def _library_of(interpreter: str) -> tuple[Path, ...]:
    """The interpreter and its standard library's files (as a uid of its own must read them)."""
    probe = "import os; print(os.__file__)"
    try:
        run = subprocess.run(
            [interpreter, "-I", "-c", probe], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return (Path(interpreter).resolve(),)
    library = Path(run.stdout.strip()).resolve() if run.returncode == 0 else None
    return (Path(interpreter).resolve(), *([library] if library else []))


def readable_by_all(paths: tuple[Path, ...] | list[Path]) -> bool:
    """Whether any user can read these files (every directory above them searchable)."""
    for path in paths:
        try:
            if not path.stat().st_mode & stat.S_IROTH:
                return False
            if any(not parent.stat().st_mode & stat.S_IXOTH for parent in path.parents):
                return False
        except OSError:
            return False
    return True


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise RuntimeUnavailable(
            "Node.js runtimes need `node` on the router's PATH, and it is not there"
        )
    return found


def check(runtime: str | None) -> None:
    """Raise RuntimeUnavailable unless this machine can run `runtime`."""
    if runtime is None or runtime.startswith("python"):
        python_interpreter(runtime)
    elif runtime.startswith("nodejs"):
        node()
