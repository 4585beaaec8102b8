"""The Lambda API with AWS's other tools: the AWS CLI (from PyPI) and the JavaScript SDK
(`@aws-sdk/client-lambda` from npm, driven by the machine's `node`), each with nothing but an
endpoint URL; and the same functions seen through the admin API, the router's CLI, webhooks
and AMQP triggers."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pika

from tests.conftest import ROOT, Router, unique
from tests.lambdaclients import aws_environment, aws_router, create, handler_zip, lambda_client

__all__ = ["aws_router"]  # the fixture
JS = Path(__file__).resolve().parent / "lambda_js"


def aws(router: Router, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = shutil.which("aws")
    assert command, "the AWS CLI is installed with the test extras (pip install awscli)"
    return subprocess.run(
        [command, "lambda", *args, "--endpoint-url", router.url],
        env=aws_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_the_aws_cli_invokes_and_updates_code(aws_router: Router, tmp_path: Path) -> None:
    name = unique("cli")
    create(lambda_client(aws_router.url), name)
    out = tmp_path / "out.json"
    invoked = aws(
        aws_router,
        "invoke",
        "--function-name",
        name,
        "--payload",
        '{"from": "cli"}',  # v1 sends it as is (v2 wants --cli-binary-format)
        "--log-type",
        "Tail",
        str(out),
    )
    assert invoked.returncode == 0, invoked.stderr
    answer = json.loads(invoked.stdout)
    assert (answer["StatusCode"], answer["ExecutedVersion"]) == (200, "$LATEST")
    result = json.loads(out.read_text())
    assert (result["mark"], result["event"]) == ("v1", {"from": "cli"})

    bundle = tmp_path / "function.zip"
    bundle.write_bytes(handler_zip("from-cli"))
    updated = aws(
        aws_router,
        "update-function-code",
        "--function-name",
        name,
        "--zip-file",
        f"fileb://{bundle}",
    )
    assert updated.returncode == 0, updated.stderr
    assert json.loads(updated.stdout)["LastUpdateStatus"] == "Successful"
    waited = aws(aws_router, "wait", "function-updated-v2", "--function-name", name)
    assert waited.returncode == 0, waited.stderr
    again = aws(aws_router, "invoke", "--function-name", name, str(out))
    assert again.returncode == 0, again.stderr
    assert json.loads(out.read_text())["mark"] == "from-cli"
    missing = aws(aws_router, "get-function", "--function-name", unique("missing"))
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr


def installed_js_sdk() -> None:
    """`scripts/test` installs it; run alone, the test installs it the same way."""
    if (JS / "node_modules" / "@aws-sdk" / "client-lambda").is_dir():
        return
    npm = shutil.which("npm")
    assert npm, "npm is needed for the JavaScript SDK test (apt-get install npm)"
    subprocess.run(
        [
            npm,
            "ci" if (JS / "package-lock.json").exists() else "install",
            "--no-audit",
            "--no-fund",
        ],
        cwd=JS,
        check=True,
        capture_output=True,
        timeout=300,
    )


def test_the_javascript_sdk(aws_router: Router, tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is installed by scripts/test"
    installed_js_sdk()
    name = unique("js")
    first, second = tmp_path / "v1.zip", tmp_path / "v2.zip"
    first.write_bytes(handler_zip("v1"))
    second.write_bytes(handler_zip("v2"))
    run = subprocess.run(
        [node, str(JS / "client.mjs"), aws_router.url, name, str(first), str(second)],
        env=aws_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=JS,
    )
    assert run.returncode == 0, run.stderr
    seen: dict[str, Any] = json.loads(run.stdout)
    assert seen["created"]["state"] == "Active"
    assert seen["invoked"]["status"] == 200
    assert seen["invoked"]["executed"] == "$LATEST"
    assert seen["invoked"]["payload"]["event"] == {"from": "js"}
    assert seen["invoked"]["payload"]["colour"] == "green"
    assert "REPORT RequestId:" in seen["invoked"]["log"]
    assert seen["after_update"] == {"latest": "v2", "live": "v1", "live_version": "1"}
    assert seen["failed"]["error"] == "Unhandled"
    assert seen["failed"]["payload"]["errorType"] == "ValueError"
    assert seen["listed"] is True
    assert httpx.get(seen["location"]).content == second.read_bytes()  # $LATEST, updated
    assert seen["missing"] == {"name": "ResourceNotFoundException", "isClass": True, "status": 404}


def test_one_registry_for_every_api(aws_router: Router, amqp: Any) -> None:
    """Made through the Lambda API: the admin API, the router's CLI, webhooks and AMQP
    triggers see the same function, its versions and aliases; and the other way round."""
    client = lambda_client(aws_router.url)
    name = unique("shared")
    create(client, name, Publish=True)
    client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    client.update_function_code(FunctionName=name, ZipFile=handler_zip("v2"))

    admin = aws_router.http.get(f"/api/v1/functions/{name}").json()
    assert (admin["runtime"], admin["role"]) == (
        "python3.11",
        "arn:aws:iam::123456789012:role/lambda-role",
    )
    versions = aws_router.http.get(f"/api/v1/functions/{name}/versions").json()["versions"]
    assert [v["version"] for v in versions] == ["1"]
    alias = aws_router.http.get(f"/api/v1/functions/{name}/aliases/live").json()
    assert alias["function_version"] == "1"
    cli = subprocess.run(
        [sys.executable, "-m", "router", "aliases", "list", name, "--url", aws_router.url],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["aliases"][0]["name"] == "live"

    aws_router.put_trigger(f"{name}-hook", function=f"{name}:live", type="webhook")
    hooked = httpx.post(f"{aws_router.url}/hooks/{name}-hook", json={"via": "webhook"}).json()
    assert (hooked["mark"], hooked["version"]) == ("v1", "1")

    exchange = f"{aws_router.namespace}-orders"
    aws_router.put_trigger(
        f"{name}-amqp", function=f"{name}:1", type="amqp", exchange=exchange, routing_key=name
    )
    amqp.basic_publish(
        exchange,
        name,
        json.dumps({"via": "amqp"}).encode(),
        pika.BasicProperties(message_id=unique("msg")),
    )
    entries = wait_logs(aws_router, name, '"via": "amqp"')
    assert "Version: 1" in entries

    admin_made = unique("admin")
    aws_router.http.put(
        f"/api/v1/functions/{admin_made}",
        json={"handler": "testfns:record", "isolation": "thread"},
    ).raise_for_status()
    listed = {f["FunctionName"] for f in client.list_functions(MaxItems=10_000)["Functions"]}
    assert admin_made in listed
    answer = client.invoke(FunctionName=admin_made, Payload=b'{"a": 1}')
    assert json.loads(answer["Payload"].read())["ok"] is True
    published = aws_router.http.post(f"/api/v1/functions/{admin_made}/versions", json={})
    assert published.status_code == 201
    assert client.invoke(FunctionName=admin_made, Qualifier="1")["ExecutedVersion"] == "1"


def wait_logs(router: Router, function: str, text: str, timeout: float = 20) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = router.http.get(f"/api/v1/functions/{function}/logs").json()["entries"]
        found = [e["text"] for e in entries if text in e["text"]]
        if found:
            return "".join(found)
        time.sleep(0.1)
    raise AssertionError(f"no log of {function} says {text!r}")
