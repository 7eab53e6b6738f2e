"""The confirmation mail of a subscription, and the signed links every subscriber mail carries.

Confirm links are `Purpose.CONFIRM` tokens (7 days); unsubscribe links are `Purpose.UNSUBSCRIBE` tokens
that keep working for a year, because they sit in every notice a subscriber gets.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Final

from spectra.notify.channel import ChannelName, Message
from spectra.statuspage.model import PageLike, page_key
from spectra.statuspage.render import TEMPLATES
from spectra.store.subscribers import WHOLE_PAGE, Subscriber
from spectra.tokens import Purpose, Tokens

CONFIRM_MAX_AGE_S: Final = 7 * 24 * 3600
# Unsubscribe links sit in every notification; they must keep working long after the mail was sent.
UNSUBSCRIBE_MAX_AGE_S: Final = 365 * 24 * 3600
IDEMPOTENCY_KEY_LEN: Final = 255


def short_key(key: str, prefix: str) -> str:
    """`key`, or `prefix:` + its SHA-256 when it is longer than the outbox column."""
    if len(key) <= IDEMPOTENCY_KEY_LEN:
        return key
    return f"{prefix}:{hashlib.sha256(key.encode()).hexdigest()}"


def scope_text(component: str) -> str:
    return f"the component {component}" if component != WHOLE_PAGE else "every component"


def page_url(public_url: str, slug: str) -> str:
    return f"{public_url.rstrip('/')}/s/{slug}"


def confirm_token(tokens: Tokens, page: PageLike, email: str, component: str) -> str:
    return tokens.make(Purpose.CONFIRM, {"page": page_key(page), "email": email, "component": component})


def unsubscribe_token(tokens: Tokens, subscriber: Subscriber) -> str:
    return tokens.make(
        Purpose.UNSUBSCRIBE,
        {
            "id": subscriber.id,
            "page": f"{subscriber.page_namespace}/{subscriber.page_name}",
            "email": subscriber.email,
            "component": subscriber.component,
        },
    )


def unsubscribe_url(tokens: Tokens, public_url: str, slug: str, subscriber: Subscriber) -> str:
    return f"{page_url(public_url, slug)}/unsubscribe/{unsubscribe_token(tokens, subscriber)}"


def confirmation_message(
    tokens: Tokens, public_url: str, page: PageLike, *, email: str, component: str, now: datetime, suffix: str = ""
) -> Message:
    confirm_url = f"{page_url(public_url, page.slug)}/confirm/{confirm_token(tokens, page, email, component)}"
    subject = f"Confirm your subscription to {page.title}"
    scope = scope_text(component)
    text = (
        f"Someone, hopefully you, asked to receive email updates about {scope} of {page.title}.\n\n"
        f"Confirm your subscription: {confirm_url}\n\n"
        "The link works for seven days. If you did not ask for this, ignore this message: "
        "you will not receive anything.\n"
    )
    html = TEMPLATES.get_template("subscribe_mail_confirm.html").render(
        subject=subject, page_title=page.title, scope=scope, confirm_url=confirm_url
    )
    key = short_key(f"subscribe:{page_key(page)}:{email}:{component}:{now.date().isoformat()}{suffix}", "subscribe")
    return Message(
        channel=ChannelName.EMAIL,
        recipient=email,
        subject=subject,
        text=text,
        idempotency_key=key,
        html=html,
        facts={"kind": "subscription-confirm", "page": page_key(page)},
    )
