"""The web console in a real browser (Debian's Chromium, headless, driven by Playwright) against
a real router: sign in, a wrong token refused, a function and a webhook trigger created, a test
event run with its log lines, the invocation count rising on the Monitor tab while events
arrive over AMQP, a dead letter replayed after a fix, and every page usable by keyboard and on
a phone."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, expect, sync_playwright

from tests.conftest import ADMIN_TOKEN, AMQP_URL, Router, unique
from tests.console_screenshots import CHROMIUM, LAPTOP, PHONE, launch, python_zip, sign_in

SAMPLE_WAIT_MS = 30_000  # the console samples /metrics every 5 s

if not Path(CHROMIUM).exists():
    pytest.fail(
        f"{CHROMIUM} is missing: the console's browser tests drive Debian's Chromium "
        "(scripts/test installs it: apt-get install chromium)",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


class Traffic:
    """Every request the page sent (to check where the token went) and every script error."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.errors: list[str] = []


@pytest.fixture
def traffic() -> Traffic:
    return Traffic()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=LAPTOP, accept_downloads=True)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, traffic: Traffic) -> Page:
    page = context.new_page()
    page.on("pageerror", lambda error: traffic.errors.append(str(error)))
    page.on("request", lambda request: traffic.requests.append(request))
    return page


@pytest.fixture
def signed_in(page: Page, router: Router) -> Page:
    sign_in(page, router.url)
    return page


def stored_token(page: Page) -> Any:
    return page.evaluate("sessionStorage.getItem('trigger-router.admin-token')")


def test_a_wrong_token_is_refused(page: Page, router: Router, traffic: Traffic) -> None:
    page.goto(f"{router.url}/console/")
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("That token was refused")
    assert stored_token(page) is None
    expect(page.locator("#top")).to_be_hidden()  # no navigation into the console
    tried = [r for r in traffic.requests if "/api/v1/" in r.url]
    assert [r.headers["authorization"] for r in tried] == ["Bearer not-the-token"]
    # A session whose token stops working (rotated, say) is sent back to sign in.
    page.evaluate("sessionStorage.setItem('trigger-router.admin-token', 'rotated-away')")
    page.goto(f"{router.url}/console/#/usage")
    expect(page.get_by_role("alert")).to_contain_text("refused the token")
    assert stored_token(page) is None
    assert traffic.errors == []


def test_the_token_stays_in_the_tab_and_travels_only_as_the_bearer_header(
    page: Page, context: BrowserContext, router: Router, traffic: Traffic
) -> None:
    page.goto(f"{router.url}/console/")
    page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    page.keyboard.press("Enter")  # the keyboard signs in as well as the button
    expect(page.get_by_role("heading", name="Functions", level=1)).to_be_visible()
    assert stored_token(page) == ADMIN_TOKEN
    assert ADMIN_TOKEN not in page.evaluate("JSON.stringify(localStorage)")
    assert context.cookies() == []
    page.reload()  # the tab's session keeps it
    expect(page.get_by_role("heading", name="Functions", level=1)).to_be_visible()
    page.goto(f"{router.url}/console/#/usage")
    expect(page.locator("figure.chart-box")).to_be_visible()
    api_calls = [r for r in traffic.requests if "/api/v1/" in r.url]
    assert len(api_calls) >= 3
    for call in api_calls:
        assert call.headers.get("authorization") == f"Bearer {ADMIN_TOKEN}", call.url
        assert "cookie" not in call.headers
    assert not [r.url for r in traffic.requests if ADMIN_TOKEN in r.url]
    assert ADMIN_TOKEN not in page.url
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Admin token")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_create_a_function_and_a_webhook_trigger_then_run_a_test_event(
    signed_in: Page, router: Router, traffic: Traffic
) -> None:
    page, name, trigger = signed_in, unique("console"), unique("hook")
    page.get_by_role("link", name="Create function").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Handler", exact=True).fill("testfns:chatty")
    page.get_by_label("Description", exact=True).fill("made in the console")
    page.get_by_role("button", name="Create function").click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()
    assert router.http.get(f"/api/v1/functions/{name}").json()["handler"] == "testfns:chatty"

    # The API's own validation message, beside the field it names.
    page.get_by_label("Timeout (s)").fill("1000")
    page.get_by_role("button", name="Save").click()
    message = router.http.patch(f"/api/v1/functions/{name}", json={"timeout_s": 1000}).json()
    field = page.locator("[data-for='timeout_s']")
    expect(field.get_by_role("alert")).to_have_text(message["error"])
    expect(page.get_by_label("Timeout (s)")).to_be_focused()
    page.get_by_label("Timeout (s)").fill("20")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".summary")).to_contain_text("revision 2")
    assert router.http.get(f"/api/v1/functions/{name}").json()["timeout_s"] == 20

    page.get_by_role("link", name="Triggers").click()
    page.get_by_role("button", name="New trigger").click()
    page.get_by_label("Trigger name").fill(trigger)
    page.get_by_label("Type").select_option("webhook")
    page.get_by_role("button", name="Create trigger").click()
    # "verify" must be said, even "none": the API refuses a trigger without it, word for word.
    expect(page.locator("[data-for='verify.scheme'] [role=alert]")).to_contain_text("verify")
    page.get_by_label("Scheme").select_option("none")
    page.get_by_role("button", name="Create trigger").click()
    card = page.locator(f"article[data-trigger='{trigger}']")
    expect(card).to_contain_text("anyone who knows the URL can call it")
    url = card.get_by_role("textbox", name=f"URL of {trigger}").input_value()
    assert url == f"{router.url}/hooks/{trigger}"
    # It runs the function: chatty wants `n` at the top of its event, where a function URL
    # event has none, so the webhook answers its KeyError (and the Logs tab shows it).
    answer = httpx.post(url, json={"n": 1}, timeout=10)
    assert (answer.status_code, answer.json()["errorType"]) == (502, "KeyError")
    page.get_by_role("link", name="Logs").click()
    expect(page.get_by_role("log")).to_contain_text(answer.json()["request_id"])
    expect(page.get_by_role("log")).to_contain_text("KeyError: 'n'")

    page.get_by_role("link", name="Test").click()
    page.get_by_label("Event (JSON)").fill(json.dumps({"n": 7}))
    page.get_by_role("button", name="Run test").click()
    expect(page.locator("#test-outcome")).to_have_text("Succeeded (HTTP 200)")
    expect(page.locator("#test-result")).to_have_text('"said"')
    log = page.get_by_label("Log lines")
    expect(log).to_contain_text("printed 7")
    expect(log).to_contain_text("logged 7")
    expect(log).to_contain_text("REPORT RequestId:")
    expect(page.locator(".test-duration")).to_contain_text(re.compile(r"^[\d.]+ ms \(billed \d+"))
    assert traffic.errors == []


def test_a_saved_test_event_and_a_failing_run(signed_in: Page, router: Router) -> None:
    page, name = signed_in, unique("fails")
    router.put_function(name, handler="testfns:fail", isolation="thread")
    page.goto(f"{router.url}/console/#/functions/{name}/test")
    page.get_by_label("Template").select_option("AMQP message")
    expect(page.get_by_label("Event (JSON)")).to_have_value(re.compile('"routing_key"'))
    page.get_by_label("Save as").fill("an order")
    page.get_by_role("button", name="Save event").click()
    page.reload()
    page.get_by_label("Saved events").select_option("an order")
    expect(page.get_by_label("Event (JSON)")).to_have_value(re.compile('"routing_key"'))
    page.get_by_role("button", name="Run test").click()
    expect(page.locator("#test-outcome")).to_have_text("Failed (HTTP 502): ValueError")
    expect(page.locator("#test-result")).to_contain_text("boom")
    expect(page.get_by_label("Log lines")).to_contain_text("ValueError: boom")


def test_the_logs_tab_follows_new_output_and_narrows_it(signed_in: Page, router: Router) -> None:
    page, name = signed_in, unique("tail")
    router.put_function(name, handler="testfns:chatty", isolation="thread")
    invoke = f"/api/v1/functions/{name}/invoke"
    router.http.post(invoke, json={"n": 1}).raise_for_status()
    page.goto(f"{router.url}/console/#/functions/{name}/logs")
    log = page.get_by_role("log")
    expect(log).to_contain_text("printed 1", timeout=10_000)
    second = router.http.post(invoke, json={"n": 2}).headers["X-Request-Id"]
    expect(log).to_contain_text("printed 2", timeout=10_000)  # followed live, no reload
    page.get_by_label("Text contains").fill("printed 1")
    page.get_by_role("button", name="Show").click()
    expect(log.locator(".log-entry")).to_have_count(1)
    expect(log).not_to_contain_text("printed 2")
    page.get_by_label("Text contains").fill("")
    page.get_by_label("Request id").fill(second)
    page.get_by_role("button", name="Show").click()
    expect(log.locator(".log-entry")).to_have_count(1)
    expect(log).to_contain_text("printed 2")


def test_code_uploaded_as_a_zip_and_as_a_folder_runs_and_downloads(
    signed_in: Page, router: Router, tmp_path: Path
) -> None:
    page, name = signed_in, unique("zipped")
    source = "def lambda_handler(event, context):\n    return {'v': 1}\n"
    archive = tmp_path / "code.zip"
    archive.write_bytes(python_zip({"lambda_function.py": source}))
    page.get_by_role("link", name="Create function").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("A .zip file").check()
    page.get_by_label("Zip file", exact=True).set_input_files(archive)
    page.get_by_label("Runtime", exact=True).fill("python3.11")
    page.get_by_label("Handler", exact=True).fill("lambda_function.lambda_handler")
    page.get_by_role("button", name="Create function").click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()
    assert router.http.post(f"/api/v1/functions/{name}/invoke", json={}).json() == {"v": 1}

    folder = tmp_path / "folder"
    (folder / "lib").mkdir(parents=True)
    (folder / "lambda_function.py").write_text(
        "from lib.answer import ANSWER\n\ndef lambda_handler(event, context):\n"
        "    return {'v': ANSWER}\n"
    )
    (folder / "lib" / "answer.py").write_text("ANSWER = 2\n")
    page.get_by_role("link", name="Code").click()
    page.get_by_label("A folder (zipped in the browser)").check()
    page.get_by_label("Folder", exact=True).set_input_files(folder)
    page.get_by_role("button", name="Upload code").click()
    expect(page.get_by_role("status")).to_contain_text("Uploaded")
    assert router.http.post(f"/api/v1/functions/{name}/invoke", json={}).json() == {"v": 2}

    with page.expect_download() as download:
        page.get_by_role("button", name="Download zip").click()
    downloaded = Path(download.value.path()).read_bytes()
    assert downloaded == router.http.get(f"/api/v1/functions/{name}/code").content
    names = zipfile.ZipFile(io.BytesIO(downloaded)).namelist()
    assert sorted(names) == ["lambda_function.py", "lib/answer.py"]


def test_editing_a_trigger_keeps_its_write_only_secrets(signed_in: Page, router: Router) -> None:
    page, name, trigger = signed_in, unique("signed"), unique("gh")
    router.put_function(name, handler="testfns:record", isolation="thread")
    router.put_trigger(
        trigger, function=name, type="webhook", verify={"scheme": "github", "secrets": ["s3cret"]}
    )
    page.goto(f"{router.url}/console/#/functions/{name}/triggers")
    card = page.locator(f"article[data-trigger='{trigger}']")
    expect(card).to_contain_text("X-Hub-Signature-256")
    card.get_by_role("button", name=f"Edit {trigger}").click()
    expect(page.get_by_label("Secrets")).to_have_value("<redacted>")  # never the secret itself
    page.get_by_label("Mode").select_option("async")
    page.get_by_role("button", name="Save trigger").click()
    expect(card).to_contain_text("async")
    body = b'{"zen": "keep it logically awesome"}'
    signature = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    delivered = httpx.post(
        f"{router.url}/hooks/{trigger}",
        content=body,
        headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"},
        timeout=10,
    )
    assert delivered.status_code == 202, delivered.text  # the old secret still verifies
    card.get_by_role("button", name=f"Delete {trigger}").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete trigger").click()
    expect(card).to_have_count(0)
    assert router.http.get(f"/api/v1/triggers/{trigger}").status_code == 404


def publish(exchange: str, key: str, count: int) -> None:
    parameters = pika.URLParameters(AMQP_URL)
    parameters.connection_attempts, parameters.retry_delay = 5, 1  # a busy shared broker
    connection = pika.BlockingConnection(parameters)
    channel = connection.channel()
    channel.confirm_delivery()
    for n in range(count):
        channel.basic_publish(exchange, key, json.dumps({"n": n}).encode())
    connection.close()


def test_the_monitor_tab_counts_events_arriving_over_amqp(signed_in: Page, router: Router) -> None:
    page, name = signed_in, unique("watched")
    exchange, key = f"{router.namespace}-orders", unique("watch")
    router.put_function(name, handler="testfns:record", isolation="thread")
    router.put_trigger(name, function=name, type="amqp", exchange=exchange, routing_key=key)
    page.goto(f"{router.url}/console/#/functions/{name}/monitor")
    count = page.locator("#monitor-invocations")
    expect(count).to_have_text("0", timeout=SAMPLE_WAIT_MS)  # a first sample, before any event
    publish(exchange, key, 5)
    expect(count).to_have_text("5", timeout=SAMPLE_WAIT_MS)
    publish(exchange, key, 7)
    expect(count).to_have_text("12", timeout=SAMPLE_WAIT_MS)
    expect(page.locator("#monitor-errors")).to_have_text("0")
    expect(page.get_by_role("img", name=re.compile("^Invocations per minute"))).to_be_visible()
    page.get_by_role("link", name="Functions", exact=True).first.click()
    row = page.locator(f"tr[data-function='{name}']")
    expect(row.locator("[data-cell='invocations']")).to_have_text("12", timeout=SAMPLE_WAIT_MS)
    assert len(router.ledger(name)) == 12


def test_a_dead_letter_is_replayed_after_a_fix(signed_in: Page, router: Router) -> None:
    page, name = signed_in, unique("fixme")
    router.put_function(
        name,
        handler="testfns:fixable",
        isolation="thread",
        retry={"max_attempts": 2, "backoff_s": 0.1},
    )
    ids = [
        router.http.post(f"/api/v1/functions/{name}/invoke?mode=async", json={"n": n}).json()[
            "invocation_id"
        ]
        for n in range(2)
    ]
    for invocation in ids:
        router.invocation(invocation, until=("dead_lettered",))
    page.goto(f"{router.url}/console/#/functions/{name}/dead-letters")
    expect(page.locator("#dlq-count")).to_have_text("2 dead letters")
    letter = page.locator(f"article[data-id='{ids[0]}']")
    expect(letter.get_by_role("table")).to_contain_text("ValueError")
    expect(letter.get_by_role("table").locator("tbody tr")).to_have_count(2)  # every attempt
    router.redis.set(f"{router.namespace}:fixed:{name}", "1")  # the bug is fixed
    letter.get_by_role("button", name=f"Replay {ids[0]}").click()
    expect(page.locator("#dlq-count")).to_have_text("1 dead letter")
    assert router.invocation(ids[0], until=("succeeded",))["result"] == "fixed"
    page.get_by_role("button", name="Purge all").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("deleted for good")
    dialog.get_by_role("button", name="Cancel").click()  # nothing without the confirmation
    expect(page.locator("#dlq-count")).to_have_text("1 dead letter")
    page.get_by_role("button", name="Purge all").click()
    page.get_by_role("dialog").get_by_role("button", name="Purge all").click()
    expect(page.locator("#dlq-count")).to_have_text("0 dead letters")
    assert router.http.get(f"/api/v1/functions/{name}/dlq").json()["count"] == 0

    page.goto(f"{router.url}/console/#/invocations/{ids[0]}")
    expect(page.locator("article.invocation")).to_contain_text("succeeded")
    expect(page.locator("article.invocation")).to_contain_text(name)


def test_versions_and_aliases_show_when_the_api_has_them(signed_in: Page, router: Router) -> None:
    page, name = signed_in, unique("versioned")
    router.put_function(name, handler="testfns:record", isolation="thread")
    paths = router.http.get("/api/v1/openapi.json").json()["paths"]
    page.goto(f"{router.url}/console/#/functions/{name}/configuration")
    tab = page.get_by_role("link", name="Versions and aliases")
    expect(page.get_by_role("link", name="Configuration")).to_be_visible()
    if "/functions/{name}/versions" not in paths:
        expect(tab).to_have_count(0)  # hidden, not broken, on a router without them
        return
    tab.click()
    page.get_by_label("Version description").fill("first")
    page.get_by_role("button", name="Publish version").click()
    expect(page.get_by_role("table", name="Published versions")).to_contain_text("first")
    page.get_by_label("Alias name").fill("live")
    page.get_by_label("Version", exact=True).select_option("1")
    page.get_by_role("button", name="Save alias").click()
    expect(page.get_by_role("table", name="Aliases")).to_contain_text("live")
    assert router.http.get(f"/api/v1/functions/{name}/aliases/live").status_code == 200


MAIN_PAGES = [
    "#/functions",
    "#/functions/new",
    "#/functions/{fn}/configuration",
    "#/functions/{fn}/code",
    "#/functions/{fn}/triggers",
    "#/functions/{fn}/test",
    "#/functions/{fn}/monitor",
    "#/functions/{fn}/logs",
    "#/functions/{fn}/dead-letters",
    "#/invocations",
    "#/dead-letters",
    "#/usage",
]
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
    .filter((el) => el.offsetParent !== null)
    .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
        && !el.getAttribute('aria-labelledby') && !(el.textContent || '').trim())
    .map((el) => el.outerHTML)"""


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_every_page_is_labelled_and_fits_the_screen(
    browser: Browser, router: Router, viewport: dict[str, int]
) -> None:
    name = unique("a11y")
    router.put_function(name, handler="testfns:record", isolation="thread")
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    sign_in(page, router.url)
    for fragment in MAIN_PAGES:
        page.goto(f"{router.url}/console/{fragment.format(fn=name)}")
        expect(page.locator("h1")).to_be_visible()
        page.wait_for_load_state("networkidle")
        assert page.evaluate(UNLABELLED) == [], fragment
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (fragment, overflow)
    # Keyboard only: Tab reaches the main navigation, Enter follows it.
    page.goto(f"{router.url}/console/#/functions")
    page.reload()  # a fresh load: the focus starts at the top of the page
    for _ in range(8):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Usage":
            break
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Usage", level=1)).to_be_focused()
    context.close()
