"""Screenshots of the web console's main pages for the README, taken by Debian's Chromium:
`python -m tests.console_screenshots` writes docs/console/*.png.

It starts a router of its own (in a namespace of its own, removed afterwards), gives it a few
functions, triggers and events (a webhook, orders over AMQP, one bad order that ends as a dead
letter), then signs in and photographs each page. The browser tests share its helpers.
"""

from __future__ import annotations

import base64
import io
import json
import re
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pika
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from tests.conftest import ADMIN_TOKEN, AMQP_URL, ROOT, cleanup, start_router, stop, wait_ready

CHROMIUM = "/usr/bin/chromium"
# Debian's Chromium, never a browser of Playwright's own: headless, no sandbox (tests run as
# root), and nothing that would reach out to the network by itself.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUT = ROOT / "docs" / "console"
LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)


def sign_in(page: Page, url: str, token: str = ADMIN_TOKEN) -> None:
    page.goto(f"{url}/console/")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Functions", level=1).wait_for()


def python_zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


THUMBNAIL = """\
import json, time

def lambda_handler(event, context):
    body = json.loads(event.get("body") or "{}")
    print("resizing", body.get("image", "cat.png"), "to", body.get("width", 320))
    time.sleep(0.02)
    return {"statusCode": 200, "body": json.dumps({"resized": body.get("image", "cat.png")})}
"""


def seed(url: str, namespace: str, token: str = ADMIN_TOKEN) -> None:
    """A small, lived-in router: three functions, their triggers and some traffic."""
    client = httpx.Client(
        base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    zipped = python_zip({"lambda_function.py": THUMBNAIL})
    functions: dict[str, dict[str, Any]] = {
        "echo": {"handler": "handlers.echo:handler", "description": "returns what it was given"},
        "orders": {
            "handler": "handlers.orders:handler",
            "description": "totals order events from RabbitMQ",
            "retry": {"max_attempts": 2, "backoff_s": 0.1},
        },
        "thumbnails": {
            "runtime": "python3.11",
            "handler": "lambda_function.lambda_handler",
            "memory_mb": 256,
            "timeout_s": 10,
            "description": "resizes uploaded images",
            "code": {"zip": base64.b64encode(zipped).decode()},
        },
    }
    for name, spec in functions.items():
        client.put(f"/functions/{name}", json=spec).raise_for_status()
    triggers: dict[str, dict[str, Any]] = {
        "github-push": {
            "function": "echo",
            "type": "webhook",
            "verify": {"scheme": "github", "secrets": ["rotate-me-quarterly"]},
        },
        "thumbnails": {"function": "thumbnails", "type": "webhook", "verify": {"scheme": "none"}},
        "orders-eu": {
            "function": "orders",
            "type": "amqp",
            "exchange": f"{namespace}-orders",
            "routing_key": "order.eu.#",
            "filter": {"body": {"region": ["eu"]}},
        },
    }
    for name, trigger in triggers.items():
        client.put(f"/triggers/{name}", json=trigger).raise_for_status()
    if "/functions/{name}/versions" in client.get("/openapi.json").json()["paths"]:
        client.post("/functions/thumbnails/versions", json={"description": "first cut"})
        client.patch("/functions/thumbnails", json={"memory_mb": 512}).raise_for_status()
        client.post("/functions/thumbnails/versions", json={"description": "more memory"})
        alias = {"function_version": "1", "routing": {"2": 0.1}, "description": "10% canary"}
        client.put("/functions/thumbnails/aliases/live", json=alias).raise_for_status()
    for n in range(5):
        client.post("/functions/echo/invoke", json={"n": n}).raise_for_status()
        httpx.post(f"{url}/hooks/thumbnails", json={"image": f"cat-{n}.png", "width": 320})


def publish_orders(namespace: str, count: int, bad: int = 0) -> None:
    parameters = pika.URLParameters(AMQP_URL)
    parameters.connection_attempts, parameters.retry_delay = 5, 1  # a busy shared broker
    connection = pika.BlockingConnection(parameters)
    channel = connection.channel()
    channel.confirm_delivery()
    exchange = f"{namespace}-orders"
    for n in range(count):
        order = {"id": n, "region": "eu", "lines": [{"price": "4.50", "qty": 1 + n % 3}]}
        if n < bad:
            order["lines"] = []
        channel.basic_publish(exchange, f"order.eu.{n}", json.dumps(order).encode())
    connection.close()


def ran_async(url: str, function: str, event: Any, token: str = ADMIN_TOKEN) -> str:
    """The id of an async invocation, once it has run."""
    client = httpx.Client(
        base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    answer = client.post(f"/functions/{function}/invoke", params={"mode": "async"}, json=event)
    invocation: str = answer.json()["invocation_id"]
    for _ in range(100):
        record = client.get(f"/invocations/{invocation}")
        if record.status_code == 200 and record.json()["status"] == "succeeded":
            break
        time.sleep(0.1)
    return invocation


@contextmanager
def own_router() -> Iterator[tuple[str, str]]:
    namespace = f"shots-{uuid.uuid4().hex[:8]}"
    process, port, log = start_router(namespace)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, log)
        yield url, namespace
    finally:
        stop(process)
        cleanup(namespace)


def shoot(page: Page, name: str, full_page: bool = False) -> None:
    expect(page.locator("#status")).to_be_empty(timeout=10_000)  # no passing notice in the way
    page.wait_for_timeout(300)  # let the last paint settle
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=full_page)
    print(f"docs/console/{name}.png")


def screenshots(url: str, namespace: str, browser: Browser) -> None:
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.on("console", lambda message: print("browser:", message.text, file=sys.stderr))
    page.goto(f"{url}/console/")
    page.get_by_label("Admin token").wait_for()
    shoot(page, "sign-in")
    sign_in(page, url)
    publish_orders(namespace, 6, bad=1)
    for _ in range(12):  # a minute of traffic, so the live figures have something to show
        publish_orders(namespace, 3)
        page.wait_for_timeout(5000)
    page.goto(f"{url}/console/#/functions")
    invocations = page.locator("tr[data-function='orders'] [data-cell='invocations']")
    expect(invocations).not_to_have_text(re.compile(r"^(0|—)$"), timeout=30_000)
    shoot(page, "functions")
    page.goto(f"{url}/console/#/functions/thumbnails/configuration")
    page.get_by_label("Handler", exact=True).wait_for()
    shoot(page, "configuration")
    page.goto(f"{url}/console/#/functions/thumbnails/code")
    page.get_by_role("button", name="Download zip").wait_for()
    shoot(page, "code")
    if page.get_by_role("link", name="Versions and aliases").count():
        page.goto(f"{url}/console/#/functions/thumbnails/versions")
        page.get_by_role("table", name="Aliases").wait_for()
        shoot(page, "versions")
    page.goto(f"{url}/console/#/functions/echo/triggers")
    page.locator("article[data-trigger='github-push']").wait_for()
    shoot(page, "triggers")
    page.goto(f"{url}/console/#/functions/thumbnails/test")
    page.get_by_label("Save as").fill("cat picture")
    page.get_by_role("button", name="Save event").click()
    page.get_by_role("button", name="Run test").click()
    page.locator(".test-log", has_text="REPORT").wait_for()
    shoot(page, "test", full_page=True)
    page.goto(f"{url}/console/#/functions/orders/monitor")
    page.get_by_role("button", name="15 min").click()
    shoot(page, "monitor")
    page.goto(f"{url}/console/#/functions/orders/logs")
    page.locator(".log-entry").first.wait_for()
    shoot(page, "logs")
    page.goto(f"{url}/console/#/functions/orders/dead-letters")
    page.locator("article.letter").first.wait_for()
    shoot(page, "dead-letters")
    invocation = ran_async(url, "orders", {"body": {"id": 42, "lines": [{"price": "9.90"}]}})
    page.goto(f"{url}/console/#/invocations/{invocation}")
    page.locator("article.invocation .log", has_text="REPORT").wait_for()
    shoot(page, "invocation")
    page.goto(f"{url}/console/#/usage")
    page.locator("figure.chart-box").wait_for()
    shoot(page, "usage")
    phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    small = phone.new_page()
    small.goto(f"{url}/console/")
    sign_in(small, url)
    small.locator("tr[data-function='orders']").wait_for()
    shoot(small, "phone-functions")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with own_router() as (url, namespace), sync_playwright() as playwright:
        seed(url, namespace)
        browser = launch(playwright)
        try:
            screenshots(url, namespace, browser)
        finally:
            browser.close()
    print(f"done in {time.process_time():.1f} s of CPU")


if __name__ == "__main__":
    main()
