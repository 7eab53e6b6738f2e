"""`/api/v1/monitors`: every monitor with its combined state and per-location states, as JSON.

With credentials, the monitors of the caller's organization's namespaces (every one for a platform
admin), on any server: an API token (`Authorization: Bearer spt_...`, scope `read`), a session's access
token (`Authorization: Bearer <JWT>`), or a signed-in browser's access cookie. Credentials are always
checked, on loopback too: bad ones are a 401, never ignored. Without any, every monitor when the server
listens on loopback only (standalone's default), otherwise 401. Never secrets: names, targets (validated to carry
no credentials), states and reasons only.

Open means open to this machine, not to every page a local browser opens: a page of evil.example
whose name is re-pointed at 127.0.0.1 (DNS rebinding) reaches the port, but its requests say
`Host: evil.example`. So the open API answers only Hosts that name a loopback address or localhost
(any port); others get 421 Misdirected Request.

Filters (query parameters, each optional, combined with AND): `state` (the combined state), `type`,
`namespace`, `label` (`key=value`, or `key` for monitors that have the label). Answers carry an `ETag`;
a request whose `If-None-Match` holds it gets 304 without a body.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spectra.auth import api_tokens, policy
from spectra.auth.identity import Principal
from spectra.auth.policy import Action
from spectra.store import Monitor, MonitorOverview, monitor_overview, utcnow
from spectra.store.engine import retry_conflicts
from spectra.web import bearer, credentials

log = logging.getLogger("spectra.web")


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


FILTERS = ("state", "type", "namespace", "label")


def filtered(session: Session, items: list[MonitorOverview], params: Mapping[str, str]) -> list[MonitorOverview]:
    """`items` that pass the request's filters (`state`, `type`, `namespace`, `label`)."""
    wanted = {key: params[key] for key in FILTERS if params.get(key)}
    if not wanted:
        return items
    out = [
        item
        for item in items
        if all(getattr(item, key) == wanted[key] for key in ("state", "type", "namespace") if key in wanted)
    ]
    if "label" in wanted:
        key, sep, value = wanted["label"].partition("=")
        labels = {(ns, name): dict(found or {}) for ns, name, found in session.execute(
            select(Monitor.namespace, Monitor.name, Monitor.labels)
        )}  # fmt: skip
        out = [
            item
            for item in out
            if key in (found := labels.get((item.namespace, item.name), {})) and (not sep or found[key] == value)
        ]
    return out


def json_with_etag(request: Request, body: list[dict[str, Any]]) -> Response:
    """The list as JSON with its ETag; 304 when the request's `If-None-Match` already holds it."""
    raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    tag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
    asked = [part.strip() for part in request.headers.get("if-none-match", "").split(",")]
    if tag in asked or f"W/{tag}" in asked or "*" in asked:
        return Response(status_code=304, headers={"ETag": tag})
    return Response(raw, 200, headers={"ETag": tag}, media_type="application/json")


def monitor_routes(factory: sessionmaker[Session], *, loopback_only: bool) -> list[Route]:
    def everything(params: Mapping[str, str]) -> list[dict[str, Any]]:
        with factory() as session:
            return [monitor_json(item) for item in filtered(session, monitor_overview(session), params)]

    def visible_to(session: Session, principal: Principal, request: Request) -> Response:
        try:
            policy.require(principal, Action.MONITORS_READ, organization=principal.organization)
        except policy.Denied as refused:
            return bearer.denied(principal, Action.MONITORS_READ, refused)
        visible = policy.visible_namespaces(session, principal)
        mine = [item for item in monitor_overview(session) if item.namespace in visible]
        return json_with_etag(request, [monitor_json(item) for item in filtered(session, mine, request.query_params)])

    def for_token(token: str, request: Request) -> Response:
        def attempt() -> Response:
            with factory.begin() as session:  # commits the token's last use
                try:
                    principal = bearer.authenticate(session, token, now=utcnow())
                except api_tokens.InvalidApiToken as refused:
                    return bearer.invalid_token(refused)
                return visible_to(session, principal, request)

        # It reads the token, then records its use: again after a lock conflict (SQLite: a writer's commit).
        return retry_conflicts(attempt)

    def for_session(access: str, request: Request) -> Response:
        try:
            principal = credentials.access_principal(access, now=utcnow())
        except credentials.BadCredentials as refused:
            log.info("credentials refused: %s", refused.reason)
            return bearer.session_ended()
        with factory() as session:
            return visible_to(session, principal, request)

    async def monitors(request: Request) -> Response:
        token = bearer.bearer_token(request.headers.get("authorization", ""))
        # Credentials are always checked, on loopback too: never silently ignored, and the caller's
        # organization's monitors are what its client expects. A page of another site can send neither
        # the header nor the SameSite=Strict cookie, so any Host is served.
        if token is not None and token.startswith(api_tokens.TOKEN_PREFIX):
            return await run_in_threadpool(for_token, token, request)
        access = token or request.cookies.get(credentials.cookie_names().access)
        if access:
            return await run_in_threadpool(for_session, access, request)
        if not loopback_only:
            return bearer.needs_credentials("this API needs an API token: Authorization: Bearer spt_...")
        if not names_loopback(request.headers.get("host", "")):
            return JSONResponse({"error": "this API answers only to localhost and loopback addresses"}, 421)
        return json_with_etag(request, await run_in_threadpool(everything, request.query_params))

    return [Route("/api/v1/monitors", monitors)]
