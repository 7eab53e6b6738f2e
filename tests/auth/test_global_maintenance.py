"""Turning global maintenance on and off is audited with who did it; a refusal writes neither the switch
nor the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.auth.audit import AuditFilter, query
from spectra.auth.global_maintenance import GlobalMaintenanceRefused, current, turn_off, turn_on
from spectra.auth.identity import Actor, Principal
from spectra.domain.global_maintenance import read
from spectra.store import AuditLog

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
STAFF = Principal(user_id=9, email="staff@spectra.example", organization=None, role=None, platform_admin=True)


def test_on_and_off_are_audited_with_the_actor(session: Session) -> None:
    status = turn_on(
        session,
        message="Upgrading the database",
        until=T0 + timedelta(hours=2),
        show_on_status_pages=True,
        actor=Actor.of(STAFF, ip="192.0.2.7"),
        now=T0,
    )
    session.commit()
    assert status.on
    assert status.started_by == "staff@spectra.example"
    turn_on(
        session,
        message="Upgrading the database, nearly done",
        until=None,
        show_on_status_pages=False,
        actor=Actor.system("cli"),
        now=T0 + timedelta(minutes=5),
    )
    after = turn_off(session, actor=Actor.system("cli"), now=T0 + timedelta(minutes=30))
    session.commit()
    assert (after.on, after.ended_at) == (False, T0 + timedelta(minutes=30))

    rows = list(reversed(query(session, AuditFilter(action_prefix="maintenance."))))
    assert [(r.action, r.actor, r.ip, r.at) for r in rows] == [
        ("maintenance.global_on", "staff@spectra.example", "192.0.2.7", T0),
        ("maintenance.global_on", "cli", None, T0 + timedelta(minutes=5)),
        ("maintenance.global_off", "cli", None, T0 + timedelta(minutes=30)),
    ]
    assert [r.details for r in rows] == [
        {
            "message": "Upgrading the database",
            "until": "2026-03-02T12:00:00Z",
            "show_on_status_pages": True,
            "changed": False,
        },
        {
            "message": "Upgrading the database, nearly done",
            "until": None,
            "show_on_status_pages": False,
            "changed": True,
        },
        {
            "message": "Upgrading the database, nearly done",
            "started_at": "2026-03-02T10:00:00Z",
            "started_by": "staff@spectra.example",
        },
    ]
    assert all(r.organization is None for r in rows)  # platform-wide: no organization's log holds it


def _act(session: Session, action: dict[str, Any]) -> None:
    if action.get("off"):
        turn_off(session, actor=Actor.system("cli"), now=T0)
        return
    turn_on(
        session,
        message=action["message"],
        until=action.get("until"),
        show_on_status_pages=True,
        actor=Actor.system("cli"),
        now=T0,
    )


@pytest.mark.parametrize(
    ("action", "refusal"),
    [
        ({"message": " "}, "the message is empty: say why nothing is paged"),
        ({"message": "ok", "until": T0}, "until 2026-03-02T10:00:00Z is not in the future (now: 2026-03-02T10:00:00Z)"),
        ({"off": True}, "global maintenance is not on; nothing changed"),
    ],
)
def test_a_refusal_writes_nothing(session: Session, action: dict[str, Any], refusal: str) -> None:
    with pytest.raises(GlobalMaintenanceRefused) as refused:
        _act(session, action)
    assert str(refused.value) == refusal
    session.rollback()
    assert session.scalars(select(AuditLog)).all() == []
    assert not current(session, now=T0).on
    assert read(session).started_at is None
