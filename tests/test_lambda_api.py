"""The Lambda API with AWS's own Python client: boto3 against a real router, with nothing but an
endpoint URL and a key of ROUTER_AWS_CREDENTIALS."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.conftest import Router, unique
from tests.lambdaclients import (
    KEY,
    SECRET,
    aws_router,
    create,
    handler_zip,
    lambda_client,
)

__all__ = ["aws_router"]  # the fixture


@pytest.fixture(scope="module")
def client(aws_router: Router) -> Any:
    return lambda_client(aws_router.url)


def payload(response: dict[str, Any]) -> Any:
    return json.loads(response["Payload"].read())


def test_create_from_a_zip_wait_invoke_with_tail_and_download(client: Any) -> None:
    name = unique("hello")
    created = create(
        client, name, Environment={"Variables": {"COLOUR": "teal"}}, Timeout=5, MemorySize=256
    )
    data = handler_zip()
    assert created["CodeSha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert (created["Version"], created["State"], created["Role"]) == (
        "$LATEST",
        "Active",
        "arn:aws:iam::123456789012:role/lambda-role",
    )
    client.get_waiter("function_active_v2").wait(FunctionName=name)
    client.get_waiter("function_updated_v2").wait(FunctionName=name)

    answer = client.invoke(FunctionName=name, Payload=b'{"n": 1}', LogType="Tail")
    assert answer["StatusCode"] == 200
    assert answer["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in answer
    result = payload(answer)
    assert (result["mark"], result["colour"], result["event"]) == ("v1", "teal", {"n": 1})
    log = base64.b64decode(answer["LogResult"]).decode()
    assert f"START RequestId: {answer['ResponseMetadata']['RequestId']} Version: $LATEST" in log
    assert "ran v1 as $LATEST" in log
    assert "REPORT RequestId:" in log
    assert "Billed Duration" in log

    assert payload(client.invoke(FunctionName=name))["event"] == {}  # no payload: {}

    found = client.get_function(FunctionName=name)
    assert found["Configuration"]["Environment"]["Variables"] == {"COLOUR": "teal"}
    assert (found["Configuration"]["Timeout"], found["Configuration"]["MemorySize"]) == (5, 256)
    location = found["Code"]["Location"]
    assert httpx.get(location).content == data  # no other credentials needed
    tampered = location.replace("X-Amz-Expires=600", "X-Amz-Expires=6000")
    assert httpx.get(tampered).status_code == 403


def test_errors_raise_boto3s_own_classes(client: Any, aws_router: Router) -> None:
    name = unique("errors")
    create(client, name)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName=unique("missing"))
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName=f"{name}:9")
    with pytest.raises(client.exceptions.ResourceConflictException):
        create(client, name)
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="MemorySize"):
        client.update_function_configuration(FunctionName=name, MemorySize=20000)
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="Runtime"):
        create(client, unique("old"), Runtime="python2.7")
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="ZipFile"):
        client.update_function_code(FunctionName=name, ImageUri="example/image:1")
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="unzip"):
        client.update_function_code(FunctionName=name, ZipFile=b"not a zip")
    with pytest.raises(client.exceptions.RequestTooLargeException):
        client.invoke(FunctionName=name, Payload=b'"' + b"x" * (6 * 1024 * 1024) + b'"')

    failed = client.invoke(FunctionName=name, Payload=b'{"fail": true}')
    assert (failed["StatusCode"], failed["FunctionError"]) == (200, "Unhandled")
    error = payload(failed)
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "it failed on purpose")
    assert error["stackTrace"]


def test_concurrency_and_throttles(client: Any, aws_router: Router) -> None:
    name = unique("busy")
    create(client, name)
    assert (
        client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=1)[
            "ReservedConcurrentExecutions"
        ]
        == 1
    )
    assert client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 1
    assert aws_router.http.get(f"/api/v1/functions/{name}").json()["concurrency"]["max"] == 1
    client.invoke(FunctionName=name)  # warm: the slow call below starts at once
    throttled = None
    with ThreadPoolExecutor(1) as pool:
        for _ in range(20):  # until a call comes while the slow one holds the only slot
            slow = pool.submit(client.invoke, FunctionName=name, Payload=b'{"sleep": 1}')
            time.sleep(0.3)
            try:
                client.invoke(FunctionName=name)
            except client.exceptions.TooManyRequestsException as exc:
                throttled = exc
            with contextlib.suppress(client.exceptions.TooManyRequestsException):
                slow.result()
            if throttled is not None:
                break
    assert throttled is not None, (
        "a second call at ReservedConcurrentExecutions=1 was never throttled"
    )
    assert throttled.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "1"
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    client.delete_function_concurrency(FunctionName=name)
    assert client.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 10


def test_update_code_and_configuration(client: Any) -> None:
    name = unique("update")
    first = create(client, name)
    updated = client.update_function_code(FunctionName=name, ZipFile=handler_zip("v2"))
    assert updated["CodeSha256"] != first["CodeSha256"]
    assert updated["RevisionId"] != first["RevisionId"]
    client.get_waiter("function_updated_v2").wait(FunctionName=name)
    assert payload(client.invoke(FunctionName=name))["mark"] == "v2"
    configured = client.update_function_configuration(
        FunctionName=name, Environment={"Variables": {"COLOUR": "red"}}, Description="red"
    )
    assert configured["Description"] == "red"
    assert configured["CodeSha256"] == updated["CodeSha256"]  # the code stays
    assert payload(client.invoke(FunctionName=name))["colour"] == "red"
    with pytest.raises(client.exceptions.PreconditionFailedException):
        client.update_function_code(
            FunctionName=name, ZipFile=handler_zip("v3"), RevisionId=first["RevisionId"]
        )
    dry = client.update_function_code(FunctionName=name, ZipFile=handler_zip("v9"), DryRun=True)
    assert dry["CodeSha256"] != configured["CodeSha256"]
    assert payload(client.invoke(FunctionName=name))["mark"] == "v2"  # a dry run changes nothing


def test_published_versions_are_immutable_and_run_side_by_side(client: Any) -> None:
    name = unique("versions")
    create(client, name, Publish=True)
    client.update_function_code(FunctionName=name, ZipFile=handler_zip("v2"))
    second = client.publish_version(FunctionName=name, Description="the second")
    assert (second["Version"], second["Description"]) == ("2", "the second")
    again = client.publish_version(FunctionName=name)
    assert again["Version"] == "2"  # nothing changed since: no new version
    client.update_function_code(FunctionName=name, ZipFile=handler_zip("v3"))

    seen: dict[str, set[int]] = {"1": set(), "2": set()}
    for _ in range(3):
        for version, mark in (("1", "v1"), ("2", "v2")):
            answer = client.invoke(FunctionName=name, Qualifier=version)
            result = payload(answer)
            assert (answer["ExecutedVersion"], result["mark"]) == (version, mark)
            assert result["version"] == version
            assert result["arn"].endswith(f":function:{name}:{version}")
            seen[version].add(result["pid"])
    # Each version kept its warm environment while the other ran: pools by version.
    assert len(seen["1"]) == len(seen["2"]) == 1
    assert seen["1"] != seen["2"]
    assert payload(client.invoke(FunctionName=name))["mark"] == "v3"
    listed = client.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in listed] == ["$LATEST", "1", "2"]
    assert listed[1]["CodeSha256"] != listed[2]["CodeSha256"]
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.update_function_configuration(FunctionName=f"{name}:1", Description="no")


def test_a_weighted_alias_splits_invocations(client: Any) -> None:
    name = unique("canary")
    create(client, name, Publish=True)
    client.update_function_code(FunctionName=name, ZipFile=handler_zip("v2"), Publish=True)
    alias = client.create_alias(
        FunctionName=name,
        Name="live",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}},
    )
    assert alias["AliasArn"].endswith(f":function:{name}:live")
    ran = [client.invoke(FunctionName=f"{name}:live")["ExecutedVersion"] for _ in range(200)]
    # Binomial(200, 0.5): outside [60, 140] has a probability below 1e-8.
    assert 60 <= ran.count("2") <= 140
    assert ran.count("1") + ran.count("2") == 200
    moved = client.update_alias(
        FunctionName=name, Name="live", FunctionVersion="2", RoutingConfig={}
    )
    assert moved["FunctionVersion"] == "2"
    assert "RoutingConfig" not in moved
    assert {
        client.invoke(FunctionName=name, Qualifier="live")["ExecutedVersion"] for _ in range(5)
    } == {"2"}
    assert client.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "2"
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.create_alias(FunctionName=name, Name="bad", FunctionVersion="7")
    with pytest.raises(client.exceptions.ResourceConflictException):
        client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with pytest.raises(client.exceptions.ResourceConflictException):
        client.delete_function(FunctionName=name, Qualifier="2")  # the alias uses it
    assert [a["Name"] for a in client.list_aliases(FunctionName=name)["Aliases"]] == ["live"]
    client.delete_alias(FunctionName=name, Name="live")
    client.delete_alias(FunctionName=name, Name="live")  # idempotent, as Lambda's
    client.delete_function(FunctionName=name, Qualifier="2")
    versions = client.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1"]


def test_list_paging(client: Any) -> None:
    prefix = unique("page")
    names = [f"{prefix}-{i}" for i in range(5)]
    for name in names:
        create(client, name)
    client.publish_version(FunctionName=names[0])
    pages = list(client.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 2}))
    assert all(len(page["Functions"]) <= 2 for page in pages)
    listed = [f["FunctionName"] for page in pages for f in page["Functions"]]
    assert sorted(n for n in listed if n.startswith(prefix)) == names
    assert len(listed) == len(set(listed))
    everything = client.list_functions(FunctionVersion="ALL", MaxItems=10_000)["Functions"]
    assert (names[0], "1") in {(f["FunctionName"], f["Version"]) for f in everything}
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.list_functions(Marker="garbage")


def test_event_and_dry_run_invocations(client: Any, aws_router: Router) -> None:
    name = unique("event")
    create(client, name, Publish=True)
    client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    client.update_function_code(FunctionName=name, ZipFile=handler_zip("v2"))
    queued = client.invoke(FunctionName=f"{name}:live", InvocationType="Event", Payload=b"{}")
    assert queued["StatusCode"] == 202
    record = aws_router.invocation(queued["ResponseMetadata"]["RequestId"], ("succeeded",))
    assert (record["function"], record["function_version"]) == (name, "1")
    assert record["result"]["mark"] == "v1"
    dry = client.invoke(FunctionName=name, InvocationType="DryRun")
    assert dry["StatusCode"] == 204
    with pytest.raises(client.exceptions.RequestTooLargeException):
        client.invoke(
            FunctionName=name, InvocationType="Event", Payload=b"[" + b"1," * 600_000 + b"1]"
        )


def test_authentication(aws_router: Router) -> None:
    wrong = lambda_client(aws_router.url, secret="not-" + SECRET)
    with pytest.raises(ClientError) as refused:
        wrong.list_functions()
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    stranger = lambda_client(aws_router.url, key="AKIDSTRANGER")
    with pytest.raises(ClientError) as unknown:
        stranger.list_functions()
    assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"
    unsigned = httpx.get(f"{aws_router.url}/2015-03-31/functions/")
    assert unsigned.status_code == 403
    assert unsigned.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    admin_token = httpx.get(
        f"{aws_router.url}/2015-03-31/functions/", headers=aws_router.http.headers
    )
    assert admin_token.status_code == 403  # the admin token is no AWS credential


def test_unimplemented_operations_are_named(client: Any, aws_router: Router) -> None:
    with pytest.raises(ClientError) as refused:
        client.get_account_settings()
    assert refused.value.response["Error"]["Code"] == "UnsupportedOperationException"
    assert "GetAccountSettings" in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as policy:
        client.get_policy(FunctionName="anything")
    assert "GetPolicy" in policy.value.response["Error"]["Message"]


def test_function_urls_are_sync_webhooks(client: Any, aws_router: Router) -> None:
    name = unique("url")
    create(client, name, Publish=True)
    client.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.create_function_url_config(FunctionName=name, AuthType="OPEN")
    config = client.create_function_url_config(FunctionName=name, Qualifier="live", AuthType="NONE")
    url = config["FunctionUrl"]
    assert url.startswith(f"{aws_router.url}/hooks/url-")
    answered = httpx.post(url, json={"via": "url"})
    assert answered.status_code == 200
    assert (answered.json()["version"], answered.json()["event"]["rawPath"]) == ("1", "/")
    trigger = url.rstrip("/").rsplit("/", 1)[1]
    listed = aws_router.http.get(f"/api/v1/triggers/{trigger}").json()
    assert (listed["function"], listed["mode"]) == (f"{name}:live", "sync")
    assert client.get_function_url_config(FunctionName=name, Qualifier="live")["FunctionUrl"] == url
    with pytest.raises(client.exceptions.ResourceConflictException):
        client.create_function_url_config(FunctionName=name, Qualifier="live", AuthType="NONE")
    client.delete_function_url_config(FunctionName=name, Qualifier="live")
    assert httpx.post(url, json={}).status_code == 404
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function_url_config(FunctionName=name, Qualifier="live")
    signed_only = client.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")
    assert signed_only["AuthType"] == "AWS_IAM"
    assert httpx.post(signed_only["FunctionUrl"], json={}).status_code == 403
    assert iam_post(signed_only["FunctionUrl"], b'{"signed": true}').json()["event"]["body"] == (
        '{"signed": true}'
    )
    assert iam_post(signed_only["FunctionUrl"], b"{}", secret="x" * 20).status_code == 403
    client.delete_function(FunctionName=name)  # its URL, versions and aliases go with it
    assert aws_router.http.get(f"/api/v1/functions/{name}").status_code == 404
    assert not [
        t
        for t in aws_router.http.get("/api/v1/triggers").json()["triggers"]
        if t["function"].startswith(name)
    ]


def iam_post(url: str, body: bytes, secret: str = SECRET) -> httpx.Response:
    """A POST signed as AWS's clients sign function URL calls (SigV4, service lambda)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(KEY, secret), "lambda", "us-east-1").add_auth(request)
    return httpx.post(url, content=body, headers=dict(request.headers))


def test_secrets_never_reach_the_log_or_a_function(aws_router: Router, client: Any) -> None:
    with pytest.raises(ClientError):
        lambda_client(aws_router.url, secret="wrong-secret-wrong-secret").list_functions()
    name = unique("env")
    aws_router.put_function(name, handler="testfns:environment", isolation="process")
    names = ["ROUTER_AWS_CREDENTIALS", "ROUTER_ADMIN_TOKEN", "AWS_LAMBDA_FUNCTION_NAME"]
    seen = payload(client.invoke(FunctionName=name, Payload=json.dumps({"names": names})))["env"]
    assert seen == {
        "ROUTER_AWS_CREDENTIALS": None,
        "ROUTER_ADMIN_TOKEN": None,
        "AWS_LAMBDA_FUNCTION_NAME": name,
    }
    assert SECRET not in aws_router.log.read_text()


def test_a_function_url_deleted_as_a_trigger_can_be_made_again(
    client: Any, aws_router: Router
) -> None:
    name = unique("again")
    create(client, name)
    url = client.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    trigger = url.rstrip("/").rsplit("/", 1)[1]
    assert aws_router.http.delete(f"/api/v1/triggers/{trigger}").status_code == 204
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function_url_config(FunctionName=name)
    again = client.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert httpx.post(again["FunctionUrl"], json={}).status_code == 200
