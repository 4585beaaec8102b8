"""AWS Signature Version 4: verifying what AWS's clients sign, and presigning our own URLs.

A request is verified in two steps, so that nothing is read from a stranger: `claimed` checks
the Authorization header (or a presigned URL's query) without the body: the algorithm, a known
access key, a credential scope for this service, the signing time within five minutes; then
`verify` rebuilds the canonical request over the body as received and compares signatures in
constant time. Secrets never leave this module: errors name the access key, never its secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_S = 300  # AWS's: a signature is good five minutes either side of our clock
AMZ_DATE = "%Y%m%dT%H%M%SZ"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ACCESS_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
MIN_SECRET = 16
QUERY_SIGNATURE = "X-Amz-Signature"
HOW_TO_CONFIGURE = (
    "set ROUTER_AWS_CREDENTIALS=ACCESS_KEY_ID:SECRET_ACCESS_KEY[,ACCESS_KEY_ID:SECRET...] "
    "on the router and use one of those keys in your AWS client"
)


class AuthError(Exception):
    """403 with AWS's error type (`InvalidSignatureException`, `UnrecognizedClientException`)."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class Credentials:
    """Access keys and their secrets, from `AKID:SECRET[,AKID:SECRET...]`."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._keys = dict(keys)

    @classmethod
    def parse(cls, text: str) -> Credentials:
        """Raises ValueError naming the faulty entry by position and key, never its secret."""
        keys: dict[str, str] = {}
        for position, entry in enumerate((e.strip() for e in text.split(",")), start=1):
            if not entry:
                continue
            key, colon, secret = entry.partition(":")
            if not colon or not ACCESS_KEY.match(key):
                raise ValueError(
                    f"entry {position} must be ACCESS_KEY_ID:SECRET (the key id: letters, digits,"
                    " '_' or '-')"
                )
            if len(secret) < MIN_SECRET:
                raise ValueError(
                    f"the secret of {key} is shorter than {MIN_SECRET} characters: use a random one"
                )
            if key in keys:
                raise ValueError(f"access key {key} is given twice")
            keys[key] = secret
        return cls(keys)

    def __bool__(self) -> bool:
        return bool(self._keys)

    def secret(self, access_key: str) -> str | None:
        return self._keys.get(access_key)

    def __repr__(self) -> str:
        return f"Credentials({sorted(self._keys)})"  # key ids only


@dataclass(frozen=True)
class Claim:
    """What a request says about its signature, before it is checked."""

    access_key: str
    date: str  # YYYYMMDD, the scope's
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str  # the signing time, YYYYMMDDTHHMMSSZ
    expires_s: int | None = None  # presigned URLs only

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True)
class Message:
    """The parts of a request SigV4 covers, as received: the path and query as sent on the
    wire (still percent-encoded) and the headers with every value."""

    method: str
    raw_path: str
    raw_query: str
    headers: Mapping[str, list[str]]  # lower-cased names

    @classmethod
    def of(cls, method: str, raw_target: str, headers: Iterable[tuple[str, str]]) -> Message:
        path, _, query = raw_target.partition("?")
        grouped: dict[str, list[str]] = {}
        for name, value in headers:
            grouped.setdefault(name.lower(), []).append(value)
        return cls(method.upper(), path, query, grouped)

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None


class Verifier:
    def __init__(
        self,
        credentials: Credentials,
        service: str = "lambda",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._service = service
        self._clock = clock

    def claimed(self, message: Message) -> Claim:
        """The request's claim, checked for everything but the signature itself."""
        if not self._credentials:
            raise AuthError(
                "UnrecognizedClientException",
                f"the Lambda API has no credentials configured: {HOW_TO_CONFIGURE}",
            )
        authorization = message.header("authorization")
        query = _query_pairs(message.raw_query)
        if authorization is not None:
            claim = _header_claim(authorization, message)
        elif any(key == "X-Amz-Algorithm" for key, _ in query):
            claim = _query_claim(dict(query))
        else:
            raise AuthError(
                "InvalidSignatureException",
                "the request is not signed: sign it with AWS Signature Version 4 "
                "(an AWS SDK or the AWS CLI does)",
            )
        self._check(claim)
        return claim

    def _check(self, claim: Claim) -> None:
        if self._credentials.secret(claim.access_key) is None:
            raise AuthError(
                "UnrecognizedClientException",
                f"the access key {claim.access_key} is not one of ROUTER_AWS_CREDENTIALS",
            )
        if claim.service != self._service:
            raise AuthError(
                "InvalidSignatureException",
                f"credential scope names service {claim.service!r}; sign for {self._service!r}",
            )
        signed_at = _parse_time(claim.amz_date)
        if claim.amz_date[:8] != claim.date:
            raise AuthError(
                "InvalidSignatureException",
                f"credential scope date {claim.date} is not the signing date {claim.amz_date}",
            )
        now = self._clock()
        if claim.expires_s is not None:
            if now > signed_at + claim.expires_s:
                raise AuthError("InvalidSignatureException", "the presigned URL has expired")
            if signed_at > now + MAX_SKEW_S:
                raise AuthError("InvalidSignatureException", _skew_message(claim.amz_date, now))
        elif abs(now - signed_at) > MAX_SKEW_S:
            raise AuthError("InvalidSignatureException", _skew_message(claim.amz_date, now))

    def verify(self, claim: Claim, message: Message, payload_sha256: str) -> str:
        """The access key, once the signature over the request is the one its secret makes."""
        secret = self._credentials.secret(claim.access_key)
        assert secret is not None  # `claimed` checked it
        canonical = canonical_request(
            message, claim.signed_headers, payload_sha256, presigned=claim.expires_s is not None
        )
        to_sign = string_to_sign(claim.amz_date, claim.scope, canonical)
        expected = signature(secret, claim, to_sign)
        if not hmac.compare_digest(expected.encode(), claim.signature.encode()):
            raise AuthError(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. "
                "Check your AWS Secret Access Key and signing method. The Canonical String for "
                f"this request should have been\n'{canonical}'\n\nThe String-to-Sign should "
                f"have been\n'{to_sign}'\n",
            )
        return claim.access_key

    def presign(
        self, access_key: str, host: str, path: str, expires_s: int, region: str = "us-east-1"
    ) -> str:
        """A query string that lets a plain GET of `path` (as it goes on the wire) on `host`
        through for `expires_s` seconds, signed with the access key's secret."""
        secret = self._credentials.secret(access_key)
        if secret is None:
            raise AuthError("UnrecognizedClientException", f"unknown access key {access_key}")
        amz_date = datetime.fromtimestamp(self._clock(), UTC).strftime(AMZ_DATE)
        claim = Claim(
            access_key, amz_date[:8], region, self._service, ("host",), "", amz_date, expires_s
        )
        params = {
            "X-Amz-Algorithm": ALGORITHM,
            "X-Amz-Credential": f"{access_key}/{claim.scope}",
            "X-Amz-Date": amz_date,
            "X-Amz-Expires": str(expires_s),
            "X-Amz-SignedHeaders": "host",
        }
        query = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in params.items())
        message = Message("GET", path, query, {"host": [host]})
        canonical = canonical_request(message, claim.signed_headers, EMPTY_SHA256, presigned=True)
        signed = signature(secret, claim, string_to_sign(amz_date, claim.scope, canonical))
        return f"{query}&{QUERY_SIGNATURE}={signed}"


def canonical_request(
    message: Message, signed_headers: Iterable[str], payload_sha256: str, *, presigned: bool
) -> str:
    headers = []
    for name in signed_headers:
        values = message.headers.get(name)
        if values is None:
            raise AuthError(
                "InvalidSignatureException", f"signed header {name!r} is not in the request"
            )
        headers.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}\n")
    return "\n".join(
        [
            message.method,
            canonical_path(message.raw_path),
            canonical_query(message.raw_query, presigned=presigned),
            "".join(headers),
            ";".join(signed_headers),
            payload_sha256,
        ]
    )


def canonical_path(raw_path: str) -> str:
    """The path as sent, dot segments and empty segments removed, then URI-encoded once more
    (every AWS service but S3 signs the path encoded twice)."""
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    trailing = "/" if raw_path.endswith("/") and segments else ""
    return quote("/" + "/".join(segments) + trailing, safe="/~")


def canonical_query(raw_query: str, *, presigned: bool = False) -> str:
    """Every parameter decoded and encoded again as SigV4 wants it, sorted by key then value
    (a presigned URL's own signature left out)."""
    pairs = [
        (_encode(key), _encode(value))
        for key, value in _query_pairs(raw_query)
        if not (presigned and key == QUERY_SIGNATURE)
    ]
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signature(secret: str, claim: Claim, to_sign: str) -> str:
    key = _hmac(f"AWS4{secret}".encode(), claim.date)
    for part in (claim.region, claim.service, "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in raw_query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<headers>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-fA-F]{64})\s*$"
)


def _header_claim(authorization: str, message: Message) -> Claim:
    match = AUTHORIZATION.match(authorization.strip())
    if match is None:
        raise AuthError(
            "InvalidSignatureException",
            "the Authorization header is not 'AWS4-HMAC-SHA256 Credential=..., "
            "SignedHeaders=..., Signature=...'",
        )
    amz_date = message.header("x-amz-date")
    if amz_date is None:
        raise AuthError("InvalidSignatureException", "the X-Amz-Date header is missing")
    return _claim(match["credential"], match["headers"], match["signature"], amz_date, None)


def _query_claim(query: Mapping[str, str]) -> Claim:
    wanted = ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", QUERY_SIGNATURE)
    missing = [name for name in (*wanted, "X-Amz-Expires") if name not in query]
    if missing or query.get("X-Amz-Algorithm") != ALGORITHM:
        raise AuthError(
            "InvalidSignatureException",
            f"a presigned URL needs X-Amz-Algorithm={ALGORITHM} and {', '.join(missing)}",
        )
    expires = query["X-Amz-Expires"]
    if not expires.isdigit() or not 1 <= int(expires) <= 7 * 86400:
        raise AuthError("InvalidSignatureException", "X-Amz-Expires must be 1 to 604800 seconds")
    credential, date, headers, signed = (query[name] for name in wanted)
    if not re.fullmatch(r"[0-9a-fA-F]{64}", signed):
        raise AuthError("InvalidSignatureException", "X-Amz-Signature is not a SigV4 signature")
    return _claim(credential, headers, signed, date, int(expires))


def _claim(
    credential: str, headers: str, signed: str, amz_date: str, expires_s: int | None
) -> Claim:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise AuthError(
            "InvalidSignatureException",
            "the credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request",
        )
    signed_headers = tuple(headers.split(";"))
    if "host" not in signed_headers or list(signed_headers) != sorted(set(signed_headers)):
        raise AuthError(
            "InvalidSignatureException",
            "SignedHeaders must be sorted, lower-case, without repeats, and include host",
        )
    return Claim(
        parts[0], parts[1], parts[2], parts[3], signed_headers, signed.lower(), amz_date, expires_s
    )


def _parse_time(amz_date: str) -> float:
    try:
        return datetime.strptime(amz_date, AMZ_DATE).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise AuthError(
            "InvalidSignatureException", f"signing time {amz_date!r} is not YYYYMMDDTHHMMSSZ"
        ) from None


def _skew_message(amz_date: str, now: float) -> str:
    def stamp(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime(AMZ_DATE)

    signed_at = _parse_time(amz_date)
    if signed_at < now:
        return (
            f"Signature expired: {amz_date} is now earlier than {stamp(now - MAX_SKEW_S)} "
            f"({stamp(now)} - 5 min.)"
        )
    return (
        f"Signature not yet current: {amz_date} is still later than "
        f"{stamp(now + MAX_SKEW_S)} ({stamp(now)} + 5 min.)"
    )
