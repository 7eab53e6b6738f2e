"""What `spectra run` and `spectra alerter` both run to page people, assembled and stopped in one order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import BaseRoute

from spectra.alerting import Alerter
from spectra.alerting.metrics import AlertingMetrics
from spectra.api.secrets import SecretResolver
from spectra.auth import impersonation, throttle
from spectra.auth import sessions as auth_sessions
from spectra.auth.accounts import prune_used_links
from spectra.auth.tenants import send_trial_reminders
from spectra.domain.egress import EgressPolicy
from spectra.housekeeping import Housekeeping
from spectra.notify.metrics import SenderMetrics
from spectra.notify.outbox import Sender, outbox_health
from spectra.notify.registry import channels_from_env
from spectra.notify.twilio.settings import webhook_auth_token
from spectra.statuspage.site import StatusPages
from spectra.store.clock import database_now
from spectra.store.statuspages import prune_page_maintenance
from spectra.tokens import Tokens
from spectra.web.alerting import AlertingWeb, alerting_routes


class AlertingSide:
    """The alerter (one active per database, by lease), the sender that delivers the outbox, the status
    pages' event loop (automatic page incidents and subscriber mails, while this process leads),
    housekeeping (rollups, retention and trial reminders), and the ack links and Twilio webhooks the web app serves."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        secrets: SecretResolver,
        links_base: str,
        *,
        egress: EgressPolicy,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """`egress`: what webhook and Slack deliveries (URLs from tenants' Secrets) may reach."""
        tokens = Tokens()
        self.metrics = AlertingMetrics(registry)
        self.sender = Sender(
            sessions,
            channels_from_env(egress=egress),
            secrets=secrets,
            metrics=SenderMetrics(self.metrics.registry),
        )
        self.alerter = alerter = Alerter(
            sessions,
            secrets=secrets,
            tokens=tokens,
            public_url=links_base,
            sender=self.sender,
            metrics=self.metrics,
            outbox_health=lambda session: outbox_health(session, database_now(session)),
        )
        self.web = AlertingWeb(
            tokens=tokens, public_url=links_base, twilio_auth_token=webhook_auth_token(), after_change=self.sender.wake
        )
        self.pages = StatusPages(
            sessions, tokens=tokens, public_url=links_base, wake=self.sender.wake, leading=lambda: alerter.leading
        )
        self.housekeeping = Housekeeping(
            sessions,
            prunes={
                "sessions": lambda session, now: auth_sessions.prune(session, now=now),
                "sign-in throttles": lambda session, now: throttle.prune(session, now=now),
                "used links": lambda session, now: prune_used_links(session, now=now),
                "ad-hoc maintenance": prune_page_maintenance,
            },
            hourly={
                "trial reminders queued": lambda session, now: send_trial_reminders(
                    session, now=now, public_url=links_base
                ),
                "expired impersonations closed": lambda session, now: impersonation.close_expired(session, now=now),
            },
        )

    def problem(self) -> str | None:
        """Why this process is not ready as far as paging goes (the alerter's passes keep failing), or None."""
        return self.alerter.problem()

    def routes(self, sessions: sessionmaker[Session]) -> list[BaseRoute]:
        """Ack links and Twilio webhooks, then the status pages (their `/` on a page host goes last)."""
        return [*alerting_routes(self.web, sessions), *self.pages.routes()]

    def components(self) -> dict[str, Coroutine[Any, Any, Any]]:
        return {
            "alerter": self.alerter.run(),
            "statuspages": self.pages.run(),
            "sender": self.sender.run(),
            "housekeeping": self.housekeeping.run(),
        }

    async def stop(self, before_alerter: Callable[[], Awaitable[None]] | None = None) -> None:
        """The page-events loop first (it enqueues subscriber mails), housekeeping, then `before_alerter`
        (a probe worker), the alerter (it may still enqueue; it gives up its lease so a standby takes over
        at once), and the sender last (it finishes what it is sending)."""
        await self.pages.stop()
        await self.housekeeping.stop()
        if before_alerter is not None:
            await before_alerter()
        await self.alerter.stop()
        await self.sender.stop()
