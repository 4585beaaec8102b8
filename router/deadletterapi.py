"""The admin API's dead letters: list, read, replay and purge a function's dead-letter queue."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from router.amqp import BrokerError
from router.api import MAX_SPEC_BYTES, PREFIX, known_function, limit_of
from router.bodies import read_json
from router.dlq import DeadLetters, UnknownDeadLetter
from router.jsonhttp import HttpError, json_response
from router.registry import Registry


class DeadLetterRoutes:
    def __init__(
        self, registry: Registry, dead_letters: DeadLetters, body_timeout_s: float
    ) -> None:
        self._registry = registry
        self._dead_letters = dead_letters
        self._body_timeout_s = body_timeout_s

    async def list_dead_letters(self, request: web.Request) -> web.Response:
        """A page of dead letters, oldest first: `?limit=`, `?after=<id>` for the next page."""
        function = known_function(request, self._registry)
        limit = limit_of(request)
        after = request.query.get("after") or None
        try:
            page = await self._dead_letters.page(function, limit, after)
            count = page.count
            if count is None:  # a page that read the whole queue counted it; quorum queues
                count = await self._dead_letters.count(function)  # report depth a bit late

        except UnknownDeadLetter:
            raise HttpError(
                404,
                f"no dead letter {after!r} to list after (replayed or purged since?): list again"
                " without after",
                field="after",
            ) from None
        except BrokerError as exc:
            raise HttpError(503, f"RabbitMQ is unavailable: {exc}") from exc
        return json_response(
            {"function": function, "count": count, "messages": page.messages, "next": page.next}
        )

    async def get_dead_letter(self, request: web.Request) -> web.Response:
        function, wanted = known_function(request, self._registry), request.match_info["id"]
        try:
            return json_response(await self._dead_letters.get(function, wanted))
        except UnknownDeadLetter:
            raise HttpError(404, f"no dead letter {wanted!r} for {function!r}") from None
        except BrokerError as exc:
            raise HttpError(503, f"RabbitMQ is unavailable: {exc}") from exc

    async def replay_dead_letters(self, request: web.Request) -> web.Response:
        """Body `{"id": "..."}` replays one, `{"all": true}` every dead letter; malformed ones
        are skipped, each with its reason."""
        function = known_function(request, self._registry)
        wanted = _selection(await read_json(request, MAX_SPEC_BYTES, self._body_timeout_s))
        try:
            result = await self._dead_letters.replay(function, wanted)
        except BrokerError as exc:
            raise HttpError(503, f"RabbitMQ is unavailable: {exc}") from exc
        if wanted is not None and result.replayed == 0:
            if result.skipped:
                reason = result.skipped[0]["reason"]
                raise HttpError(
                    409,
                    f"dead letter {wanted!r} cannot be replayed ({reason}); purge it",
                    field="id",
                )
            raise HttpError(404, f"no dead letter {wanted!r} for {function!r}")
        answer: dict[str, Any] = {"replayed": result.replayed}
        if result.skipped:
            answer["skipped"] = result.skipped
        return json_response(answer)

    async def purge_dead_letters(self, request: web.Request) -> web.Response:
        function = known_function(request, self._registry)
        wanted = request.match_info.get("id")
        try:
            purged = await self._dead_letters.purge(function, wanted)
        except BrokerError as exc:
            raise HttpError(503, f"RabbitMQ is unavailable: {exc}") from exc
        if wanted and purged == 0:
            raise HttpError(404, f"no dead letter {wanted!r} for {function!r}")
        return json_response({"purged": purged})

    def routes(self) -> list[web.RouteDef]:
        dlq = f"{PREFIX}/functions/{{name}}/dlq"
        return [
            web.get(dlq, self.list_dead_letters),
            web.delete(dlq, self.purge_dead_letters),
            web.post(f"{dlq}/replay", self.replay_dead_letters),
            web.get(f"{dlq}/{{id}}", self.get_dead_letter),
            web.delete(f"{dlq}/{{id}}", self.purge_dead_letters),
        ]


def _selection(selection: object) -> str | None:
    """The id to replay, or None for all."""
    if isinstance(selection, dict) and selection.get("all") is True and "id" not in selection:
        return None
    if isinstance(selection, dict) and isinstance(selection.get("id"), str) and len(selection) == 1:
        wanted: str = selection["id"]
        return wanted
    raise HttpError(400, 'give {"id": "<dead letter id>"} or {"all": true}', field="body")
