"""The HTTP side of email subscriptions to a status page (or one component of it).

- `POST /s/{slug}/subscribe` (form: `email`, optional `component`): rate limited per client IP and per
  mailbox (`+tag` and case variants are one mailbox); creates an unconfirmed `Subscriber` row (or uses
  the existing one) and queues a confirmation mail through the outbox with a signed `Purpose.CONFIRM`
  link. The answer is sent before any of that: the same page, after the same work, whether the address
  is new, pending, confirmed or unsubscribed, so neither the page nor its timing tells who is subscribed.
- `/s/{slug}/confirm/{token}`: GET shows a "Confirm subscription" button, POST confirms (idempotent;
  refused once the subscription has moved on from the state the link was made for, e.g. unsubscribed).
- `/s/{slug}/unsubscribe/{token}`: GET shows an "Unsubscribe" button, POST unsubscribes; RFC 8058
  one-click (`List-Unsubscribe=One-Click` POSTed by the mail provider) is the same POST.

GET never changes anything: mail scanners follow links. Tampered, expired or foreign tokens get one
page, "This link is not valid", and no detail. Pages that are not public, or whose subscriptions are
disabled, answer 404 on every route here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from spectra.runtime.clients import client_key
from spectra.runtime.forms import read_body, read_form
from spectra.runtime.headers import LINK_PAGE_HEADERS
from spectra.statuspage.model import PageLike, PageSource, accepts_subscriptions, component_names, page_key
from spectra.statuspage.ratelimit import SlidingWindowLimiter, mailbox_key
from spectra.statuspage.render import TEMPLATES
from spectra.statuspage.subscription_mail import CONFIRM_MAX_AGE_S, UNSUBSCRIBE_MAX_AGE_S, page_url, scope_text
from spectra.statuspage.subscriptions import Confirmation, confirm, confirmation_of, subscribe, unsubscribe
from spectra.store.engine import retry_conflicts
from spectra.store.subscribers import COMPONENT_LEN, SUBSCRIBER_EMAIL_LEN, WHOLE_PAGE
from spectra.tokens import InvalidToken, Purpose, Tokens

log = logging.getLogger(__name__)

_HEX_COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")


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


@dataclass
class SubscribeLimits:
    """Subscribe attempts (per process): 5 an hour per client IP, 3 an hour per mailbox.

    The mailbox limit bounds the confirmation mails one mailbox can be sent, however its address is
    spelled, and lasts one sliding hour: requests for someone else's address cannot lock its owner out
    for long, and each one that got through mailed the owner a working confirm link.
    """

    per_ip: SlidingWindowLimiter = field(default_factory=lambda: SlidingWindowLimiter(5, 3600))
    per_mailbox: SlidingWindowLimiter = field(default_factory=lambda: SlidingWindowLimiter(3, 3600))


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


@dataclass(frozen=True)
class _ConfirmTarget:
    page: PageLike
    email: str
    component: str
    unsubscribed: str | None  # the link's stamp: which state of the subscription it was mailed for

    @property
    def scope(self) -> str:
        return scope_text(self.component)


def subscription_routes(
    cache: PageSource,
    session_factory: sessionmaker[Session],
    tokens: Tokens,
    public_url: str,
    wake: Callable[[], None] | None = None,
    *,
    limits: SubscribeLimits | None = None,
    client_ip_of: Callable[[Request], str] = client_key,
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
    client_ip_of: Callable[[Request], str] = client_key

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
        mailbox = f"mailbox:{mailbox_key(email)}"
        if not self.limits.per_mailbox.hit(mailbox):
            return self.too_many(page, self.limits.per_mailbox.retry_after_s(mailbox))
        # The same page whatever the address's state, sent before the store is read: what differs by state
        # (a row, a mail or nothing) runs after the answer, so neither its text nor its timing tells.
        sent = _render("subscribe_sent.html", page, self.public_url)
        sent.background = BackgroundTask(self.record_subscription, page, email, component)
        return sent

    async def record_subscription(self, page: PageLike, email: str, component: str) -> None:
        """The subscribe's store work, after the answer; a failure is logged (without the address)."""
        try:
            queued = await run_in_threadpool(
                retry_conflicts,
                lambda: subscribe(self.factory, self.tokens, self.public_url, page, email=email, component=component),
            )
        except SQLAlchemyError as error:
            log.warning("subscription to %s not recorded: %s", page_key(page), type(error).__name__)
            return
        if queued:
            self.after_enqueue()

    async def confirm_get(self, request: Request) -> Response:
        """The page with the button: shown only while the link would still act (GET changes nothing)."""
        target = self.confirm_target(request)
        if not isinstance(target, _ConfirmTarget):
            return target
        outcome = await run_in_threadpool(
            lambda: confirmation_of(
                self.factory, target.page, target.email, target.component, unsubscribed=target.unsubscribed
            )
        )
        if outcome is Confirmation.REFUSED:
            return self.invalid(target.page)
        done = outcome is Confirmation.ALREADY_CONFIRMED
        return _render("subscribe_confirm.html", target.page, self.public_url, done=done, scope=target.scope)

    async def confirm_post(self, request: Request) -> Response:
        target = self.confirm_target(request)
        if not isinstance(target, _ConfirmTarget):
            return target
        page, email, component, stamp = target.page, target.email, target.component, target.unsubscribed
        outcome = await run_in_threadpool(
            retry_conflicts, lambda: confirm(self.factory, page, email, component, unsubscribed=stamp)
        )
        if outcome is Confirmation.REFUSED:
            return self.invalid(target.page)
        return _render("subscribe_confirm.html", target.page, self.public_url, done=True, scope=target.scope)

    def confirm_target(self, request: Request) -> _ConfirmTarget | Response:
        """The subscription a confirm link names, or the answer when the link cannot name one."""
        found = self.link(request, Purpose.CONFIRM, CONFIRM_MAX_AGE_S)
        if not isinstance(found, _Link):
            return found
        page, payload = found.page, found.payload
        component = str(payload.get("component", WHOLE_PAGE))
        if component != WHOLE_PAGE and component not in component_names(page):
            return self.invalid(page)  # the component is gone from the page
        unsubscribed = payload.get("unsubscribed")
        if unsubscribed is not None and not isinstance(unsubscribed, str):
            return self.invalid(page)
        return _ConfirmTarget(page, str(payload["email"]), component, unsubscribed)

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
            retry_conflicts, lambda: unsubscribe(self.factory, page, int(payload["id"]), str(payload["email"]))
        )
        scope = scope_text(str(payload.get("component", WHOLE_PAGE)))
        return _render("subscribe_unsubscribe.html", page, self.public_url, done=True, scope=scope)
