"""Cross-site state-changing requests are refused for the whole app; same-origin and header-less ones pass.

On the real process: tests/e2e/test_hostile_clients.py.
"""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from spectra.runtime.cross_site import CrossSiteRefusal

OWN = "http://pages.internal:8080"  # what the app sees (behind a proxy: the Service's name)
PUBLIC = "https://status.example.test"  # SPECTRA_PUBLIC_URL


def app(trusted: list[str] | None = None) -> tuple[Starlette, list[str]]:
    """An app whose one route records each request that reached it."""
    reached: list[str] = []

    async def act(request: Request) -> Response:
        reached.append(request.method)
        return PlainTextResponse("done")

    routes = [Route("/act", act, methods=["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"])]
    return Starlette(routes=routes, middleware=[Middleware(CrossSiteRefusal, trusted_origins=trusted)]), reached


async def send(target: Starlette, method: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=target), base_url=OWN) as client:
        return await client.request(method, "/act", headers=headers, content=b"email=a%40example.com")


REFUSED = [
    ("evil origin", {"Origin": "https://evil.example"}),
    ("evil origin, same-origin claim", {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"}),
    ("null origin", {"Origin": "null"}),
    ("null origin, cross-site", {"Origin": "null", "Sec-Fetch-Site": "cross-site"}),
    ("null origin, same-site", {"Origin": "null", "Sec-Fetch-Site": "same-site"}),
    ("cross-site fetch", {"Sec-Fetch-Site": "cross-site"}),
    ("cross-site fetch, own origin", {"Sec-Fetch-Site": "cross-site", "Origin": OWN}),
    ("same-site sibling", {"Origin": "https://other.example.test", "Sec-Fetch-Site": "same-site"}),
    ("own host, other port", {"Origin": "http://pages.internal:9090"}),
    ("look-alike suffix", {"Origin": "http://pages.internal:8080.evil.example"}),
    ("not a web origin", {"Origin": "chrome-extension://pages.internal:8080"}),
    ("public host, other scheme", {"Origin": "http://status.example.test"}),
]

ALLOWED = [
    ("no browser headers (curl, Twilio, heartbeat pushes)", {}),
    ("same origin", {"Origin": OWN, "Sec-Fetch-Site": "same-origin"}),
    ("same origin, upper case", {"Origin": OWN.upper()}),
    ("public URL's origin", {"Origin": PUBLIC, "Sec-Fetch-Site": "same-origin"}),
    ("own host behind a TLS proxy", {"Origin": "https://pages.internal:8080"}),
    ("typed or bookmarked", {"Sec-Fetch-Site": "none"}),
    # Under Referrer-Policy: no-referrer (a privacy setting) the browser writes a null origin on our own forms.
    ("own form under no-referrer", {"Origin": "null", "Sec-Fetch-Site": "same-origin"}),
]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(("case", "headers"), REFUSED, ids=[case for case, _ in REFUSED])
async def test_cross_site_state_changes_are_refused(
    method: str, case: str, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    target, reached = app([PUBLIC])
    with caplog.at_level(logging.INFO, logger="spectra.runtime.cross_site"):
        response = await send(target, method, headers)
    assert response.status_code == 403, case
    assert response.headers["Cache-Control"] == "no-store"
    assert reached == []  # the handler never ran
    assert "/act" not in caplog.text  # paths may carry tokens: never logged


@pytest.mark.parametrize(("case", "headers"), ALLOWED, ids=[case for case, _ in ALLOWED])
async def test_same_origin_and_header_less_posts_pass(case: str, headers: dict[str, str]) -> None:
    target, reached = app([PUBLIC])
    response = await send(target, "POST", headers)
    assert (response.status_code, response.text) == (200, "done"), case
    assert reached == ["POST"]


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_safe_methods_pass_whatever_their_origin(method: str) -> None:
    target, reached = app([PUBLIC])
    response = await send(target, method, {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200
    assert reached == [method]


@pytest.mark.parametrize(
    ("environment", "origin", "status"),
    [
        ("https://status.example.test/", "https://status.example.test", 200),
        ("https://status.example.test", "https://evil.example", 403),
        ("", "https://status.example.test", 403),  # unset: only the request's own origin
        ("", OWN, 200),
    ],
)
async def test_the_trusted_origin_defaults_to_spectra_public_url(
    monkeypatch: pytest.MonkeyPatch, environment: str, origin: str, status: int
) -> None:
    monkeypatch.setenv("SPECTRA_PUBLIC_URL", environment)
    target, _ = app()
    assert (await send(target, "POST", {"Origin": origin})).status_code == status
