"""Incidents for the console's tests: the alerting world (tests.factories.alerting: contacts alice and bob,
policy `primary` paging alice by SMS and voice at once and bob by email ten minutes later) in namespace
`default`, owned by the organization acme; an incident opened by the real alerter; another tenant's
incident (globex, namespace `other`); and the console site on the same database, its clock at the
alerter's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from anyio.from_thread import BlockingPortal
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from spectra.alerting import Alerter
from spectra.store import EscalationState, Incident, IncidentEvent, Notification, Role
from spectra.store.accounts import AuditLog
from tests.factories.accounts import member, organization_resource
from tests.factories.alerting import World, make_world
from tests.support.console import ConsoleSite

ADA, UMA, GIL, ROOT = "ada@acme.example", "uma@acme.example", "gil@globex.example", "root@example.com"


@dataclass
class IncidentWorld:
    world: World
    site: ConsoleSite
    alerter: Alerter
    portal: BlockingPortal
    incident_id: int  # web's incident, paged to alice by SMS and voice
    foreign_id: int  # globex's

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.world.sessions

    def tick(self, **advance: float) -> None:
        """The alerter's pass, after moving both clocks by `advance`."""
        if advance:
            self.world.clock.advance(**advance)
        self.site.clock.now = self.world.clock.now
        self.portal.call(self.world.tick, self.alerter)

    def incident(self, incident_id: int | None = None) -> Incident:
        with self.sessions() as session:
            row = session.get(Incident, incident_id or self.incident_id)
            assert row is not None
            session.expunge(row)
            return row

    def events(self, incident_id: int | None = None) -> list[tuple[str, str | None, str | None, str]]:
        """The timeline as (type, actor, channel, message)."""
        with self.sessions() as session:
            rows = session.scalars(
                select(IncidentEvent)
                .where(IncidentEvent.incident_id == (incident_id or self.incident_id))
                .order_by(IncidentEvent.id)
            )
            return [(row.type, row.actor, row.channel, row.message) for row in rows]

    def escalation(self) -> tuple[str, int]:
        with self.sessions() as session:
            row = session.get(EscalationState, self.incident_id)
            assert row is not None
            return row.status, row.step_index

    def outbox_keys(self) -> list[str]:
        with self.sessions() as session:
            return list(session.scalars(select(Notification.idempotency_key).order_by(Notification.id)))

    def audit(self) -> list[tuple[str, str, str | None, str | None]]:
        """(action, actor, impersonator, target name) of incident records."""
        with self.sessions() as session:
            rows = session.execute(
                select(AuditLog.action, AuditLog.actor, AuditLog.impersonator, AuditLog.target_name)
                .where(AuditLog.action.startswith("incident."))
                .order_by(AuditLog.id)
            )
            return [tuple(row) for row in rows]  # type: ignore[misc]

    def snapshot(self) -> tuple[object, ...]:
        """Everything an action may change, to check a refusal changed nothing."""
        incident = self.incident()
        return (
            incident.state,
            incident.acknowledged_by,
            self.events(),
            self.escalation(),
            self.outbox_keys(),
            self.audit(),
        )


def incident_world(sessions: sessionmaker[Session], portal: BlockingPortal) -> IncidentWorld:
    world = make_world(sessions)
    with sessions.begin() as session:
        organization_resource(session, "acme", ["default"])
        organization_resource(session, "globex", ["other"])
        member(session, ADA, "acme", Role.ADMIN)
        member(session, UMA, "acme", Role.USER)
        member(session, GIL, "globex", Role.ADMIN)
        member(session, ROOT, None, None, platform_admin=True)
        foreign = Incident(
            code="GLBX",
            namespace="other",
            monitor_name="shop",
            title="other/shop is down",
            severity="critical",
            state="open",
            opened_at=world.clock() - timedelta(minutes=5),
        )
        session.add(foreign)
        session.flush()
        foreign_id = foreign.id
    site = ConsoleSite.make(sessions, portal)
    alerter = world.alerter()
    world.states["web"] = "down"
    found = IncidentWorld(world, site, alerter, portal, 0, foreign_id)
    found.tick()
    with sessions() as session:
        found.incident_id = session.scalars(select(Incident.id).where(Incident.namespace == "default")).one()
    return found
