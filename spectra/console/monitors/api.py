"""The monitors area's JSON endpoints: one monitor's facts, its checks (cursor pages) and its hourly latency.

The caller is identified as everywhere under /api/v1 (`AuthApi.caller`: an API token with scope `read`,
a session's access token, or the console's cookie); only the policy decides: another tenant's monitor
is a 404 like one that does not exist. Answers are never cached by others (`Cache-Control: no-store`);
the detail carries an ETag and answers 304 to a matching `If-None-Match`. The list, `GET /api/v1/monitors`,
stays in `spectra.web.monitors` (its filters and ETag are documented there).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import quote, urlencode

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from spectra.api.errors import problems_from
from spectra.auth import policy
from spectra.auth.identity import Principal
from spectra.runtime.timefmt import rfc3339
from spectra.store.clock import database_now
from spectra.web.auth_routes import AuthApi, Refusal, problem

from ..operations import Operation
from . import service
from .models import (
    CertificateOut,
    CheckOut,
    CheckPage,
    ChecksQuery,
    IncidentOut,
    LatencyOut,
    LatencyPointOut,
    LatencyQuery,
    LatencySeriesOut,
    LocationOut,
    MonitorDetail,
    MonitorList,
    MonitorListQuery,
    UptimeOut,
)

if TYPE_CHECKING:  # without an import cycle at run time
    from ..routes import Console

Q = TypeVar("Q", bound=BaseModel)
BASE: Final = "/api/v1/monitors/{namespace}/{name}"
HEADERS: Final = {"Cache-Control": "no-store"}
BAD_CURSOR: Final = "cursor: not a cursor this API gave; start again without one"

OPERATIONS: Final = (
    Operation(
        "GET", "/api/v1/monitors", "Every monitor the caller may see, with its state (filters optional)",
        "monitors", response=MonitorList, query=MonitorListQuery, refusals=(401, 403, 421),
    ),
    Operation("GET", BASE, "One monitor: states per location, uptime, certificate, incidents, YAML", "monitors",
              response=MonitorDetail),
    Operation("GET", f"{BASE}/checks", "The monitor's checks, newest first (cursor pages)", "monitors",
              response=CheckPage, query=ChecksQuery),
    Operation("GET", f"{BASE}/latency", "Hourly p50, p95, maximum and mean latency per location over `days` days",
              "monitors", response=LatencyOut, query=LatencyQuery),
)  # fmt: skip


def query_of(request: Request, model: type[Q]) -> Q:
    """The query string as `model`, or 400 naming each bad parameter (`field: message`)."""
    fields = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
    raw = {key: value for key, value in request.query_params.items() if key in fields}
    try:
        return model.model_validate(raw)
    except ValidationError as invalid:
        raise Refusal(400, "; ".join(str(found) for found in problems_from(invalid))) from None


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def json_answer(request: Request, data: Any, *, etag: bool = False) -> Response:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    headers = dict(HEADERS)
    if etag:
        tag = etag_of(body)
        headers["ETag"] = tag
        asked = [t.strip() for t in request.headers.get("if-none-match", "").split(",")]
        if tag in asked or f"W/{tag}" in asked or "*" in asked:
            return Response(status_code=304, headers=headers)
    return Response(body, 200, headers=headers, media_type="application/json")


def _time(moment: datetime | None) -> str | None:
    return rfc3339(moment)


def detail_json(found: service.Detail) -> dict[str, Any]:
    line = found.line
    out = MonitorDetail(
        namespace=line.namespace,
        name=line.name,
        type=line.type,
        target=line.target,
        paused=line.paused,
        state=line.state,
        last_check=_time(line.last_check_at),
        latency_ms=line.latency_ms,
        reason=line.reason,
        labels=dict(line.labels),
        interval_seconds=found.interval_ms / 1000,
        timeout_seconds=found.timeout_ms / 1000,
        severity=found.severity,
        escalation_policy=found.escalation_policy,
        locations=[
            LocationOut(
                location=loc.location,
                state=loc.state,
                last_check=_time(loc.last_check_at),
                reporting=loc.reporting,
                latency_ms=loc.latency_ms,
                reason=loc.reason,
            )
            for loc in line.locations
        ],
        uptime=[UptimeOut(window=u.window, percent=u.percent, checks=u.checks) for u in found.uptime],
        certificate=None
        if found.certificate is None
        else CertificateOut(
            expires_at=rfc3339(found.certificate.expires_at),
            days_left=found.certificate.days_left,
            location=found.certificate.location,
        ),
        incidents=[
            IncidentOut(
                id=i.id,
                code=i.code,
                title=i.title,
                severity=i.severity,
                state=i.state,
                opened_at=rfc3339(i.opened_at),
                url=f"/console/incidents/{i.id}",
            )
            for i in found.incidents
        ],
        source=found.source_kind,
        source_text=found.source,
        source_file=found.source_file,
        yaml=found.yaml,
    )
    return out.model_dump(by_alias=True, mode="json")


def latency_json(series: list[service.LatencySeries], days: int) -> dict[str, Any]:
    out = LatencyOut(
        days=days,
        measures=["p50Ms", "p95Ms", "maxMs", "meanMs"],
        series=[
            LatencySeriesOut(
                location=s.location,
                points=[
                    LatencyPointOut(
                        hour=rfc3339(p.hour),
                        p50_ms=p.p50_ms,
                        p95_ms=p.p95_ms,
                        max_ms=p.max_ms,
                        mean_ms=p.mean_ms,
                        checks=p.checks,
                    )
                    for p in s.points
                ],
            )
            for s in series
        ],
    )
    return out.model_dump(by_alias=True, mode="json")


Handler = Callable[[Request], Awaitable[Response]]


def _answering(handler: Handler) -> Handler:
    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except Refusal as refused:
            return problem(refused.status, refused.detail, refused.headers)
        except policy.Denied as refused:
            return problem(refused.status, str(refused))

    return answer


def monitors_api_routes(console: Console) -> list[Route]:
    factory: sessionmaker[Session] = console.factory
    auth = AuthApi(console.auth.sign_in)

    async def principal(request: Request) -> Principal:
        return (await auth.caller(request, changes=False)).principal

    def names(request: Request) -> tuple[str, str]:
        return str(request.path_params["namespace"]), str(request.path_params["name"])

    async def detail(request: Request) -> Response:
        who = await principal(request)
        namespace, name = names(request)

        def read() -> dict[str, Any]:
            with factory() as session:
                return detail_json(service.detail(session, who, namespace, name, days=1))

        return json_answer(request, await run_in_threadpool(read), etag=True)

    async def checks(request: Request) -> Response:
        who = await principal(request)
        namespace, name = names(request)
        query = query_of(request, ChecksQuery)
        cursor = None
        if query.cursor is not None:
            cursor = service.decode_cursor(query.cursor)
            if cursor is None:
                raise Refusal(400, BAD_CURSOR)

        def read() -> dict[str, Any]:
            with factory() as session:
                monitor = service.find_monitor(session, who, namespace, name)
                rows, after = service.checks(session, monitor.resource_id, limit=query.limit, cursor=cursor)
            items = [
                CheckOut(
                    id=r.id, location=r.location, checked_at=rfc3339(r.checked_at), status=r.status,
                    latency_ms=r.latency_ms, reason=r.reason,
                )
                for r in rows
            ]  # fmt: skip
            following = None
            if after is not None:
                path = f"/api/v1/monitors/{quote(namespace, safe='')}/{quote(name, safe='')}/checks"
                following = f"{path}?{urlencode({'limit': query.limit, 'cursor': service.encode_cursor(after)})}"
            return CheckPage(items=items, next=following).model_dump(by_alias=True, mode="json")

        return json_answer(request, await run_in_threadpool(read))

    async def latency(request: Request) -> Response:
        who = await principal(request)
        namespace, name = names(request)
        query = query_of(request, LatencyQuery)

        def read() -> dict[str, Any]:
            with factory() as session:
                monitor = service.find_monitor(session, who, namespace, name)
                series = service.latency(session, monitor.resource_id, days=query.days, now=database_now(session))
            return latency_json(series, query.days)

        return json_answer(request, await run_in_threadpool(read))

    return [
        Route(BASE, _answering(detail), methods=["GET"]),
        Route(f"{BASE}/checks", _answering(checks), methods=["GET"]),
        Route(f"{BASE}/latency", _answering(latency), methods=["GET"]),
    ]
