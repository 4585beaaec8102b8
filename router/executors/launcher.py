"""Starting execution environments: which program runs for a function, in which directory,
with which environment variables and confinement, chosen by a table of runtime families.

`python` starts the Python worker (the router's own path, or an uploaded bundle first on
`sys.path`); `nodejs` and `provided` start a Runtime API process through the sandbox launcher.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from router import runtimes
from router.bundles import Bundles
from router.context import ARN_PREFIX
from router.executors.cells import Cell, Cells
from router.executors.environment import AnyEnvironment, Output
from router.executors.process import PythonWorker, _Pipes
from router.executors.runtime import RuntimeProcess
from router.specs import LATEST, FunctionSpec

SANDBOX = Path(__file__).resolve().parent / "sandbox.py"
# Variables a function never inherits from the router (they would hand it the admin API).
PRIVATE = ("ROUTER_ADMIN_TOKEN", "ROUTER_AWS_CREDENTIALS")
Start = Callable[["Launcher", str, FunctionSpec, str, Path | None, Cell], Awaitable[AnyEnvironment]]


class Launcher:
    def __init__(self, bundles: Bundles, cells: Cells) -> None:
        self._bundles = bundles
        self._cells = cells
        self._python_path = _python_path(bundles.directory.parent / "pythonpath")
        # A worker that drops to a uid of its own must still read the interpreter's library.

    async def start(
        self, function: str, spec: FunctionSpec, version: str = LATEST
    ) -> AnyEnvironment:
        """An environment of `version` of the function (`$LATEST` or a published number)."""
        task_root = await self._bundles.path(spec.code.sha256) if spec.code else None
        own_uid = spec.family != "python" or await self._bundle_python(spec) is not None
        cell = self._cells.create(
            untrusted=spec.code is not None and own_uid,
            storage_mb=spec.ephemeral_storage_mb,
            task_root=task_root,
        )
        if spec.code is not None:
            sha = spec.code.sha256
            self._bundles.hold(sha)
            cell.on_release.append(lambda: self._bundles.release(sha))
        try:
            return await STARTS[spec.family](self, function, spec, version, task_root, cell)
        except BaseException:
            self._cells.release(cell, None)
            raise

    async def _bundle_python(self, spec: FunctionSpec) -> str | None:
        """An interpreter any user may run, for uploaded Python under a uid of its own (None:
        uploaded Python runs as the router's user). Found once (it may start a process)."""
        if spec.code is None:
            return None
        return await asyncio.to_thread(runtimes.for_everyone, spec.runtime)

    async def _python(
        self, function: str, spec: FunctionSpec, version: str, task_root: Path | None, cell: Cell
    ) -> AnyEnvironment:
        spawned = time.perf_counter()
        if task_root is None:  # the router's own path: as the router runs, from its directory
            argv = [sys.executable, "-m", "router.executors.worker"]
            env = {
                **_inherited(),
                **lambda_variables(function, spec, version),
                **cell.env,
                **spec.env,
            }
            cwd = None
        else:  # uploaded code: nothing of the router's path but `router` itself
            shared = await self._bundle_python(spec)
            interpreter = shared or runtimes.python_interpreter(spec.runtime)
            argv = [interpreter, "-I", "-c", _WORKER]
            env = {**bundle_variables(function, spec, version, task_root), **cell.env, **spec.env}
            env["TRIGGER_ROUTER_PATH"] = str(self._python_path)
            cwd = "/"  # not the bundle: nothing of it may be imported before confinement
        loop = asyncio.get_running_loop()
        read, write = os.pipe()
        try:
            transport, pipes = await loop.subprocess_exec(
                lambda: _Pipes(loop),
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=write,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        worker = PythonWorker(transport, pipes, Output(read, loop), cell, self._cells, spec.version)
        await worker.initialise(
            {
                "function": function,
                "version": version,
                "handler": spec.handler,
                "memory_mb": spec.memory_mb,
                "timeout_s": spec.timeout_s,
                "task_root": None if task_root is None else str(task_root),
                "sandbox": cell.config,
            }
        )
        worker.init_ms = (time.perf_counter() - spawned) * 1000
        return worker

    async def _runtime_api(
        self, function: str, spec: FunctionSpec, version: str, task_root: Path | None, cell: Cell
    ) -> AnyEnvironment:
        assert task_root is not None  # validated: these runtimes need code
        env = {**bundle_variables(function, spec, version, task_root), **cell.env, **spec.env}
        if spec.family == "nodejs":
            heap = max(16, spec.memory_mb * 9 // 10)
            program = [runtimes.node(), f"--max-old-space-size={heap}", str(runtimes.NODE_CLIENT)]
            env["NODE_PATH"] = f"{task_root}/node_modules:{task_root}"
        else:
            program = [str(task_root / "bootstrap")]
        argv = [sys.executable, "-I", "-S", str(SANDBOX), json.dumps(cell.config), *program]
        return await RuntimeProcess.start(
            argv, env, task_root, cell, self._cells, spec.version, ARN_PREFIX + function
        )


STARTS: Mapping[str, Start] = {
    "python": Launcher._python,
    "nodejs": Launcher._runtime_api,
    "provided": Launcher._runtime_api,
}

# The uploaded-code worker's entry: `router` from a directory holding only it, found last.
_WORKER = (
    "import os,sys;sys.path.append(os.environ.pop('TRIGGER_ROUTER_PATH'));"
    "from router.executors.worker import main;sys.exit(main())"
)


def lambda_variables(function: str, spec: FunctionSpec, version: str = LATEST) -> dict[str, str]:
    """The variables Lambda sets in every execution environment."""
    region = os.environ.get("AWS_REGION", "local")
    return {
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_VERSION": version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(math.ceil(spec.timeout_s)),  # whole seconds, as Lambda
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[{version}]{os.getpid()}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime or runtimes.own_python()}",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
    }


def bundle_variables(
    function: str, spec: FunctionSpec, version: str, task_root: Path
) -> dict[str, str]:
    """A clean environment, as Lambda's: nothing of the router's own but PATH."""
    return {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "_HANDLER": spec.handler,
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(runtimes.NODE_CLIENT.parent.parent),
        **lambda_variables(function, spec, version),
    }


def _inherited() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in PRIVATE}


def _python_path(directory: Path) -> Path:
    """A directory holding only a link to the `router` package."""
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    link = directory / "router"
    target = runtimes.PACKAGE_PARENT / "router"
    if not link.is_symlink() or link.resolve() != target:
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    return directory
