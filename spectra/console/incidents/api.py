"""`/api/v1/incidents`: the incidents' JSON twins of the console's pages.

- `GET /api/v1/incidents` (filters `state`, `namespace`, `monitor`, `code`, `since`; `limit`, `cursor`):
  open first, then acknowledged, then resolved, newest first; `{"items", "next", "counts"}`.
- `GET /api/v1/incidents/{incident_id}`: one incident with its timeline, notifications (delivery status
  and attempts), escalation and monitor state (`monitorState`).
- `POST /api/v1/incidents/{incident_id}/acknowledge`, `/resolve`, `/escalate`, `/notes` {text},
  `/reassign` {contact: "namespace/name"}: the actions, answering the incident afterwards.

Field names are camelCase (`openedAt`, `acknowledgedBy`, ...; models.py). The caller is an API token
(scope `read` for reads, `incidents:write` for changes), a session's access token, or the console's cookie
with the CSRF header on changes. Another tenant's incident is 404; acting twice is 409 with the sentence
("Incident K7Q2 is already acknowledged by ..."). Errors are RFC 9457 problem details; nothing is cached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spectra.api.errors import problems_from
from spectra.auth import policy, sessions
from spectra.auth.identity import Principal
from spectra.console.operations import Operation
from spectra.runtime.clients import client_key
from spectra.web.auth_routes import AuthApi, Refusal, problem
from spectra.web.bearer import REALM
from spectra.web.bodies import read_json

from .models import Counts, IncidentDetailModel, IncidentList, IncidentModel, IncidentQuery, NoteBody, ReassignBody
from .service import Filters, IncidentService, Refused

if TYPE_CHECKING:
    from spectra.console.routes import Console

BASE: Final = "/api/v1/incidents"
ITEM: Final = f"{BASE}/{{incident_id}}"
NOT_AN_ID: Final = "incident_id must be the number of an incident."
NOT_A_FILTER: Final = "not a filter of incidents (state, namespace, monitor, code, since, limit, cursor)."
_HEADERS: Final = {"Cache-Control": "no-store"}
TAG: Final = "incidents"

OPERATIONS: Final = (
    Operation("GET", BASE, "List incidents: open first, newest first", TAG, IncidentList, query=IncidentQuery),
    Operation("GET", ITEM, "One incident with its whole timeline", TAG, IncidentDetailModel),
    Operation("POST", f"{ITEM}/acknowledge", "Acknowledge (stops the escalation)", TAG, IncidentModel,
              refusals=(401, 403, 404, 409)),
    Operation("POST", f"{ITEM}/resolve", "Resolve", TAG, IncidentModel, refusals=(401, 403, 404, 409)),
    Operation("POST", f"{ITEM}/notes", "Add a note to the timeline", TAG, IncidentModel, body=NoteBody, status=201),
    Operation("POST", f"{ITEM}/escalate", "Page the next step of the escalation policy now", TAG, IncidentModel,
              refusals=(401, 403, 404, 409)),
    Operation("POST", f"{ITEM}/reassign", "Page a contact now", TAG, IncidentModel, body=ReassignBody,
              refusals=(401, 403, 404, 409)),
)  # fmt: skip

Handler = Callable[[Request], Awaitable[Response]]


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status, headers=_HEADERS)


def _answering(handler: Handler) -> Handler:
    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except Refusal as refused:
            return problem(refused.status, refused.detail, refused.headers)
        except Refused as refused:
            return problem(refused.status, refused.sentence)
        except policy.Denied as refused:
            return problem(refused.status, str(refused))

    return answer


def incident_id_of(request: Request) -> int:
    text = str(request.path_params["incident_id"])
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise Refusal(404, NOT_AN_ID)
    return int(text)


def query_of(request: Request) -> IncidentQuery:
    params = request.query_params
    unknown = sorted(set(params.keys()) - set(IncidentQuery.model_fields))
    repeated = sorted(key for key in params if len(params.getlist(key)) > 1)
    if unknown:
        raise Refusal(
            400, f"{unknown[0]}: not a filter of incidents (state, namespace, monitor, code, since, limit, cursor)."
        )
    if repeated:
        raise Refusal(400, f"{repeated[0]}: give it once.")
    try:
        return IncidentQuery.model_validate(dict(params))
    except ValidationError as invalid:
        raise Refusal(400, "; ".join(str(found) for found in problems_from(invalid))) from None


class IncidentsApi:
    def __init__(self, factory: sessionmaker[Session], service: IncidentService, auth: AuthApi) -> None:
        self.factory = factory
        self.service = service
        self.auth = auth

    async def caller(self, request: Request, *, changes: bool) -> Principal:
        principal = (await self.auth.caller(request, changes=changes)).principal
        if principal.session_id is not None:
            sid = principal.session_id

            def live() -> bool:
                with self.factory() as session:
                    return sessions.is_active(session, sid, now=self.service.clock())

            if not await run_in_threadpool(live):
                raise Refusal(401, sessions.SIGN_IN_AGAIN, {"WWW-Authenticate": f'{REALM}, error="invalid_token"'})
        return principal

    async def list(self, request: Request) -> Response:
        principal = await self.caller(request, changes=False)
        query = query_of(request)
        filters = Filters(query.state, query.namespace, query.monitor, query.code, query.since)
        page = await run_in_threadpool(self.service.list, principal, filters, limit=query.limit, cursor=query.cursor)
        next_url = None
        if page.next_cursor is not None:
            kept = {key: value for key, value in request.query_params.items() if key != "cursor"}
            next_url = f"{BASE}?{urlencode({**kept, 'cursor': page.next_cursor})}"
        body = IncidentList(
            items=[IncidentModel.of(item) for item in page.items],
            next=next_url,
            counts=Counts.model_validate(page.counts),
        )
        return _json(body.model_dump(by_alias=True, mode="json"))

    async def detail(self, request: Request) -> Response:
        principal = await self.caller(request, changes=False)
        found = await run_in_threadpool(self.service.detail, principal, incident_id_of(request))
        return _json(IncidentDetailModel.of_detail(found).model_dump(by_alias=True, mode="json"))

    def action(self, action: str) -> Handler:
        async def act(request: Request) -> Response:
            principal = await self.caller(request, changes=True)
            incident_id = incident_id_of(request)
            text = contact = ""
            if action == "note":
                text = (await read_json(request, NoteBody)).text
            elif action == "reassign":
                contact = (await read_json(request, ReassignBody)).contact
            item = await run_in_threadpool(
                lambda: self.service.act(
                    principal, incident_id, action, ip=client_key(request), channel="api", text=text, contact=contact
                )
            )
            return _json(
                IncidentModel.of(item).model_dump(by_alias=True, mode="json"), 201 if action == "note" else 200
            )

        return act


def incidents_api_routes(console: Console) -> list[Route]:
    """The routes of OPERATIONS, with full paths."""
    api = IncidentsApi(console.factory, IncidentService(console.factory, console.clock), AuthApi(console.auth.sign_in))
    return [
        Route(BASE, _answering(api.list), methods=["GET"]),
        Route(ITEM, _answering(api.detail), methods=["GET"]),
        Route(f"{ITEM}/acknowledge", _answering(api.action("acknowledge")), methods=["POST"]),
        Route(f"{ITEM}/resolve", _answering(api.action("resolve")), methods=["POST"]),
        Route(f"{ITEM}/notes", _answering(api.action("note")), methods=["POST"]),
        Route(f"{ITEM}/escalate", _answering(api.action("escalate")), methods=["POST"]),
        Route(f"{ITEM}/reassign", _answering(api.action("reassign")), methods=["POST"]),
    ]
