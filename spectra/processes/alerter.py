"""`spectra alerter`: the cluster alerter process.

Runs the Alerter (a lease in the database makes one replica active; extra replicas stand by and take
over when it dies), the Sender that delivers the outbox, the status pages' event loop (automatic page
incidents and subscriber mails, on the active replica only; `spectra web` serves the pages), and a web
server on 0.0.0.0:8082 with /healthz, /readyz, /metrics, the ack links and the Twilio webhooks.
Settings: SPECTRA_DATABASE_URL, SPECTRA_PUBLIC_URL (base of links and of the Twilio signature check),
SPECTRA_SECRET_KEY (signs ack links; must be the same on every replica), SENDGRID_API_KEY,
SPECTRA_EMAIL_FROM, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER, SPECTRA_SENDGRID_URL, SPECTRA_TWILIO_URL,
SPECTRA_ALLOW_PRIVATE_TARGETS (webhook and Slack deliveries may reach loopback and private addresses; off by
default, as for `spectra probe`; metadata addresses are always refused).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from spectra.api.secrets import NoSecrets, SecretResolver
from spectra.domain.egress import EgressPolicy
from spectra.processes.alerting_side import AlertingSide
from spectra.processes.bootstrap import public_url, secret_key_is_set, serve_app, with_current_schema
from spectra.runtime.readiness import Readiness
from spectra.store import redacted
from spectra.web.alerting import alerting_routes
from spectra.web.app import AppParts

log = logging.getLogger("spectra.alerter")

DEFAULT_PORT = 8082


@dataclass
class AlerterOptions:
    database_url: str
    host: str = "0.0.0.0"  # noqa: S104 - an alerter pod serves health, metrics and webhooks to the cluster
    port: int = DEFAULT_PORT
    public_url: str | None = None
    # Webhook and Slack URLs come from tenants' Secrets: inside the cluster only when the operator says so.
    allow_private: bool = False


async def run_alerter(options: AlerterOptions, *, secrets: SecretResolver | None = None) -> int:
    return await with_current_schema(options.database_url, lambda sessions: _serve(options, sessions, secrets))


async def _serve(options: AlerterOptions, sessions: sessionmaker[Session], secrets: SecretResolver | None) -> int:
    secret_key_is_set("ack links die with this process and other replicas refuse them")
    links_base = public_url(
        options.public_url, options.host, options.port, unset_warning="links in notifications point at"
    )
    egress = EgressPolicy(allow_loopback=options.allow_private, allow_private=options.allow_private)
    side = AlertingSide(sessions, secrets if secrets is not None else NoSecrets(), links_base, egress=egress)
    readiness = Readiness()
    # The status pages themselves are served by `spectra web`; here only the alerting side's links and hooks.
    parts = AppParts(
        sessions,
        side.metrics,
        lambda: readiness() or side.problem(),
        loopback_only=False,
        routes=alerting_routes(side.web, sessions),
    )
    return await serve_app(
        parts,
        readiness,
        side.components(),
        host=options.host,
        port=options.port,
        stop=side.stop,
        announce=f"alerter: database {redacted(options.database_url)}, public URL {links_base}",
    )
