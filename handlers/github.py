"""GitHub push summariser: a webhook function declared in code with `@router.function`.

Point a GitHub repository's webhook (content type `application/json`, with a secret) at
`/hooks/github-push` and start the router with the same secret in `GITHUB_WEBHOOK_SECRET`; the
function answers with a one-line summary per push and ignores other events. Without the
variable only the function is declared: a webhook is never left open by accident.
"""

from __future__ import annotations

import json
import os
from typing import Any

import router


def _triggers() -> dict[str, dict[str, Any]]:
    secret = os.environ.get("GITHUB_WEBHOOK_SECRET")
    if not secret:
        return {}
    verify = {"scheme": "github", "secrets": [secret]}
    return {"github-push": {"type": "webhook", "mode": "sync", "verify": verify}}


@router.function(
    "github-push",
    timeout_s=10,
    isolation="thread",
    triggers=_triggers(),
)
def summarise(event: dict[str, Any], context: Any) -> dict[str, Any]:
    headers = event.get("headers", {})
    kind = headers.get("x-github-event", "unknown")
    if kind == "ping":
        return {"statusCode": 200, "body": json.dumps({"pong": True})}
    if kind != "push":
        return {"statusCode": 202, "body": json.dumps({"ignored": kind})}
    push = json.loads(event.get("body") or "{}")
    return {"summary": summary(push), "delivery": headers.get("x-github-delivery")}


def summary(push: dict[str, Any]) -> str:
    repository = push.get("repository", {}).get("full_name", "?")
    branch = str(push.get("ref", "")).removeprefix("refs/heads/")
    pusher = push.get("pusher", {}).get("name", "someone")
    commits = push.get("commits", [])
    titles = "; ".join(str(c.get("message", "")).splitlines()[0] for c in commits[:3] if c)
    more = f" (+{len(commits) - 3} more)" if len(commits) > 3 else ""
    noun = "commit" if len(commits) == 1 else "commits"
    return f"{pusher} pushed {len(commits)} {noun} to {repository}@{branch}: {titles}{more}"
