"""The platform admins' JSON endpoints: GET /api/v1/platform/system (the system page's twin, served here),
and those spectra.web.admin_routes serves (tenants, impersonations, global maintenance), as OPERATIONS
lists them for the OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Final

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from spectra.auth.policy import Action
from spectra.web.admin_routes import AdminApi, ImpersonationBody, MaintenanceBody, answering

from ..operations import Operation
from ..organization.models import PageQuery
from . import models, service

if TYPE_CHECKING:
    from ..routes import Console

TAG: Final = "platform"
SYSTEM: Final = "/api/v1/platform/system"
PLATFORM_ONLY: Final = (401, 403)  # never 404: platform actions name no organization
MAINTENANCE: Final = "/api/v1/platform/global-maintenance"

OPERATIONS: Final = (
    Operation("GET", SYSTEM, "Probe workers per location, leader leases (the active alerter), the outbox "
              "backlog, the database and its schema revision", TAG, models.System, refusals=PLATFORM_ONLY),
    Operation("GET", "/api/v1/platform/tenants", "Every organization with plan, usage, trial and suspension, "
              "by name", TAG, models.Tenants, query=PageQuery, refusals=PLATFORM_ONLY),
    Operation("GET", "/api/v1/platform/impersonations", "The impersonations in effect, newest first", TAG,
              models.Impersonations, query=PageQuery, refusals=PLATFORM_ONLY),
    Operation("POST", "/api/v1/platform/impersonations", "Start impersonating a member: a session of theirs",
              TAG, models.ImpersonationSession, body=ImpersonationBody, status=201, refusals=PLATFORM_ONLY),
    Operation("DELETE", "/api/v1/platform/impersonations/{impersonation_id}", "End an impersonation now", TAG,
              models.Ended),
    Operation("GET", MAINTENANCE, "Global maintenance now", TAG, models.Maintenance, refusals=PLATFORM_ONLY),
    Operation("PUT", MAINTENANCE, "Turn global maintenance on, or change it", TAG, models.Maintenance,
              body=MaintenanceBody, refusals=PLATFORM_ONLY),
    Operation("DELETE", MAINTENANCE, "Turn global maintenance off", TAG, models.Maintenance,
              refusals=(*PLATFORM_ONLY, 409)),
)  # fmt: skip


def platform_api_routes(console: Console) -> list[BaseRoute]:
    api = AdminApi(console.factory, clock=console.clock, tokens=console.tokens)

    async def system(request: Request) -> Response:
        principal = await api.caller(request, changes=False)
        service.require_platform(principal, Action.SYSTEM_READ)

        def work(session: Session, now: datetime) -> service.System:
            return service.system(session, principal, now=now)

        found = models.System.of(await api.run(principal, work))
        return JSONResponse(found.model_dump(mode="json", by_alias=True), headers={"Cache-Control": "no-store"})

    return [Route(SYSTEM, answering(system), methods=["GET"])]
