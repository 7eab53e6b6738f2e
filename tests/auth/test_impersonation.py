"""Impersonation for support, on SQLite and MariaDB: who may start it and for whom (every refusal exact,
with the store unchanged), its session ending with it (expiry, or `end` at once), the audit records with
both identities in the organization's log and the platform's, and the mail to the organization's admins,
delivered through the real Sender to the SendGrid stand-in."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.api import parse_object
from spectra.auth import impersonation, policy
from spectra.auth.access_tokens import Keys, verify
from spectra.auth.identity import Actor, Principal
from spectra.auth.impersonation import (
    REASON_TOO_SHORT,
    SESSION_ENDED,
    TOO_LONG,
    TOO_SHORT,
    ImpersonationError,
    active,
    close_expired,
    end,
    start,
)
from spectra.auth.sessions import Issued, Lifetimes, SessionRefused, is_active, refresh, revoke
from spectra.auth.sessions import start as sign_in
from spectra.notify.outbox import message_of
from spectra.reconcile import apply_set
from spectra.store import Base, Notification
from spectra.store.accounts import AuditLog, Impersonation, Membership, Role, User, UserSession, UserStatus
from tests.factories.manifests import organization
from tests.support.providers import Providers, deliver_outbox_emails

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
KEYS = Keys.from_secrets(["impersonation-test-signing-secret-0123"])
LIFETIMES = Lifetimes()
PUBLIC = "https://spectra.example.com"
REASON = "ticket 4711: the on-call schedule looks wrong"
MINUTE = timedelta(minutes=1)


@dataclass
class People:
    staff: Principal  # a platform admin signed in, member of nothing
    ada: User  # admin of acme
    carol: User  # admin of acme
    bob: User  # user of acme
    ops: User  # platform admin and admin of acme
    gina: User  # user of globex
    dave: User  # admin of acme, disabled
    ivy: User  # user of acme, invited (no password yet)


def exactly(message: str) -> str:
    return f"^{re.escape(message)}$"


def snapshot(session: Session) -> dict[str, list[str]]:
    """Every row of every table, as text: what "nothing changed" compares."""
    session.flush()
    return {
        table.name: sorted(repr(tuple(row)) for row in session.execute(sa.select(table)))
        for table in Base.metadata.sorted_tables
    }


def account(session: Session, email: str, status: UserStatus = UserStatus.ACTIVE, **fields: Any) -> User:
    user = User(email=email, password_hash="x" if status != UserStatus.INVITED else None, status=status, **fields)
    session.add(user)
    session.flush()
    return user


def member(session: Session, user: User, organization: str, role: Role) -> None:
    session.add(Membership(user_id=user.id, organization=organization, role=role))
    session.flush()


@pytest.fixture
def people(session: Session) -> People:
    apply_set(
        session,
        [parse_object(organization("acme", ["shop"])), parse_object(organization("globex", ["globex"]))],
        "test",
    )
    staff = account(session, "staff@spectra.example", platform_admin=True)
    ada = account(session, "ada@acme.example")
    carol = account(session, "carol@acme.example")
    bob = account(session, "bob@acme.example")
    ops = account(session, "ops@spectra.example", platform_admin=True)
    gina = account(session, "gina@globex.example")
    dave = account(session, "dave@acme.example", UserStatus.DISABLED)
    ivy = account(session, "ivy@acme.example", UserStatus.INVITED)
    for user, org, role in [
        (ada, "acme", Role.ADMIN),
        (carol, "acme", Role.ADMIN),
        (bob, "acme", Role.USER),
        (ops, "acme", Role.ADMIN),
        (gina, "globex", Role.USER),
        (dave, "acme", Role.ADMIN),
        (ivy, "acme", Role.USER),
    ]:
        member(session, user, org, role)
    signed_in = sign_in(
        session,
        staff,
        organization=None,
        now=T0,
        mfa_verified=True,
        ip="192.0.2.1",
        user_agent="Firefox/140",
        lifetimes=LIFETIMES,
        keys=KEYS,
    )
    session.commit()
    return People(staff=signed_in.principal, ada=ada, carol=carol, bob=bob, ops=ops, gina=gina, dave=dave, ivy=ivy)


def begin(
    session: Session,
    by: Principal,
    email: str = "bob@acme.example",
    organization: str = "acme",
    *,
    reason: str = REASON,
    minutes: int = impersonation.DEFAULT_MINUTES,
    at: datetime = T0,
) -> Issued:
    return start(
        session,
        by,
        email,
        organization,
        reason=reason,
        minutes=minutes,
        now=at,
        ip="192.0.2.1",
        user_agent="Firefox/140",
        public_url=PUBLIC,
        lifetimes=LIFETIMES,
        keys=KEYS,
    )


def audit(session: Session, action: str) -> list[tuple[str, str | None, str | None, str | None]]:
    rows = session.scalars(sa.select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))
    return [(row.actor, row.impersonator, row.organization, row.target_name) for row in rows]


# --- refusals ----------------------------------------------------------------------------------------


def principal_of(user: User, organization: str | None, role: Role | None, **fields: Any) -> Principal:
    return Principal(user_id=user.id, email=user.email, organization=organization, role=role, **fields)


# (case, who asks, whom, organization, reason, minutes, exception, exact message)
Case = tuple[str, Callable[[People], Principal], str, str, str, int, type[Exception], str]
REFUSALS: list[Case] = [
    (
        "an organization admin",
        lambda p: principal_of(p.ada, "acme", Role.ADMIN),
        "bob@acme.example",
        "acme",
        REASON,
        30,
        policy.Forbidden,
        "only platform admins may do impersonate",
    ),
    (
        "a platform admin's API token",
        lambda p: replace(p.staff, scopes=frozenset({"admin"}), via="api-token", session_id=None),
        "bob@acme.example",
        "acme",
        REASON,
        30,
        policy.Forbidden,
        "an API token cannot do impersonate: platform admins sign in for it",
    ),
    (
        "a platform admin already impersonating",
        lambda p: replace(p.staff, impersonator_id=p.ops.id, impersonator_email=p.ops.email),
        "bob@acme.example",
        "acme",
        REASON,
        30,
        policy.Forbidden,
        "not while impersonating: impersonate is a platform admin's own",
    ),
    (
        "a token of someone no longer a platform admin",
        lambda p: principal_of(p.ada, None, None, platform_admin=True),
        "bob@acme.example",
        "acme",
        REASON,
        30,
        policy.Forbidden,
        "only platform admins may do impersonate",
    ),
    (
        "another platform admin",
        lambda p: p.staff,
        "ops@spectra.example",
        "acme",
        REASON,
        30,
        policy.Forbidden,
        "a platform admin cannot be impersonated",
    ),
    (
        "a member of another organization",
        lambda p: p.staff,
        "gina@globex.example",
        "acme",
        REASON,
        30,
        ImpersonationError,
        "gina@globex.example is not a member of acme",
    ),
    (
        "an unknown address, the same answer",
        lambda p: p.staff,
        "Nobody@Acme.example",
        "acme",
        REASON,
        30,
        ImpersonationError,
        "nobody@acme.example is not a member of acme",
    ),
    (
        "an unknown organization",
        lambda p: p.staff,
        "bob@acme.example",
        "initech",
        REASON,
        30,
        ImpersonationError,
        "there is no Organization named 'initech'",
    ),
    (
        "a disabled member",
        lambda p: p.staff,
        "dave@acme.example",
        "acme",
        REASON,
        30,
        ImpersonationError,
        "dave@acme.example has not set up an account, or it is disabled: it cannot be impersonated",
    ),
    (
        "an invited member",
        lambda p: p.staff,
        "ivy@acme.example",
        "acme",
        REASON,
        30,
        ImpersonationError,
        "ivy@acme.example has not set up an account, or it is disabled: it cannot be impersonated",
    ),
    ("no reason", lambda p: p.staff, "bob@acme.example", "acme", "", 30, ImpersonationError, REASON_TOO_SHORT),
    (
        "nine characters of reason, padded",
        lambda p: p.staff,
        "bob@acme.example",
        "acme",
        "   see 4711   ",
        30,
        ImpersonationError,
        REASON_TOO_SHORT,
    ),
    (
        "a reason over 1000 characters",
        lambda p: p.staff,
        "bob@acme.example",
        "acme",
        "x" * 1001,
        30,
        ImpersonationError,
        "the reason is 1001 characters long; at most 1000",
    ),
    (
        "a reason with control characters",
        lambda p: p.staff,
        "bob@acme.example",
        "acme",
        "ticket 4711\x1b[31m red",
        30,
        ImpersonationError,
        "the reason contains control characters; only line breaks and tabs are allowed",
    ),
    ("61 minutes", lambda p: p.staff, "bob@acme.example", "acme", REASON, 61, ImpersonationError, TOO_LONG),
    ("0 minutes", lambda p: p.staff, "bob@acme.example", "acme", REASON, 0, ImpersonationError, TOO_SHORT),
]


@pytest.mark.parametrize(
    ("who", "email", "org", "reason", "minutes", "error", "message"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
def test_refused_exactly_and_nothing_changes(
    session: Session,
    people: People,
    who: Callable[[People], Principal],
    email: str,
    org: str,
    reason: str,
    minutes: int,
    error: type[Exception],
    message: str,
) -> None:
    before = snapshot(session)
    with pytest.raises(error, match=exactly(message)):
        begin(session, who(people), email, org, reason=reason, minutes=minutes)
    assert snapshot(session) == before


def test_refused_once_the_platform_admins_own_session_ended(session: Session, people: People) -> None:
    assert people.staff.session_id is not None
    revoke(session, people.staff.session_id, reason="logout", now=T0)
    session.commit()
    before = snapshot(session)
    with pytest.raises(policy.Forbidden, match=exactly(SESSION_ENDED)):
        begin(session, people.staff, at=T0 + MINUTE)
    assert snapshot(session) == before


# --- what it does ---------------------------------------------------------------------------------------


def test_start_signs_in_as_the_member_with_both_identities(session: Session, people: People) -> None:
    issued = begin(session, people.staff, minutes=20)
    session.commit()
    assert (issued.principal.email, issued.principal.organization, issued.principal.role) == (
        "bob@acme.example",
        "acme",
        Role.USER,
    )
    assert (issued.principal.impersonator_email, issued.principal.platform_admin) == ("staff@spectra.example", False)
    assert verify(issued.access_token, now=T0, keys=KEYS) == issued.principal  # the `act` claim carries the admin
    row = session.scalars(sa.select(Impersonation)).one()
    assert (row.reason, row.organization, row.expires_at) == (REASON, "acme", T0 + timedelta(minutes=20))
    assert issued.session_row.impersonation_id == row.id
    assert issued.session_row.expires_at == T0 + timedelta(minutes=20)  # the session ends with it
    assert issued.session_row.mfa_verified  # the platform admin's own session passed its second factor
    # The member's own account is not the impersonator's to change.
    for own in (policy.Action.SELF_PASSWORD, policy.Action.SELF_MFA, policy.Action.SELF_TOKENS):
        assert not policy.allowed(issued.principal, own, organization="acme")
    # The organization's log names both; the platform's names the platform admin.
    assert audit(session, "impersonation.started") == [
        ("staff@spectra.example", None, None, "bob@acme.example"),
        ("bob@acme.example", "staff@spectra.example", "acme", "bob@acme.example"),
    ]
    in_acme = session.scalars(
        sa.select(AuditLog).where(AuditLog.organization == "acme", AuditLog.action == "impersonation.started")
    ).one()
    assert in_acme.details == {
        "impersonation": row.id,
        "reason": REASON,
        "minutes": 20,
        "expires_at": "2026-12-07T09:20:00+00:00",
        "role": "user",
    }
    assert in_acme.ip == "192.0.2.1"


def test_the_organizations_active_admins_get_an_email(session: Session, people: People) -> None:
    issued = begin(session, people.staff)
    session.commit()
    mails = [message_of(row) for row in session.scalars(sa.select(Notification).order_by(Notification.id))]
    # ada, carol and ops are acme's active admins; dave is disabled; bob is no admin.
    assert [mail.recipient for mail in mails] == ["ada@acme.example", "carol@acme.example", "ops@spectra.example"]
    mail = mails[0]
    assert mail.subject == "SpectraMonitor support is acting as bob@acme.example in Acme"
    assert "staff@spectra.example of SpectraMonitor support started acting as bob@acme.example in Acme" in mail.text
    assert "2026-12-07 09:00 UTC, for at most 30 minutes (until 09:30 UTC)" in mail.text
    assert f"The reason given: {REASON}" in mail.text
    assert f"{PUBLIC}/login" in mail.text
    assert issued.refresh_token not in mail.text
    assert issued.access_token not in mail.text


def test_an_expired_impersonations_session_cannot_refresh(session: Session, people: People) -> None:
    issued = begin(session, people.staff, minutes=5)
    session.commit()
    again = refresh(session, issued.refresh_token, now=T0 + 4 * MINUTE, lifetimes=LIFETIMES, keys=KEYS)
    session.commit()
    assert again.access_expires_at == T0 + 5 * MINUTE  # no access token outlives it
    before = snapshot(session)
    with pytest.raises(SessionRefused) as refused:
        refresh(session, again.refresh_token, now=T0 + 5 * MINUTE, lifetimes=LIFETIMES, keys=KEYS)
    session.rollback()
    assert refused.value.reason == "absolute timeout"
    assert snapshot(session) == before
    assert active(session, now=T0 + 5 * MINUTE) == []
    expired = session.scalars(sa.select(Impersonation.id)).one()
    assert not end(session, expired, actor=Actor.of(people.staff), now=T0 + 5 * MINUTE)  # over already
    assert snapshot(session) == before


def test_ending_revokes_its_session_at_once(session: Session, people: People) -> None:
    issued = begin(session, people.staff)
    session.commit()
    row_id = session.scalars(sa.select(Impersonation.id)).one()
    [shown] = active(session, now=T0 + MINUTE)
    assert (shown.id, shown.impersonator, shown.user, shown.organization, shown.reason) == (
        row_id,
        "staff@spectra.example",
        "bob@acme.example",
        "acme",
        REASON,
    )
    assert active(session, now=T0 + MINUTE, organization="globex") == []

    assert end(session, row_id, actor=Actor.of(people.staff, ip="192.0.2.1"), now=T0 + 2 * MINUTE)
    session.commit()
    sid = issued.session_row.sid
    assert not is_active(session, sid, now=T0 + 2 * MINUTE, lifetimes=LIFETIMES)
    with pytest.raises(SessionRefused) as refused:
        refresh(session, issued.refresh_token, now=T0 + 2 * MINUTE, lifetimes=LIFETIMES, keys=KEYS)
    session.rollback()
    assert refused.value.reason == "revoked (impersonation ended)"
    ended = session.scalars(sa.select(UserSession).where(UserSession.sid == sid)).one()
    assert (ended.revoked_at, ended.revoked_reason) == (T0 + 2 * MINUTE, "impersonation ended")
    assert active(session, now=T0 + 2 * MINUTE) == []
    assert audit(session, "impersonation.ended") == [
        ("staff@spectra.example", None, None, "bob@acme.example"),
        ("bob@acme.example", "staff@spectra.example", "acme", "bob@acme.example"),
    ]
    in_acme = session.scalars(
        sa.select(AuditLog).where(AuditLog.organization == "acme", AuditLog.action == "impersonation.ended")
    ).one()
    assert in_acme.details == {
        "impersonation": row_id,
        "ended_by": "staff@spectra.example",
        "started_at": "2026-12-07T09:00:00+00:00",
        "sessions_ended": 1,
    }

    before = snapshot(session)  # ending it again changes nothing
    assert not end(session, row_id, actor=Actor.of(people.staff), now=T0 + 3 * MINUTE)
    assert snapshot(session) == before
    with pytest.raises(ImpersonationError, match=exactly("there is no impersonation 999999")):
        end(session, 999_999, actor=Actor.of(people.staff), now=T0 + 3 * MINUTE)
    assert snapshot(session) == before


def test_an_impersonation_whose_time_ran_out_is_closed_and_audited(session: Session, people: People) -> None:
    """Nobody ended it: housekeeping's `close_expired` records its end (at its expiry, by `expiry`) in both
    logs, so the organization's admins read that it is over; once."""
    issued = begin(session, people.staff, minutes=5)
    session.commit()
    row_id = session.scalars(sa.select(Impersonation.id)).one()
    assert close_expired(session, now=T0 + 4 * MINUTE) == 0  # still going on
    assert close_expired(session, now=T0 + 7 * MINUTE) == 1
    session.commit()
    row = session.get(Impersonation, row_id)
    assert row is not None
    assert row.ended_at == T0 + 5 * MINUTE
    assert audit(session, "impersonation.ended") == [
        ("expiry", None, None, "bob@acme.example"),
        ("bob@acme.example", "staff@spectra.example", "acme", "bob@acme.example"),
    ]
    in_acme = session.scalars(
        sa.select(AuditLog).where(AuditLog.organization == "acme", AuditLog.action == "impersonation.ended")
    ).one()
    assert (in_acme.at, in_acme.details) == (
        T0 + 5 * MINUTE,
        {
            "impersonation": row_id,
            "ended_by": "expiry",
            "started_at": "2026-12-07T09:00:00+00:00",
            "sessions_ended": 1,
        },
    )
    ended = session.scalars(sa.select(UserSession).where(UserSession.sid == issued.session_row.sid)).one()
    assert (ended.revoked_at, ended.revoked_reason) == (T0 + 5 * MINUTE, "impersonation ended")
    before = snapshot(session)
    assert close_expired(session, now=T0 + 90 * MINUTE) == 0  # closed once
    assert not end(session, row_id, actor=Actor.of(people.staff), now=T0 + 90 * MINUTE)
    assert snapshot(session) == before


def test_the_mail_reaches_the_sendgrid_stand_in(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        apply_set(session, [parse_object(organization("acme", ["shop"]))], "test")
        staff = account(session, "staff@spectra.example", platform_admin=True)
        ada = account(session, "ada@acme.example")
        bob = account(session, "bob@acme.example")
        member(session, ada, "acme", Role.ADMIN)
        member(session, bob, "acme", Role.USER)
        # At the command line: a platform admin without a session.
        begin(session, Principal(staff.id, staff.email, None, None, platform_admin=True, via="cli"))
    providers = Providers()
    try:
        assert deliver_outbox_emails(sessions, providers) == 1
        delivered = providers.emails("ada@acme.example")
    finally:
        providers.close()
    assert [mail["subject"] for mail in delivered] == ["SpectraMonitor support is acting as bob@acme.example in Acme"]
    text = "\n".join(str(part["value"]) for part in delivered[0]["content"])
    assert f"The reason given: {REASON}" in text
    with sessions() as session:
        # Without a session of its own, nothing proved a second factor for this one.
        assert not session.scalars(sa.select(UserSession.mfa_verified)).one()


def test_the_mail_says_utc_whatever_the_callers_offset(session: Session, people: People) -> None:
    begin(session, people.staff, at=T0.astimezone(timezone(timedelta(hours=1))))
    first = session.scalars(sa.select(Notification).order_by(Notification.id)).first()
    assert first is not None
    text = message_of(first).text
    assert "at 2026-12-07 09:00 UTC, for at most 30 minutes (until 09:30 UTC)" in text
