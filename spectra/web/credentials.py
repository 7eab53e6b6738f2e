"""Who is calling a JSON endpoint or console page, and whether a cookie request carries its CSRF token.

Three ways in, tried in this order:

- `Authorization: Bearer spt_...`: an API token (spectra.auth.api_tokens), checked against the store;
- `Authorization: Bearer <JWT>`: a session's access token (spectra.auth.access_tokens), checked by its
  signature and expiry alone;
- the access cookie a browser got at sign-in (the same JWT).

A request that arrives with a cookie is one a browser may have been tricked into sending, so every
state-changing one also needs the CSRF token: the value of the CSRF cookie (readable by the page, not
HttpOnly) repeated in the `X-CSRF-Token` header or a `csrf` form field (double submit, compared in
constant time). The token is signed with the session's `sid` inside (HMAC under a key derived from
SPECTRA_SECRET_KEY), so a token of another session, or one planted by a sibling site over plain http,
is refused. Requests authenticated by `Authorization: Bearer` need none: no page can make a browser
send that header.

Cookie names follow SPECTRA_PUBLIC_URL: over https, `__Host-spectra-access`, `__Host-spectra-refresh` and
`__Host-spectra-csrf`, Secure, Path=/; over plain http (standalone on 127.0.0.1) browsers drop Secure
cookies, so the names lose the prefix (a `__Host-` cookie must be Secure) and the flag.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import Headers

from spectra.auth import access_tokens, api_tokens
from spectra.auth.identity import Principal
from spectra.runtime.public_url import configured_public_url
from spectra.store.engine import retry_conflicts
from spectra.tokens import secret_key
from spectra.web.bearer import bearer_token

log = logging.getLogger("spectra.web")

CSRF_HEADER: Final = "x-csrf-token"
CSRF_FIELD: Final = "csrf"
_CSRF_INFO: Final = b"spectra/web/csrf/v1"
_MAX_CSRF_CHARS: Final = 200


@dataclass(frozen=True)
class CookieNames:
    access: str
    refresh: str
    csrf: str
    secure: bool


def cookie_names(public_url: str | None = None) -> CookieNames:
    """The cookies' names and Secure flag for `public_url` (default SPECTRA_PUBLIC_URL): https gets the
    `__Host-` prefix and Secure; http or unset (standalone's loopback default) neither."""
    url = public_url if public_url is not None else (configured_public_url() or "")
    if url.lower().startswith("https://"):
        return CookieNames("__Host-spectra-access", "__Host-spectra-refresh", "__Host-spectra-csrf", secure=True)
    return CookieNames("spectra-access", "spectra-refresh", "spectra-csrf", secure=False)


class NoCredentials(Exception):
    """The request proves nobody: no Authorization header and no access cookie."""


class BadCredentials(Exception):
    """Credentials that prove nothing; `reason` is for the log, never for the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Caller:
    principal: Principal
    by_cookie: bool  # state-changing requests then need the CSRF token


def identify(headers: Headers, cookies: dict[str, str], factory: sessionmaker[Session], *, now: datetime) -> Caller:
    """Who the request is from (see the module docstring); NoCredentials or BadCredentials. Blocking:
    an API token is looked up in the store (run it in a thread)."""
    authorization = headers.get("authorization")
    if authorization is not None:
        token = bearer_token(authorization)
        if token is None:
            raise NoCredentials
        if token.startswith(api_tokens.TOKEN_PREFIX):
            return retry_conflicts(lambda: _by_api_token(token, factory, now=now))
        return Caller(_access(token, now=now), by_cookie=False)
    cookie = cookies.get(cookie_names().access)
    if not cookie:
        raise NoCredentials
    return Caller(_access(cookie, now=now), by_cookie=True)


def _by_api_token(token: str, factory: sessionmaker[Session], *, now: datetime) -> Caller:
    # It reads the token, then records its use (once a minute): run again after a lock conflict (on
    # SQLite, any commit by the probe's writer in between).
    with factory.begin() as session:
        try:
            return Caller(api_tokens.authenticate(session, token, now=now), by_cookie=False)
        except api_tokens.InvalidApiToken as refused:
            raise BadCredentials(f"API token: {refused.reason}") from None


def access_principal(token: str, *, now: datetime) -> Principal:
    """The principal of a session's access token (a JWT), or BadCredentials; no store look-up."""
    return _access(token, now=now)


def _access(token: str, *, now: datetime) -> Principal:
    try:
        return access_tokens.verify(token, now=now)
    except access_tokens.InvalidAccess as refused:
        raise BadCredentials(f"access token: {refused.reason}") from None


def csrf_token(sid: str) -> str:
    """A new CSRF token bound to session `sid`: `<nonce>.<HMAC(sid, nonce)>`."""
    nonce = secrets.token_urlsafe(16)
    return f"{nonce}.{_csrf_mac(sid, nonce)}"


def csrf_belongs(token: str, sid: str) -> bool:
    """Whether `token` was made by :func:`csrf_token` for session `sid` (constant time)."""
    if len(token) > _MAX_CSRF_CHARS or not token.isascii():
        return False
    nonce, dot, mac = token.partition(".")
    if not dot or not nonce:
        return False
    return hmac.compare_digest(mac.encode(), _csrf_mac(sid, nonce).encode())


def csrf_presented(headers: Headers, cookies: dict[str, str], form_value: str | None = None) -> str | None:
    """The CSRF token of a cookie request when the header (or form field) repeats the CSRF cookie; None
    when either is missing or they differ."""
    cookie = cookies.get(cookie_names().csrf, "")
    presented = headers.get(CSRF_HEADER) or form_value or ""
    if not cookie or not presented or len(presented) > _MAX_CSRF_CHARS or not presented.isascii():
        return None
    if not hmac.compare_digest(cookie.encode(), presented.encode()):
        return None
    return presented


def csrf_ok(caller: Caller, headers: Headers, cookies: dict[str, str], form_value: str | None = None) -> bool:
    """Whether a state-changing request of `caller` may go ahead: always for Bearer requests; for cookie
    ones, the CSRF token repeated and of the caller's own session."""
    if not caller.by_cookie:
        return True
    presented = csrf_presented(headers, cookies, form_value)
    sid = caller.principal.session_id
    return presented is not None and sid is not None and csrf_belongs(presented, sid)


def _csrf_mac(sid: str, nonce: str) -> str:
    return hmac.new(_csrf_key(secret_key()), f"{sid}\x00{nonce}".encode(), hashlib.sha256).hexdigest()


@functools.lru_cache(maxsize=4)
def _csrf_key(secret: str) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=_CSRF_INFO).derive(secret.encode())
