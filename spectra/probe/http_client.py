"""The one HTTP client of a probe worker, and what it records about each request's final hop.

One httpx client per worker runs on aiohttp's connection machinery (httpx's own pool is slow under
concurrency: encode/httpx #3215). Every check opens a fresh connection (`force_close`): a pooled
keep-alive connection would hide DNS, TCP and TLS failures. Every hop is resolved through the egress
guard, and IP-literal hosts (which aiohttp never resolves) are checked by a request hook. No cookie is
ever kept: monitors of different tenants share the client.

While a check runs, :func:`traced` collects the final hop's phase times and peer certificate; trace
callbacks and the response class run inside the request's task, so they see that check's record.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Iterator
from contextvars import ContextVar
from types import SimpleNamespace
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from spectra.domain.egress import EgressGuard, EgressRefused, GuardedResolver

USER_AGENT = "SpectraMonitor/0.1 (+https://spectra.dev)"

# What the current check's hops did: timings of the final hop and its peer certificate. Trace
# callbacks and the response class run inside the request's task, so they see the check's dict.
_TRACE: ContextVar[dict[str, Any] | None] = ContextVar("spectra_http_trace", default=None)


def make_client(egress: EgressGuard, ssl_context: ssl.SSLContext) -> httpx.AsyncClient:
    """The worker's one HTTP client; call inside the running loop (aiohttp binds its session to it)."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(egress),
        ssl=ssl_context,
        force_close=True,
        limit=0,  # the scheduler bounds concurrency
        use_dns_cache=False,  # every check resolves (and is checked) anew
    )
    session = aiohttp.ClientSession(
        connector=connector,
        trace_configs=[_trace_config()],
        response_class=_CertificateResponse,
        cookie_jar=aiohttp.DummyCookieJar(),  # monitors of different tenants share this session
        trust_env=False,  # no proxy or netrc from the environment: a proxy would bypass the guard
    )
    client = httpx.AsyncClient(
        transport=AiohttpTransport(client=session, verify=ssl_context, trust_env=False),
        trust_env=False,
        follow_redirects=False,  # `check` follows hops itself, with the spec's limit and no body reads
        headers={"User-Agent": USER_AGENT, "Connection": "close"},
        event_hooks={"request": [_egress_hook(egress)]},
    )
    # Set after construction: the constructor (and the `cookies` setter) would copy it into a plain Cookies.
    client._cookies = _NoCookies()
    return client


class _NoCookies(httpx.Cookies):
    """Monitors of different tenants share the client, so no cookie is ever kept or sent. Skipping httpx's
    per-response cookie parsing also saves about a tenth of the CPU of a check (bench profile)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


def _egress_hook(guard: EgressGuard) -> Any:
    async def hook(request: httpx.Request) -> None:
        if request.url.scheme not in ("http", "https"):
            raise EgressRefused(f"{request.url.scheme}: only http and https targets are requested")
        guard.check_url_host(request.url.host)

    return hook


class _CertificateResponse(aiohttp.ClientResponse):
    """Keeps the peer certificate of https answers (the connection is released before trace callbacks
    that see the response run, so this is the one place that still has the TLS transport)."""

    async def start(self, connection: aiohttp.connector.Connection) -> aiohttp.ClientResponse:
        record = _TRACE.get()
        transport = connection.transport
        if record is not None and transport is not None:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                record["peer_cert"] = ssl_object.getpeercert(binary_form=True)
        return await super().start(connection)


def _mark(name: str) -> Any:
    async def callback(session: aiohttp.ClientSession, context: SimpleNamespace, params: Any) -> None:
        record = _TRACE.get()
        if record is not None:
            record[name] = time.perf_counter()

    return callback


async def _on_request_start(session: aiohttp.ClientSession, context: SimpleNamespace, params: Any) -> None:
    record = _TRACE.get()
    if record is not None:
        record.clear()  # a redirect hop starts over: facts describe the final response
        record["start"] = time.perf_counter()


def _trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_on_request_start)
    config.on_dns_resolvehost_start.append(_mark("dns_start"))
    config.on_dns_resolvehost_end.append(_mark("dns_end"))
    config.on_connection_create_start.append(_mark("connect_start"))
    config.on_connection_create_end.append(_mark("connect_end"))
    config.on_request_end.append(_mark("headers"))
    return config


def timings(record: dict[str, Any], finished: float) -> dict[str, float]:
    """Phases of the final hop in ms. aiohttp does TCP connect and TLS handshake in one step, so
    `connect_ms` includes the handshake on https."""

    def span(start: str, end: str) -> float | None:
        if start in record and end in record:
            return round((float(record[end]) - float(record[start])) * 1000, 3)
        return None

    phases = {
        "dns_ms": span("dns_start", "dns_end"),
        "connect_ms": span("dns_end" if "dns_end" in record else "connect_start", "connect_end"),
        "ttfb_ms": span("start", "headers"),
    }
    timings = {name: value for name, value in phases.items() if value is not None}
    if "start" in record:
        timings["total_ms"] = round((finished - record["start"]) * 1000, 3)
    return timings


@contextlib.contextmanager
def traced() -> Iterator[dict[str, Any]]:
    """A record of the final hop of the requests made inside: phase marks and ``peer_cert`` (DER)."""
    record: dict[str, Any] = {}
    token = _TRACE.set(record)
    try:
        yield record
    finally:
        _TRACE.reset(token)
