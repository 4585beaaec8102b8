"""The router's HTTP routes, each area handed only the parts of the router it uses."""

from __future__ import annotations

from aiohttp import web

from router import api, console, lambdaapi, openapi
from router.deadletterapi import DeadLetterRoutes
from router.guards import guarded
from router.probes import Probes
from router.recordsapi import RecordRoutes
from router.services import Services
from router.sigv4 import Credentials, Verifier
from router.versioning import VersionRoutes
from router.webhookchecks import WebhookChecks
from router.webhooks import Webhooks


def routes(svc: Services) -> list[web.RouteDef]:
    settings = svc.settings
    verifier = Verifier(Credentials.parse(settings.aws_credentials))  # SigV4, for both below
    own = Probes(svc.readiness, svc.registry, svc.metrics).routes()
    own += console.routes()  # the web console's files: they hold no data, so no token
    return [
        *guarded(own),
        *guarded(admin(svc), admin_token=settings.admin_token),
        *webhooks(svc, verifier).routes(),
        *lambdaapi.routes(lambda_backend(svc, verifier)),  # Lambda's API (2015-03-31)
    ]


def admin(svc: Services) -> list[web.RouteDef]:
    """The admin API under /api/v1."""
    store, timeout_s = svc.registry.store, svc.settings.body_timeout_s
    max_body = svc.settings.max_body_bytes
    return [
        web.get(f"{api.PREFIX}/openapi.json", openapi.document),
        *api.FunctionRoutes(store, svc.registration, svc.bundles, timeout_s).routes(),
        *api.InvokeRoute(svc.registry, svc.invocations, max_body, timeout_s).routes(),
        *api.TriggerRoutes(store, svc.registration, timeout_s).routes(),
        *RecordRoutes(svc.registry, svc.logs, svc.usage, svc.store).routes(),
        *DeadLetterRoutes(svc.registry, svc.dead_letters, timeout_s).routes(),
        *VersionRoutes(store, svc.registration).routes(),
    ]


def webhooks(svc: Services, verifier: Verifier) -> Webhooks:
    checks = WebhookChecks(verifier, svc.rate_limiter, svc.replays, svc.metrics)
    return Webhooks(
        svc.registry,
        svc.lifecycle,
        svc.invocations,
        checks,
        svc.metrics,
        svc.settings.body_timeout_s,
    )


def lambda_backend(svc: Services, verifier: Verifier) -> lambdaapi.Backend:
    return lambdaapi.Backend(
        svc.registry, svc.registration, svc.invocations, svc.redis, svc.names, verifier
    )
