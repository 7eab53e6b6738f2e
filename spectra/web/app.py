"""The ASGI app of every process that serves more than health: `spectra run`, `probe`, `alerter`, `web`.

Always: /healthz, /readyz, /metrics, the monitor API and heartbeat pushes. With an alerting part
(`AppParts.alerting`) also the ack links and the Twilio webhooks; with a status pages part
(`AppParts.statuspages`) the pages, their JSON, feeds, badges and subscription links.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from spectra.alerting.ack_links import ack_routes
from spectra.alerting.phone_acks import PhoneAcks
from spectra.notify.twilio.webhooks import twilio_routes
from spectra.runtime.health import health_routes
from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import ReadinessCheck
from spectra.statuspage.site import StatusPages
from spectra.tokens import Tokens
from spectra.web.heartbeats import heartbeat_routes
from spectra.web.monitors import monitor_routes

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
    routes: list[BaseRoute] = [
        *health_routes(parts.readiness, parts.metrics),
        *monitor_routes(parts.session_factory, loopback_only=parts.loopback_only, api_token=parts.api_token),
        *heartbeat_routes(parts.session_factory),
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
