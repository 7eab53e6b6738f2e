"""Email subscriptions to a status page (or one component of it), with double opt-in.

- `POST /s/{slug}/subscribe` (form: `email`, optional `component`): rate limited per client IP and per
  address; creates or refreshes an unconfirmed `Subscriber` row and queues a confirmation mail through
  the outbox with a signed `Purpose.CONFIRM` link. The answer is the same page whether the address is
  new, pending or already confirmed, so the form tells nobody who is subscribed.
- `/s/{slug}/confirm/{token}`: GET shows a "Confirm subscription" button, POST confirms (idempotent).
- `/s/{slug}/unsubscribe/{token}`: GET shows an "Unsubscribe" button, POST unsubscribes; RFC 8058
  one-click (`List-Unsubscribe=One-Click` POSTed by the mail provider) is the same POST.

GET never changes anything: mail scanners follow links. Tampered, expired or foreign tokens get one
page, "This link is not valid", and no detail. Pages that are not public, or whose subscriptions are
disabled, answer 404 on every route here.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from spectra.notify.channel import ChannelName, Message
from spectra.notify.outbox import enqueue
from spectra.runtime.forms import read_body, read_form
from spectra.runtime.headers import LINK_PAGE_HEADERS
from spectra.store.engine import retry_locked
from spectra.store.subscribers import COMPONENT_LEN, SUBSCRIBER_EMAIL_LEN, WHOLE_PAGE, Subscriber
from spectra.tokens import InvalidToken, Purpose, Tokens

from .ratelimit import SlidingWindowLimiter
from .render import TEMPLATES

log = logging.getLogger(__name__)

CONFIRM_MAX_AGE_S: Final = 7 * 24 * 3600
# Unsubscribe links sit in every notification; they must keep working long after the mail was sent.
UNSUBSCRIBE_MAX_AGE_S: Final = 365 * 24 * 3600
IDEMPOTENCY_KEY_LEN: Final = 255


_HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")


# --- what the routes need from a page snapshot (spectra.statuspage.model.PageSnapshot fits) -------------


class _ComponentLike(Protocol):
    @property
    def name(self) -> str: ...


class _GroupLike(Protocol):
    @property
    def components(self) -> Sequence[_ComponentLike]: ...


class PageLike(Protocol):
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def slug(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def public(self) -> bool: ...
    @property
    def subscriptions_enabled(self) -> bool: ...
    @property
    def accent_color(self) -> str | None: ...
    @property
    def groups(self) -> Sequence[_GroupLike]: ...


class PageSource(Protocol):
    def get(self, slug: str) -> PageLike | None: ...


def page_key(page: PageLike) -> str:
    return f"{page.namespace}/{page.name}"


def component_names(page: PageLike) -> list[str]:
    return [component.name for group in page.groups for component in group.components]


def accepts_subscriptions(page: PageLike | None) -> bool:
    return page is not None and page.public and page.subscriptions_enabled


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


def normalize_email(raw: str) -> str | None:
    """The address lower-cased, or None when it is not a deliverable-looking address (no DNS lookup)."""
    raw = raw.strip()
    if not raw or len(raw) > SUBSCRIBER_EMAIL_LEN:
        return None
    try:
        info = validate_email(raw, check_deliverability=False)
    except EmailNotValidError:
        return None
    normalized = info.normalized.lower()
    return normalized if len(normalized) <= SUBSCRIBER_EMAIL_LEN else None


# --- rate limits ----------------------------------------------------------------------------------------


@dataclass
class SubscribeLimits:
    """Subscribe attempts: 5 an hour per client IP, 3 a day per address (per process)."""

    per_ip: SlidingWindowLimiter = field(default_factory=lambda: SlidingWindowLimiter(5, 3600))
    per_address: SlidingWindowLimiter = field(default_factory=lambda: SlidingWindowLimiter(3, 24 * 3600))


def client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


# --- the database side ------------------------------------------------------------------------------------


def _find(session: Session, namespace: str, name: str, email: str, component: str) -> Subscriber | None:
    return session.scalar(
        select(Subscriber).where(
            Subscriber.page_namespace == namespace,
            Subscriber.page_name == name,
            Subscriber.email == email,
            Subscriber.component == component,
        )
    )


def _row(session: Session, namespace: str, name: str, email: str, component: str) -> Subscriber:
    """The subscriber row, created when missing (a concurrent creator wins and its row is used)."""
    row = _find(session, namespace, name, email, component)
    if row is not None:
        return row
    row = Subscriber(page_namespace=namespace, page_name=name, email=email, component=component)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        found = _find(session, namespace, name, email, component)
        if found is None:
            raise
        return found
    return row


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


def subscribe(
    factory: sessionmaker[Session],
    tokens: Tokens,
    public_url: str,
    page: PageLike,
    *,
    email: str,
    component: str,
    now: datetime | None = None,
) -> bool:
    """Record an unconfirmed subscription and queue its confirmation mail; True when a mail was queued.

    A confirmed, active subscription is left alone (nothing is sent); a pending or unsubscribed one is
    made pending again and gets a new mail (one a day at most, by the idempotency key).
    """
    now = now or datetime.now(UTC)
    with factory.begin() as session:
        row = _row(session, page.namespace, page.name, email, component)
        if row.confirmed_at is not None and row.unsubscribed_at is None:
            return False
        again = ""
        if row.unsubscribed_at is not None:
            # Back after unsubscribing: pending again, and a fresh mail even if one went out today.
            again = f":again{int(row.unsubscribed_at.timestamp())}"
            row.confirmed_at = None
            row.unsubscribed_at = None
        return enqueue(
            session,
            confirmation_message(tokens, public_url, page, email=email, component=component, now=now, suffix=again),
        )


def confirm(factory: sessionmaker[Session], page: PageLike, email: str, component: str) -> bool:
    """Confirm (and re-activate) the subscription; True when it changed."""
    with factory.begin() as session:
        row = _row(session, page.namespace, page.name, email, component)
        if row.confirmed_at is not None and row.unsubscribed_at is None:
            return False
        row.confirmed_at = datetime.now(UTC)
        row.unsubscribed_at = None
        return True


def unsubscribe(factory: sessionmaker[Session], page: PageLike, subscriber_id: int, email: str) -> bool:
    """Mark the subscription unsubscribed; True when it changed (unknown or already gone: False)."""
    with factory.begin() as session:
        row = session.get(Subscriber, subscriber_id)
        if row is None or row.email != email or (row.page_namespace, row.page_name) != (page.namespace, page.name):
            return False
        if row.unsubscribed_at is not None:
            return False
        row.unsubscribed_at = datetime.now(UTC)
        return True


# --- pages ------------------------------------------------------------------------------------------------


def _render(
    template: str, page: PageLike | None, public_url: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    accent = page.accent_color if page is not None and page.accent_color else None
    html = TEMPLATES.get_template(template).render(
        page_title=page.title if page is not None else None,
        page_url=page_url(public_url, page.slug) if page is not None else None,
        accent=accent if accent is not None and _HEX_COLOR.match(accent) else None,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=LINK_PAGE_HEADERS)


def _not_found() -> Response:
    return HTMLResponse(
        "<!doctype html><title>Not found</title><h1>Not found</h1>", status_code=404, headers=LINK_PAGE_HEADERS
    )


@dataclass(frozen=True)
class _Link:
    page: PageLike
    payload: dict[str, Any]


def subscription_routes(
    cache: PageSource,
    session_factory: sessionmaker[Session],
    tokens: Tokens,
    public_url: str,
    wake: Callable[[], None] | None = None,
    *,
    limits: SubscribeLimits | None = None,
    client_ip_of: Callable[[Request], str] = client_ip,
) -> list[Route]:
    """The subscribe, confirm and unsubscribe routes; mount them in any Starlette app."""
    handlers = _Handlers(
        cache, session_factory, tokens, public_url, wake or (lambda: None), limits or SubscribeLimits()
    )
    handlers.client_ip_of = client_ip_of
    return [
        Route("/s/{slug}/subscribe", handlers.subscribe, methods=["POST"]),
        Route("/s/{slug}/confirm/{token}", handlers.confirm_get, methods=["GET"]),
        Route("/s/{slug}/confirm/{token}", handlers.confirm_post, methods=["POST"]),
        Route("/s/{slug}/unsubscribe/{token}", handlers.unsubscribe_get, methods=["GET"]),
        Route("/s/{slug}/unsubscribe/{token}", handlers.unsubscribe_post, methods=["POST"]),
    ]


@dataclass
class _Handlers:
    cache: PageSource
    factory: sessionmaker[Session]
    tokens: Tokens
    public_url: str
    after_enqueue: Callable[[], None]
    limits: SubscribeLimits
    client_ip_of: Callable[[Request], str] = client_ip

    def page_of(self, request: Request) -> PageLike | None:
        page = self.cache.get(request.path_params["slug"])
        return page if page is not None and accepts_subscriptions(page) else None

    def invalid(self, page: PageLike) -> Response:
        return _render("subscribe_invalid.html", page, self.public_url, 400)

    def rejected(self, page: PageLike, heading: str, message: str, status_code: int) -> Response:
        return _render("subscribe_rejected.html", page, self.public_url, status_code, heading=heading, message=message)

    def too_many(self, page: PageLike, retry_after_s: int) -> Response:
        response = self.rejected(page, "Too many requests", "Too many subscription requests. Please try later.", 429)
        response.headers["Retry-After"] = str(max(1, retry_after_s))
        return response

    def link(self, request: Request, purpose: Purpose, max_age_s: int) -> _Link | Response:
        """The page and the token's payload, or the 404 / "not valid" answer."""
        page = self.page_of(request)
        if page is None:
            return _not_found()
        try:
            payload = self.tokens.read(purpose, request.path_params["token"], max_age_s=max_age_s)
        except InvalidToken:
            return self.invalid(page)
        email, component = payload.get("email"), payload.get("component", WHOLE_PAGE)
        if payload.get("page") != page_key(page) or not isinstance(email, str) or not isinstance(component, str):
            return self.invalid(page)
        subscriber_id = payload.get("id")
        if purpose is Purpose.UNSUBSCRIBE and (not isinstance(subscriber_id, int) or isinstance(subscriber_id, bool)):
            return self.invalid(page)
        return _Link(page, payload)

    async def subscribe(self, request: Request) -> Response:
        page = self.page_of(request)
        if page is None:
            return _not_found()
        body = await read_body(request)
        if body is None:
            return self.rejected(page, "Request too large", "The form was too large.", 413)
        form = read_form(body)
        email = normalize_email((form.get("email") or [""])[-1])
        component = (form.get("component") or [WHOLE_PAGE])[-1].strip()
        ip_key = f"ip:{self.client_ip_of(request)}"
        if not self.limits.per_ip.hit(ip_key):
            log.info("subscribe rate limited for a client on %s", page_key(page))
            return self.too_many(page, self.limits.per_ip.retry_after_s(ip_key))
        if email is None:
            return self.rejected(page, "Check the address", "That does not look like an email address.", 400)
        if component != WHOLE_PAGE and (len(component) > COMPONENT_LEN or component not in component_names(page)):
            return self.rejected(page, "Unknown component", "This page has no component of that name.", 400)
        if not self.limits.per_address.hit(f"address:{email}"):
            return self.too_many(page, self.limits.per_address.retry_after_s(f"address:{email}"))
        queued = await run_in_threadpool(
            retry_locked,
            lambda: subscribe(self.factory, self.tokens, self.public_url, page, email=email, component=component),
        )
        if queued:
            self.after_enqueue()
        # The same page whatever the address's state: nobody learns who is subscribed.
        return _render("subscribe_sent.html", page, self.public_url)

    async def confirm_get(self, request: Request) -> Response:
        found = self.link(request, Purpose.CONFIRM, CONFIRM_MAX_AGE_S)
        if not isinstance(found, _Link):
            return found
        scope = scope_text(str(found.payload.get("component", WHOLE_PAGE)))
        return _render("subscribe_confirm.html", found.page, self.public_url, done=False, scope=scope)

    async def confirm_post(self, request: Request) -> Response:
        found = self.link(request, Purpose.CONFIRM, CONFIRM_MAX_AGE_S)
        if not isinstance(found, _Link):
            return found
        page, email = found.page, str(found.payload["email"])
        component = str(found.payload.get("component", WHOLE_PAGE))
        if component != WHOLE_PAGE and component not in component_names(page):
            return self.invalid(page)  # the component is gone from the page
        await run_in_threadpool(retry_locked, lambda: confirm(self.factory, page, email, component))
        return _render("subscribe_confirm.html", page, self.public_url, done=True, scope=scope_text(component))

    async def unsubscribe_get(self, request: Request) -> Response:
        found = self.link(request, Purpose.UNSUBSCRIBE, UNSUBSCRIBE_MAX_AGE_S)
        if not isinstance(found, _Link):
            return found
        scope = scope_text(str(found.payload.get("component", WHOLE_PAGE)))
        return _render("subscribe_unsubscribe.html", found.page, self.public_url, done=False, scope=scope)

    async def unsubscribe_post(self, request: Request) -> Response:
        # One handler for our page's button and for RFC 8058 one-click (`List-Unsubscribe=One-Click`, POSTed
        # by mail providers): the signed token is the authority, the body is not needed.
        found = self.link(request, Purpose.UNSUBSCRIBE, UNSUBSCRIBE_MAX_AGE_S)
        if not isinstance(found, _Link):
            return found
        await read_body(request)
        page, payload = found.page, found.payload
        await run_in_threadpool(
            retry_locked, lambda: unsubscribe(self.factory, page, int(payload["id"]), str(payload["email"]))
        )
        scope = scope_text(str(payload.get("component", WHOLE_PAGE)))
        return _render("subscribe_unsubscribe.html", page, self.public_url, done=True, scope=scope)
