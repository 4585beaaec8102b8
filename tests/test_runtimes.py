"""Uploaded code in any language, end to end: the contract of AWS's own examples (the custom
runtime tutorial's bash bootstrap, AWS's Python runtime interface client, Node.js handlers),
Go and Ruby programs written against the Runtime API with their standard libraries, Python
bundles on the fast worker; their errors, init errors, timeouts and memory limits; code
updates without a restart; and what a function can and cannot reach."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from router.cli import bundle
from tests.conftest import (
    ADMIN_TOKEN,
    ROOT,
    Router,
    cleanup,
    running_router,
    start_router,
    stop,
    unique,
    wait_ready,
)

RUNTIMES = Path(__file__).resolve().parent / "runtimes"


def deploy(router: Router, name: str, code: bytes, **spec: Any) -> dict[str, Any]:
    response = router.http.put(
        f"/api/v1/functions/{name}",
        json={**spec, "code": {"zip": base64.b64encode(code).decode()}},
    )
    assert response.status_code in (200, 201), response.text
    body: dict[str, Any] = response.json()
    return body


def bash(router: Router, name: str, handler: str, **spec: Any) -> dict[str, Any]:
    """The tutorial's bootstrap with one of function.sh's handlers."""
    code = bundle(RUNTIMES / "bash")
    return deploy(router, name, code, runtime="provided.al2023", handler=handler, **spec)


def invoke(router: Router, name: str, event: Any = None) -> httpx.Response:
    return router.http.post(f"/api/v1/functions/{name}/invoke", json=event or {}, timeout=60)


def logs(router: Router, name: str, request_id: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        entries = router.http.get(
            f"/api/v1/functions/{name}/logs", params={"request_id": request_id}
        ).json()["entries"]
        if entries:
            return "".join(e["text"] for e in entries)
        time.sleep(0.1)
    raise AssertionError(f"no log entry for {request_id}")


def folder(tmp_path: Path, source: str, **files: str) -> Path:
    """A copy of a fixture folder, with files added or replaced."""
    target = tmp_path / f"{source}-{unique('b')}"
    shutil.copytree(RUNTIMES / source, target, symlinks=True)
    for name, text in files.items():
        path = target / name
        path.write_text(text)
        if text.startswith("#!"):
            path.chmod(0o755)
    return target


def environment_of(function: str) -> list[tuple[int, dict[str, str]]]:
    """Processes (pid, environ) of a function's environments, found through /proc."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/environ").read_bytes()
        except OSError:
            continue
        env = dict(
            item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
        )
        if env.get("AWS_LAMBDA_FUNCTION_NAME") == function:
            found.append((int(entry.name), env))
    return found


@pytest.fixture(scope="module")
def go_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go program, built as Lambda users build theirs: a static `bootstrap`."""
    out = tmp_path_factory.mktemp("go")
    cache = tmp_path_factory.mktemp("gocache")
    subprocess.run(
        ["go", "build", "-o", str(out / "bootstrap"), str(RUNTIMES / "go" / "main.go")],
        check=True,
        cwd=RUNTIMES / "go",
        env={**os.environ, "CGO_ENABLED": "0", "GOCACHE": str(cache), "GOPATH": str(cache)},
        timeout=600,
    )
    return out


@pytest.fixture(scope="module")
def ric_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AWS's Python runtime interface client installed into the bundle, as its docs say."""
    target = tmp_path_factory.mktemp("ric")
    shutil.copytree(RUNTIMES / "ric", target, dirs_exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--target", str(target), "awslambdaric"],
        check=True,
        timeout=600,
    )
    return target


def test_the_tutorial_bash_bootstrap(router: Router) -> None:
    name = unique("bash")
    stored = bash(router, name, "function.handler")
    assert stored["code_size"] > 0
    response = invoke(router, name, {"hello": "bash"})
    assert response.status_code == 200, response.text
    assert response.json() == """Echoing request: '{"hello":"bash"}'"""
    request_id = response.headers["X-Request-Id"]
    text = logs(router, name, request_id)
    assert f"START RequestId: {request_id}" in text
    assert '{"hello":"bash"}' in text  # what the handler wrote to stderr
    assert re.search(rf"REPORT RequestId: {request_id}\tDuration: .*\tInit Duration: ", text)
    again = invoke(router, name, {"n": 2})  # warm: the same environment
    assert again.json() == """Echoing request: '{"n":2}'"""


def test_awslambdaric_in_a_bootstrap(router: Router, ric_bundle: Path) -> None:
    name = unique("ric")
    deploy(router, name, bundle(ric_bundle), runtime="provided.al2023", handler="app.handler")
    response = invoke(router, name, {"x": 1})
    assert response.status_code == 200, response.text
    assert response.json() == {"runtime": "awslambdaric", "event": {"x": 1}, "function": name}
    assert "awslambdaric ran" in logs(router, name, response.headers["X-Request-Id"])
    failed = invoke(router, name, {"fail": "on purpose"})
    assert failed.status_code == 502
    assert failed.json()["errorType"] == "RuntimeError"
    assert failed.json()["errorMessage"] == "on purpose"


def test_a_go_program_against_the_runtime_api(router: Router, go_bootstrap: Path) -> None:
    name = unique("go")
    deploy(router, name, bundle(go_bootstrap), runtime="provided.al2023", handler="unused")
    response = invoke(router, name, {"lang": "go"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["runtime"] == "go"
    assert body["event"] == {"lang": "go"}
    assert body["id"] == response.headers["X-Request-Id"]
    assert body["function"] == name
    assert body["memory"] == "128"
    assert body["arn"].endswith(f":function:{name}")
    assert body["trace"].startswith("Root=1-")
    assert int(body["deadline"]) > time.time() * 1000
    failed = invoke(router, name, {"fail": "go says no"})
    assert failed.status_code == 502
    assert failed.json()["errorType"] == "GoError"
    assert failed.json()["errorMessage"] == "go says no"
    assert invoke(router, name, {"after": "error"}).status_code == 200  # still warm


def test_a_ruby_script_against_the_runtime_api(router: Router) -> None:
    name = unique("ruby")
    deploy(router, name, bundle(RUNTIMES / "ruby"), runtime="provided", handler="x")
    response = invoke(router, name, {"lang": "ruby"})
    assert response.status_code == 200, response.text
    assert response.json()["runtime"] == "ruby"
    assert response.json()["event"] == {"lang": "ruby"}
    assert "ruby handling" in logs(router, name, response.headers["X-Request-Id"])


def test_nodejs_async_callback_and_esm_handlers(router: Router) -> None:
    code = bundle(RUNTIMES / "node")
    name = unique("node")
    deploy(router, name, code, runtime="nodejs20.x", handler="index.handler")
    response = invoke(router, name, {"lang": "js"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["runtime"] == "nodejs"
    assert body["event"] == {"lang": "js"}
    assert body["functionName"] == name
    assert body["memoryLimitInMB"] == "128"
    assert body["awsRequestId"] == response.headers["X-Request-Id"]
    assert 0 < body["remaining"] <= 3000
    text = logs(router, name, response.headers["X-Request-Id"])
    assert f"\t{response.headers['X-Request-Id']}\tINFO\tnode got" in text
    failed = invoke(router, name, {"fail": "bad input"})
    assert failed.status_code == 502
    assert failed.json()["errorType"] == "TypeError"
    assert failed.json()["errorMessage"] == "bad input"
    for handler, style in (("callback.handler", "callback"), ("esm.handler", "esm")):
        other = unique("node")
        deploy(router, other, code, runtime="nodejs22.x", handler=handler)
        answer = invoke(router, other, {"h": handler})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"style": style, "event": {"h": handler}}


@pytest.mark.parametrize(
    "handler",
    ["lambda_function.lambda_handler", "pkg/mod.fn", "pkg.mod.fn", "pkg.mod:fn"],
)
def test_python_bundles_take_lambdas_handler_forms(router: Router, handler: str) -> None:
    name = unique("py")
    deploy(router, name, bundle(RUNTIMES / "python"), runtime="python3.11", handler=handler)
    response = invoke(router, name, {"form": handler})
    assert response.status_code == 200, response.text
    if handler.startswith("lambda_function"):
        body = response.json()
        assert body["function_name"] == name
        assert body["task_root"] == body["cwd"]
        assert body["handler"] == handler
        assert 0 < body["remaining_ms"] <= 3000
        if os.geteuid() == 0:  # the router is root here: uploaded code gets a uid of its own
            assert body["uid"] != 0
    else:
        assert response.json() == {"from": "pkg.mod.fn", "event": {"form": handler}}


def test_a_python_bundle_cannot_shadow_the_worker_before_it_is_confined(
    router: Router, tmp_path: Path
) -> None:
    """Nothing of the bundle is importable until the worker has confined itself."""
    name = unique("shadow")
    code = folder(tmp_path, "python", **{"orjson.py": "raise SystemExit('imported too early')"})
    deploy(
        router, name, bundle(code), runtime="python3.11", handler="lambda_function.lambda_handler"
    )
    response = invoke(router, name)
    assert response.status_code == 200, response.text


def test_runtime_errors_init_errors_and_exits(router: Router, tmp_path: Path) -> None:
    post_error = (
        "#!/bin/bash\n"
        'api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"\n'
        "while true; do\n"
        '  id=$(curl -sS -D - -o /dev/null "$api/invocation/next" | '
        "grep -Fi Lambda-Runtime-Aws-Request-Id | tr -d '[:space:]' | cut -d: -f2)\n"
        "  curl -sS -H 'Lambda-Runtime-Function-Error-Type: Custom.Failure' "
        '-d \'{"errorMessage": "it broke", "errorType": "Custom.Failure", '
        '"stackTrace": ["line 1"]}\' "$api/invocation/$id/error"\n'
        "done\n"
    )
    init_error = (
        "#!/bin/bash\n"
        "echo 'cannot start: no config' >&2\n"
        'curl -sS -d \'{"errorMessage": "no config", "errorType": "Config.Missing"}\' '
        '"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/init/error"\n'
        "exit 1\n"
    )
    exits = "#!/bin/bash\necho 'bootstrap gives up' >&2\nexit 3\n"
    cases = {
        "post_error": (post_error, "Custom.Failure", "it broke"),
        "init_error": (init_error, "Config.Missing", "no config"),
        "exits": (exits, "Runtime.ExitError", "exit status 3"),
    }
    for case, (script, error_type, message) in cases.items():
        name = unique(case.replace("_", "-"))
        deploy(
            router,
            name,
            bundle(folder(tmp_path, "bash", bootstrap=script)),
            runtime="provided.al2023",
            handler="function.handler",
        )
        response = invoke(router, name)
        assert response.status_code == 502, (case, response.text)
        assert response.json()["errorType"] == error_type, case
        assert message in response.json()["errorMessage"], case
    # What the failing bootstrap said before it exited is in the error and the log.
    assert "bootstrap gives up" in response.json()["errorMessage"]


def test_a_response_over_6_mb_is_refused_with_413(router: Router, tmp_path: Path) -> None:
    too_big = (
        "#!/bin/bash\n"
        'api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"\n'
        "head -c 7000000 /dev/zero > /tmp/answer\n"
        "while true; do\n"
        '  id=$(curl -sS -D - -o /dev/null "$api/invocation/next" | '
        "grep -Fi Lambda-Runtime-Aws-Request-Id | tr -d '[:space:]' | cut -d: -f2)\n"
        '  curl -sS --data-binary @/tmp/answer "$api/invocation/$id/response"\n'
        "done\n"
    )
    name = unique("big")
    code = bundle(folder(tmp_path, "bash", bootstrap=too_big))
    deploy(router, name, code, runtime="provided.al2023", handler="x", timeout_s=20)
    response = invoke(router, name)
    assert response.status_code == 502, response.text[:300]
    assert response.json()["errorType"] == "Function.ResponseSizeTooLarge"
    invoke(router, name)  # what curl printed after its answer goes with the next invocation
    deadline = time.monotonic() + 10
    found: list[Any] = []
    while not found and time.monotonic() < deadline:
        found = router.http.get(
            f"/api/v1/functions/{name}/logs", params={"filter": "RequestEntityTooLarge"}
        ).json()["entries"]
        time.sleep(0.1)
    assert found, "the Runtime API did not answer the oversize response with 413"


def test_a_timeout_kills_the_bootstrap_and_everything_it_started(router: Router) -> None:
    name = unique("hang")
    deploy(
        router,
        name,
        bundle(RUNTIMES / "bash"),
        runtime="provided.al2023",
        handler="function.hang",
        timeout_s=1,
    )
    response = invoke(router, name)
    assert response.status_code == 504
    assert response.json()["errorMessage"] == "Task timed out after 1.00 seconds"
    text = logs(router, name, response.headers["X-Request-Id"])
    started = re.search(r"started (\d+) before hanging", text)  # output before the timeout
    assert started, text
    child = int(started.group(1))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists():
        time.sleep(0.1)
    assert not Path(f"/proc/{child}").exists(), "a child in its own session outlived the timeout"
    assert not environment_of(name)


def test_a_runtime_over_its_memory_is_killed(router: Router) -> None:
    name = unique("hog")
    deploy(
        router,
        name,
        bundle(RUNTIMES / "bash"),
        runtime="provided.al2023",
        handler="function.hog",
        memory_mb=64,
        timeout_s=20,
    )
    response = invoke(router, name)
    assert response.status_code == 502, response.text
    assert response.json()["errorType"] == "out_of_memory"


def test_a_code_change_takes_the_next_invocation_without_a_restart(
    router: Router, tmp_path: Path
) -> None:
    name = unique("upd")
    v1 = bundle(RUNTIMES / "python")
    source = (RUNTIMES / "python" / "lambda_function.py").read_text()
    v2 = bundle(folder(tmp_path, "python", **{"lambda_function.py": source.replace("v1", "v2")}))
    deploy(
        router,
        name,
        v1,
        runtime="python3.11",
        handler="lambda_function.lambda_handler",
        timeout_s=10,
        concurrency={"min": 0, "max": 2},
    )
    first = invoke(router, name).json()
    assert first["version"] == "v1"
    with httpx.Client(
        base_url=router.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as busy_client:
        import threading

        busy: dict[str, Any] = {}
        running = threading.Thread(
            target=lambda: busy.update(
                busy_client.post(f"/api/v1/functions/{name}/invoke", json={"sleep": 2}).json()
            )
        )
        running.start()
        time.sleep(0.5)  # the slow call is running on v1
        updated = router.http.put(
            f"/api/v1/functions/{name}/code",
            content=v2,
            headers={"Content-Type": "application/zip"},
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["code_sha256"] != first.get("code_sha256")
        after = invoke(router, name).json()
        running.join()
    assert after["version"] == "v2"
    assert busy["version"] == "v1"  # the busy environment finished its call on the old code
    assert after["pid"] != first["pid"]  # the idle v1 environment was not reused


def test_a_code_change_reaches_thread_handlers_too(router: Router, tmp_path: Path) -> None:
    """Code on the router's path: putting the function again after its file changed makes a
    new version, and thread/inline handlers load it afresh."""
    package = tmp_path / "reloadpkg"
    package.mkdir()
    module = ROOT / "handlers" / f"reload_{unique('m').replace('-', '_')}.py"
    try:
        module.write_text("def handler(event, context):\n    return 'first'\n")
        reference = f"handlers.{module.stem}:handler"
        name = unique("reload")
        router.put_function(name, handler=reference, isolation="thread")
        assert invoke(router, name).json() == "first"
        module.write_text("def handler(event, context):\n    return 'second'\n")
        stored = router.put_function(name, handler=reference, isolation="thread").json()
        assert stored["version"] == 2
        assert invoke(router, name).json() == "second"
    finally:
        module.unlink(missing_ok=True)


def test_a_bundle_is_stored_once_and_deleted_with_its_last_user(
    router: Router, tmp_path: Path
) -> None:
    code = bundle(folder(tmp_path, "python", **{"this-test.txt": unique("only here")}))
    sha = base64.b64encode(hashlib.sha256(code).digest()).decode()
    key = f"{router.namespace}:code:{hashlib.sha256(code).hexdigest()}"
    names = [unique("same"), unique("same")]
    for name in names:
        stored = deploy(
            router, name, code, runtime="python3.11", handler="lambda_function.lambda_handler"
        )
        assert stored["code_sha256"] == sha
        assert stored["code_size"] == len(code)
        assert "code" not in stored
    assert router.redis.exists(key)
    downloaded = router.http.get(f"/api/v1/functions/{names[0]}/code")
    assert downloaded.headers["Content-Type"] == "application/zip"
    assert downloaded.content == code
    router.http.delete(f"/api/v1/functions/{names[0]}").raise_for_status()
    assert router.redis.exists(key)
    router.http.delete(f"/api/v1/functions/{names[1]}").raise_for_status()
    assert not router.redis.exists(key)


def test_code_is_kept_when_a_spec_is_put_without_it(router: Router) -> None:
    name = unique("keep")
    stored = deploy(
        router,
        name,
        bundle(RUNTIMES / "python"),
        runtime="python3.11",
        handler="lambda_function.lambda_handler",
    )
    edited = {k: v for k, v in stored.items() if k not in ("name",)}
    edited["timeout_s"] = 7
    again = router.http.put(f"/api/v1/functions/{name}", json=edited).json()
    assert again["code_sha256"] == stored["code_sha256"]
    assert again["timeout_s"] == 7
    assert invoke(router, name).status_code == 200


def test_the_runtime_api_serves_only_its_own_environment(router: Router) -> None:
    name = unique("probe")
    deploy(
        router, name, bundle(RUNTIMES / "bash"), runtime="provided.al2023", handler="function.probe"
    )
    token_file = Path.home() / ".config" / "trigger-router" / "admin-token"
    event = {"token_file": str(token_file), "router_pid": router.process.pid, "admin": router.url}
    response = invoke(router, name, event)
    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["bogus_answer"] == 400  # an answer for an invocation that is not in flight
    processes = environment_of(name)
    assert processes
    address = processes[0][1]["AWS_LAMBDA_RUNTIME_API"]
    # Another user's process (this test, as root) is refused even from loopback.
    refused = httpx.get(f"http://{address}/2018-06-01/runtime/invocation/next", timeout=5)
    assert refused.status_code == 403
    assert refused.json()["errorType"] == "Forbidden"


def test_function_code_gets_no_admin_access(router: Router) -> None:
    name = unique("noadmin")
    deploy(
        router, name, bundle(RUNTIMES / "bash"), runtime="provided.al2023", handler="function.probe"
    )
    token_file = Path.home() / ".config" / "trigger-router" / "admin-token"
    event = {"token_file": str(token_file), "router_pid": router.process.pid, "admin": router.url}
    seen = invoke(router, name, event).json()
    assert seen["router_vars"] == 0  # no ROUTER_* variable reaches a function
    assert seen["token_bytes"] == 0
    assert seen["router_environ"] == 0  # nor the router's own environment
    assert seen["admin_status"] == 401  # loopback is no credential
    assert seen["uid"] != 0  # a uid of its own
    if Path("/tmp") not in Path(__file__).resolve().parents:
        assert 0 < seen["tmp_kb"] <= 512 * 1024  # a private /tmp of ephemeral_storage_mb
    # (A checkout under /tmp gives its environments a TMPDIR of their own instead: a private
    # /tmp would hide the checkout's code from them; see router.executors.cells.)


def test_a_runtime_the_machine_lacks_is_refused_at_deploy(router: Router) -> None:
    code = base64.b64encode(bundle(RUNTIMES / "python")).decode()
    handler = "lambda_function.lambda_handler"
    too_old = router.http.put(
        f"/api/v1/functions/{unique('old')}",
        json={"runtime": "python3.7", "handler": handler, "code": {"zip": code}},
    )
    assert too_old.status_code == 400
    assert too_old.json()["field"] == "runtime"
    response = router.http.put(
        f"/api/v1/functions/{unique('old')}",
        json={
            "runtime": "python3.19",
            "handler": "lambda_function.lambda_handler",
            "code": {"zip": base64.b64encode(bundle(RUNTIMES / "python")).decode()},
        },
    )
    assert response.status_code == 400
    assert response.json()["field"] == "runtime"
    assert "python3.11" in response.json()["error"]  # it names what it has


def test_another_python_runs_on_its_own_interpreter(tmp_path: Path) -> None:
    """python3.12 on a machine that has it, though the router runs on 3.11 (without orjson
    there, the worker speaks the standard library's json)."""
    installed = sorted(Path("/").glob("root/.pyenv/versions/3.12*/bin/python3.12"))
    assert installed, "this machine kind has python3.12 under pyenv; the test needs it"
    path = f"{installed[0].parent}:{os.environ['PATH']}"
    with running_router("py312", PATH=path) as router:
        source = "import sys\ndef handler(event, context):\n    return list(sys.version_info[:2])\n"
        code = bundle(folder(tmp_path, "python", **{"which.py": source}))
        deploy(router, "py312", code, runtime="python3.12", handler="which.handler")
        response = invoke(router, "py312")
        assert response.status_code == 200, response.text
        assert response.json() == [3, 12]


def test_node_is_required_for_nodejs_runtimes() -> None:
    bare_path = "/usr/local/sbin:/usr/sbin:/sbin"  # no node on it
    with running_router("nonode", PATH=f"{Path(sys.executable).parent}:{bare_path}") as router:
        code = bundle(RUNTIMES / "python")
        response = router.http.put(
            f"/api/v1/functions/{unique('js')}",
            json={
                "runtime": "nodejs20.x",
                "handler": "index.handler",
                "code": {"zip": base64.b64encode(code).decode()},
            },
        )
        assert response.status_code == 400
        assert response.json()["field"] == "runtime"
        assert "node" in response.json()["error"]


def test_a_provided_bundle_needs_an_executable_bootstrap(router: Router, tmp_path: Path) -> None:
    code = folder(tmp_path, "bash")
    (code / "bootstrap").chmod(0o644)
    response = router.http.put(
        f"/api/v1/functions/{unique('noboot')}",
        json={
            "runtime": "provided.al2023",
            "handler": "function.handler",
            "code": {"zip": base64.b64encode(bundle(code)).decode()},
        },
    )
    assert response.status_code == 400
    assert "bootstrap" in response.json()["error"]


def test_the_cli_deploys_a_folder_and_a_zip(router: Router, tmp_path: Path) -> None:
    name = unique("cli")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "router", *args, "--url", router.url],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )

    created = cli(
        "deploy", name, str(RUNTIMES / "bash"), "--runtime", "provided.al2023",
        "--handler", "function.handler", "--timeout-s", "5", "--env", "GREETING=hej",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    sha = created.stdout.strip()
    assert len(base64.b64decode(sha)) == 32
    assert invoke(router, name, {"via": "cli"}).json() == """Echoing request: '{"via":"cli"}'"""
    archive = tmp_path / "code.zip"
    archive.write_bytes(bundle(RUNTIMES / "ruby"))
    updated = cli("deploy", name, str(archive), "--runtime", "provided")
    assert updated.returncode == 0, updated.stderr
    assert updated.stdout.strip() != sha
    stored = router.http.get(f"/api/v1/functions/{name}").json()
    assert stored["timeout_s"] == 5  # kept from before
    assert stored["env"] == {"GREETING": "<redacted>"}
    assert invoke(router, name, {"via": "zip"}).json()["runtime"] == "ruby"
    missing = cli("deploy", name, str(tmp_path / "nothing-here"))
    assert missing.returncode == 1
    assert "neither a folder nor a .zip" in missing.stderr


def test_runtime_functions_run_async_with_retries_and_dead_letters(
    router: Router, go_bootstrap: Path
) -> None:
    name = unique("goasync")
    deploy(
        router,
        name,
        bundle(go_bootstrap),
        runtime="provided.al2023",
        handler="x",
        retry={"max_attempts": 2, "backoff_s": 0},
    )
    ok = router.http.post(f"/api/v1/functions/{name}/invoke?mode=async", json={"a": 1})
    assert ok.status_code == 202
    assert (
        router.invocation(ok.json()["invocation_id"], ("succeeded",))["result"]["runtime"] == "go"
    )
    bad = router.http.post(f"/api/v1/functions/{name}/invoke?mode=async", json={"fail": "x"})
    record = router.invocation(bad.json()["invocation_id"], ("dead_lettered",), timeout=30)
    assert record["error"]["type"] == "GoError"
    assert record["attempt"] == 2
    assert router.metric("router_cold_starts_total", function=name) >= 1


def test_environments_die_with_a_killed_router() -> None:
    namespace = unique("diewith")
    process, port, log = start_router(namespace)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
        router = Router(namespace, port, process, log)
        name = unique("orphan")
        deploy(
            router,
            name,
            bundle(RUNTIMES / "bash"),
            runtime="provided.al2023",
            handler="function.handler",
        )
        assert invoke(router, name).status_code == 200
        pids = [pid for pid, _ in environment_of(name)]
        assert pids
        process.send_signal(signal.SIGKILL)
        process.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in pids):
            time.sleep(0.1)
        assert not [p for p in pids if Path(f"/proc/{p}/stat").exists()]
    finally:
        if process.poll() is None:
            stop(process)
        cleanup(namespace)


def test_the_owner_of_a_loopback_connection_is_known() -> None:
    """The Runtime API's peer check: the kernel says which uid owns a connection's other end."""
    import socket

    from router.runtimeapi import socket_owner

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            accepted, _ = server.accept()
            with accepted:
                ours = client.getsockname()[1]
                assert socket_owner(ours, server.getsockname()[1]) == os.getuid()
                assert socket_owner(ours, server.getsockname()[1] + 1) is None  # no such socket
