"""The web console's files as the router serves them: without the token (they hold no data),
under a strict Content-Security-Policy, only the files the package ships, and all of them
listed in the package data so that an installed router has its console too."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from html.parser import HTMLParser

import httpx
import pytest

from router.console import DIRECTORY, assets
from tests.conftest import ROOT, Router


def test_the_console_is_served_without_the_token(router: Router) -> None:
    anonymous = httpx.Client(base_url=router.url, timeout=10)
    entry = anonymous.get("/console")
    assert entry.status_code == 308
    assert entry.headers["Location"] == "console/"  # relative: a proxy's path prefix stays
    page = anonymous.get("/console/")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "set-cookie" not in page.headers
    for name in ("app.js", "console.css", "views/functions.js"):
        asset = anonymous.get(f"/console/{name}")
        assert asset.status_code == 200, name
        assert asset.content == (DIRECTORY / name).read_bytes()
    assert anonymous.get("/console/app.js").headers["Content-Type"].startswith("text/javascript")
    # ... while what they show still needs it.
    assert anonymous.get("/api/v1/functions").status_code == 401


def test_every_console_response_carries_a_strict_policy(router: Router) -> None:
    anonymous = httpx.Client(base_url=router.url, timeout=10)
    for path in ("/console", "/console/", "/console/app.js", "/console/console.css"):
        headers = anonymous.get(path).headers
        policy = dict(
            (part.split()[0], part.split()[1:])
            for part in headers["Content-Security-Policy"].split("; ")
        )
        assert policy["default-src"] == ["'none'"], path
        assert policy["script-src"] == ["'self'"], path  # no inline script, no eval
        assert policy["style-src"] == ["'self'"], path
        assert policy["connect-src"] == ["'self'"], path
        assert policy["frame-ancestors"] == ["'none'"], path
        assert policy["form-action"] == ["'none'"], path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["X-Frame-Options"] == "DENY", path
        assert headers["Referrer-Policy"] == "no-referrer", path


@pytest.mark.parametrize(
    "path",
    [
        "/console/__init__.py",
        "/console/../api/v1/functions",
        "/console/%2e%2e/app.py",
        "/console/views/../../settings.py",
        "/console/missing.js",
        "/console//etc/passwd",
    ],
)
def test_only_the_console_files_are_served(router: Router, path: str) -> None:
    response = httpx.get(router.url + path, timeout=10)
    assert response.status_code in (401, 404), response.text
    assert b"import " not in response.content


def test_an_unchanged_file_is_revalidated_not_sent_again(router: Router) -> None:
    first = httpx.get(f"{router.url}/console/app.js", timeout=10)
    assert first.headers["Cache-Control"] == "no-cache"
    again = httpx.get(
        f"{router.url}/console/app.js", headers={"If-None-Match": first.headers["ETag"]}, timeout=10
    )
    assert again.status_code == 304
    assert again.content == b""


class Markup(HTMLParser):
    """Collects what a strict policy would refuse: inline scripts, handlers and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"<{tag} {name}>")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            self._in_script = "src" not in names
            self.scripts.append(names.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("<script> with a body")


def test_the_page_has_no_inline_script_or_style() -> None:
    markup = Markup()
    markup.feed((DIRECTORY / "index.html").read_text())
    assert markup.inline == []
    assert markup.scripts == ["app.js"]


def test_the_scripts_never_write_html_or_cookies_or_put_the_token_in_a_url() -> None:
    """Text from functions, events and errors is put in as text: nothing the API returns can
    become markup or script. The token goes in the Authorization header only."""
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function"
        r"|document\.cookie"
    )
    for path in DIRECTORY.rglob("*.js"):
        text = path.read_text()
        assert not forbidden.search(text), path.name
        for line in text.splitlines():
            if "token" in line and ("searchParams" in line or "localStorage" in line):
                raise AssertionError(f"{path.name}: {line.strip()}")


def test_the_package_ships_every_console_file() -> None:
    """pyproject's package data must match each file, or an installed router serves a console
    with holes."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["router"]
    for name in assets():
        assert any(fnmatch.fnmatch(f"console/{name}", p) for p in patterns), name
    assert "index.html" in assets()
