"""What a handler's process cannot do to the machine or outlive: its whole process tree ends
with its environment (a timeout, a scale-down, the router's death), its files are bounded, and
its /tmp is its own and gone with it. Python environments on the router's path, as those of
uploaded code have the same tests in test_runtimes."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Router, cleanup, running_router, start_router, stop, unique, wait_ready


@pytest.fixture(scope="module")
def quick() -> Iterator[Router]:
    """A router that stops idle environments after one second."""
    with running_router("confine", ROUTER_KEEP_WARM_S="1") as router:
        yield router


def invoke(router: Router, name: str, event: Any = None) -> httpx.Response:
    return router.http.post(f"/api/v1/functions/{name}/invoke", json=event or {}, timeout=60)


def gone(pid: int, within_s: float = 5) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":  # killed, waiting to be collected
            return True
        time.sleep(0.05)
    return False


def test_a_timeout_ends_children_in_sessions_of_their_own(quick: Router) -> None:
    name = unique("tree")
    quick.put_function(name, handler="testfns:spawn", timeout_s=1)
    response = invoke(quick, name, {"sleep": 5})
    assert response.status_code == 504
    logs = quick.http.get(
        f"/api/v1/functions/{name}/logs", params={"request_id": response.headers["X-Request-Id"]}
    )
    deadline = time.monotonic() + 5
    while not logs.json()["entries"] and time.monotonic() < deadline:
        time.sleep(0.1)
        logs = quick.http.get(
            f"/api/v1/functions/{name}/logs",
            params={"request_id": response.headers["X-Request-Id"]},
        )
    text = logs.json()["entries"][0]["text"]
    child = int(text.split("child ", 1)[1].split()[0])  # printed before the timeout: kept
    assert gone(child), "a setsid child outlived its environment's timeout"


def test_a_scale_down_ends_the_environment_and_its_children(quick: Router) -> None:
    name = unique("down")
    quick.put_function(name, handler="testfns:spawn")
    body = invoke(quick, name).json()
    assert not gone(body["child"], within_s=0.2)  # alive while its environment is
    assert gone(body["pid"], within_s=15), "the idle environment was not stopped"
    assert gone(body["child"]), "a child outlived its environment's scale-down"


def test_files_are_bounded_by_the_ephemeral_storage(quick: Router) -> None:
    name = unique("fsize")
    quick.put_function(name, handler="testfns:write_file", timeout_s=60, memory_mb=256)
    seen = invoke(quick, name, {"mb": 600}).json()
    assert seen["error"] in ("File too large", "No space left on device"), seen
    assert seen["written_mb"] <= 512


def test_tmp_is_private_and_gone_with_its_environment(quick: Router) -> None:
    first, second = unique("tmpa"), unique("tmpb")
    quick.put_function(first, handler="testfns:tmp_files")
    quick.put_function(second, handler="testfns:tmp_files")
    marker = unique("marker")
    mine = invoke(quick, first, {"marker": marker}).json()
    assert marker in mine["files"]
    assert marker not in invoke(quick, second).json()["files"]  # not another environment's
    assert not Path("/tmp", marker).exists()  # nor the machine's
    assert gone(mine["pid"], within_s=15)
    assert marker not in invoke(quick, first).json()["files"]  # gone with its environment


def test_a_type_error_in_a_handler_is_no_marshal_error(router: Router) -> None:
    name = unique("typeerr")
    router.put_function(name, handler="testfns:type_error")
    failed = invoke(router, name).json()
    assert failed["errorType"] == "TypeError"
    assert any("len(5)" in line for line in failed["stackTrace"])
    name = unique("marshal")
    router.put_function(name, handler="testfns:unserialisable")
    assert invoke(router, name).json()["errorType"] == "Runtime.MarshalError"


def test_environments_and_their_children_die_with_a_killed_router() -> None:
    namespace = unique("killed")
    process, port, log = start_router(namespace)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
        router = Router(namespace, port, process, log)
        name = unique("orphan")
        router.put_function(name, handler="testfns:spawn")
        body = invoke(router, name).json()
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert gone(body["pid"]), "an environment outlived its router"
    finally:
        if process.poll() is None:
            stop(process)
        cleanup(namespace)
    # Its children live in the dead router's cgroup (or, without one, are orphans): the next
    # router of the namespace ends them as it starts.
    process, port, log = start_router(namespace)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
        assert gone(body["child"]), "a child of a killed router's environment lived on"
    finally:
        stop(process)
        cleanup(namespace)


def test_an_event_larger_than_the_memory_is_out_of_memory(router: Router) -> None:
    name = unique("bigevent")
    router.put_function(name, handler="testfns:record", memory_mb=32)
    failed = router.http.post(
        f"/api/v1/functions/{name}/invoke", json={"blob": "x" * (5 * 1024 * 1024)}, timeout=60
    )
    assert failed.json()["errorType"] == "out_of_memory", failed.text


def test_function_names_cannot_take_another_functions_dead_letter_queue(router: Router) -> None:
    base = unique("q")
    router.put_function(base, handler="testfns:record")
    response = router.http.put(f"/api/v1/functions/{base}.dlq", json={"handler": "testfns:record"})
    assert response.status_code == 400
    assert response.json()["field"] == "name"


def test_a_handler_forging_replies_ends_its_environment_not_the_router(router: Router) -> None:
    name = unique("forge")
    router.put_function(name, handler="testfns:forge_reply", timeout_s=10)
    for event in ({"huge": True}, {}):
        failed = invoke(router, name, event).json()
        assert failed["errorType"] == "worker_lost", failed
        assert "broke its protocol" in failed["errorMessage"]
    assert router.http.get("/healthz").status_code == 200
    response = invoke(router, unique("gone"))  # the router still answers calls
    assert response.status_code == 404
