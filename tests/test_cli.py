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
    invocation_id = queued.stdout.strip()  # the id itself, as --async's help says
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


def test_update_changes_one_field_and_keeps_the_rest(router: Router) -> None:
    function = unique("upd")
    router.put_function(function, handler="testfns:record", isolation="thread", memory_mb=256)
    updated = cli(router, "functions", "update", function, "--timeout-s", "9")
    assert updated.returncode == 0, updated.stderr
    stored = json.loads(updated.stdout)
    assert stored["timeout_s"] == 9
    assert stored["handler"] == "testfns:record"
    assert stored["memory_mb"] == 256
    assert stored["version"] == 2
    patched = router.http.patch(f"/api/v1/functions/{function}", json={"memory_mb": 512})
    assert patched.json()["memory_mb"] == 512
    assert patched.json()["timeout_s"] == 9
    bad = router.http.patch(f"/api/v1/functions/{function}", json={"timeout_s": 0})
    assert bad.status_code == 400
    assert bad.json()["field"] == "timeout_s"


def test_names_are_encoded_and_bad_ones_are_clear_errors(router: Router) -> None:
    result = cli(router, "functions", "put", "bad name!", "--handler", "testfns:record")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "HTTP 400" in result.stderr
    assert "invalid name" in result.stderr


def test_lists_are_json_when_piped_and_tables_when_asked(router: Router) -> None:
    function = unique("tbl")
    router.put_function(function, handler="testfns:record", isolation="thread")
    piped = cli(router, "functions", "list")
    assert json.loads(piped.stdout)["functions"]
    table = cli(router, "functions", "list", "--output", "table")
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "RUNTIME", "HANDLER"]
    assert any(line.startswith(function) and "testfns:record" in line for line in lines)


def test_triggers_put_takes_flags_for_every_field(router: Router) -> None:
    function, hook, queue = unique("flags"), unique("hook"), unique("amqp")
    router.put_function(function, handler="testfns:record", isolation="thread")
    made = cli(
        router, "triggers", "put", hook, "--function", function, "--type", "webhook",
        "--mode", "async", "--verify-scheme", "github", "--secret", "s3cret",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    stored = json.loads(made.stdout)
    assert stored["verify"] == {**stored["verify"], "scheme": "github", "secrets": ["<redacted>"]}
    assert stored["mode"] == "async"
    bound = cli(
        router, "triggers", "put", queue, "--function", function, "--type", "amqp",
        "--exchange", f"{router.namespace}-orders", "--routing-key", "order.*",
        "--filter", '{"body": {"region": ["eu"]}}',
    )  # fmt: skip
    assert bound.returncode == 0, bound.stderr
    assert json.loads(bound.stdout)["filter"] == {"body": {"region": ["eu"]}}


def test_invoke_async_prints_the_invocation_id(router: Router) -> None:
    function = unique("asyncid")
    router.put_function(function, handler="testfns:record", isolation="thread")
    result = cli(router, "invoke", function, '{"a": 1}', "--async")
    assert result.returncode == 0, result.stderr
    invocation_id = result.stdout.strip()
    assert router.invocation(invocation_id, ("succeeded",))["id"] == invocation_id
