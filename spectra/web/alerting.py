"""The web side of alerting: the ack links (`/ack/{token}`) and the Twilio webhooks (`/hooks/twilio/*`).

Served by the processes that alert (`spectra run`, `spectra alerter`) and by `spectra web`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker
from starlette.routing import BaseRoute

from spectra.alerting.ack_links import ack_routes
from spectra.alerting.phone_acks import PhoneAcks
from spectra.notify.twilio.webhooks import twilio_routes
from spectra.tokens import Tokens


@dataclass
class AlertingWeb:
    """What the ack links and the Twilio webhooks need from the process that serves them."""

    tokens: Tokens
    public_url: str
    # Twilio signs its webhooks with the account's auth token; without one the hooks refuse everything.
    twilio_auth_token: str | None = None
    # Called after an incident changed (e.g. Sender.wake, so "resolved" notifications go out at once).
    after_change: Callable[[], None] = field(default=lambda: None)


def alerting_routes(web: AlertingWeb, sessions: sessionmaker[Session]) -> list[BaseRoute]:
    return [
        *ack_routes(web.tokens, sessions, web.after_change),
        *twilio_routes(
            PhoneAcks(sessions),
            sessions=sessions,
            auth_token=web.twilio_auth_token,
            public_url=web.public_url,
            after_change=web.after_change,
        ),
    ]
