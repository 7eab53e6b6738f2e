"""`/api/v1/monitors`: every monitor with its combined state and per-location states, as JSON.

Open when the server listens on loopback only (standalone's default); otherwise a bearer token is
needed. Never secrets: names, targets (validated to carry no credentials), states and reasons only.
"""

from __future__ import annotations

import hmac
from typing import Any

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
        if not _authorized(request, loopback_only, api_token):
            return JSONResponse({"error": "this API needs a token when the server is not loopback-only"}, 401)
        return JSONResponse(await run_in_threadpool(overview))

    return [Route("/api/v1/monitors", monitors)]
