"""The app as the web tests call it: httpx's AsyncClient on the ASGI app through a portal (its event loop
in a thread), a clock held still, and the one password hash every test account shares."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import httpx
from anyio.from_thread import BlockingPortal

from spectra.auth.passwords import hash_password

NOW: Final = datetime(2026, 3, 2, 9, 0, 7, tzinfo=UTC)
GOOD: Final = "plum-orbit-saddle-91"  # every test account's password
PROBLEM: Final = "application/problem+json"


@functools.cache
def good_hash() -> str:
    return hash_password(GOOD)  # ~0.3 s: made once for every test


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


class Client:
    """httpx's AsyncClient on the app, called from a synchronous test through a portal (its event loop)."""

    def __init__(self, app: Any, portal: BlockingPortal, base_url: str = "http://testserver") -> None:
        self.portal = portal
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)
        self.cookies = self.client.cookies

    def get(self, url: str, **options: Any) -> httpx.Response:
        return self.portal.call(functools.partial(self.client.get, url, **options))

    def post(self, url: str, **options: Any) -> httpx.Response:
        return self.portal.call(functools.partial(self.client.post, url, **options))

    def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        return self.portal.call(functools.partial(self.client.request, method, url, **options))
