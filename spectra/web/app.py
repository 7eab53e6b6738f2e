"""The ASGI app of `spectra run` (and later `spectra web`): health, metrics, monitor API, heartbeat pushes.

With an alerting part (`AppParts.alerting`) it also serves the ack links and the Twilio webhooks; with a
status pages part (`AppParts.statuspages`) the pages, their JSON, feeds, badges and subscription links.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from spectra.alerting.ack_links import ack_routes
from spectra.alerting.phone_acks import PhoneAcks
from spectra.notify.twilio.webhooks import twilio_routes
from spectra.runtime.health import health_routes
from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import ReadinessCheck
from spectra.statuspage.service import StatusPages
from spectra.store import monitor_overview, record_push
from spectra.store.engine import retry_locked
from spectra.tokens import Tokens

log = logging.getLogger(__name__)


@dataclass
class AlertingWeb:
    """What the ack links and the Twilio webhooks need from the process that serves them."""

    tokens: Tokens
    public_url: str
    # Twilio signs its webhooks with the account's auth token; without one the hooks refuse everything.
    twilio_auth_token: str | None = None
    # Called after an incident changed (e.g. Sender.wake, so "resolved" notifications go out at once).
    after_change: Callable[[], None] = field(default=lambda: None)


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
        alerting = parts.alerting
        routes += ack_routes(alerting.tokens, parts.session_factory, alerting.after_change)
        routes += twilio_routes(
            PhoneAcks(parts.session_factory),
            auth_token=alerting.twilio_auth_token,
            public_url=alerting.public_url,
            after_change=alerting.after_change,
        )
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
