"""Incidents, their timeline, and the optimistic lock on escalation state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from spectra.store import (
    EscalationState,
    EscalationStatus,
    Incident,
    IncidentEvent,
    IncidentEventType,
    IncidentState,
    session_factory,
)
from tests.factories.store import MonitorFactory

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
POLICY = {"steps": [{"delay": "0s", "targets": [{"schedule": "primary"}], "channels": ["sms"]}], "repeat": 1}


def new_incident(code: str = "K7Q2") -> Incident:
    return Incident(
        code=code,
        namespace="default",
        monitor_name="checkout",
        title="checkout is down",
        severity="critical",
        opened_at=T0,
        escalation_policy="primary",
        policy_snapshot=POLICY,
        events=[IncidentEvent(at=T0, type=IncidentEventType.OPENED, message="HTTP 503")],
        escalation=EscalationState(next_step_at=T0),
    )


def test_incident_with_timeline_and_escalation(session: Session) -> None:
    session.add(new_incident())
    session.commit()
    session.expunge_all()

    incident = session.scalars(sa.select(Incident)).one()
    assert incident.state == IncidentState.OPEN
    assert incident.policy_snapshot == POLICY
    assert [event.type for event in incident.events] == ["opened"]
    assert incident.escalation is not None
    assert (incident.escalation.status, incident.escalation.version) == (EscalationStatus.ACTIVE, 1)


def test_code_is_unique(session: Session) -> None:
    session.add(new_incident("AAAA"))
    session.commit()
    session.add(new_incident("AAAA"))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()


def test_deleting_an_incident_deletes_timeline_and_escalation(session: Session) -> None:
    session.add(new_incident())
    session.commit()
    session.execute(sa.delete(Incident))
    session.commit()
    for model in (IncidentEvent, EscalationState):
        assert session.scalar(sa.select(sa.func.count()).select_from(model)) == 0


def test_concurrent_escalation_advance_loses_cleanly(engine: sa.Engine) -> None:
    """Two alerters advance the same step: the second one's write is rejected, not applied twice."""
    factory = session_factory(engine)
    with factory() as setup:
        incident = new_incident()
        setup.add(incident)
        setup.commit()
        incident_id = incident.id

    with factory() as first, factory() as second:
        mine = first.get_one(EscalationState, incident_id)
        theirs = second.get_one(EscalationState, incident_id)
        second.commit()  # ends the read; the object stays loaded at version 1 (no expire on commit)

        mine.step_index += 1
        mine.next_step_at = T0 + timedelta(minutes=5)
        first.commit()
        assert mine.version == 2

        theirs.step_index += 1
        with pytest.raises(StaleDataError):
            second.commit()

    with factory() as check:
        state = check.get_one(EscalationState, incident_id)
        assert (state.step_index, state.version) == (1, 2)


def test_timeline_is_ordered(session: Session) -> None:
    incident = new_incident()
    incident.events += [
        IncidentEvent(at=T0 + timedelta(minutes=2), type=IncidentEventType.ACKNOWLEDGED, actor="alice", channel="sms"),
        IncidentEvent(at=T0 + timedelta(minutes=1), type=IncidentEventType.NOTIFIED, channel="sms"),
    ]
    session.add(incident)
    session.commit()
    session.expunge_all()
    loaded = session.scalars(sa.select(Incident)).one()
    assert [e.type for e in loaded.events] == ["opened", "notified", "acknowledged"]


def test_unknown_state_is_refused(session: Session) -> None:
    incident = new_incident()
    incident.state = "snoozed"
    session.add(incident)
    with pytest.raises(sa.exc.IntegrityError):
        session.flush()


def test_one_unresolved_incident_per_monitor(session: Session, make_monitor: MonitorFactory) -> None:
    monitor = make_monitor()
    first, second = new_incident("AAAA"), new_incident("BBBB")
    first.monitor_id = second.monitor_id = monitor.resource_id
    session.add(first)
    session.commit()
    session.add(second)
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()
    session.rollback()
    first.state = IncidentState.RESOLVED.value  # resolved ones do not count: history keeps many
    session.commit()
    third = new_incident("CCCC")
    third.monitor_id = monitor.resource_id
    session.add(third)
    session.commit()
    assert session.scalar(sa.select(sa.func.count()).select_from(Incident)) == 2
