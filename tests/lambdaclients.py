"""What the Lambda API tests share: a router with AWS credentials, clients for it, and zips."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.conftest import Router, cleanup, start_router, stop, unique, wait_ready

KEY = "AKIDTRIGGERROUTER"
SECRET = "q8Zp3nW1vX7-test-only-secret/+"
ROLE = "arn:aws:iam::123456789012:role/lambda-role"

HANDLER = """
import json, os, time

MARK = {mark!r}

def lambda_handler(event, context):
    if event.get("fail"):
        raise ValueError("it failed on purpose")
    if event.get("sleep"):
        time.sleep(event["sleep"])
    print("ran", MARK, "as", context.function_version, json.dumps(event))
    return {{
        "mark": MARK,
        "version": context.function_version,
        "arn": context.invoked_function_arn,
        "pid": os.getpid(),
        "colour": os.environ.get("COLOUR"),
        "event": event,
    }}
"""


def handler_zip(mark: str = "v1") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lambda_function.py", HANDLER.format(mark=mark))
    return buffer.getvalue()


def lambda_client(url: str, key: str = KEY, secret: str = SECRET) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def aws_environment() -> dict[str, str]:
    """What the AWS CLI and the JavaScript SDK read their credentials from."""
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }


@pytest.fixture(scope="module")
def aws_router() -> Iterator[Router]:
    namespace = unique("lambda")
    process, port, log = start_router(namespace, ROUTER_AWS_CREDENTIALS=f"{KEY}:{SECRET}")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        yield Router(namespace, port, process, log)
    finally:
        stop(process)
        cleanup(namespace)


def create(client: Any, name: str, mark: str = "v1", **extra: Any) -> Any:
    fields = {
        "Runtime": "python3.11",
        "Role": ROLE,
        "Handler": "lambda_function.lambda_handler",
        "Code": {"ZipFile": handler_zip(mark)},
        **extra,
    }
    return client.create_function(FunctionName=name, **fields)
