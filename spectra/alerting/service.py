"""`spectra alerter`: the cluster alerter process.

Runs the Alerter (a lease in the database makes one replica active; extra replicas stand by and take
over when it dies), the Sender that delivers the outbox, and a web server on 0.0.0.0:8082 with /healthz,
/readyz, /metrics, the ack links and the Twilio webhooks. Settings: SPECTRA_DATABASE_URL,
SPECTRA_PUBLIC_URL (base of links and of the Twilio signature check), SPECTRA_SECRET_KEY (signs ack
links; must be the same on every replica), SENDGRID_API_KEY, SPECTRA_EMAIL_FROM, TWILIO_ACCOUNT_SID,
TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER, SPECTRA_SENDGRID_URL, SPECTRA_TWILIO_URL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import dataclass

import uvicorn

from spectra.api.secrets import NoSecrets, SecretResolver
from spectra.store import current_revision, head_revision, make_engine, redacted, session_factory
from spectra.tokens import Tokens
from spectra.web.ack import AlertingWeb
from spectra.web.app import Runtime, create_app
from spectra.web.metrics import ProbeMetrics

log = logging.getLogger("spectra.alerter")

DEFAULT_PORT = 8082


@dataclass
class AlerterOptions:
    database_url: str
    host: str = "0.0.0.0"  # noqa: S104 - an alerter pod serves health, metrics and webhooks to the cluster
    port: int = DEFAULT_PORT
    public_url: str | None = None


async def run_alerter(options: AlerterOptions, *, secrets: SecretResolver | None = None) -> int:
    from spectra.alerting import Alerter
    from spectra.notify.outbox import Sender, channels_from_env

    engine = make_engine(options.database_url)
    sessions = session_factory(engine)
    revision = await asyncio.to_thread(current_revision, engine)
    if revision != head_revision():
        log.error(
            "database %s is at revision %s, expected %s: run `spectra db upgrade`",
            redacted(options.database_url),
            revision,
            head_revision(),
        )
        engine.dispose()
        return 1
    if not os.environ.get("SPECTRA_SECRET_KEY"):
        log.warning("SPECTRA_SECRET_KEY is not set: ack links die with this process and other replicas refuse them")
    public_url = (options.public_url or os.environ.get("SPECTRA_PUBLIC_URL") or "").rstrip("/")
    if not public_url:
        public_url = f"http://{options.host}:{options.port}"
        log.warning("SPECTRA_PUBLIC_URL is not set: links in notifications point at %s", public_url)
    resolver: SecretResolver = secrets if secrets is not None else NoSecrets()
    tokens = Tokens()
    sender = Sender(sessions, channels_from_env(), secrets=resolver)
    alerter = Alerter(sessions, secrets=resolver, tokens=tokens, public_url=public_url, sender=sender)
    stopping = asyncio.Event()
    ready: list[str | None] = ["starting"]
    alerting = AlertingWeb(
        tokens=tokens,
        public_url=public_url,
        twilio_auth_token=os.environ.get("TWILIO_AUTH_TOKEN") or None,
        after_change=sender.wake,
    )
    runtime = Runtime(sessions, ProbeMetrics(), lambda: ready[0], loopback_only=False, alerting=alerting)
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host=options.host, port=options.port, log_level="warning", lifespan="off")
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    tasks = [
        asyncio.create_task(alerter.run(), name="alerter"),
        asyncio.create_task(sender.run(), name="sender"),
        asyncio.create_task(server.serve(), name="web"),
    ]
    log.info(
        "alerter: database %s, public URL %s, listening on %s:%d",
        redacted(options.database_url),
        public_url,
        options.host,
        options.port,
    )
    ready[0] = None
    stop = asyncio.create_task(stopping.wait())
    done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
    failed = [task for task in done if task is not stop and task.exception() is not None]
    for task in failed:
        log.error("%s stopped: %s", task.get_name(), task.exception())
    ready[0] = "stopping"
    server.should_exit = True
    await alerter.stop()  # gives up the lease so a standby takes over at once
    await sender.stop()
    await asyncio.gather(*tasks, return_exceptions=True)
    stop.cancel()
    engine.dispose()
    log.info("stopped")
    return 1 if failed else 0
