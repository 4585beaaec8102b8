"""Bodies sent with a Content-Encoding: the signature is checked over the bytes as sent, then
the router decodes them itself, answering a damaged, unsupported or oversized body with a 4xx
naming the cause (never a 500, never a silently shortened body), and never inflating past
`max_body_bytes`."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import tracemalloc
import zlib
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from router import encodings
from tests.conftest import Router, unique

SECRET = "gzip-secret"
LIMIT = 64 * 1024


def bomb(inflated: int) -> bytes:
    """A gzip body of `inflated` zero bytes, built without holding them all."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(inflated >> 20)]
    return b"".join([*parts, packer.flush()])


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}"}


@pytest.fixture(scope="module")
def hook(router: Router) -> tuple[str, str]:
    """A GitHub-verified trigger with a small body limit: (trigger, function)."""
    function, trigger = unique("enc"), unique("enc")
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(
        trigger,
        function=function,
        type="webhook",
        max_body_bytes=LIMIT,
        verify={"scheme": "github", "secrets": [SECRET]},
    )
    return trigger, function


def post(router: Router, trigger: str, body: bytes, coding: str, **extra: str) -> httpx.Response:
    headers = {"Content-Encoding": coding, "Content-Type": "application/json", **extra}
    return router.http.post(f"/hooks/{trigger}", content=body, headers=headers)


def test_encoded_bodies_are_verified_as_sent_then_decoded(
    router: Router, hook: tuple[str, str]
) -> None:
    trigger, function = hook
    codings: dict[str, Callable[[bytes], bytes]] = {
        "gzip": gzip.compress,
        "x-gzip": gzip.compress,
        "deflate": zlib.compress,
        "Deflate": raw_deflate,  # without the zlib header, as some senders send it
        "gzip, identity": gzip.compress,
        "deflate, gzip": lambda document: gzip.compress(zlib.compress(document)),
        "GZIP": two_members,
    }
    sent = []
    for coding, encode in codings.items():
        document = json.dumps({"coding": coding, "n": unique("n")}).encode()
        body = encode(document)
        answer = post(router, trigger, body, coding, **signed(body))
        assert answer.status_code == 200, (coding, answer.text)
        assert answer.json()["ok"] is True
        sent.append(document.decode())
    assert [run["event"]["body"] for run in router.ledger(function)] == sent


def two_members(document: bytes) -> bytes:
    return gzip.compress(document[:5]) + gzip.compress(document[5:])


def raw_deflate(document: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(document) + packer.flush()


def test_a_signature_over_the_decoded_body_is_refused(
    router: Router, hook: tuple[str, str]
) -> None:
    trigger, _ = hook
    document = json.dumps({"n": unique("n")}).encode()
    answer = post(router, trigger, gzip.compress(document), "gzip", **signed(document))
    assert answer.status_code == 401


UNDECODABLE = [
    # label, body, Content-Encoding, status, what the error names
    ("not gzip at all", b'{"plain": "json"}', "gzip", 400, "not valid gzip"),
    (
        "truncated",
        gzip.compress(b"x" * 5000 + bytes(range(256)) * 40)[:-40],
        "gzip",
        400,
        "truncated",
    ),
    ("header only", gzip.compress(b"hello")[:10], "gzip", 400, "truncated"),
    ("garbage after the stream", gzip.compress(b"{}") + b"junk", "gzip", 400, "bytes follow"),
    ("not deflate", b"\xff" * 64, "deflate", 400, "not valid deflate"),
    ("brotli", b"\x0b\x02\x80{}\x03", "br", 415, "'br' is not supported"),
    ("zstd", b"(\xb5/\xfd", "zstd", 415, "'zstd' is not supported"),
    ("three codings", gzip.compress(b"{}"), "gzip, gzip, gzip", 415, "more than 2"),
    ("a gzip bomb", bomb(64 << 20), "gzip", 413, f"larger than {LIMIT} bytes once decoded"),
]


@pytest.mark.parametrize(
    ("label", "body", "coding", "status", "cause"),
    UNDECODABLE,
    ids=[case[0] for case in UNDECODABLE],
)
def test_undecodable_bodies_get_a_4xx_naming_the_cause(
    router: Router,
    hook: tuple[str, str],
    label: str,
    body: bytes,
    coding: str,
    status: int,
    cause: str,
) -> None:
    trigger, function = hook
    before = len(router.ledger(function))
    for attempt in range(2):  # refused after the replay claim: the claim is given back
        answer = post(router, trigger, body, coding, **signed(body))
        assert answer.status_code == status, (label, attempt, answer.text)
        assert cause in answer.json()["error"], label
    if status == 415:
        assert answer.headers["Accept-Encoding"] == "gzip, deflate"
    unsigned = post(router, trigger, body, coding, **signed(body, "wrong"))
    assert unsigned.status_code == 401, "the signature is checked before anything is decoded"
    assert len(router.ledger(function)) == before, "nothing ran"


def test_unsigned_triggers_never_run_a_truncated_body(router: Router) -> None:
    function, trigger = unique("enc"), unique("enc")
    router.put_function(function, handler="testfns:record", isolation="thread")
    router.put_trigger(trigger, function=function, type="webhook")
    whole = gzip.compress(json.dumps({"items": list(range(2000))}).encode())
    answer = post(router, trigger, whole[: len(whole) // 2], "gzip")
    assert answer.status_code == 400
    assert "truncated" in answer.json()["error"]
    assert router.ledger(function) == []


def test_admin_bodies_are_decoded_too(router: Router) -> None:
    function = unique("enc")
    router.put_function(function, handler="testfns:record", isolation="thread")
    url = f"/api/v1/functions/{function}/invoke"
    event = json.dumps({"hello": "gzip"}).encode()
    ok = router.http.post(url, content=gzip.compress(event), headers={"Content-Encoding": "gzip"})
    assert ok.status_code == 200, ok.text
    assert router.ledger(function)[0]["event"] == {"hello": "gzip"}
    bad = router.http.post(url, content=event, headers={"Content-Encoding": "gzip"})
    assert bad.status_code == 400
    assert "not valid gzip" in bad.json()["error"]


def test_inflating_stops_at_the_limit() -> None:
    body = bomb(256 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(encodings.EncodingError) as refused:
            encodings.decode(body, "gzip", 1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.status == 413
    assert peak < 4 << 20, f"{peak} bytes allocated to refuse a 256 MiB bomb at 1 MiB"


def test_many_gzip_members_are_refused_without_quadratic_copying() -> None:
    members = gzip.compress(b"") * 100_000
    with pytest.raises(encodings.EncodingError, match="more than 16 gzip members"):
        encodings.decode(members, "gzip", 1 << 20)


@given(st.binary(max_size=256), st.sampled_from(["gzip", "deflate", "gzip, deflate", "br", ""]))
def test_decode_refuses_only_with_encoding_errors(body: bytes, coding: str) -> None:
    try:
        decoded = encodings.decode(body, coding, 1024)
    except encodings.EncodingError as exc:
        status = exc.status
    else:
        status = 200
        assert len(decoded) <= 1024
    assert status in (200, 400, 413, 415)
