"""The JSON twins of the console's status pages, under `/api/v1/status-pages`.

Paths. The public `GET /api/v1/status-pages/{slug}` (spectra.statuspage.pages) has one segment after
`status-pages`; these have none (the list) or at least three (`{namespace}/{name}/incidents...`,
`{namespace}/{name}/maintenance...`): a slug never holds a `/`, so no path here can reach the public one
and the public one can reach none of these.

The caller is a session's access token or an API token (Bearer), or the session cookie with the CSRF
header on changes; changes need `statuspages.write` (scope `statuspages:write`). Another tenant's page,
or none, is 404; errors are RFC 9457 problem details; nothing is cached.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spectra.auth import policy, sessions
from spectra.auth.identity import Actor, Principal
from spectra.runtime.clients import client_key
from spectra.store.engine import retry_conflicts
from spectra.web.auth_routes import AuthApi, Refusal, problem
from spectra.web.bearer import REALM
from spectra.web.bodies import read_json

from ..operations import Operation
from . import models, service
from .models import (
    IncidentBody,
    IncidentList,
    IncidentOut,
    ListQuery,
    MaintenanceBody,
    MaintenanceOut,
    PageList,
    PageOut,
    PostmortemBody,
    ResolveBody,
    UpdateBody,
)
from .service import Acting, NewIncident, NewMaintenance, Publisher, Refused

if TYPE_CHECKING:  # no import cycle at run time
    from ..routes import Console

T = TypeVar("T")

BASE: Final = "/api/v1/status-pages"
PAGE: Final = BASE + "/{namespace}/{name}"
BAD_LIMIT: Final = "limit must be a whole number from 1 to 500."
BAD_CURSOR: Final = "cursor is not one this server gave (use the previous answer's next)."
BAD_ID: Final = "not found"
_HEADERS: Final = {"Cache-Control": "no-store"}
TAG: Final = "status-pages"

OPERATIONS: Final = (
    Operation("GET", BASE, "The organization's status pages", TAG, PageList, query=ListQuery, refusals=(401, 403)),
    Operation("GET", PAGE + "/incidents", "A page's incidents, newest first", TAG, IncidentList, query=ListQuery),
    Operation("POST", PAGE + "/incidents", "Post an incident by hand", TAG, IncidentOut, IncidentBody, status=201),
    Operation(
        "POST", PAGE + "/incidents/{incident_id}/updates", "Post an update", TAG, IncidentOut, UpdateBody, status=201
    ),
    Operation("POST", PAGE + "/incidents/{incident_id}/resolve", "Resolve an incident", TAG, IncidentOut, ResolveBody),
    Operation(
        "PUT", PAGE + "/incidents/{incident_id}/postmortem", "Write the post-mortem", TAG, IncidentOut, PostmortemBody
    ),
    Operation(
        "POST", PAGE + "/maintenance", "Start ad-hoc maintenance", TAG, MaintenanceOut, MaintenanceBody, status=201
    ),
    Operation("DELETE", PAGE + "/maintenance/{maintenance_id}", "End ad-hoc maintenance now", TAG, MaintenanceOut),
)


def _json(model: BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(by_alias=True, mode="json"), status, headers=_HEADERS)


def _cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def _uncursor(value: str) -> str:
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Refusal(400, BAD_CURSOR) from None


def _query(request: Request) -> ListQuery:
    raw = request.query_params
    try:
        return ListQuery.model_validate({"limit": raw.get("limit", "50"), "cursor": raw.get("cursor")})
    except ValidationError:
        raise Refusal(400, BAD_LIMIT) from None


def _id(request: Request, key: str) -> int:
    text = request.path_params[key]
    if not text.isdigit() or len(text) > 18:
        raise policy.NotFound()
    return int(text)


class StatusPagesApi:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.auth: AuthApi = AuthApi(console.auth.sign_in)
        self.publisher = Publisher(console.tokens)

    async def caller(self, request: Request, *, changes: bool) -> Principal:
        return (await self.auth.caller(request, changes=changes)).principal

    async def run(self, principal: Principal, work: Callable[[Session, datetime], T]) -> T:
        """`work(session, now)` in one transaction in a worker thread, once the caller's session is still live."""
        console = self.console

        def attempt() -> T:
            now = console.clock()
            with console.factory.begin() as session:
                if principal.session_id is not None and not sessions.is_active(session, principal.session_id, now=now):
                    raise Refusal(401, sessions.SIGN_IN_AGAIN, {"WWW-Authenticate": f'{REALM}, error="invalid_token"'})
                return work(session, now)

        return await run_in_threadpool(retry_conflicts, attempt)

    async def pages(self, request: Request) -> Response:
        principal = await self.caller(request, changes=False)
        query = _query(request)
        after = _uncursor(query.cursor) if query.cursor else None
        found = await self.run(principal, lambda s, now: service.visible_pages(s, principal, now))
        keys = [f"{p.namespace}/{p.name}" for p in found]
        start = next((i + 1 for i, key in enumerate(keys) if key == after), 0 if after is None else len(keys))
        chosen = found[start : start + query.limit]
        more = start + query.limit < len(found)
        following = f"{BASE}?limit={query.limit}&cursor={_cursor(keys[start + query.limit - 1])}" if more else None
        return _json(PageList(items=[PageOut.of(p) for p in chosen], next=following))

    async def incidents(self, request: Request) -> Response:
        principal = await self.caller(request, changes=False)
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        query = _query(request)
        before: int | None = None
        if query.cursor:
            text = _uncursor(query.cursor)
            if not text.isdigit():
                raise Refusal(400, BAD_CURSOR)
            before = int(text)
        found = await self.run(
            principal,
            lambda s, now: service.page_incidents(s, principal, namespace, name, before=before, limit=query.limit + 1),
        )
        chosen = found[: query.limit]
        following = (
            f"{BASE}/{namespace}/{name}/incidents?limit={query.limit}&cursor={_cursor(str(chosen[-1].id))}"
            if len(found) > query.limit
            else None
        )
        return _json(IncidentList(items=[IncidentOut.of(i) for i in chosen], next=following))

    async def open(self, request: Request) -> Response:
        principal = await self.caller(request, changes=True)
        body = await read_json(request, IncidentBody)
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        who = Acting(principal, Actor.of(principal, ip=client_key(request)), self.publisher)
        asked = NewIncident(body.title, dict(body.components), body.status, body.message, body.notify)
        found = await self.run(
            principal,
            lambda s, now: service.open_incident(s, who, namespace, name, asked, now=now),
        )
        self.publisher.changed()
        return _json(IncidentOut.of(found), 201)

    async def _update(
        self, request: Request, status: str, message: str, notify: bool, principal: Principal
    ) -> service.IncidentInfo:
        target = (request.path_params["namespace"], request.path_params["name"], _id(request, "incident_id"))
        who = Acting(principal, Actor.of(principal, ip=client_key(request)), self.publisher)
        found = await self.run(
            principal,
            lambda s, now: service.post_update(s, who, target, status, message, notify=notify, now=now),
        )
        self.publisher.changed()
        return found

    async def update(self, request: Request) -> Response:
        principal = await self.caller(request, changes=True)
        body = await read_json(request, UpdateBody)
        found = await self._update(request, body.status, body.message, body.notify, principal)
        return _json(IncidentOut.of(found), 201)

    async def resolve(self, request: Request) -> Response:
        principal = await self.caller(request, changes=True)
        body = await read_json(request, ResolveBody)
        found = await self._update(request, "resolved", body.message, body.notify, principal)
        return _json(IncidentOut.of(found))

    async def postmortem(self, request: Request) -> Response:
        principal = await self.caller(request, changes=True)
        body = await read_json(request, PostmortemBody)
        target = (request.path_params["namespace"], request.path_params["name"], _id(request, "incident_id"))
        who = Acting(principal, Actor.of(principal, ip=client_key(request)), self.publisher)
        found = await self.run(
            principal, lambda s, now: service.write_postmortem(s, who, target, body.postmortem, now=now)
        )
        self.publisher.changed()
        return _json(IncidentOut.of(found))

    async def start_maintenance(self, request: Request) -> Response:
        principal = await self.caller(request, changes=True)
        body = await read_json(request, MaintenanceBody)
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        who = Acting(principal, Actor.of(principal, ip=client_key(request)), self.publisher)
        asked = NewMaintenance(body.title, body.components, body.until, body.message)
        found = await self.run(
            principal, lambda s, now: service.start_maintenance(s, who, namespace, name, asked, now=now)
        )
        self.publisher.changed()
        return _json(MaintenanceOut.of(found), 201)

    async def end_maintenance(self, request: Request) -> Response:
        principal = await self.caller(request, changes=True)
        target = (request.path_params["namespace"], request.path_params["name"], _id(request, "maintenance_id"))
        who = Acting(principal, Actor.of(principal, ip=client_key(request)), self.publisher)
        found = await self.run(principal, lambda s, now: service.end_maintenance(s, who, target, now=now))
        self.publisher.changed()
        return _json(MaintenanceOut.of(found))


def _answering(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
    async def answer(request: Request) -> Response:
        try:
            response: Response = await handler(request)
            return response
        except Refusal as refused:
            return problem(refused.status, refused.detail, refused.headers)
        except policy.NotFound:
            return problem(404, "There is nothing here, or it is not yours to see.")
        except policy.Denied as refused:
            return problem(refused.status, str(refused))
        except Refused as refused:
            return problem(400, str(refused))

    return answer


def statuspages_api_routes(console: Console) -> list[Route]:
    api = StatusPagesApi(console)
    incident = PAGE + "/incidents/{incident_id}"
    return [
        Route(BASE, _answering(api.pages), methods=["GET"]),
        Route(PAGE + "/incidents", _answering(api.incidents), methods=["GET"]),
        Route(PAGE + "/incidents", _answering(api.open), methods=["POST"]),
        Route(incident + "/updates", _answering(api.update), methods=["POST"]),
        Route(incident + "/resolve", _answering(api.resolve), methods=["POST"]),
        Route(incident + "/postmortem", _answering(api.postmortem), methods=["PUT"]),
        Route(PAGE + "/maintenance", _answering(api.start_maintenance), methods=["POST"]),
        Route(PAGE + "/maintenance/{maintenance_id}", _answering(api.end_maintenance), methods=["DELETE"]),
    ]


__all__ = ["OPERATIONS", "models", "statuspages_api_routes"]
