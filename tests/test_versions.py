"""Versions and aliases across the router: immutable published versions (their bundles kept
while any version uses them), aliases with weights, triggers and invoke naming `fn:7` or
`fn:alias`, and a queued event running the version it was queued for."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from typing import Any

import httpx
import pytest

from router.registry import Routing, Snapshot, Target
from router.specs import AliasSpec, FunctionSpec
from tests.conftest import ROOT, Router, unique
from tests.lambdaclients import handler_zip


def put_code(router: Router, name: str, mark: str, **spec: Any) -> dict[str, Any]:
    zipped = base64.b64encode(handler_zip(mark)).decode()
    fields = {"runtime": "python3.11", "handler": "lambda_function.lambda_handler", **spec}
    response = router.http.put(
        f"/api/v1/functions/{name}", json={**fields, "code": {"zip": zipped}}
    )
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def invoke(router: Router, target: str, event: Any = None) -> httpx.Response:
    return router.http.post(f"/api/v1/functions/{target}/invoke", json=event or {})


def test_publish_and_invoke_versions_through_the_admin_api(router: Router) -> None:
    name = unique("ver")
    put_code(router, name, "v1")
    first = router.http.post(f"/api/v1/functions/{name}/versions", json={"description": "one"})
    assert first.status_code == 201
    assert (first.json()["version"], first.json()["description"]) == ("1", "one")
    unchanged = router.http.post(f"/api/v1/functions/{name}/versions")
    assert (unchanged.status_code, unchanged.json()["version"]) == (200, "1")
    put_code(router, name, "v2")
    assert router.http.post(f"/api/v1/functions/{name}/versions").json()["version"] == "2"

    one = invoke(router, f"{name}:1")
    assert (one.json()["mark"], one.headers["X-Amz-Executed-Version"]) == ("v1", "1")
    assert invoke(router, name).headers["X-Amz-Executed-Version"] == "$LATEST"
    assert invoke(router, f"{name}:9").status_code == 404
    assert invoke(router, f"{name}:nope").status_code == 404

    alias = router.http.put(
        f"/api/v1/functions/{name}/aliases/live",
        json={"function_version": "1", "routing": {"2": 1.0}},
    )
    assert alias.status_code == 201, alias.text
    assert invoke(router, f"{name}:live").json()["mark"] == "v2"  # weight 1: always the other
    back = router.http.put(
        f"/api/v1/functions/{name}/aliases/live", json={**alias.json(), "routing": {}}
    )
    assert back.status_code == 200
    assert invoke(router, f"{name}:live").json()["mark"] == "v1"
    refused = router.http.put(
        f"/api/v1/functions/{name}/aliases/live",
        json={"function_version": "$LATEST", "routing": {"1": 0.5}},
    )
    assert refused.status_code == 400
    assert (
        router.http.put(
            f"/api/v1/functions/{name}/aliases/x", json={"function_version": "7"}
        ).status_code
        == 400
    )


def test_a_published_versions_bundle_is_kept_until_its_last_user_goes(router: Router) -> None:
    name, mark = unique("keep"), unique("only-here")  # a bundle no other function shares
    first = put_code(router, name, mark)
    router.http.post(f"/api/v1/functions/{name}/versions").raise_for_status()
    put_code(router, name, "v2")
    key = f"{router.namespace}:code:{base64.b64decode(first['code_sha256']).hex()}"
    assert router.redis.exists(key), "version 1 still uses the first bundle"
    assert invoke(router, f"{name}:1").json()["mark"] == mark
    assert router.http.delete(f"/api/v1/functions/{name}/versions/1").status_code == 204
    assert not router.redis.exists(key), "deleted with its last user"
    assert invoke(router, f"{name}:1").status_code == 404


def test_triggers_name_versions_and_aliases_that_exist(router: Router) -> None:
    name = unique("named")
    put_code(router, name, "v1")
    router.http.post(f"/api/v1/functions/{name}/versions").raise_for_status()
    router.http.put(f"/api/v1/functions/{name}/aliases/live", json={"function_version": "1"})
    for missing in (f"{name}:5", f"{name}:gone"):
        answer = router.http.put(
            f"/api/v1/triggers/{unique('t')}",
            json={"function": missing, "type": "webhook", "verify": {"scheme": "none"}},
        )
        assert answer.status_code == 400
        assert answer.json()["field"] == "function"
    hook = unique("hook")
    router.put_trigger(hook, function=f"{name}:live", type="webhook")
    assert httpx.post(f"{router.url}/hooks/{hook}", json={}).json()["version"] == "1"
    in_use = router.http.delete(f"/api/v1/functions/{name}/aliases/live")
    assert in_use.status_code == 409
    assert hook in in_use.json()["error"]
    assert router.http.delete(f"/api/v1/functions/{name}/versions/1").status_code == 409
    assert router.http.delete(f"/api/v1/functions/{name}").status_code == 409
    router.http.delete(f"/api/v1/triggers/{hook}").raise_for_status()
    assert router.http.delete(f"/api/v1/functions/{name}").status_code == 204
    assert router.http.get(f"/api/v1/functions/{name}/versions").status_code == 404
    aliases = router.redis.hkeys(f"{router.namespace}:aliases")
    assert not [a for a in aliases if a.decode().startswith(name + ":")]


def test_a_queued_event_runs_the_version_it_was_queued_for(router: Router) -> None:
    """The alias moves while the event waits: it still runs the version drawn when queued."""
    name = unique("queued")
    put_code(router, name, "v1", concurrency={"min": 0, "max": 1})
    router.http.post(f"/api/v1/functions/{name}/versions").raise_for_status()
    put_code(router, name, "v2", concurrency={"min": 0, "max": 1})
    router.http.post(f"/api/v1/functions/{name}/versions").raise_for_status()
    router.http.put(f"/api/v1/functions/{name}/aliases/live", json={"function_version": "1"})
    busy = threading.Thread(target=invoke, args=(router, f"{name}:2", {"sleep": 2}))
    busy.start()  # holds the only slot: the queued event waits behind it
    queued = router.http.post(f"/api/v1/functions/{name}:live/invoke?mode=async", json={"n": 1})
    assert queued.status_code == 202
    router.http.put(f"/api/v1/functions/{name}/aliases/live", json={"function_version": "2"})
    record = router.invocation(queued.json()["invocation_id"], ("succeeded",))
    busy.join()
    assert (record["function_version"], record["result"]["mark"]) == ("1", "v1")


def test_the_cli_publishes_and_moves_aliases(router: Router) -> None:
    name = unique("clivers")
    put_code(router, name, "v1")

    def cli(*args: str) -> Any:
        run = subprocess.run(
            [sys.executable, "-m", "router", *args, "--url", router.url],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        return json.loads(run.stdout) if run.stdout.strip() else None

    assert cli("versions", "publish", name, "--description", "first")["version"] == "1"
    put_code(router, name, "v2")
    cli("versions", "publish", name)
    assert [v["version"] for v in cli("versions", "list", name)["versions"]] == ["1", "2"]
    alias = cli("aliases", "put", name, "canary", "--version", "1", "--weight", "2=0.25")
    assert (alias["function_version"], alias["routing"]) == ("1", {"2": 0.25})
    assert cli("aliases", "list", name)["aliases"][0]["name"] == "canary"
    cli("aliases", "delete", name, "canary")
    assert cli("aliases", "list", name)["aliases"] == []


def spec(marker: str) -> FunctionSpec:
    return FunctionSpec(handler="handlers.echo:handler", description=marker)


def test_resolution_and_weighted_draws() -> None:
    snapshot = Snapshot(
        functions={"fn": spec("latest")},
        versions={"fn": {"1": spec("one"), "2": spec("two")}},
        aliases={
            "fn": {
                "live": AliasSpec(function_version="1", routing={"2": 0.25}),
                "latest": AliasSpec(function_version="$LATEST"),
            }
        },
    )
    cases = {
        "fn": ("$LATEST", "latest", None),
        "fn:$LATEST": ("$LATEST", "latest", None),
        "fn:2": ("2", "two", "2"),
        "fn:latest": ("$LATEST", "latest", "latest"),
    }
    for name, (version, marker, qualifier) in cases.items():
        found = snapshot.resolve(name)
        assert found is not None
        assert (found.version, found.spec.description, found.qualifier) == (
            version,
            marker,
            qualifier,
        )
    for missing in ("nope", "fn:3", "fn:other", "nope:1"):
        assert snapshot.resolve(missing) is None
    routing = snapshot.routing("fn:live")
    assert isinstance(routing, Routing)
    # Weight 0.25: draws below it run the additional version, the rest the alias's own.
    for draw, version in ((0.0, "2"), (0.2499, "2"), (0.25, "1"), (0.9, "1")):
        assert routing.pick(lambda d=draw: d).version == version  # type: ignore[misc]
    target = routing.pick(lambda: 0.1)
    assert isinstance(target, Target)
    assert target.qualifier == "live"


@pytest.mark.parametrize(
    "routing",
    [{"2": 1.5}, {"2": -0.1}, {"1": 0.5}, {"2": 0.1, "3": 0.1}, {"x": 0.5}],
)
def test_alias_routing_is_checked(routing: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="routing"):
        AliasSpec(function_version="1", routing=routing)


def test_a_version_is_validated_like_any_spec(router: Router) -> None:
    name = unique("long")
    put_code(router, name, "v1")
    refused = router.http.post(
        f"/api/v1/functions/{name}/versions", json={"description": "d" * 2000}
    )
    assert refused.status_code == 400
    assert refused.json()["field"] == "description"
    assert router.http.get(f"/api/v1/functions/{name}/versions").json()["versions"] == []
    assert router.http.post(f"/api/v1/functions/{name}/versions", json={}).status_code == 201
