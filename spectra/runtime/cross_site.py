"""Refuse state-changing requests that a browser sends on behalf of another site (CSRF), for the whole app.

A POST (PUT, PATCH, DELETE) is refused with 403 when the browser says it is cross-site
(``Sec-Fetch-Site: cross-site``) or when its ``Origin`` is another origin than ours: the public URL's
origin, or the request's own (its Host; the scheme may differ, as behind a TLS-terminating proxy).
``Origin: null`` (sandboxed frames, file pages, some redirects) is another origin, unless the browser
says ``Sec-Fetch-Site: same-origin``: under ``Referrer-Policy: no-referrer`` (a privacy setting, or a
page cached from before our pages said ``same-origin``) a browser writes ``null`` for the origin of our
own form posts, and a page cannot forge ``Sec-Fetch-*`` headers. Requests with neither header stay
allowed: browsers always send one of them on a cross-origin POST, so such requests
come from other clients (curl, Twilio's signed webhooks, heartbeat pushes), which no web page can steer.
GET, HEAD and OPTIONS pass: they never change state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from spectra.runtime.headers import SECURITY_HEADERS
from spectra.runtime.public_url import configured_public_url, origin_of

log = logging.getLogger(__name__)

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def is_cross_site(headers: Headers, trusted_origins: frozenset[str]) -> bool:
    """Whether a browser sent this request from another site or origin (False without both headers)."""
    fetch_site = headers.get("sec-fetch-site", "").strip().lower()
    if fetch_site == "cross-site":
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    origin = origin.strip().lower()
    if origin == "null":
        return fetch_site != "same-origin"
    if origin in trusted_origins:
        return False
    parts = urlsplit(origin)
    own_host = headers.get("host", "").strip().lower()
    same_host = bool(own_host) and parts.netloc == own_host and not parts.path
    return not (parts.scheme in ("http", "https") and same_host)


class CrossSiteRefusal:
    """ASGI middleware: 403 for cross-site state-changing requests (see the module's docstring).

    ``trusted_origins`` defaults to the origin of SPECTRA_PUBLIC_URL when it is set.
    """

    def __init__(self, app: ASGIApp, trusted_origins: Iterable[str] | None = None) -> None:
        self.app = app
        if trusted_origins is None:
            configured = configured_public_url()
            trusted_origins = [configured] if configured else []
        self.trusted_origins = frozenset(origin_of(url) for url in trusted_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        if not is_cross_site(Headers(scope=scope), self.trusted_origins):
            await self.app(scope, receive, send)
            return
        # No path in the log line: confirm and unsubscribe paths carry tokens.
        log.info("refused a cross-site %s request", scope["method"])
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-store"}
        refused = PlainTextResponse("Cross-site request refused.\n", status_code=403, headers=headers)
        await refused(scope, receive, send)
