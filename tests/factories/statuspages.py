"""The console's status pages under test: organization "acme" owning namespace "default" with the pages'
test monitors and page "main" (tests/factories/pages.py), organization "globex" owning "other" with a page of
its own, an admin and a user of acme, a globex user, confirmed subscribers of "main", and the public pages
served beside the console (their snapshot cache refreshes only when told, so a change shows at once only
because the console tells it)."""

from __future__ import annotations

from dataclasses import dataclass

from anyio.from_thread import BlockingPortal
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth.identity import Principal
from spectra.statuspage.site import StatusPages
from spectra.store import AuditLog, Notification, PageIncident, PageMaintenance, Role
from spectra.store.subscribers import WHOLE_PAGE, Subscriber
from spectra.tokens import Tokens
from tests.factories.accounts import member, organization_resource, token_of
from tests.factories.pages import MONITORS, PAGE, PUBLIC_URL, SECRET_KEY, page_db
from tests.support.console import ConsoleSite

ADA, UMA, GIL = "ada@acme.example", "uma@acme.example", "gil@globex.example"
READER, WATCHER = "reader@example.org", "api-watcher@example.org"
OTHER_PAGE = """
apiVersion: spectra.dev/v1alpha1
kind: StatusPage
metadata: {name: theirs, namespace: other}
spec:
  slug: theirs
  title: Globex status
  groups:
    - name: All
      components:
        - name: Shop
          monitors: [shop]
"""
OTHER_MONITOR = """
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {name: shop, namespace: other}
spec: {type: http, interval: 30s, http: {url: "https://shop.example.test/"}}
"""


@dataclass
class PagesSite:
    site: ConsoleSite
    pages: StatusPages
    read_token: str  # an API token of ada's with the `read` scope only
    write_token: str  # with `statuspages:write`

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.site.sessions

    def counts(self) -> tuple[int, int, int, int, int]:
        """(page incidents, their updates' total, ad-hoc maintenance rows, outbox rows, audit rows)."""
        with self.sessions() as session:
            from spectra.store import PageIncidentUpdate

            return (
                session.scalar(select(func.count()).select_from(PageIncident)) or 0,
                session.scalar(select(func.count()).select_from(PageIncidentUpdate)) or 0,
                session.scalar(select(func.count()).select_from(PageMaintenance)) or 0,
                session.scalar(select(func.count()).select_from(Notification)) or 0,
                session.scalar(select(func.count()).select_from(AuditLog)) or 0,
            )

    def audit(self) -> list[tuple[str, str | None, str | None, dict[str, object] | None]]:
        with self.sessions() as session:
            rows = session.scalars(
                select(AuditLog).where(AuditLog.action.like("statuspage.%")).order_by(AuditLog.id)
            ).all()
            return [(row.action, row.actor, row.target_name, row.details) for row in rows]

    def mails(self) -> list[Notification]:
        with self.sessions() as session:
            rows = list(session.scalars(select(Notification).order_by(Notification.id)))
            session.expunge_all()
            return rows


def pages_site(sessions: sessionmaker[Session], portal: BlockingPortal) -> PagesSite:
    page_db(sessions, MONITORS, PAGE, OTHER_MONITOR, OTHER_PAGE)
    with sessions.begin() as session:
        organization_resource(session, "acme", ["default"])
        organization_resource(session, "globex", ["other"])
        ada: Principal = member(session, ADA, "acme", Role.ADMIN)
        member(session, UMA, "acme", Role.USER)
        member(session, GIL, "globex", Role.USER)
        read_token = token_of(session, ada, "read")
        write_token = token_of(session, ada, "statuspages:write", name="pages")
        for email, component in ((READER, WHOLE_PAGE), (WATCHER, "API")):
            session.add(
                Subscriber(
                    page_namespace="default",
                    page_name="main",
                    email=email,
                    component=component,
                    confirmed_at=func.now(),
                )
            )
    made: list[ConsoleSite] = []  # the pages read the console's clock (held still by the tests)
    pages = StatusPages(
        sessions,
        tokens=Tokens(SECRET_KEY),
        public_url=PUBLIC_URL,
        events=False,
        ttl_s=3600,
        clock=lambda: made[0].clock.now,
    )
    site = ConsoleSite.make(sessions, portal, routes=pages.routes())
    made.append(site)
    return PagesSite(site, pages, read_token, write_token)
