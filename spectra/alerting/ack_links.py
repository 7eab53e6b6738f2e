"""Acknowledge and resolve incidents through signed links: `/ack/{token}`.

GET shows the incident (code, monitor, state, opened time) with an "Acknowledge" and a "Resolve" button;
only POST changes anything (mail scanners follow links with GET). The token is a `Purpose.ACK` token
(spectra/tokens.py) made by the alerter; a tampered, expired or foreign token gets a page that says the
link is not valid, never a detail or a traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from spectra.alerting.incidents import acknowledge, resolve_incident
from spectra.runtime.forms import read_body, read_form
from spectra.runtime.headers import LINK_PAGE_HEADERS
from spectra.runtime.templates import environment
from spectra.runtime.timefmt import utc_text_seconds
from spectra.store import Incident
from spectra.store.engine import retry_conflicts
from spectra.tokens import InvalidToken, Purpose, Tokens

log = logging.getLogger(__name__)

ACK_TOKEN_MAX_AGE_S: Final = 7 * 24 * 3600

TEMPLATES = environment("spectra.alerting")


def incident_id_of(payload: Mapping[str, Any]) -> int | None:
    """The incident a token was made for: `i` (what the alerter writes; short links), `incident` or `incident_id`."""
    for key in ("i", "incident", "incident_id"):
        value = payload.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


_PHONE = re.compile(r"^\+?[0-9][0-9 ().\-]{5,}$")


def public_actor(who: str | None) -> str | None:
    """Who acknowledged, as shown to anyone holding the link: a phone number or email address is masked
    (the page must not hand out an engineer's number); names and "link" stay as they are."""
    if not who:
        return who
    if _PHONE.match(who):
        digits = re.sub(r"[^0-9]", "", who)
        return f"a phone ending in {digits[-2:]}"
    local, at, domain = who.partition("@")
    if at and local and domain:
        return f"{local[:1]}…@{domain}"
    return who


@dataclass(frozen=True)
class IncidentView:
    code: str
    title: str
    namespace: str
    monitor_name: str
    severity: str
    state: str
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None

    @classmethod
    def of(cls, incident: Incident) -> IncidentView:
        return cls(
            code=incident.code,
            title=incident.title,
            namespace=incident.namespace,
            monitor_name=incident.monitor_name,
            severity=incident.severity,
            state=incident.state,
            opened_at=incident.opened_at,
            acknowledged_at=incident.acknowledged_at,
            acknowledged_by=public_actor(incident.acknowledged_by),
            resolved_at=incident.resolved_at,
        )


def render_incident(view: IncidentView, notice: str | None = None, status_code: int = 200) -> HTMLResponse:
    html = TEMPLATES.get_template("ack.html").render(
        incident=view,
        notice=notice,
        opened_iso=view.opened_at.isoformat(),
        opened_text=utc_text_seconds(view.opened_at),
        acknowledged_text=utc_text_seconds(view.acknowledged_at),
        resolved_text=utc_text_seconds(view.resolved_at),
    )
    return HTMLResponse(html, status_code=status_code, headers=LINK_PAGE_HEADERS)


def render_invalid(status_code: int = 400) -> HTMLResponse:
    html = TEMPLATES.get_template("ack_invalid.html").render()
    return HTMLResponse(html, status_code=status_code, headers=LINK_PAGE_HEADERS)


def _load(factory: sessionmaker[Session], incident_id: int) -> IncidentView | None:
    with factory() as session:
        incident = session.get(Incident, incident_id)
        return IncidentView.of(incident) if incident is not None else None


def _act(
    factory: sessionmaker[Session], incident_id: int, action: str, by: str, channel: str
) -> tuple[bool, IncidentView | None]:
    """Acknowledge or resolve in one transaction; (changed, the incident afterwards)."""
    with factory.begin() as session:
        if session.get(Incident, incident_id) is None:
            return False, None
        if action == "resolve":
            changed = resolve_incident(session, incident_id, by=by, channel=channel)
        else:
            changed = acknowledge(session, incident_id, by=by, channel=channel)
    return changed, _load(factory, incident_id)


def _already(view: IncidentView) -> str:
    if view.state == "resolved":
        return f"Incident {view.code} is already resolved."
    by = f" by {view.acknowledged_by}" if view.acknowledged_by else ""
    return f"Incident {view.code} is already acknowledged{by}."


def ack_routes(
    tokens: Tokens, factory: sessionmaker[Session], after_change: Callable[[], None] = lambda: None
) -> list[Route]:
    """GET and POST `/ack/{token}`; `after_change` runs after an incident changed (e.g. Sender.wake, so
    "resolved" notifications go out at once)."""

    def incident_of(token: str) -> tuple[int, dict[str, Any]] | None:
        try:
            payload = tokens.read(Purpose.ACK, token, max_age_s=ACK_TOKEN_MAX_AGE_S)
        except InvalidToken:
            return None
        incident_id = incident_id_of(payload)
        return (incident_id, payload) if incident_id is not None else None

    async def show(request: Request) -> Response:
        found = incident_of(request.path_params["token"])
        if found is None:
            return render_invalid()
        view = await run_in_threadpool(_load, factory, found[0])
        if view is None:
            return render_invalid(404)
        notice = _already(view) if view.state != "open" else None
        return render_incident(view, notice)

    async def act(request: Request) -> Response:
        found = incident_of(request.path_params["token"])
        if found is None:
            return render_invalid()
        incident_id, payload = found
        body = await read_body(request)
        if body is None:
            return render_invalid(413)
        action = (read_form(body).get("action") or ["acknowledge"])[-1]
        if action not in ("acknowledge", "resolve"):
            return render_invalid()
        # Who: the recipient the link was mailed to when the token names one, else "link".
        by = str(payload.get("recipient") or payload.get("contact") or "link")[:255]
        channel = "email" if payload.get("channel", "email") == "email" else "link"
        changed, view = await run_in_threadpool(
            retry_conflicts, lambda: _act(factory, incident_id, action, by, channel)
        )
        if view is None:
            return render_invalid(404)
        if changed:
            log.info("incident %s %s through a link", view.code, "resolved" if action == "resolve" else "acknowledged")
            after_change()
            notice = f"Incident {view.code} is {'resolved' if action == 'resolve' else 'acknowledged'}. Thank you."
        else:
            notice = _already(view)
        return render_incident(view, notice)

    return [Route("/ack/{token}", show, methods=["GET"]), Route("/ack/{token}", act, methods=["POST"])]
