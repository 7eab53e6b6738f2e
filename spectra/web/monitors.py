"""`/api/v1/monitors`: every monitor with its combined state and per-location states, as JSON.

Open when the server listens on loopback only (standalone's default); otherwise a bearer token is
needed. Never secrets: names, targets (validated to carry no credentials), states and reasons only.

Open means open to this machine, not to every page a local browser opens: a page of evil.example
whose name is re-pointed at 127.0.0.1 (DNS rebinding) reaches the port, but its requests say
`Host: evil.example`. So the open API answers only Hosts that name a loopback address or localhost
(any port); others get 421 Misdirected Request.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spectra.store import MonitorOverview, monitor_overview


def monitor_json(monitor: MonitorOverview) -> dict[str, Any]:
    """The API's shape: camelCase, times as RFC 3339 (``isoformat``)."""
    return {
        "namespace": monitor.namespace,
        "name": monitor.name,
        "type": monitor.type,
        "target": monitor.target,
        "paused": monitor.paused,
        "state": monitor.state,
        "lastCheck": monitor.last_check_at.isoformat() if monitor.last_check_at else None,
        "latencyMs": monitor.last_latency_ms,
        "reason": monitor.reason,
        "locations": [
            {
                "location": loc.location,
                "state": loc.state,
                "lastCheck": loc.last_check_at.isoformat() if loc.last_check_at else None,
                "reporting": loc.reporting,
            }
            for loc in monitor.locations
        ],
    }


def names_loopback(host_header: str) -> bool:
    """Whether a Host header is `localhost` or a loopback address, with or without a port."""
    if not host_header or "@" in host_header:
        return False
    try:
        parts = urlsplit(f"//{host_header}")
        _ = parts.port  # a port that is not a number raises
    except ValueError:
        return False
    if parts.netloc != host_header or parts.hostname is None:
        return False  # a path, query or fragment was smuggled in
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _authorized(request: Request, loopback_only: bool, api_token: str | None) -> bool:
    if loopback_only:
        return True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if api_token is None or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.encode(), api_token.encode())


def monitor_routes(factory: sessionmaker[Session], *, loopback_only: bool, api_token: str | None) -> list[Route]:
    def overview() -> list[dict[str, Any]]:
        with factory() as session:
            return [monitor_json(item) for item in monitor_overview(session)]

    async def monitors(request: Request) -> Response:
        if loopback_only and not names_loopback(request.headers.get("host", "")):
            return JSONResponse({"error": "this API answers only to localhost and loopback addresses"}, 421)
        if not _authorized(request, loopback_only, api_token):
            return JSONResponse({"error": "this API needs a token when the server is not loopback-only"}, 401)
        return JSONResponse(await run_in_threadpool(overview))

    return [Route("/api/v1/monitors", monitors)]
