"""The on-call JSON endpoints under `/api/v1/oncall` (the console's on-call page's twins).

A caller is a session (access token or cookie, with the CSRF header on changes) or an API token;
reading needs `oncall.read` (the `read` scope), taking and cancelling overrides `oncall.override` (a
session, or a token with the `admin` scope). Errors are RFC 9457 problem details; nothing is cached.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import urlencode

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from spectra.api.errors import problems_from
from spectra.auth import policy, sessions
from spectra.auth.identity import Actor, Principal
from spectra.auth.policy import Action
from spectra.runtime.clients import client_key
from spectra.store.engine import retry_conflicts
from spectra.web.auth_routes import AuthApi, Refusal, problem
from spectra.web.bearer import REALM
from spectra.web.bodies import read_json

from ..operations import Operation
from . import service
from .models import (
    MyShiftList,
    MyShiftOut,
    MyShiftsQuery,
    OverrideBody,
    OverrideCancelled,
    OverrideOut,
    OverrideTaken,
    PageQuery,
    ScheduleList,
    ScheduleOut,
    TimelineOut,
    TimelineQuery,
)

if TYPE_CHECKING:
    from ..routes import Console

T = TypeVar("T")
Q = TypeVar("Q", bound=BaseModel)

BASE: Final = "/api/v1/oncall"
_HEADERS: Final = {"Cache-Control": "no-store"}
BAD_CURSOR: Final = "cursor is not valid: ask again without it."
CALENDAR_PATH: Final = "/console/oncall/calendar/{token}.ics"

OPERATIONS: Final = (
    Operation("GET", BASE, "Schedules the caller may see, with who is on call now", "oncall", ScheduleList,
              query=PageQuery, refusals=(401, 403)),
    Operation("GET", "/api/v1/oncall/me", "The caller's own shifts", "oncall", MyShiftList, query=MyShiftsQuery,
              refusals=(401, 403)),
    Operation("GET", BASE + "/{namespace}/{name}", "A schedule's timeline", "oncall", TimelineOut,
              query=TimelineQuery),
    Operation("POST", BASE + "/{namespace}/{name}/overrides", "Take an override from now until a time", "oncall",
              OverrideTaken, body=OverrideBody, status=201),
    Operation("DELETE", BASE + "/{namespace}/{name}/overrides/{override_id}", "Cancel an override", "oncall",
              OverrideCancelled),
)  # fmt: skip


def _query(request: Request, model: type[Q]) -> Q:
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as invalid:
        raise Refusal(400, "; ".join(str(found) for found in problems_from(invalid))) from None


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        value = int(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise Refusal(400, BAD_CURSOR) from None
    if value < 0:
        raise Refusal(400, BAD_CURSOR)
    return value


def _next(request: Request, offset: int, limit: int, total: int) -> str | None:
    if offset + limit >= total:
        return None
    cursor = base64.urlsafe_b64encode(str(offset + limit).encode()).decode().rstrip("=")
    query = {key: value for key, value in request.query_params.items() if key != "cursor"}
    return f"{request.url.path}?{urlencode({**query, 'cursor': cursor})}"


def _answer(model: BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", by_alias=True), status, headers=_HEADERS)


class OncallApi:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.api = AuthApi(console.auth.sign_in)

    async def caller(self, request: Request, *, changes: bool) -> Principal:
        return (await self.api.caller(request, changes=changes)).principal

    async def run(self, principal: Principal, work: Callable[[Session, datetime], T], *, write: bool) -> T:
        def attempt() -> T:
            now = self.console.clock()
            factory = self.console.factory
            with factory.begin() if write else factory() as session:
                if principal.session_id is not None and not sessions.is_active(session, principal.session_id, now=now):
                    raise Refusal(401, sessions.SIGN_IN_AGAIN, {"WWW-Authenticate": f'{REALM}, error="invalid_token"'})
                return work(session, now)

        return await run_in_threadpool(retry_conflicts, attempt)

    async def schedules(self, request: Request) -> Response:
        principal = await self.caller(request, changes=False)
        query = _query(request, PageQuery)
        offset = _offset(query.cursor)
        found = await self.run(principal, lambda s, now: service.schedules_now(s, principal, now=now), write=False)
        page = found[offset : offset + query.limit]
        items = [ScheduleOut.of(schedule) for schedule in page]
        return _answer(ScheduleList(items=items, next=_next(request, offset, query.limit, len(found))))

    async def timeline(self, request: Request) -> Response:
        principal = await self.caller(request, changes=False)
        query = _query(request, TimelineQuery)
        if query.at is not None and query.at.tzinfo is None:
            raise Refusal(400, "at: the time needs an offset, e.g. +01:00 or Z")
        namespace, name = request.path_params["namespace"], request.path_params["name"]

        def work(session: Session, now: datetime) -> service.Timeline:
            start = query.at or now
            return service.schedule_timeline(session, principal, namespace, name, start=start, days=query.days)

        return _answer(TimelineOut.of(await self.run(principal, work, write=False)))

    async def me(self, request: Request) -> Response:
        principal = await self.caller(request, changes=False)
        query = _query(request, MyShiftsQuery)
        offset = _offset(query.cursor)
        tokens = self.console.tokens

        def work(session: Session, now: datetime) -> tuple[list[service.MyShift], str]:
            shifts = service.my_shifts(session, principal, start=now, days=query.days)
            return shifts, service.feed_token(session, tokens, principal)

        shifts, token = await self.run(principal, work, write=False)
        page = [MyShiftOut.of(shift) for shift in shifts[offset : offset + query.limit]]
        calendar = CALENDAR_PATH.format(token=token)
        return _answer(
            MyShiftList(items=page, next=_next(request, offset, query.limit, len(shifts)), calendar=calendar)
        )

    async def take(self, request: Request) -> Response:
        principal = await self.caller(request, changes=True)
        policy.require(principal, Action.ONCALL_OVERRIDE, organization=principal.organization)
        body = await read_json(request, OverrideBody)
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        actor = Actor.of(principal, ip=client_key(request))

        def work(session: Session, now: datetime) -> OverrideOut:
            row = service.take_override(
                session, principal, namespace, name, until=body.until, contact=body.contact, reason=body.reason,
                actor=actor, now=now,
            )  # fmt: skip
            taken = service.schedule_timeline(session, principal, namespace, name, start=now, days=1)
            view = next(override for override in taken.schedule.overrides if override.id == row.id)
            return OverrideOut.of(view)

        return _answer(OverrideTaken(override=await self.run(principal, work, write=True)), 201)

    async def cancel(self, request: Request) -> Response:
        principal = await self.caller(request, changes=True)
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        try:
            override_id = int(request.path_params["override_id"])
        except ValueError:
            raise policy.NotFound() from None
        actor = Actor.of(principal, ip=client_key(request))

        def work(session: Session, now: datetime) -> OverrideCancelled:
            row = service.cancel_override(session, principal, namespace, name, override_id, actor=actor, now=now)
            assert row.cancelled_at is not None
            return OverrideCancelled(id=row.id, cancelled_at=row.cancelled_at)

        return _answer(await self.run(principal, work, write=True))


def _answering(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except Refusal as refused:
            return problem(refused.status, refused.detail, refused.headers)
        except policy.Denied as refused:
            return problem(refused.status, str(refused))
        except service.OncallRefused as refused:
            return problem(400, str(refused))

    return answer


def oncall_api_routes(console: Console) -> list[BaseRoute]:
    """The JSON endpoints, with full paths (see OPERATIONS)."""
    api = OncallApi(console)
    return [
        Route(BASE, _answering(api.schedules), methods=["GET"]),
        Route(f"{BASE}/me", _answering(api.me), methods=["GET"]),
        Route(BASE + "/{namespace}/{name}", _answering(api.timeline), methods=["GET"]),
        Route(BASE + "/{namespace}/{name}/overrides", _answering(api.take), methods=["POST"]),
        Route(BASE + "/{namespace}/{name}/overrides/{override_id}", _answering(api.cancel), methods=["DELETE"]),
    ]
