"""The admin API with a token: authentication, and a property-based run of Schemathesis
against the OpenAPI document of the running service (no 5xx, every response as documented).

This router gets a RabbitMQ virtual host of its own, so nothing the fuzzer creates can touch
exchanges anyone else uses.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import AMQP_URL, ROOT, Router, cleanup, start_router, stop, wait_ready

TOKEN = "s3cret-admin-token"
CHECKS = (
    "status_code_conformance,content_type_conformance,response_schema_conformance,"
    "response_headers_conformance"
)


@pytest.fixture(scope="module")
def secured() -> Iterator[Router]:
    vhost = f"test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    namespace = f"sec-{uuid.uuid4().hex[:8]}"
    process, port, log = start_router(
        namespace,
        ROUTER_ADMIN_TOKEN=TOKEN,
        ROUTER_HANDLERS="handlers.echo",
        ROUTER_BODY_TIMEOUT_S="1",
        ROUTER_AMQP_URL=AMQP_URL.rstrip("/") + "/" + vhost,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, log)
        router = Router(namespace, port, process, log)
        router.http.headers["Authorization"] = f"Bearer {TOKEN}"
        yield router
    finally:
        stop(process)
        cleanup(namespace)
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer", f"bearer{TOKEN}"],
)
def test_admin_calls_need_the_token(secured: Router, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in (
        ("GET", "/api/v1/functions"),
        ("PUT", "/api/v1/functions/x"),
        ("POST", "/api/v1/functions/x/invoke"),
        ("GET", "/api/v1/openapi.json"),
    ):
        response = httpx.request(method, secured.url + path, headers=headers, json={})
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "error" in response.json()


def test_the_token_opens_the_api_and_only_it(secured: Router) -> None:
    assert secured.http.get("/api/v1/functions").status_code == 200
    assert httpx.get(secured.url + "/healthz").status_code == 200  # operations stay open
    assert httpx.get(secured.url + "/metrics").status_code == 200
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "router",
            "functions",
            "list",
            "--url",
            secured.url,
            "--token",
            TOKEN,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert cli.returncode == 0
    refused = subprocess.run(
        [sys.executable, "-m", "router", "functions", "list", "--url", secured.url, "--token", ""],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "HTTP 401" in refused.stderr


def schemathesis(secured: Router, *args: str) -> subprocess.CompletedProcess[str]:
    command = shutil.which("st") or shutil.which("schemathesis")
    assert command, "schemathesis is installed with the test extras"
    return subprocess.run(
        [
            command,
            "run",
            f"{secured.url}/api/v1/openapi.json",
            "-H",
            f"Authorization: Bearer {TOKEN}",
            "-n",
            "20",
            "--seed",
            "20261127",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tempfile.gettempdir(),  # its cache stays out of the checkout
    )


def test_schemathesis_finds_no_server_errors_or_schema_mismatches(secured: Router) -> None:
    secured.put_function("echo", handler="handlers.echo:handler", isolation="thread")
    secured.put_trigger("echo-hook", function="echo", type="webhook")
    run = schemathesis(
        secured, "-c", f"not_a_server_error,{CHECKS}", "--exclude-path-regex", "invoke"
    )
    assert run.returncode == 0, run.stdout[-6000:]
    assert " passed" in run.stdout


def test_schemathesis_on_invoke_only_documented_answers(secured: Router) -> None:
    # Invoke's documented 502/504 are the function's own failures, not the router's.
    run = schemathesis(secured, "-c", CHECKS, "--include-path-regex", "invoke")
    assert run.returncode == 0, run.stdout[-6000:]


def test_slow_bodies_time_out(secured: Router) -> None:
    secured.put_function("slow-body", handler="handlers.echo:handler", isolation="thread")
    secured.put_trigger("slow-body", function="slow-body", type="webhook")
    host, port = secured.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            b"POST /hooks/slow-body HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        answer = connection.recv(4096).decode()  # the rest of the body never comes
    assert answer.startswith("HTTP/1.1 408"), answer
    assert '"error"' in answer
