"""The outbox: idempotency keys, attempts, and what happens when an incident goes."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from spectra.store import Incident, Notification, NotificationAttempt, NotificationStatus, upsert


def notification(key: str, **kwargs: object) -> Notification:
    return Notification(idempotency_key=key, channel="sms", recipient="+15550100", payload={"body": "hi"}, **kwargs)


def test_defaults(session: Session) -> None:
    queued = notification("incident:1:step:0:alice:sms")
    session.add(queued)
    session.commit()
    assert (queued.status, queued.attempts, queued.sent_at) == (NotificationStatus.PENDING, 0, None)
    assert abs(queued.next_attempt_at - queued.created_at) < timedelta(seconds=5)  # due right away


def test_idempotency_key_is_unique(session: Session) -> None:
    session.add(notification("incident:1:step:0:alice:sms"))
    session.commit()
    session.add(notification("incident:1:step:0:alice:sms"))
    with pytest.raises(sa.exc.IntegrityError):
        session.commit()
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(Notification)) == 1


def test_idempotency_key_is_unique_for_core_inserts(session: Session) -> None:
    table = Notification.__table__
    values = {"idempotency_key": "k", "channel": "email", "recipient": "a@example.com", "payload": {}}
    session.execute(sa.insert(table), [values])
    with pytest.raises(sa.exc.IntegrityError):
        session.execute(sa.insert(table), [values])


def test_queue_once_with_upsert_do_nothing(session: Session) -> None:
    """How a writer queues "at most once": a duplicate insert silently keeps the first row."""
    table = Notification.__table__
    first = {"idempotency_key": "k", "channel": "email", "recipient": "a@example.com", "payload": {"v": 1}}
    upsert(session, table, [first], key=["idempotency_key"], update=[])
    upsert(session, table, [{**first, "payload": {"v": 2}}], key=["idempotency_key"], update=[])
    assert session.scalars(sa.select(Notification.payload)).all() == [{"v": 1}]


def test_attempts_go_with_their_notification(session: Session) -> None:
    queued = notification("k")
    queued.attempt_log = [NotificationAttempt(outcome="retry", status_code=503), NotificationAttempt(outcome="sent")]
    session.add(queued)
    session.commit()
    session.execute(sa.delete(Notification))
    session.commit()
    assert session.scalar(sa.select(sa.func.count()).select_from(NotificationAttempt)) == 0


def test_notifications_outlive_their_incident(session: Session) -> None:
    incident = Incident(code="X1", namespace="default", monitor_name="web", title="down", severity="critical")
    session.add(incident)
    session.flush()
    session.add(notification("k", incident_id=incident.id))
    session.commit()
    session.execute(sa.delete(Incident))
    session.commit()
    session.expunge_all()
    assert session.scalars(sa.select(Notification.incident_id)).one() is None


def test_unknown_status_is_refused(session: Session) -> None:
    session.add(notification("k", status="lost"))
    with pytest.raises(sa.exc.IntegrityError):
        session.flush()
