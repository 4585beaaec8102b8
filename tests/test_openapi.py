"""The OpenAPI document describes every admin route the app serves, and only those."""

from __future__ import annotations

from router.api import PREFIX
from router.app import create_app
from router.settings import Settings
from tests.conftest import Router


def test_every_admin_route_is_documented(router: Router) -> None:
    document = router.http.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    documented = {
        (path, method.upper())
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    app = create_app(Settings(admin_token="documented"))
    served = {
        (route.resource.canonical[len(PREFIX) :], route.method)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith(PREFIX + "/")
        and route.method != "HEAD"
        and not route.resource.canonical.endswith("openapi.json")
    }
    assert documented == served
    schemas = document["components"]["schemas"]
    assert {"Function", "Trigger", "Invocation", "Error", "DeadLetter"} <= set(schemas)
