"""Tenants for platform admins, on SQLite and MariaDB: plan limits, usage counted in each organization's
namespaces, trial days left, suspension and what it does, members, last activity; and trial reminders to
the organization's active admins, 7 days and 1 day before the end and once it ended, each once,
delivered through the real Sender to the SendGrid stand-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.api import parse_object
from spectra.auth.audit import record
from spectra.auth.identity import Actor
from spectra.auth.tenants import (
    ACTIVE_EFFECT,
    SUSPENDED_EFFECT,
    TRIAL_EFFECT,
    TRIAL_ENDED_EFFECT,
    days_left,
    send_trial_reminders,
    tenants,
)
from spectra.housekeeping import Housekeeping
from spectra.notify.outbox import message_of
from spectra.reconcile import apply_set
from spectra.store import Notification
from spectra.store.accounts import AuditLog, Membership, Role, User, UserSession, UserStatus
from tests.factories.manifests import monitor, organization, status_page
from tests.support.providers import Providers, deliver_outbox_emails

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
PUBLIC = "https://spectra.example.com"


def declare(session: Session, *bodies: dict[str, Any]) -> None:
    apply_set(session, [parse_object(body) for body in bodies], "test")


def account(
    session: Session, email: str, organization: str, role: Role, status: UserStatus = UserStatus.ACTIVE
) -> User:
    user = User(email=email, password_hash="x", status=status)
    session.add(user)
    session.flush()
    session.add(Membership(user_id=user.id, organization=organization, role=role))
    session.flush()
    return user


@pytest.mark.parametrize(
    ("left", "days"),
    [
        (7 * DAY, 7),
        (6 * DAY + HOUR, 7),  # rounded up: never "0 days left" while it runs
        (DAY, 1),
        (timedelta(minutes=1), 1),
        (timedelta(0), 0),
        (-3 * DAY, 0),
    ],
)
def test_days_left(left: timedelta, days: int) -> None:
    assert days_left(T0 + left, now=T0) == days


def test_tenants_show_plan_usage_trial_members_and_activity(session: Session) -> None:
    declare(
        session,
        organization(
            "acme",
            ["shop", "shop-eu"],
            plan={"maxMonitors": 10, "maxStatusPages": 2, "minInterval": "30s"},
            trialEnds=(T0 + 6 * DAY + HOUR).isoformat(),
        ),
        organization("globex", ["globex"], suspended=True),
        organization("initech", ["initech"], trialEnds=(T0 - HOUR).isoformat()),
        organization("umbrella", []),
        monitor("web", namespace="shop"),
        monitor("api", namespace="shop"),
        monitor("eu", namespace="shop-eu"),
        status_page("public", namespace="shop"),
        monitor("web", namespace="globex"),
        monitor("stray", namespace="nobody"),  # in no organization's namespaces: nobody's usage
    )
    ada = account(session, "ada@acme.example", "acme", Role.ADMIN)
    account(session, "bob@acme.example", "acme", Role.USER)
    account(session, "ivy@acme.example", "acme", Role.USER, UserStatus.INVITED)
    gina = account(session, "gina@globex.example", "globex", Role.ADMIN)
    # acme: a session used last at T0 - 2 h, an audit record at T0 - 3 h: the later counts.
    session.add(
        UserSession(
            sid="s-acme",
            user_id=ada.id,
            organization="acme",
            created_at=T0 - 5 * HOUR,
            last_used_at=T0 - 2 * HOUR,
            expires_at=T0 + 7 * HOUR,
        )
    )
    record(session, Actor(name=ada.email, user_id=ada.id, organization="acme"), "user.login", now=T0 - 3 * HOUR)
    # globex: only an audit record.
    record(session, Actor(name=gina.email, user_id=gina.id, organization="globex"), "user.login", now=T0 - DAY)
    session.flush()

    found = {tenant.name: tenant for tenant in tenants(session, now=T0)}
    assert list(found) == ["acme", "globex", "initech", "umbrella"]
    acme = found["acme"]
    assert (acme.display_name, acme.namespaces) == ("Acme", ("shop", "shop-eu"))
    assert (acme.max_monitors, acme.max_status_pages, acme.min_interval_s) == (10, 2, 30.0)
    assert (acme.monitors, acme.status_pages) == (3, 1)
    assert (acme.trial_ends, acme.trial_days_left, acme.trial_ended, acme.suspended) == (
        T0 + 6 * DAY + HOUR,
        7,
        False,
        False,
    )
    assert (acme.members, acme.admins) == (3, 1)  # the invited member counts
    assert acme.last_activity == T0 - 2 * HOUR
    assert acme.effect == TRIAL_EFFECT

    globex = found["globex"]
    assert (globex.monitors, globex.status_pages, globex.max_monitors, globex.min_interval_s) == (1, 0, None, None)
    assert (globex.suspended, globex.trial_days_left, globex.effect) == (True, None, SUSPENDED_EFFECT)
    assert (globex.members, globex.last_activity) == (1, T0 - DAY)

    initech = found["initech"]
    assert (initech.trial_days_left, initech.trial_ended, initech.effect) == (0, True, TRIAL_ENDED_EFFECT)
    assert (initech.members, initech.admins, initech.last_activity) == (0, 0, None)

    umbrella = found["umbrella"]
    assert (umbrella.monitors, umbrella.status_pages, umbrella.effect) == (0, 0, ACTIVE_EFFECT)


def test_no_tenants_without_organizations(session: Session) -> None:
    declare(session, monitor("web"))
    assert tenants(session, now=T0) == []


# --- trial reminders ---------------------------------------------------------------------------------


def reminders(session: Session) -> list[tuple[str, str]]:
    rows = session.scalars(sa.select(Notification).order_by(Notification.id))
    return [(row.recipient, message_of(row).subject) for row in rows]


def test_each_reminder_goes_once_to_each_active_admin(session: Session) -> None:
    ends = T0 + 10 * DAY
    declare(session, organization("acme", ["shop"], trialEnds=ends.isoformat()))
    account(session, "ada@acme.example", "acme", Role.ADMIN)
    account(session, "carol@acme.example", "acme", Role.ADMIN)
    account(session, "bob@acme.example", "acme", Role.USER)  # no admin
    account(session, "dave@acme.example", "acme", Role.ADMIN, UserStatus.DISABLED)
    hourly = [T0 + n * HOUR for n in range(0, 19 * 24)]  # every hour, from 10 days before to 9 days after
    queued = [(at, send_trial_reminders(session, now=at, public_url=PUBLIC)) for at in hourly]
    assert [(at - ends, count) for at, count in queued if count] == [(-7 * DAY, 2), (-DAY, 2), (timedelta(0), 2)]
    assert reminders(session) == [
        ("ada@acme.example", "The SpectraMonitor trial of Acme ends in 7 days"),
        ("carol@acme.example", "The SpectraMonitor trial of Acme ends in 7 days"),
        ("ada@acme.example", "The SpectraMonitor trial of Acme ends in 1 day"),
        ("carol@acme.example", "The SpectraMonitor trial of Acme ends in 1 day"),
        ("ada@acme.example", "The SpectraMonitor trial of Acme has ended"),
        ("carol@acme.example", "The SpectraMonitor trial of Acme has ended"),
    ]
    texts = [message_of(row).text for row in session.scalars(sa.select(Notification).order_by(Notification.id))]
    assert "ends at 2026-12-17 09:00 UTC, in 7 days" in texts[0]
    assert "ended at 2026-12-17 09:00 UTC. Its monitors are paused" in texts[4]
    assert f"{PUBLIC}/login" in texts[0]
    audited = session.scalars(sa.select(AuditLog).where(AuditLog.action == "tenant.trial_reminder"))
    assert [(row.actor, row.organization, (row.details or {}).get("stage")) for row in audited] == [
        ("housekeeping", "acme", "7-days"),
        ("housekeeping", "acme", "1-day"),
        ("housekeeping", "acme", "ended"),
    ]


@pytest.mark.parametrize(
    ("first_run", "subject"),
    [
        (-3 * DAY, "The SpectraMonitor trial of Acme ends in 3 days"),  # late: the 7-day one, saying what is true
        (-2 * HOUR, "The SpectraMonitor trial of Acme ends in 1 day"),  # the 1-day one only, not the 7-day one too
        (2 * DAY, "The SpectraMonitor trial of Acme has ended"),
    ],
)
def test_a_late_start_sends_only_the_latest_reminder(session: Session, first_run: timedelta, subject: str) -> None:
    ends = T0 + 10 * DAY
    declare(session, organization("acme", ["shop"], trialEnds=ends.isoformat()))
    account(session, "ada@acme.example", "acme", Role.ADMIN)
    assert send_trial_reminders(session, now=ends + first_run, public_url=PUBLIC) == 1
    assert send_trial_reminders(session, now=ends + first_run + HOUR, public_url=PUBLIC) == 0
    assert reminders(session) == [("ada@acme.example", subject)]


def test_no_reminder_for_a_trial_that_ended_long_ago_or_none(session: Session) -> None:
    declare(
        session,
        organization("acme", ["shop"], trialEnds=(T0 - 8 * DAY).isoformat()),
        organization("globex", ["globex"]),
        organization("initech", ["initech"], trialEnds=(T0 + 8 * DAY).isoformat()),
    )
    for org in ("acme", "globex", "initech"):
        account(session, f"admin@{org}.example", org, Role.ADMIN)
    assert send_trial_reminders(session, now=T0, public_url=PUBLIC) == 0
    assert reminders(session) == []


def test_an_extended_trial_reminds_again(session: Session) -> None:
    ends = T0 + DAY
    declare(session, organization("acme", ["shop"], trialEnds=ends.isoformat()))
    account(session, "ada@acme.example", "acme", Role.ADMIN)
    assert send_trial_reminders(session, now=T0, public_url=PUBLIC) == 1
    declare(session, organization("acme", ["shop"], trialEnds=(ends + 30 * DAY).isoformat()))
    assert send_trial_reminders(session, now=T0 + 24 * DAY, public_url=PUBLIC) == 1
    assert [subject for _, subject in reminders(session)] == [
        "The SpectraMonitor trial of Acme ends in 1 day",
        "The SpectraMonitor trial of Acme ends in 7 days",
    ]


def test_housekeeping_sends_them_through_the_sendgrid_stand_in(sessions: sessionmaker[Session]) -> None:
    now = T0 + 3 * DAY  # 7 days before the end
    with sessions.begin() as session:
        declare(session, organization("acme", ["shop"], trialEnds=(T0 + 10 * DAY).isoformat()))
        account(session, "ada@acme.example", "acme", Role.ADMIN)
    keeper = Housekeeping(
        sessions,
        clock=lambda: now,
        hourly={"trial reminders": lambda session, at: send_trial_reminders(session, now=at, public_url=PUBLIC)},
    )
    keeper.once()
    providers = Providers()
    try:
        assert deliver_outbox_emails(sessions, providers) == 1
        delivered = providers.emails("ada@acme.example")
    finally:
        providers.close()
    assert [mail["subject"] for mail in delivered] == ["The SpectraMonitor trial of Acme ends in 7 days"]
