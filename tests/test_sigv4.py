"""SigV4 verification against botocore's own signer as the reference: what it signs passes,
anything changed after signing, a wrong secret, an unknown key or a clock five minutes off does
not. Presigned URLs: botocore's and ours."""

from __future__ import annotations

import hashlib
import time
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from router.settings import Settings, SettingsError
from router.sigv4 import EMPTY_SHA256, AuthError, Credentials, Message, Verifier

KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
HOST = "127.0.0.1:8080"
URL = f"http://{HOST}/2015-03-31/functions/fn%3Alive/invocations?Qualifier=%24LATEST&x=a%20b"
BODY = b'{"hello": "world"}'


def signed(
    url: str = URL,
    body: bytes = BODY,
    secret: str = SECRET,
    key: str = KEY,
    service: str = "lambda",
    at: float | None = None,
) -> tuple[Message, bytes]:
    request = AWSRequest(
        "POST", url, data=body, headers={"X-Amz-Invocation-Type": "Event", "Content-Type": "a/b"}
    )
    signer = SigV4Auth(BotoCredentials(key, secret), service, "eu-west-1")
    if at is None:
        signer.add_auth(request)
    else:
        import datetime
        from unittest.mock import patch

        moment = datetime.datetime.fromtimestamp(at, datetime.UTC).replace(tzinfo=None)
        with patch("botocore.auth.get_current_datetime", return_value=moment):
            signer.add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    headers = [*prepared.headers.items(), ("Host", HOST)]
    return Message.of("POST", f"{parts.path}?{parts.query}", headers), body


def verifier(clock: float | None = None) -> Verifier:
    return Verifier(
        Credentials.parse(f"{KEY}:{SECRET},OTHERKEY:another-secret-of-16+"),
        clock=(lambda: clock) if clock is not None else time.time,
    )


def check(v: Verifier, message: Message, body: bytes) -> str:
    return v.verify(v.claimed(message), message, hashlib.sha256(body).hexdigest())


def test_what_botocore_signs_verifies() -> None:
    assert check(verifier(), *signed()) == KEY


@pytest.mark.parametrize(
    "change",
    [
        lambda m, b: (m, b + b" "),  # the body
        lambda m, b: (
            Message("POST", m.raw_path.replace("live", "prod"), m.raw_query, m.headers),
            b,
        ),
        lambda m, b: (Message("POST", m.raw_path, m.raw_query + "&y=1", m.headers), b),
        lambda m, b: (Message("PUT", m.raw_path, m.raw_query, m.headers), b),
        lambda m, b: (
            Message(
                "POST",
                m.raw_path,
                m.raw_query,
                {**m.headers, "x-amz-invocation-type": ["RequestResponse"]},
            ),
            b,
        ),
        lambda m, b: (Message("POST", m.raw_path, m.raw_query, {**m.headers, "host": ["evil"]}), b),
    ],
    ids=["body", "path", "query", "method", "signed-header", "host"],
)
def test_anything_changed_after_signing_is_refused(change: object) -> None:
    message, body = change(*signed())  # type: ignore[operator]
    with pytest.raises(AuthError) as refused:
        check(verifier(), message, body)
    assert refused.value.error_type == "InvalidSignatureException"


def test_a_wrong_secret_and_an_unknown_key() -> None:
    with pytest.raises(AuthError) as wrong:
        check(verifier(), *signed(secret="not-the-secret-at-all"))
    assert wrong.value.error_type == "InvalidSignatureException"
    with pytest.raises(AuthError) as unknown:
        check(verifier(), *signed(key="AKIDUNKNOWN"))
    assert unknown.value.error_type == "UnrecognizedClientException"
    with pytest.raises(AuthError) as other_service:
        check(verifier(), *signed(service="s3"))
    assert other_service.value.error_type == "InvalidSignatureException"


@pytest.mark.parametrize("offset_s", [-301, 301])
def test_a_clock_more_than_five_minutes_off_is_refused(offset_s: int) -> None:
    now = time.time()
    message, body = signed(at=now + offset_s)
    with pytest.raises(AuthError) as skewed:
        check(verifier(clock=now), message, body)
    assert skewed.value.error_type == "InvalidSignatureException"
    assert "Signature" in str(skewed.value)
    assert check(verifier(clock=now + offset_s - offset_s // abs(offset_s) * 60), message, body)


def test_unsigned_and_unconfigured() -> None:
    message = Message.of("GET", "/2015-03-31/functions/", [("Host", HOST)])
    with pytest.raises(AuthError) as unsigned:
        verifier().claimed(message)
    assert unsigned.value.error_type == "InvalidSignatureException"
    with pytest.raises(AuthError) as unconfigured:
        Verifier(Credentials.parse("")).claimed(signed()[0])
    assert unconfigured.value.error_type == "UnrecognizedClientException"
    assert "ROUTER_AWS_CREDENTIALS" in str(unconfigured.value)


def test_presigned_urls_botocores_and_ours() -> None:
    request = AWSRequest("GET", f"http://{HOST}/lambda/code/{'ab' * 32}")
    SigV4QueryAuth(BotoCredentials(KEY, SECRET), "lambda", "us-east-1", expires=60).add_auth(
        request
    )
    parts = urlsplit(request.url)
    message = Message.of("GET", f"{parts.path}?{parts.query}", [("Host", HOST)])
    v = verifier()
    assert v.verify(v.claimed(message), message, EMPTY_SHA256) == KEY

    now = time.time()
    path = f"/lambda/code/{'cd' * 32}"
    query = verifier(clock=now).presign(KEY, HOST, path, 600)
    ours = Message.of("GET", f"{path}?{query}", [("Host", HOST)])
    assert verifier(clock=now + 599).verify(verifier().claimed(ours), ours, EMPTY_SHA256) == KEY
    with pytest.raises(AuthError, match="expired"):
        verifier(clock=now + 601).claimed(ours)
    elsewhere = Message.of("GET", f"/lambda/code/{'ef' * 32}?{query}", [("Host", HOST)])
    with pytest.raises(AuthError):
        v.verify(v.claimed(elsewhere), elsewhere, EMPTY_SHA256)


@pytest.mark.parametrize(
    "configured",
    [
        "AKID",
        "AKID:qzqzqz",
        "AKID:a-secret-long-enough,AKID:a-secret-long-enough",
        "A K:xxxxxxxxxxxxxxxxxxx",
    ],
)
def test_bad_credentials_settings_name_the_variable_never_the_secret(configured: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"ROUTER_AWS_CREDENTIALS": configured})
    assert "ROUTER_AWS_CREDENTIALS" in str(refused.value)
    for secret in ("qzqzqz", "a-secret-long-enough", "xxxxxxxxxxxxxxxxxxx"):
        assert secret not in str(refused.value)


def test_secrets_are_never_shown() -> None:
    settings = Settings.from_env({"ROUTER_AWS_CREDENTIALS": f"{KEY}:{SECRET}"})
    assert SECRET not in repr(settings)
    assert SECRET not in repr(Credentials.parse(f"{KEY}:{SECRET}"))
