"""`spectra web`: the public web process of a cluster (status pages, subscription links, ack links, Twilio hooks).

Serves from the shared database, any number of replicas: status pages `/s/{slug}` (and `/` on their own
hostnames), their JSON, feeds and badges, the subscribe / confirm / unsubscribe links, `/ack/{token}`,
`/hooks/twilio/*`, `/healthz`, `/readyz` and `/metrics`. It writes no page incidents (the active
`spectra alerter` does) and sends nothing itself: what it queues (confirmation mails, acks' follow-ups)
the alerter's sender delivers at its next poll. Point SPECTRA_PUBLIC_URL at this process and share
SPECTRA_SECRET_KEY with the alerters (links are signed with it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from spectra.console.monitors.hub import MonitorHub
from spectra.console.routes import console_routes
from spectra.notify.twilio.settings import webhook_auth_token
from spectra.processes.bootstrap import public_url, secret_key_is_set, serve_app, with_current_schema
from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import Readiness
from spectra.statuspage.site import StatusPages
from spectra.store import redacted
from spectra.tokens import Tokens
from spectra.web.alerting import AlertingWeb, alerting_routes
from spectra.web.app import AppParts

log = logging.getLogger("spectra.web")

DEFAULT_PORT = 8080


@dataclass
class WebOptions:
    database_url: str
    host: str = "0.0.0.0"  # noqa: S104 - the public web pod serves the cluster's ingress
    port: int = DEFAULT_PORT
    public_url: str | None = None


async def run_web(options: WebOptions) -> int:
    return await with_current_schema(options.database_url, lambda sessions: _serve(options, sessions))


async def _serve(options: WebOptions, sessions: sessionmaker[Session]) -> int:
    secret_key_is_set("links signed by the alerter are refused here")
    links_base = public_url(
        options.public_url, options.host, options.port, unset_warning="links in subscription mails point at"
    )
    tokens = Tokens()
    pages = StatusPages(sessions, tokens=tokens, public_url=links_base, events=False)
    alerting = AlertingWeb(tokens=tokens, public_url=links_base, twilio_auth_token=webhook_auth_token())
    readiness = Readiness()
    hub = MonitorHub(sessions)  # the console's live updates: one reader of state changes
    routes = [*console_routes(sessions, tokens=tokens, hub=hub), *alerting_routes(alerting, sessions), *pages.routes()]
    parts = AppParts(sessions, Metrics(), readiness, loopback_only=False, routes=routes, sign_in=True)
    return await serve_app(
        parts,
        readiness,
        {"statuspages": pages.run()},
        host=options.host,
        port=options.port,
        stop=pages.stop,
        announce=f"web: database {redacted(options.database_url)}, public URL {links_base}",
        background={"console-events": hub.run()},
    )
