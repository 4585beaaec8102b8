"""The web console: static files under `/console`, shipped in the package, no build step.

They are served without the admin token because they hold no data: the page asks for the token
and sends it as the bearer header on every admin API call, so the console can do nothing the
API does not allow. Every file goes out with a strict Content-Security-Policy (scripts only
from these files, no inline script or style, nothing framed, no form posted anywhere).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from router.jsonhttp import json_error

DIRECTORY = Path(__file__).resolve().parent
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        # The forms are handled by script; were one ever submitted by the browser, nothing
        # (least of all the token field) may leave in a URL.
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # Revalidated on every load (by ETag), so an upgraded router serves its new console at once.
    "Cache-Control": "no-cache",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def assets(directory: Path = DIRECTORY) -> dict[str, Asset]:
    """The console's files by path below `/console/`: only these are ever served."""
    found = {}
    for path in sorted(directory.rglob("*")):
        content_type = TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        found[path.relative_to(directory).as_posix()] = Asset(body, content_type, etag)
    return found


class Console:
    def __init__(self, files: dict[str, Asset]) -> None:
        self._files = files

    async def enter(self, request: web.Request) -> web.Response:
        """`/console` itself: on to `/console/`, relative, so a path prefix a proxy adds stays."""
        return web.Response(status=308, headers={**HEADERS, "Location": "console/"})

    async def file(self, request: web.Request) -> web.Response:
        wanted = request.match_info.get("path") or "index.html"
        asset = self._files.get(wanted)
        if asset is None:
            return json_error(404, f"no console file {wanted!r}", headers=HEADERS)
        headers = {**HEADERS, "ETag": asset.etag}
        if asset.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = asset.content_type
        return web.Response(body=asset.body, headers=headers)


def routes() -> list[web.RouteDef]:
    console = Console(assets())
    return [
        web.get("/console", console.enter),
        web.get("/console/", console.file),
        web.get("/console/{path:.+}", console.file),
    ]
