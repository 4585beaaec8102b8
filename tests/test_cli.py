"""Point 2 through the CLI: the same registry operations, with clear errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT, Router, unique


def cli(router: Router, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "router", *args, "--url", router.url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        input=stdin,
        timeout=60,
    )


def test_functions_and_triggers_through_the_cli(router: Router) -> None:
    function, trigger = unique("cli"), unique("cli")
    put = cli(
        router,
        "functions",
        "put",
        function,
        "--handler",
        "testfns:record",
        "--timeout-s",
        "10",
        "--isolation",
        "thread",
    )
    assert put.returncode == 0, put.stderr
    assert json.loads(put.stdout)["timeout_s"] == 10
    listed = cli(router, "functions", "list")
    assert function in [f["name"] for f in json.loads(listed.stdout)["functions"]]
    spec = json.dumps(
        {"function": function, "type": "webhook", "mode": "async", "verify": {"scheme": "none"}}
    )
    assert cli(router, "triggers", "put", trigger, spec).returncode == 0
    got = cli(router, "triggers", "get", trigger)
    assert json.loads(got.stdout)["mode"] == "async"
    invoked = cli(router, "invoke", function, '{"via": "cli"}')
    assert json.loads(invoked.stdout)["ok"] is True
    queued = cli(router, "invoke", function, "--async", "-f", "-", stdin='{"via": "stdin"}')
    invocation_id = json.loads(queued.stdout)["invocation_id"]
    router.invocation(invocation_id, ("succeeded",))
    shown = cli(router, "invocations", "get", invocation_id)
    assert json.loads(shown.stdout)["status"] == "succeeded"
    assert cli(router, "triggers", "delete", trigger).returncode == 0
    assert cli(router, "functions", "delete", function).returncode == 0
    assert cli(router, "functions", "get", function).returncode == 1


def test_cli_errors_are_clear(router: Router) -> None:
    bad = cli(router, "functions", "put", unique("cli"), "--handler", "nocolon")
    assert bad.returncode == 1
    assert "HTTP 400" in bad.stderr
    assert "handler" in bad.stderr
    not_json = cli(router, "triggers", "put", unique("cli"), "{oops")
    assert not_json.returncode == 1
    assert "not valid JSON" in not_json.stderr
    unreachable = subprocess.run(
        [sys.executable, "-m", "router", "functions", "list", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unreachable.returncode == 1
    assert "cannot reach the router" in unreachable.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "router", "functions"], capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 2


def test_serve_rejects_bad_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "router", "serve", "--port", "notaport"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "ROUTER_PORT" in result.stderr
