"""The confirmation mail of a subscription, and the signed links every subscriber mail carries.

Confirm links are `Purpose.CONFIRM` tokens (7 days); unsubscribe links are `Purpose.UNSUBSCRIBE` tokens
that keep working for a year, because they sit in every notice a subscriber gets.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Final

from spectra.notify.channel import ChannelName, Message
from spectra.runtime.timefmt import utc
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


def unsubscribed_stamp(unsubscribed_at: datetime | None) -> str | None:
    """The subscription's unsubscribe time as a confirm link carries it (None: never unsubscribed)."""
    return utc(unsubscribed_at).isoformat(timespec="microseconds") if unsubscribed_at is not None else None


def confirm_token(
    tokens: Tokens, page: PageLike, email: str, component: str, unsubscribed_at: datetime | None = None
) -> str:
    """A confirm link's token, bound to the state it was made for: a subscription never unsubscribed, or
    one unsubscribed at `unsubscribed_at` (so a link mailed before an unsubscribe cannot undo it)."""
    payload = {"page": page_key(page), "email": email, "component": component}
    stamp = unsubscribed_stamp(unsubscribed_at)
    if stamp is not None:
        payload["unsubscribed"] = stamp
    return tokens.make(Purpose.CONFIRM, payload)


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
    tokens: Tokens,
    public_url: str,
    page: PageLike,
    *,
    email: str,
    component: str,
    now: datetime,
    suffix: str = "",
    unsubscribed_at: datetime | None = None,
) -> Message:
    token = confirm_token(tokens, page, email, component, unsubscribed_at)
    confirm_url = f"{page_url(public_url, page.slug)}/confirm/{token}"
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
