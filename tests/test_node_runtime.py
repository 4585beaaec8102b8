"""The Node.js runtime client (router/runtimes/nodejs) against a Runtime API served here.

Each test starts `node runtime.mjs` as the router does (cwd the bundle, Lambda's environment)
against a small Runtime API (2018-06-01) in a thread that hands out queued events and records
every answer the client posts. The handlers are in tests/runtimes/nodejs/.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_DIR = ROOT / "router" / "runtimes" / "nodejs"
BUNDLE = Path(__file__).resolve().parent / "runtimes" / "nodejs"
NODE = shutil.which("node") or "node"
WAIT_S = 20  # a guard against a hung client, not a measurement
BASE = "/2018-06-01/runtime"


@dataclass
class Event:
    body: Any
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    deadline_ms: int = field(default_factory=lambda: int(time.time() * 1000) + 600_000)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Post:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    client_port: int

    def json(self) -> Any:
        return json.loads(self.body)


class RuntimeApi:
    """The router's side of the Runtime API, as much as a client needs: GET next hands out the
    queued events (long-polling while there are none; a 500 once `close()` was called), every
    POST is recorded and answered 202 (or the status `statuses` gives for its request id; or,
    once, not at all, the connection closed, for a request id in `hang_ups`)."""

    def __init__(self) -> None:
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.posts: list[Post] = []
        self.client_ports: list[int] = []
        self.statuses: dict[str, int] = {}
        self.hang_ups: set[str] = set()
        self.changed = threading.Condition()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        serve = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        serve.start()

    def add(self, body: Any, **fields: Any) -> Event:
        event = Event(body, **fields)
        self.events.put(event)
        return event

    def wait_posts(self, count: int) -> list[Post]:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.posts) >= count, WAIT_S):
                raise AssertionError(f"expected {count} posts, got {self.posts[:5]}...")
            return list(self.posts)

    def close(self) -> None:
        for _ in range(4):  # one for each GET next that may be waiting
            self.events.put(None)
        self.server.shutdown()
        self.server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the router serves it
            wbufsize = 1 << 16  # headers and body in one write, not two small packets

            def do_GET(self) -> None:
                api.client_ports.append(self.client_address[1])
                if self.path != f"{BASE}/invocation/next":
                    return self._answer(404, {"errorMessage": "no such path"})
                event = api.events.get()
                if event is None:
                    return self._answer(500, {"errorMessage": "shutting down"})
                headers = {
                    "Lambda-Runtime-Aws-Request-Id": event.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(event.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": (
                        "arn:aws:lambda:us-east-1:000000000000:function:fn-under-test"
                    ),
                    **event.headers,
                }
                self._answer(200, event.body, headers)

            def do_POST(self) -> None:
                api.client_ports.append(self.client_address[1])
                length = int(self.headers.get("Content-Length", "0"))
                post = Post(
                    self.path,
                    {name.lower(): value for name, value in self.headers.items()},
                    self.rfile.read(length),
                    self.client_address[1],
                )
                request_id = self.path.split("/")[4] if "/invocation/" in self.path else ""
                if request_id in api.hang_ups:  # as a server closing an idle connection would
                    api.hang_ups.discard(request_id)
                    self.close_connection = True
                    return
                self._answer(api.statuses.get(request_id, 202), {"status": "OK"})
                with api.changed:
                    api.posts.append(post)
                    api.changed.notify_all()

            def _answer(
                self, status: int, body: Any, headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@dataclass
class Outcome:
    posts: list[Post]
    returncode: int
    stdout: str
    stderr: str


class Client:
    """`node runtime.mjs` started as the router starts it."""

    def __init__(self, api: RuntimeApi, handler: str, env: dict[str, str] | None = None):
        self.api = api
        environment = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "_HANDLER": handler,
            "LAMBDA_TASK_ROOT": str(BUNDLE),
            "LAMBDA_RUNTIME_DIR": str(RUNTIME_DIR),
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "fn-under-test",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn-under-test",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef",
            "AWS_REGION": "us-east-1",
            "NODE_PATH": str(BUNDLE / "node_modules"),
            **(env or {}),
        }
        self.process = subprocess.Popen(
            [NODE, "--max-old-space-size=230", str(RUNTIME_DIR / "runtime.mjs")],
            cwd=BUNDLE,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,  # bytes: a carriage return in a log line stays one
        )

    def finish(self, posts: int) -> Outcome:
        """Wait for `posts` answers, then end the client as the router does (a 500 on the next
        GET next) unless it exits by itself, and return what it did."""
        try:
            recorded = self.api.wait_posts(posts)
        finally:
            self.api.close()
        try:
            stdout, stderr = self.process.communicate(timeout=WAIT_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.communicate()
        return Outcome(recorded, self.process.returncode, stdout.decode(), stderr.decode())


@pytest.fixture
def api() -> Iterator[RuntimeApi]:
    api = RuntimeApi()
    yield api
    api.close()


def invoke(api: RuntimeApi, handler: str, *events: Any, **env: str) -> Outcome:
    for event in events:
        api.add(event)
    return Client(api, handler, env).finish(len(events))


def response(post: Post, event: Event | None = None) -> Any:
    assert post.path.endswith("/response"), (post.path, post.body)
    if event is not None:
        assert post.path == f"{BASE}/invocation/{event.request_id}/response"
    return post.json()


def error(post: Post) -> dict[str, Any]:
    assert post.path.endswith("/error"), (post.path, post.body)
    body: dict[str, Any] = post.json()
    assert post.headers["lambda-runtime-function-error-type"] == body["errorType"]
    assert set(body) == {"errorType", "errorMessage", "trace"}
    return body


# --- handlers of every kind ---------------------------------------------------------------


def test_async_handler_answers_each_event_over_one_kept_alive_connection(api: RuntimeApi) -> None:
    first = api.add({"n": 1})
    second = api.add([1, "two", None])
    outcome = Client(api, "index.echo").finish(2)

    assert response(outcome.posts[0], first) == {"event": {"n": 1}, "commonjs": True}
    assert response(outcome.posts[1], second) == {"event": [1, "two", None], "commonjs": True}
    assert outcome.posts[0].headers["content-type"] == "application/json"
    # GET next, POST, GET next, POST, GET next (the 500): all on the same connection.
    assert len(api.client_ports) == 5
    assert len(set(api.client_ports)) == 1
    assert outcome.returncode == 1  # a 500 from the Runtime API ends the client


def test_module_state_survives_between_invocations(api: RuntimeApi) -> None:
    outcome = invoke(api, "index.counter", {}, {}, {})
    assert [response(post) for post in outcome.posts] == [1, 2, 3]


def test_callback_handler(api: RuntimeApi) -> None:
    outcome = invoke(api, "index.callback", {"k": "v"})
    assert response(outcome.posts[0]) == {"event": {"k": "v"}, "via": "callback"}


@pytest.mark.parametrize(
    ("handler", "answer"),
    [
        ("index.succeed", {"via": "succeed"}),
        ("index.done", {"via": "done"}),
        ("index.lateCallback", "from the callback"),
        ("index.syncReturn", None),
        ("index.twice", "first"),
        ("index.undefinedResult", None),
    ],
)
def test_callback_and_legacy_answers(api: RuntimeApi, handler: str, answer: Any) -> None:
    outcome = invoke(api, handler, {})
    assert response(outcome.posts[0]) == answer
    assert len(outcome.posts) == 1


def test_callback_answer_waits_for_the_empty_event_loop_unless_told_not_to(
    api: RuntimeApi,
) -> None:
    assert response(invoke(api, "index.waits", {}).posts[0]) == {"late": True}
    other = RuntimeApi()
    assert response(invoke(other, "index.noWait", {}).posts[0]) == {"late": False}


@pytest.mark.parametrize(
    ("handler", "module_kind"),
    [
        ("esm.handler", "esm"),  # .mjs, with top-level await
        ("esmpkg/app.handler", "esm"),  # .js under "type": "module"
        ("common.handler", "commonjs"),  # .cjs
        ("index.echo", "commonjs"),  # .js without "type"
    ],
)
def test_module_kinds(api: RuntimeApi, handler: str, module_kind: str) -> None:
    answer = response(invoke(api, handler, {"x": 1}).posts[0])
    assert answer["event"] == {"x": 1}
    assert answer[module_kind] is True


@pytest.mark.parametrize(
    ("handler", "answer"),
    [
        ("lib/mod.plain", "lib/mod.plain"),
        ("lib/mod.nested.fn", "lib/mod.nested.fn"),
        ("folder.handler", "folder/index.js"),
    ],
)
def test_handler_paths(api: RuntimeApi, handler: str, answer: str) -> None:
    assert response(invoke(api, handler, {}).posts[0]) == answer


# --- context ------------------------------------------------------------------------------


def test_context_fields_come_from_the_environment_and_the_invocation_headers(
    api: RuntimeApi,
) -> None:
    now_ms = int(time.time() * 1000)
    soon = api.add(
        {},
        deadline_ms=now_ms + 600_000,
        headers={
            "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            "Lambda-Runtime-Client-Context": json.dumps({"custom": {"k": "v"}}),
            "Lambda-Runtime-Cognito-Identity": json.dumps({"cognitoIdentityId": "id-1"}),
        },
    )
    past = api.add({}, deadline_ms=now_ms - 5_000)
    outcome = Client(api, "index.context").finish(2)

    first = response(outcome.posts[0], soon)
    remaining = first.pop("remaining")
    assert 0 < remaining <= 600_000
    assert remaining > 600_000 - WAIT_S * 1000
    assert first == {
        "functionName": "fn-under-test",
        "functionVersion": "$LATEST",
        "invokedFunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:fn-under-test",
        "memoryLimitInMB": "256",
        "awsRequestId": soon.request_id,
        "logGroupName": "/aws/lambda/fn-under-test",
        "logStreamName": "2026/01/01/[$LATEST]0123456789abcdef",
        "identity": {"cognitoIdentityId": "id-1"},
        "clientContext": {"custom": {"k": "v"}},
        "callbackWaitsForEmptyEventLoop": True,
        "traceId": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
    }
    second = response(outcome.posts[1], past)
    assert second["remaining"] <= -5_000
    assert second["traceId"] is None  # not carried over from the previous invocation
    assert second["identity"] is None
    assert second["clientContext"] is None


def test_unparseable_client_context_is_the_invocations_error(api: RuntimeApi) -> None:
    api.add({}, headers={"Lambda-Runtime-Client-Context": "{not json"})
    body = error(Client(api, "index.context").finish(1).posts[0])
    assert body["errorMessage"].startswith("Cannot parse ClientContext as json")


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("index.fail", "TypeError", "bad input"),
        ("index.callbackError", "RangeError", "callback failed"),
        ("index.syncThrow", "Error", "thrown before returning"),
        ("index.contextFail", "Error", "failed via context"),
    ],
)
def test_handler_errors(api: RuntimeApi, handler: str, error_type: str, message: str) -> None:
    event = api.add({})
    outcome = Client(api, handler).finish(1)
    post = outcome.posts[0]
    assert post.path == f"{BASE}/invocation/{event.request_id}/error"
    body = error(post)
    assert body["errorType"] == error_type
    assert body["errorMessage"] == message
    assert body["trace"][0] == f"{error_type}: {message}"
    assert any("index.js" in line for line in body["trace"][1:])
    # Logged too, with the request id.
    assert f"\t{event.request_id}\tERROR\tInvoke Error \t" in outcome.stdout
    assert outcome.returncode == 1  # only the 500 ended it: errors do not


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("index.throwString", "string", "plain string"),
        ("index.throwSymbol", "symbol", "Symbol(odd)"),
    ],
)
def test_a_thrown_non_error_is_reported_by_its_type(
    api: RuntimeApi, handler: str, error_type: str, message: str
) -> None:
    outcome = invoke(api, handler, {})
    body = error(outcome.posts[0])
    assert body == {"errorType": error_type, "errorMessage": message, "trace": []}
    assert f'Invoke Error \t{{"errorType":"{error_type}"' in outcome.stdout


def test_an_error_name_no_header_can_carry_is_escaped_in_the_header_only(
    api: RuntimeApi,
) -> None:
    post = invoke(api, "index.oddName", {}).posts[0]
    assert post.json()["errorType"] == "Odd\nName\u2603"
    assert post.headers["lambda-runtime-function-error-type"] == "Odd%0AName%E2%98%83"


def test_a_result_json_cannot_carry_is_an_error(api: RuntimeApi) -> None:
    api.add({})
    api.add({})
    outcome = Client(api, "index.circular").finish(2)
    body = error(outcome.posts[0])
    assert body["errorType"] == "Error"
    assert body["errorMessage"] == "Unable to stringify response body"
    assert "circular" in "\n".join(body["trace"])
    error(outcome.posts[1])  # and the client carries on


def test_an_async_handler_that_can_never_settle_is_an_error(api: RuntimeApi) -> None:
    outcome = invoke(api, "index.neverSettles", {}, {})
    for post in outcome.posts:
        assert error(post)["errorType"] == "Runtime.NodeJsExit"


@pytest.mark.parametrize(
    ("handler", "error_type", "message", "code"),
    [
        ("index.uncaught", "Error", "thrown from a timer", 129),
        ("index.unhandled", "Runtime.UnhandledPromiseRejection", "Error: nobody caught me", 128),
    ],
)
def test_uncaught_errors_fail_the_invocation_and_end_the_process(
    api: RuntimeApi, handler: str, error_type: str, message: str, code: int
) -> None:
    event = api.add({})
    api.add({})  # never fetched: the process is gone
    outcome = Client(api, handler).finish(1)
    assert outcome.posts[0].path == f"{BASE}/invocation/{event.request_id}/error"
    body = error(outcome.posts[0])
    assert (body["errorType"], body["errorMessage"]) == (error_type, message)
    assert any("index.js" in line for line in body["trace"])
    assert outcome.returncode == code
    assert len(outcome.posts) == 1


# --- init errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handler", "error_type", "message"),
    [
        ("missing.handler", "Runtime.ImportModuleError", "Error: Cannot find module 'missing'"),
        ("lib/missing.handler", "Runtime.ImportModuleError", "Error: Cannot find module"),
        ("throws.handler", "Runtime.ImportModuleError", "Error: boom at import"),
        ("syntax.handler", "Runtime.UserCodeSyntaxError", "SyntaxError: "),
        ("hangs.handler", "Runtime.NodeJsExit", "The runtime detected an unexpected Node.js"),
        ("index.nothing", "Runtime.HandlerNotFound", "index.nothing is undefined or not exported"),
        ("index.notAFunction", "Runtime.HandlerNotFound", "index.notAFunction is not a function"),
        ("lib/mod.nested.nothing", "Runtime.HandlerNotFound", "lib/mod.nested.nothing is"),
        ("index", "Runtime.MalformedHandlerName", "Bad handler 'index'"),
        ("index.", "Runtime.MalformedHandlerName", "Bad handler 'index.'"),
        ("../index.echo", "Runtime.MalformedHandlerName", "'../index.echo' is not a valid"),
        ("", "Runtime.MalformedHandlerName", "No handler specified"),
    ],
)
def test_init_errors_are_reported_and_end_the_process(
    api: RuntimeApi, handler: str, error_type: str, message: str
) -> None:
    api.add({})  # never fetched
    outcome = Client(api, handler).finish(1)
    post = outcome.posts[0]
    assert post.path == f"{BASE}/init/error"
    body = error(post)
    assert body["errorType"] == error_type
    assert body["errorMessage"].startswith(message), body
    assert outcome.returncode == 1
    assert len(outcome.posts) == 1
    assert "\tundefined\tERROR\tInit Error \t" in outcome.stdout


@pytest.mark.parametrize(
    ("handler", "header", "where"),
    [
        ("throws.handler", "Runtime.ImportModuleError: Error: boom at import", "throws.js:3"),
        ("syntax.handler", "Runtime.UserCodeSyntaxError: SyntaxError: ", "syntax.js:6"),
    ],
)
def test_import_error_trace_points_at_the_users_code(
    api: RuntimeApi, handler: str, header: str, where: str
) -> None:
    trace = error(Client(api, handler).finish(1).posts[0])["trace"]
    assert trace[0].startswith(header)
    assert where in trace[1]


# --- logs ---------------------------------------------------------------------------------

LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\t([^\t]+)\t([A-Z]+)\t(.*)$")


def log_lines(stdout: str) -> list[tuple[str, str, str]]:
    lines = []
    for line in stdout.split("\n")[:-1]:
        match = LINE.match(line)
        assert match, f"not in Lambda's log format: {line!r}"
        lines.append((match[2], match[3], match[4]))
    return lines


def test_console_writes_lambdas_format_with_the_request_id(api: RuntimeApi) -> None:
    event = api.add({"name": "ada"})
    outcome = Client(api, "index.logs").finish(1)
    assert response(outcome.posts[0]) == "logged"
    rid = event.request_id
    assert log_lines(outcome.stdout) == [
        ("undefined", "INFO", "loading index.js"),  # at init: no invocation yet
        (rid, "INFO", "hello ada"),
        (rid, "INFO", "info { n: 1 }"),
        (rid, "WARN", "careful"),
        (rid, "ERROR", "bad\rthings"),  # one entry per call
        (rid, "DEBUG", "details"),
    ]
    assert outcome.stdout.endswith("\n")


def test_log_level_and_json_format_as_lambdas_advanced_logging(api: RuntimeApi) -> None:
    event = api.add({"name": "ada"})
    outcome = Client(
        api, "index.logs", {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "WARN"}
    ).finish(1)
    records = [json.loads(line) for line in outcome.stdout.splitlines()]
    assert [(r["requestId"], r["level"], r["message"]) for r in records] == [
        (event.request_id, "WARN", "careful"),
        (event.request_id, "ERROR", "bad\nthings"),
    ]
    assert all(record["timestamp"].endswith("Z") for record in records)


# --- the Runtime API's verdicts -----------------------------------------------------------


def test_a_4xx_on_an_answer_is_logged_and_the_client_goes_on(api: RuntimeApi) -> None:
    refused = api.add({"n": 1})
    api.statuses[refused.request_id] = 413
    api.add({"n": 2})
    outcome = Client(api, "index.echo").finish(2)
    assert response(outcome.posts[1])["event"] == {"n": 2}
    assert f"Runtime API answered 413 to POST {BASE}/invocation/{refused.request_id}" in (
        outcome.stderr
    )


def test_an_answer_whose_kept_alive_connection_was_closed_is_sent_again(
    api: RuntimeApi,
) -> None:
    first = api.add({"n": 1})
    api.hang_ups.add(first.request_id)
    second = api.add({"n": 2})
    outcome = Client(api, "index.echo").finish(2)
    assert response(outcome.posts[0], first)["event"] == {"n": 1}
    assert response(outcome.posts[1], second)["event"] == {"n": 2}
    assert len(set(api.client_ports)) == 2  # the closed connection, then a new one


def test_a_500_on_an_answer_ends_the_client(api: RuntimeApi) -> None:
    broken = api.add({"n": 1})
    api.statuses[broken.request_id] = 500
    api.add({"n": 2})  # never fetched
    client = Client(api, "index.echo")
    assert client.process.wait(timeout=WAIT_S) == 1
    outcome = client.finish(1)
    assert len(outcome.posts) == 1
    assert "Runtime API unavailable" in outcome.stderr


def test_an_unreachable_runtime_api_ends_the_client(api: RuntimeApi) -> None:
    api.close()  # nothing listens on its port any more
    client = Client(api, "index.echo")
    assert client.process.wait(timeout=WAIT_S) == 1
    assert "Runtime API unavailable" in client.process.communicate()[1].decode()


# --- packaging ----------------------------------------------------------------------------


def test_the_runtime_is_installed_with_the_package(tmp_path: Path) -> None:
    """`pip install .` (not only an editable install) carries every file of the runtime: the
    build step that copies a package's files into a wheel, on a clean copy of the project."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("router", "handlers"):
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    built = tmp_path / "lib"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from setuptools import setup; setup()",
            "-q",
            "build_py",
            "--build-lib",
            str(built),
        ],
        cwd=source,
        check=True,
        capture_output=True,
    )
    shipped = {path.name for path in (built / "router" / "runtimes" / "nodejs").glob("*")}
    assert "runtime.mjs" in shipped
    assert shipped == {path.name for path in RUNTIME_DIR.glob("*.mjs")}
