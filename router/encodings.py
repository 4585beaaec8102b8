"""Request bodies sent with a `Content-Encoding`, decoded by the router rather than by aiohttp.

aiohttp would inflate a body while reading it, so a webhook's signature would be checked over
bytes the sender never sent, and a damaged stream surfaced as an unhandled error (or, truncated,
as a silently shortened body). Here the bytes as sent are read and verified first; then each
coding is undone, never inflating past the body limit: a small bomb costs at most `limit` bytes
of memory and the work to produce them.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

GZIP = frozenset({"gzip", "x-gzip"})
GZIP_MAGIC = b"\x1f\x8b"
SUPPORTED = "gzip, deflate"
MAX_CODINGS = 2  # each layer may inflate up to the limit: a long list would multiply the work
# Each member after the first starts from a copy of what is left (zlib's `unused_data`): a body
# of 300,000 empty members took 21 s of the event loop before this bound.
MAX_MEMBERS = 16


class EncodingError(Exception):
    """A body that cannot be decoded: 400 damaged, 413 too large once decoded, 415 a coding
    the router does not speak."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

    @property
    def headers(self) -> dict[str, str]:
        # RFC 9110 15.5.16: a 415 for a content coding says which ones are accepted.
        return {"Accept-Encoding": SUPPORTED} if self.status == 415 else {}


def header(values: Iterable[str]) -> str:
    """Repeated `Content-Encoding` lines as the one list they mean."""
    return ",".join(values)


def codings(content_encoding: str) -> list[str]:
    """The codings in the order they were applied, `identity` left out."""
    found = [c.strip().lower() for c in content_encoding.split(",")]
    applied = [c for c in found if c and c != "identity"]
    for coding in applied:
        if coding not in GZIP and coding != "deflate":
            raise EncodingError(415, f"Content-Encoding {coding!r} is not supported ({SUPPORTED})")
    if len(applied) > MAX_CODINGS:
        raise EncodingError(415, f"more than {MAX_CODINGS} content codings")
    return applied


def decode(body: bytes, content_encoding: str, limit: int) -> bytes:
    """The body with every coding undone, last applied first; at most `limit` bytes."""
    for coding in reversed(codings(content_encoding)):
        body = _inflate(body, coding, limit)
    return body


def _inflate(data: bytes, coding: str, limit: int) -> bytes:
    if not data:
        return data  # no body at all: nothing was encoded
    out = bytearray()
    for _ in range(MAX_MEMBERS):
        decompressor = zlib.decompressobj(_wbits(coding, data))
        # `max_length` stops inflating one byte past the limit: that byte proves the body too
        # large without producing the rest of it.
        out += _inflated(decompressor, data, coding, limit - len(out) + 1)
        if len(out) > limit:
            raise EncodingError(413, f"the body is larger than {limit} bytes once decoded")
        if not decompressor.eof:
            raise EncodingError(400, f"the {coding} body is truncated")
        data = decompressor.unused_data
        if not data:
            return bytes(out)
        # A gzip body may hold several members one after another (RFC 1952 2.2).
        if coding not in GZIP or not data.startswith(GZIP_MAGIC):
            raise EncodingError(400, f"bytes follow the end of the {coding} body")
    raise EncodingError(400, f"more than {MAX_MEMBERS} gzip members in one body")


def _inflated(decompressor: zlib._Decompress, data: bytes, coding: str, most: int) -> bytes:
    try:
        return decompressor.decompress(data, most)
    except zlib.error as exc:
        raise EncodingError(400, f"the body is not valid {coding}: {exc}") from None


def _wbits(coding: str, data: bytes) -> int:
    if coding in GZIP:
        return 16 + zlib.MAX_WBITS
    # `deflate` means the zlib format (RFC 9110 8.4.1.2), but some senders send raw deflate
    # without the zlib header; the header's checksum tells them apart.
    zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
    return zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
