"""The ASGI app of every process that serves more than health: `spectra run`, `probe`, `alerter`, `web`.

Always: /healthz, /readyz, /metrics, the monitor API and heartbeat pushes; signing in where people reach
the server (:mod:`spectra.web.auth_routes`, `AppParts.sign_in`); then the routes of the parts
the process runs (`AppParts.routes`): the ack links and Twilio webhooks (:mod:`spectra.web.alerting`)
where it alerts, the status pages where it serves them. A probe worker imports none of those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from spectra.runtime.cross_site import CrossSiteRefusal
from spectra.runtime.health import health_routes
from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import ReadinessCheck
from spectra.web.account_pages import account_routes
from spectra.web.admin_routes import admin_routes
from spectra.web.auth_routes import auth_routes
from spectra.web.heartbeats import heartbeat_routes
from spectra.web.monitors import monitor_routes
from spectra.web.sso_routes import sso_routes


@dataclass
class AppParts:
    """What the web side needs from the process it runs in."""

    session_factory: sessionmaker[Session]
    metrics: Metrics  # the process's own metrics (a probe worker's only where one runs)
    readiness: ReadinessCheck
    # Without an API token, the monitor API answers only when the server listens on loopback
    # (standalone's default); with one, anywhere.
    loopback_only: bool = True
    # The routes of the process's parts, after the fixed paths: `/` on a status page's own hostname
    # must never shadow /healthz and the APIs, so the status pages' routes come last.
    routes: Sequence[BaseRoute] = ()
    # Signing in (/api/v1/auth/*, /login, the account link pages): where people reach the server
    # (`spectra run`, `spectra web`), not on probe workers and alerters.
    sign_in: bool = False


def create_app(parts: AppParts) -> Starlette:
    routes: list[BaseRoute] = [
        *health_routes(parts.readiness, parts.metrics),
        *monitor_routes(parts.session_factory, loopback_only=parts.loopback_only),
        *heartbeat_routes(parts.session_factory),
        *(auth_routes(parts.session_factory) if parts.sign_in else ()),
        *(admin_routes(parts.session_factory) if parts.sign_in else ()),
        *(account_routes(parts.session_factory) if parts.sign_in else ()),
        *(sso_routes(parts.session_factory) if parts.sign_in else ()),  # none without SPECTRA_SSO_PROVIDERS
        *parts.routes,
    ]
    return Starlette(routes=routes, middleware=[Middleware(CrossSiteRefusal)])  # forms refuse cross-site posts
