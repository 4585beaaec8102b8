"""Admin writes while RabbitMQ is away: a 503 with Retry-After naming the cause, never a 500,
and nothing half-registered; the same write goes through once the broker is back."""

from __future__ import annotations

import time

from tests.conftest import unique
from tests.faults.conftest import Service, ensure_rabbitmq, rabbitmqctl


def test_admin_writes_while_rabbitmq_is_away_are_503(service: Service) -> None:
    router = service.start()
    existing = unique("fn")
    router.put_function(existing, handler="testfns:record", isolation="thread")
    name = unique("fn")
    try:
        rabbitmqctl("stop_app")
        time.sleep(1)  # the router notices its connection is gone
        function = router.http.put(f"/api/v1/functions/{name}", json={"handler": "testfns:record"})
        trigger = router.http.put(
            f"/api/v1/triggers/{unique('t')}",
            json={"function": existing, "type": "amqp", "exchange": unique("ex")},
        )
        for response in (function, trigger):
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"]
            assert "RabbitMQ" in response.json()["error"]
        assert router.http.get(f"/api/v1/functions/{name}").status_code == 404  # not half made
    finally:
        ensure_rabbitmq()
    deadline = time.monotonic() + 30
    status = 0
    while time.monotonic() < deadline and status != 201:
        status = router.http.put(
            f"/api/v1/functions/{name}", json={"handler": "testfns:record"}
        ).status_code
        time.sleep(0.5)
    assert status == 201
