"""The ASGI app of `spectra run` (and later `spectra web`): health, metrics, monitor API, heartbeat pushes.

With an alerting part (`Runtime.alerting`) it also serves the ack links and the Twilio webhooks; with a
status pages part (`Runtime.statuspages`) the pages, their JSON, feeds, badges and subscription links.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from spectra.runtime.readiness import ReadinessCheck
from spectra.store import monitor_overview, record_push
from spectra.store.engine import retry_locked
from spectra.web.ack import AlertingWeb, ack_routes
from spectra.web.metrics import ProbeMetrics
from spectra.web.twilio_hooks import twilio_routes

if TYPE_CHECKING:
    from spectra.statuspage.service import StatusPages

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """What the web side needs from the process it runs in."""

    session_factory: sessionmaker[Session]
    metrics: ProbeMetrics
    readiness: ReadinessCheck
    # The monitor API is open only when the server listens on loopback (standalone's default);
    # otherwise it needs this token (the console's tokens replace it later).
    loopback_only: bool = True
    api_token: str | None = None
    # Processes that alert (spectra run, spectra alerter) serve /ack/{token} and /hooks/twilio/*.
    alerting: AlertingWeb | None = None
    # Processes that serve status pages (spectra run, spectra web).
    statuspages: StatusPages | None = None


def create_app(runtime: Runtime) -> Starlette:
    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        problem = runtime.readiness()
        if problem is not None:
            return PlainTextResponse(f"not ready: {problem}\n", status_code=503)
        return PlainTextResponse("ready\n")

    async def monitors(request: Request) -> Response:
        if not _authorized(request, runtime):
            return JSONResponse({"error": "this API needs a token when the server is not loopback-only"}, 401)
        rows = await run_in_threadpool(_overview, runtime.session_factory)
        return JSONResponse(rows)

    async def heartbeat(request: Request) -> Response:
        # GET as well as POST: cron jobs call `curl URL`. The token is random and single-purpose.
        token = request.path_params["token"]
        known = await run_in_threadpool(_push, runtime.session_factory, token)
        if not known:
            return PlainTextResponse("unknown heartbeat token\n", status_code=404)
        return PlainTextResponse("ok\n")

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", runtime.metrics.endpoint),
        Route("/api/v1/monitors", monitors),
        Route("/api/v1/heartbeat/{token}", heartbeat, methods=["GET", "POST"]),
    ]
    if runtime.alerting is not None:
        routes += ack_routes(runtime.alerting, runtime.session_factory)
        routes += twilio_routes(runtime.alerting, runtime.session_factory)
    if runtime.statuspages is not None:
        # After the fixed paths: `/` on a page's own hostname must never shadow /healthz and the APIs.
        routes += runtime.statuspages.routes()
    return Starlette(routes=routes)


def _authorized(request: Request, runtime: Runtime) -> bool:
    if runtime.loopback_only:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if runtime.api_token is None or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.encode(), runtime.api_token.encode())


def _overview(factory: sessionmaker[Session]) -> list[dict[str, Any]]:
    with factory() as session:
        return [item.as_json() for item in monitor_overview(session)]


def _push(factory: sessionmaker[Session], token: str) -> bool:
    def push() -> bool:
        with factory.begin() as session:
            return record_push(session, token, datetime.now(UTC))

    # On SQLite a concurrent writer (probe results, the alerter) can make this read-then-write fail at once.
    return retry_locked(push)
