"""The ASGI app of `spectra run` (and later `spectra web`): health, metrics, monitor API, heartbeat pushes.

With an alerting part (`AppParts.alerting`) it also serves the ack links and the Twilio webhooks; with a
status pages part (`AppParts.statuspages`) the pages, their JSON, feeds, badges and subscription links.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from spectra.runtime.health import health_routes
from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import ReadinessCheck
from spectra.statuspage.service import StatusPages
from spectra.store import monitor_overview, record_push
from spectra.store.engine import retry_locked
from spectra.web.ack import AlertingWeb, ack_routes
from spectra.web.twilio_hooks import twilio_routes

log = logging.getLogger(__name__)


@dataclass
class AppParts:
    """What the web side needs from the process it runs in."""

    session_factory: sessionmaker[Session]
    metrics: Metrics  # the process's own metrics (a probe worker's only where one runs)
    readiness: ReadinessCheck
    # The monitor API is open only when the server listens on loopback (standalone's default);
    # otherwise it needs this token (the console's tokens replace it later).
    loopback_only: bool = True
    api_token: str | None = None
    # Processes that alert (spectra run, spectra alerter) serve /ack/{token} and /hooks/twilio/*.
    alerting: AlertingWeb | None = None
    # Processes that serve status pages (spectra run, spectra web).
    statuspages: StatusPages | None = None


def create_app(parts: AppParts) -> Starlette:
    async def monitors(request: Request) -> Response:
        if not _authorized(request, parts):
            return JSONResponse({"error": "this API needs a token when the server is not loopback-only"}, 401)
        rows = await run_in_threadpool(_overview, parts.session_factory)
        return JSONResponse(rows)

    async def heartbeat(request: Request) -> Response:
        # GET as well as POST: cron jobs call `curl URL`. The token is random and single-purpose.
        token = request.path_params["token"]
        known = await run_in_threadpool(_push, parts.session_factory, token)
        if not known:
            return PlainTextResponse("unknown heartbeat token\n", status_code=404)
        return PlainTextResponse("ok\n")

    routes: list[BaseRoute] = [
        *health_routes(parts.readiness, parts.metrics),
        Route("/api/v1/monitors", monitors),
        Route("/api/v1/heartbeat/{token}", heartbeat, methods=["GET", "POST"]),
    ]
    if parts.alerting is not None:
        routes += ack_routes(parts.alerting, parts.session_factory)
        routes += twilio_routes(parts.alerting, parts.session_factory)
    if parts.statuspages is not None:
        # After the fixed paths: `/` on a page's own hostname must never shadow /healthz and the APIs.
        routes += parts.statuspages.routes()
    return Starlette(routes=routes)


def _authorized(request: Request, parts: AppParts) -> bool:
    if parts.loopback_only:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if parts.api_token is None or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.encode(), parts.api_token.encode())


def _overview(factory: sessionmaker[Session]) -> list[dict[str, Any]]:
    with factory() as session:
        return [item.as_json() for item in monitor_overview(session)]


def _push(factory: sessionmaker[Session], token: str) -> bool:
    def push() -> bool:
        with factory.begin() as session:
            return record_push(session, token, datetime.now(UTC))

    # On SQLite a concurrent writer (probe results, the alerter) can make this read-then-write fail at once.
    return retry_locked(push)
