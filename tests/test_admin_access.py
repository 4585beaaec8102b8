"""Who may use the admin API and what it may register: no default token and no trust in
loopback, handlers on the router's path only from the packages the operator allows, and
function `env` values that the API never shows again."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Router, cleanup, start_router, stop, unique, wait_ready


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Router, Path]]:
    """A router started without ROUTER_ADMIN_TOKEN."""
    token_file = tmp_path_factory.mktemp("token") / "admin-token"
    namespace = unique("gen")
    process, port, log = start_router(
        namespace, ROUTER_ADMIN_TOKEN="", ROUTER_TOKEN_FILE=str(token_file)
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
        yield Router(namespace, port, process, log), token_file
    finally:
        stop(process)
        cleanup(namespace)


def test_without_a_token_one_is_generated_and_kept_private(
    generated: tuple[Router, Path],
) -> None:
    router, token_file = generated
    mode = stat.S_IMODE(token_file.stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    token = token_file.read_text().strip()
    assert len(token) >= 32
    assert "change-me" not in token
    assert token not in router.log.read_text()  # its path is logged, never the token


def test_loopback_is_no_credential(generated: tuple[Router, Path]) -> None:
    """A reverse proxy on the same host (or a function's own code) connects from loopback."""
    router, token_file = generated
    refused = httpx.put(
        router.url + "/api/v1/functions/x", json={"handler": "handlers.echo:handler"}
    )
    assert refused.status_code == 401
    token = token_file.read_text().strip()
    allowed = httpx.get(
        router.url + "/api/v1/functions", headers={"Authorization": f"Bearer {token}"}
    )
    assert allowed.status_code == 200


def test_the_cli_on_the_host_finds_the_generated_token(generated: tuple[Router, Path]) -> None:
    router, token_file = generated
    env = {k: v for k, v in os.environ.items() if k != "ROUTER_ADMIN_TOKEN"}
    run = subprocess.run(
        [sys.executable, "-m", "router", "functions", "list", "--url", router.url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**env, "ROUTER_TOKEN_FILE": str(token_file)},
    )
    assert run.returncode == 0, run.stderr
    assert '"functions"' in run.stdout


@pytest.mark.parametrize(
    "handler",
    ["pty:spawn", "shutil:rmtree", "os:system", "subprocess.run", "handlersx.echo:handler"],
)
def test_handlers_on_the_router_path_only_from_allowed_packages(
    router: Router, handler: str
) -> None:
    response = router.http.put(f"/api/v1/functions/{unique('evil')}", json={"handler": handler})
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "handler"
    assert "ROUTER_HANDLERS" in response.json()["error"]


def test_env_values_are_write_only(router: Router) -> None:
    function = unique("envfn")
    spec = {"handler": "testfns:environment", "env": {"API_KEY": "hunter2", "MODE": "x"}}
    created = router.put_function(function, **spec).json()
    assert created["env"] == {"API_KEY": "<redacted>", "MODE": "<redacted>"}
    shown = router.http.get(f"/api/v1/functions/{function}").json()
    assert "hunter2" not in str(shown)
    # GET, edit, PUT back: the redacted value keeps the stored one.
    edited = {k: v for k, v in shown.items() if k not in ("name",)}
    edited["env"]["MODE"] = "y"
    router.http.put(f"/api/v1/functions/{function}", json=edited).raise_for_status()
    seen = router.http.post(
        f"/api/v1/functions/{function}/invoke", json={"names": ["API_KEY", "MODE"]}
    ).json()
    assert seen["env"] == {"API_KEY": "hunter2", "MODE": "y"}
    unknown = router.http.put(
        f"/api/v1/functions/{function}",
        json={"handler": "testfns:environment", "env": {"NEW": "<redacted>"}},
    )
    assert unknown.status_code == 400
    assert unknown.json()["field"] == "env.NEW"
