"""How a console page is drawn: the Jinja environment, the base layout and the headers.

Every page extends `console_base.html`: the navigation a viewer's role allows (the policy decides, the
same table as the JSON API's), the banner while a platform admin impersonates (with the button that
ends it), and the global maintenance banner while it is on. Times are rendered as `<time datetime=...>` in
UTC; the console's script shows them in the viewer's zone and keeps UTC on hover.

Headers: the status pages' security headers, never cached, and a Content-Security-Policy that allows
only this server's own scripts, styles and images (no inline script or style, no eval: htmx is configured
for that), Server-Sent Events to this server, and forms posting back here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from spectra.auth import policy
from spectra.auth.policy import Action
from spectra.domain import global_maintenance
from spectra.runtime.headers import SECURITY_HEADERS
from spectra.runtime.templates import environment
from spectra.runtime.timefmt import rfc3339

from .assets import asset_url
from .viewer import CONSOLE, Viewer

CONSOLE_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
CONSOLE_HEADERS: Final = {**SECURITY_HEADERS, "Cache-Control": "no-store", "Content-Security-Policy": CONSOLE_CSP}

_TEMPLATES: Final = environment("spectra.console")
_TEMPLATES.globals["asset_url"] = asset_url
_TEMPLATES.filters["rfc3339"] = rfc3339


@dataclass(frozen=True)
class Section:
    """One entry of the navigation: shown to viewers the policy allows `action` (None: everyone)."""

    path: str
    title: str
    key: str  # the accesskey/shortcut letter, and the name pages use to mark themselves current
    action: Action | None
    platform: bool = False  # a platform action: the policy is asked without an organization


SECTIONS: Final = (
    Section(CONSOLE, "Overview", "o", Action.MONITORS_READ),
    Section(f"{CONSOLE}/incidents", "Incidents", "i", Action.INCIDENTS_READ),
    Section(f"{CONSOLE}/oncall", "On-call", "c", Action.ONCALL_READ),
    Section(f"{CONSOLE}/status-pages", "Status pages", "s", Action.STATUSPAGES_READ),
    Section(f"{CONSOLE}/organization", "Organization", "g", Action.MEMBERS_MANAGE),
    Section(f"{CONSOLE}/platform", "Platform", "p", Action.TENANTS_MANAGE, platform=True),
)


def sections_for(viewer: Viewer) -> list[Section]:
    principal = viewer.principal

    def shown(section: Section) -> bool:
        if section.platform:
            return section.action is None or policy.allowed(principal, section.action, organization=None)
        # An organization's sections need one to act in (a platform admin outside any has the platform's).
        if principal.organization is None:
            return False
        return section.action is None or policy.allowed(principal, section.action, organization=principal.organization)

    return [section for section in SECTIONS if shown(section)]


@dataclass(frozen=True)
class Banners:
    """What the top of every page says beside the navigation."""

    maintenance: global_maintenance.Status | None  # global maintenance while it is on


class ConsolePages:
    """Renders console pages; `banners` reads the store once per page (global maintenance)."""

    def __init__(self, factory: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self.factory = factory
        self.clock = clock

    def _banners(self) -> Banners:
        with self.factory() as session:
            status = global_maintenance.current(session, now=self.clock())
        return Banners(maintenance=status if status.on else None)

    async def render(
        self, viewer: Viewer, template: str, *, current: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """`template` for `viewer`; `current` is the key of the navigation section the page belongs to."""
        banners = await run_in_threadpool(self._banners)
        return render(viewer, template, current=current, banners=banners, status=status, **context)


def render(
    viewer: Viewer, template: str, *, current: str, banners: Banners, status: int = 200, **context: Any
) -> HTMLResponse:
    body = _TEMPLATES.get_template(template).render(
        viewer=viewer,
        me=viewer.principal,
        csrf=viewer.csrf,
        sections=sections_for(viewer),
        current=current,
        banners=banners,
        **context,
    )
    return HTMLResponse(body, status, headers=CONSOLE_HEADERS)


def render_bare(template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A console page without a viewer (renewing a session)."""
    return HTMLResponse(_TEMPLATES.get_template(template).render(**context), status, headers=CONSOLE_HEADERS)
