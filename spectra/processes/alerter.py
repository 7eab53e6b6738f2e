"""`spectra alerter`: the cluster alerter process.

Runs the Alerter (a lease in the database makes one replica active; extra replicas stand by and take
over when it dies), the Sender that delivers the outbox, the status pages' event loop (automatic page
incidents and subscriber mails, on the active replica only; `spectra web` serves the pages), and a web
server on 0.0.0.0:8082 with /healthz, /readyz, /metrics, the ack links and the Twilio webhooks.
Settings: SPECTRA_DATABASE_URL, SPECTRA_PUBLIC_URL (base of links and of the Twilio signature check),
SPECTRA_SECRET_KEY (signs ack links; must be the same on every replica), SENDGRID_API_KEY,
SPECTRA_EMAIL_FROM, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER, SPECTRA_SENDGRID_URL, SPECTRA_TWILIO_URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from spectra.alerting import Alerter
from spectra.api.secrets import NoSecrets, SecretResolver
from spectra.housekeeping import Housekeeping
from spectra.notify.outbox import Sender
from spectra.notify.registry import channels_from_env
from spectra.notify.twilio.settings import webhook_auth_token
from spectra.processes.bootstrap import public_url, secret_key_is_set, with_current_schema
from spectra.runtime.lifecycle import serve, web_server
from spectra.runtime.metrics import Metrics
from spectra.runtime.readiness import Readiness
from spectra.statuspage.site import StatusPages
from spectra.store import redacted
from spectra.tokens import Tokens
from spectra.web.app import AlertingWeb, AppParts, create_app

log = logging.getLogger("spectra.alerter")

DEFAULT_PORT = 8082


@dataclass
class AlerterOptions:
    database_url: str
    host: str = "0.0.0.0"  # noqa: S104 - an alerter pod serves health, metrics and webhooks to the cluster
    port: int = DEFAULT_PORT
    public_url: str | None = None


async def run_alerter(options: AlerterOptions, *, secrets: SecretResolver | None = None) -> int:
    return await with_current_schema(options.database_url, lambda sessions: _serve(options, sessions, secrets))


async def _serve(options: AlerterOptions, sessions: sessionmaker[Session], secrets: SecretResolver | None) -> int:
    secret_key_is_set("ack links die with this process and other replicas refuse them")
    links_base = public_url(
        options.public_url, options.host, options.port, unset_warning="links in notifications point at"
    )
    resolver: SecretResolver = secrets if secrets is not None else NoSecrets()
    tokens = Tokens()
    sender = Sender(sessions, channels_from_env(), secrets=resolver)
    alerter = Alerter(sessions, secrets=resolver, tokens=tokens, public_url=links_base, sender=sender)
    alerting = AlertingWeb(
        tokens=tokens, public_url=links_base, twilio_auth_token=webhook_auth_token(), after_change=sender.wake
    )
    pages = StatusPages(
        sessions, tokens=tokens, public_url=links_base, wake=sender.wake, leading=lambda: alerter.leading
    )
    readiness = Readiness()
    parts = AppParts(sessions, Metrics(), readiness, loopback_only=False, alerting=alerting)

    housekeeping = Housekeeping(sessions)  # rollups and retention, beside the alerter

    async def stop() -> None:
        await pages.stop()
        await housekeeping.stop()
        await alerter.stop()  # gives up the lease so a standby takes over at once
        await sender.stop()

    log.info(
        "alerter: database %s, public URL %s, listening on %s:%d",
        redacted(options.database_url),
        links_base,
        options.host,
        options.port,
    )
    return await serve(
        {
            "alerter": alerter.run(),
            "statuspages": pages.run(),
            "sender": sender.run(),
            "housekeeping": housekeeping.run(),
        },
        web_server(create_app(parts), options.host, options.port),
        readiness=readiness,
        stop=stop,
    )
