"""Sessions as refresh token families, on SQLite and MariaDB: rotation on every refresh, reuse of a
rotated token revoking the family, idle and absolute lifetimes, logout, sign out everywhere, the role
read afresh at each refresh, impersonation ending its sessions; every refusal leaves the store as it was
(but the documented revocation), and two racing refreshes with one token give exactly one success."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth.access_tokens import InvalidAccess, Keys, verify
from spectra.auth.identity import Actor
from spectra.auth.sessions import (
    SIGN_IN_AGAIN,
    Issued,
    Lifetimes,
    SessionRefused,
    is_active,
    prune,
    refresh,
    revoke,
    revoke_all,
    start,
)
from spectra.store import Role
from spectra.store.accounts import AuditLog, Impersonation, Membership, RefreshToken, User, UserSession, UserStatus
from tests.support.waiting import wait_for

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
KEYS = Keys.from_secrets(["session-test-signing-secret-0123456789"])
LIFETIMES = Lifetimes()  # 10 min access, 30 min idle, 12 h absolute
MINUTE = timedelta(minutes=1)


@dataclass
class People:
    alice: User  # admin of acme
    bob: User  # user of acme
    staff: User  # platform admin, member of nothing


def people(session: Session) -> People:
    alice = User(email="alice@acme.example", password_hash="x", status=UserStatus.ACTIVE)
    bob = User(email="bob@acme.example", password_hash="x", status=UserStatus.ACTIVE)
    staff = User(email="staff@spectra.example", password_hash="x", status=UserStatus.ACTIVE, platform_admin=True)
    session.add_all([alice, bob, staff])
    session.flush()
    session.add_all(
        [
            Membership(user_id=alice.id, organization="acme", role=Role.ADMIN),
            Membership(user_id=bob.id, organization="acme", role=Role.USER),
        ]
    )
    session.commit()
    return People(alice=alice, bob=bob, staff=staff)


def sign_in(session: Session, user: User, *, at: datetime = T0, organization: str | None = "acme") -> Issued:
    issued = start(
        session,
        user,
        organization=organization,
        now=at,
        mfa_verified=True,
        ip="192.0.2.7",
        user_agent="Firefox/140",
        lifetimes=LIFETIMES,
        keys=KEYS,
    )
    session.commit()
    return issued


def rotate(session: Session, token: str, *, at: datetime, lifetimes: Lifetimes = LIFETIMES) -> Issued:
    issued = refresh(session, token, now=at, ip="198.51.100.9", lifetimes=lifetimes, keys=KEYS)
    session.commit()
    return issued


def impersonate(session: Session, who: People, *, until: datetime = T0 + timedelta(minutes=30)) -> Impersonation:
    row = Impersonation(
        impersonator_id=who.staff.id,
        user_id=who.alice.id,
        organization="acme",
        reason="ticket 4711: the on-call schedule looks wrong",
        started_at=T0,
        expires_at=until,
    )
    session.add(row)
    session.commit()
    return row


def store_state(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row this module could touch, as the database holds it."""
    tables = (UserSession, RefreshToken, AuditLog, User, Membership, Impersonation)
    return {
        model.__tablename__: [tuple(row) for row in session.execute(sa.select(model.__table__).order_by("id"))]
        for model in tables
    }


def actions(session: Session) -> list[str]:
    return list(session.scalars(sa.select(AuditLog.action).order_by(AuditLog.id)))


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --- start and refresh ------------------------------------------------------------------------------


def test_start_issues_both_tokens_and_keeps_only_a_digest(session: Session) -> None:
    who = people(session)
    issued = sign_in(session, who.alice)
    row = issued.session_row
    assert (row.user_id, row.organization, row.mfa_verified, row.ip, row.user_agent) == (
        who.alice.id,
        "acme",
        True,
        "192.0.2.7",
        "Firefox/140",
    )
    assert (row.created_at, row.last_used_at, row.expires_at) == (T0, T0, T0 + timedelta(hours=12))
    assert len(row.sid) >= 43
    assert len(issued.refresh_token) >= 43
    (stored,) = session.scalars(sa.select(RefreshToken))
    assert stored.token_hash == digest(issued.refresh_token) != issued.refresh_token
    assert issued.refresh_token not in repr(issued)
    assert issued.access_token not in repr(issued)
    principal = verify(issued.access_token, now=T0, keys=KEYS)
    assert principal == issued.principal
    assert (principal.user_id, principal.role, principal.session_id, principal.impersonated) == (
        who.alice.id,
        Role.ADMIN,
        row.sid,
        False,
    )
    assert issued.access_expires_at == T0 + timedelta(minutes=10)
    assert actions(session) == []  # the sign-in that called start records user.login


def test_a_platform_admin_outside_any_organization(session: Session) -> None:
    who = people(session)
    issued = sign_in(session, who.staff, organization=None)
    principal = verify(issued.access_token, now=T0, keys=KEYS)
    assert (principal.organization, principal.role, principal.platform_admin) == (None, None, True)
    assert rotate(session, issued.refresh_token, at=T0 + 5 * MINUTE).principal == principal


def test_refresh_rotates(session: Session) -> None:
    who = people(session)
    first = sign_in(session, who.bob)
    at = T0 + 12 * MINUTE
    second = rotate(session, first.refresh_token, at=at)
    assert second.refresh_token != first.refresh_token
    assert second.session_row.sid == first.session_row.sid
    tokens = {t.token_hash: t for t in session.scalars(sa.select(RefreshToken))}
    assert tokens[digest(first.refresh_token)].rotated_at == at
    assert tokens[digest(second.refresh_token)].rotated_at is None
    assert tokens[digest(second.refresh_token)].issued_at == at
    assert session.get(UserSession, first.session_row.id).last_used_at == at  # type: ignore[union-attr]
    assert verify(second.access_token, now=at, keys=KEYS).session_id == first.session_row.sid
    # Refreshing keeps a session going past its idle limit, never past its absolute one.
    later = second
    for step in range(1, 29):
        later = rotate(session, later.refresh_token, at=at + step * 25 * MINUTE)
    assert later.access_expires_at == T0 + timedelta(hours=12)  # capped by the session's end
    with pytest.raises(SessionRefused, match=SIGN_IN_AGAIN):
        rotate(session, later.refresh_token, at=T0 + timedelta(hours=12))


def test_a_role_change_takes_effect_at_the_next_refresh(session: Session) -> None:
    who = people(session)
    issued = sign_in(session, who.bob)
    session.execute(sa.update(Membership).where(Membership.user_id == who.bob.id).values(role=Role.ADMIN))
    session.commit()
    assert verify(issued.access_token, now=T0 + MINUTE, keys=KEYS).role is Role.USER  # until it expires
    assert (
        verify(rotate(session, issued.refresh_token, at=T0 + MINUTE).access_token, now=T0 + MINUTE, keys=KEYS).role
        is Role.ADMIN
    )


def test_reuse_of_a_rotated_token_revokes_the_family(session: Session) -> None:
    who = people(session)
    first = sign_in(session, who.alice)
    second = rotate(session, first.refresh_token, at=T0 + 11 * MINUTE)
    third = rotate(session, second.refresh_token, at=T0 + 22 * MINUTE)
    other = sign_in(session, who.alice)  # another device: untouched

    with pytest.raises(SessionRefused) as refused:
        refresh(session, first.refresh_token, now=T0 + 23 * MINUTE, ip="203.0.113.66", lifetimes=LIFETIMES, keys=KEYS)
    assert (refused.value.reason, str(refused.value)) == ("reuse", SIGN_IN_AGAIN)
    session.rollback()  # what a caller does on a refusal: the revocation was committed before it

    row = session.get(UserSession, first.session_row.id)
    assert row is not None
    assert (row.revoked_at, row.revoked_reason) == (T0 + 23 * MINUTE, "reuse")
    (audit,) = session.scalars(sa.select(AuditLog))
    assert (audit.action, audit.actor, audit.organization, audit.ip, audit.details) == (
        "session.reuse_detected",
        "alice@acme.example",
        "acme",
        "203.0.113.66",
        {"session": row.id},
    )
    with pytest.raises(SessionRefused) as newest:  # the newest token dies with its family
        rotate(session, third.refresh_token, at=T0 + 24 * MINUTE)
    assert newest.value.reason == "revoked (reuse)"
    assert not is_active(session, first.session_row.sid, now=T0 + 24 * MINUTE, lifetimes=LIFETIMES)
    assert is_active(session, other.session_row.sid, now=T0 + 24 * MINUTE, lifetimes=LIFETIMES)

    # Presented again: refused, nothing more written.
    session.rollback()
    before = store_state(session)
    with pytest.raises(SessionRefused, match=SIGN_IN_AGAIN):
        rotate(session, second.refresh_token, at=T0 + 25 * MINUTE)
    assert store_state(session) == before


# --- every refusal, store unchanged -----------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Given the people and a fresh session of alice's in acme (refreshed once at T0+10 min), prepare
    and commit what the case needs; return the token to present and when."""

    prepare: Callable[[Session, People, Issued], tuple[str, datetime]]
    reason: str


def _unchanged(
    token_of: Callable[[Issued], str], at: datetime
) -> Callable[[Session, People, Issued], tuple[str, datetime]]:
    return lambda _session, _who, issued: (token_of(issued), at)


def _after(
    change: Callable[[Session, People, Issued], None], at: datetime = T0 + 15 * MINUTE
) -> Callable[[Session, People, Issued], tuple[str, datetime]]:
    def prepare(session: Session, who: People, issued: Issued) -> tuple[str, datetime]:
        change(session, who, issued)
        session.commit()
        return issued.refresh_token, at

    return prepare


def _logout(session: Session, _who: People, issued: Issued) -> None:
    assert revoke(session, issued.session_row.sid, reason="logout", now=T0 + 12 * MINUTE)


def _disable(session: Session, who: People, _issued: Issued) -> None:
    who.alice.status = UserStatus.DISABLED


def _invite_again(session: Session, who: People, _issued: Issued) -> None:
    who.alice.status = UserStatus.INVITED


def _remove_membership(session: Session, who: People, _issued: Issued) -> None:
    session.execute(sa.delete(Membership).where(Membership.user_id == who.alice.id))


def _sign_out_everywhere(session: Session, who: People, _issued: Issued) -> None:
    assert revoke_all(session, who.alice.id, now=T0 + 12 * MINUTE) == 1


REFUSALS: dict[str, Refusal] = {
    "unknown token": Refusal(_unchanged(lambda _i: secrets.token_urlsafe(32), T0 + 15 * MINUTE), "unknown token"),
    "empty token": Refusal(_unchanged(lambda _i: "", T0 + 15 * MINUTE), "malformed token"),
    "huge token": Refusal(_unchanged(lambda _i: "A" * 10_000, T0 + 15 * MINUTE), "malformed token"),
    "non-ASCII token": Refusal(_unchanged(lambda i: i.refresh_token[:-1] + "é", T0 + 15 * MINUTE), "malformed token"),
    "access token as refresh token": Refusal(_unchanged(lambda i: i.access_token, T0 + 15 * MINUTE), "malformed token"),
    "after logout": Refusal(_after(_logout), "revoked (logout)"),
    "after sign out everywhere": Refusal(_after(_sign_out_everywhere), "revoked (sign out everywhere)"),
    "idle 30 min after the last refresh": Refusal(
        _unchanged(lambda i: i.refresh_token, T0 + 40 * MINUTE), "idle timeout"
    ),
    "disabled user": Refusal(_after(_disable), "user not active"),
    "user back to invited": Refusal(_after(_invite_again), "user not active"),
    "no longer a member": Refusal(_after(_remove_membership), "not a member"),
}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
def test_refusals_change_nothing(session: Session, case: str) -> None:
    who = people(session)
    issued = rotate(session, sign_in(session, who.alice).refresh_token, at=T0 + 10 * MINUTE)
    token, at = REFUSALS[case].prepare(session, who, issued)
    before = store_state(session)
    with pytest.raises(SessionRefused) as refused:
        refresh(session, token, now=at, ip="198.51.100.9", lifetimes=LIFETIMES, keys=KEYS)
    assert (refused.value.reason, str(refused.value)) == (REFUSALS[case].reason, SIGN_IN_AGAIN)
    assert store_state(session) == before
    session.rollback()
    assert store_state(session) == before


def test_idle_limit_counts_from_the_last_refresh(session: Session) -> None:
    who = people(session)
    issued = sign_in(session, who.bob)
    still = rotate(session, issued.refresh_token, at=T0 + 30 * MINUTE - timedelta(seconds=1))
    with pytest.raises(SessionRefused, match=SIGN_IN_AGAIN) as refused:
        rotate(session, still.refresh_token, at=T0 + 60 * MINUTE - timedelta(seconds=1))
    assert refused.value.reason == "idle timeout"


def test_absolute_limit(session: Session) -> None:
    who = people(session)
    short = Lifetimes(access=10 * MINUTE, idle=30 * MINUTE, absolute=60 * MINUTE)
    issued = start(
        session,
        who.bob,
        organization="acme",
        now=T0,
        mfa_verified=False,
        ip=None,
        user_agent=None,
        lifetimes=short,
        keys=KEYS,
    )
    session.commit()
    assert issued.session_row.expires_at == T0 + 60 * MINUTE
    issued = rotate(session, issued.refresh_token, at=T0 + 25 * MINUTE, lifetimes=short)
    issued = rotate(session, issued.refresh_token, at=T0 + 50 * MINUTE, lifetimes=short)
    assert issued.access_expires_at == T0 + 60 * MINUTE
    with pytest.raises(InvalidAccess, match="expired"):
        verify(issued.access_token, now=T0 + 60 * MINUTE, keys=KEYS)
    before = store_state(session)
    with pytest.raises(SessionRefused) as refused:
        rotate(session, issued.refresh_token, at=T0 + 60 * MINUTE, lifetimes=short)
    assert refused.value.reason == "absolute timeout"
    assert store_state(session) == before


# --- starting a session -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("whom", "organization", "reason"),
    [
        ("bob", "globex", "not a member"),
        ("bob", None, "no organization and not a platform admin"),
        ("disabled", "acme", "user not active"),
    ],
)
def test_start_refusals_add_nothing(session: Session, whom: str, organization: str | None, reason: str) -> None:
    who = people(session)
    if whom == "disabled":
        who.bob.status = UserStatus.DISABLED
        session.commit()
    before = store_state(session)
    with pytest.raises(SessionRefused) as refused:
        start(
            session,
            who.bob,
            organization=organization,
            now=T0,
            mfa_verified=True,
            ip=None,
            user_agent=None,
            lifetimes=LIFETIMES,
            keys=KEYS,
        )
    assert refused.value.reason == reason
    assert store_state(session) == before


# --- impersonation ----------------------------------------------------------------------------------


def test_an_impersonation_session_names_both_and_ends_with_it(session: Session) -> None:
    who = people(session)
    impersonation = impersonate(session, who)
    issued = start(
        session,
        who.alice,
        organization="acme",
        now=T0 + MINUTE,
        mfa_verified=True,
        ip="192.0.2.50",
        user_agent=None,
        impersonation=impersonation,
        lifetimes=LIFETIMES,
        keys=KEYS,
    )
    session.commit()
    assert issued.session_row.expires_at == T0 + 30 * MINUTE  # the impersonation's end, not 12 h
    principal = verify(issued.access_token, now=T0 + MINUTE, keys=KEYS)
    assert (principal.user_id, principal.impersonator_id, principal.impersonator_email, principal.role) == (
        who.alice.id,
        who.staff.id,
        "staff@spectra.example",
        Role.ADMIN,
    )
    later = rotate(session, issued.refresh_token, at=T0 + 25 * MINUTE)
    assert later.access_expires_at == T0 + 30 * MINUTE  # not T0 + 35 min
    assert later.principal.impersonator_id == who.staff.id

    # Ended early: refused at once, store unchanged.
    impersonation.ended_at = T0 + 26 * MINUTE
    session.commit()
    assert not is_active(session, issued.session_row.sid, now=T0 + 27 * MINUTE, lifetimes=LIFETIMES)
    before = store_state(session)
    with pytest.raises(SessionRefused) as refused:
        rotate(session, later.refresh_token, at=T0 + 27 * MINUTE)
    assert refused.value.reason == "impersonation over"
    assert store_state(session) == before


def test_impersonation_refusals(session: Session) -> None:
    who = people(session)
    impersonation = impersonate(session, who)
    base: dict[str, Any] = {
        "now": T0,
        "mfa_verified": True,
        "ip": None,
        "user_agent": None,
        "lifetimes": LIFETIMES,
        "keys": KEYS,
    }
    before = store_state(session)
    with pytest.raises(SessionRefused, match=SIGN_IN_AGAIN) as other_user:
        start(session, who.bob, organization="acme", impersonation=impersonation, **base)
    with pytest.raises(SessionRefused) as other_org:
        start(session, who.alice, organization="globex", impersonation=impersonation, **base)
    assert other_user.value.reason == other_org.value.reason == "impersonation of another user or organization"
    with pytest.raises(SessionRefused) as expired:
        start(session, who.alice, organization="acme", impersonation=impersonation, **{**base, "now": T0 + 30 * MINUTE})
    assert expired.value.reason == "impersonation over"
    assert store_state(session) == before

    issued = start(session, who.alice, organization="acme", impersonation=impersonation, **base)
    session.commit()
    who.staff.platform_admin = False  # the impersonator lost the power
    session.commit()
    before = store_state(session)
    with pytest.raises(SessionRefused) as demoted:
        rotate(session, issued.refresh_token, at=T0 + 11 * MINUTE)
    assert demoted.value.reason == "impersonator no longer a platform admin"
    assert store_state(session) == before


# --- logout, sign out everywhere, is_active, prune ---------------------------------------------------


def test_logout(session: Session) -> None:
    who = people(session)
    issued = sign_in(session, who.alice)
    at = T0 + 2 * MINUTE
    assert is_active(session, issued.session_row.sid, now=at, lifetimes=LIFETIMES)
    assert revoke(session, issued.session_row.sid, reason="logout", now=at)
    session.commit()
    assert not is_active(session, issued.session_row.sid, now=at, lifetimes=LIFETIMES)
    assert not revoke(session, issued.session_row.sid, reason="logout", now=at)  # once
    assert not revoke(session, "no-such-sid", reason="logout", now=at)
    (audit,) = session.scalars(sa.select(AuditLog))
    assert (audit.action, audit.actor, audit.organization, audit.details) == (
        "session.revoked",
        "alice@acme.example",
        "acme",
        {"session": issued.session_row.id, "reason": "logout"},
    )


def test_an_admin_revokes_a_session_and_is_named(session: Session) -> None:
    who = people(session)
    issued = sign_in(session, who.bob)
    admin = Actor(name="alice@acme.example", user_id=who.alice.id, organization="acme")
    assert revoke(session, issued.session_row.sid, reason="admin", now=T0 + MINUTE, actor=admin)
    session.commit()
    (audit,) = session.scalars(sa.select(AuditLog))
    assert (audit.actor, audit.details) == ("alice@acme.example", {"session": issued.session_row.id, "reason": "admin"})


def test_sign_out_everywhere(session: Session) -> None:
    who = people(session)
    here, laptop, phone = (sign_in(session, who.alice) for _ in range(3))
    bobs = sign_in(session, who.bob)
    staff_own = sign_in(session, who.staff, organization=None)
    support = start(
        session,
        who.alice,
        organization="acme",
        now=T0,
        mfa_verified=True,
        ip=None,
        user_agent=None,
        impersonation=impersonate(session, who),
        lifetimes=LIFETIMES,
        keys=KEYS,
    )
    session.commit()
    at = T0 + 5 * MINUTE

    assert revoke_all(session, who.alice.id, now=at, except_sid=here.session_row.sid) == 2
    session.commit()
    alive = {
        name: is_active(session, issued.session_row.sid, now=at, lifetimes=LIFETIMES)
        for name, issued in {
            "here": here,
            "laptop": laptop,
            "phone": phone,
            "bob": bobs,
            "staff": staff_own,
            "support": support,
        }.items()
    }
    assert alive == {"here": True, "laptop": False, "phone": False, "bob": True, "staff": True, "support": True}
    for gone in (laptop, phone):
        with pytest.raises(SessionRefused, match=SIGN_IN_AGAIN):
            rotate(session, gone.refresh_token, at=at)
    rotate(session, here.refresh_token, at=at)
    (audit,) = session.scalars(sa.select(AuditLog))
    assert (audit.action, audit.actor, audit.details) == (
        "session.revoked_all",
        "alice@acme.example",
        {"sessions": 2, "reason": "sign out everywhere"},
    )

    # The platform admin's own sign out everywhere ends their impersonation sessions too.
    assert revoke_all(session, who.staff.id, now=at) == 2
    session.commit()
    assert not is_active(session, support.session_row.sid, now=at, lifetimes=LIFETIMES)
    assert revoke_all(session, who.staff.id, now=at) == 0  # nothing left: no second record
    assert actions(session) == ["session.revoked_all", "session.revoked_all"]


@pytest.mark.parametrize(
    ("change", "at", "active"),
    [
        (None, T0 + 29 * MINUTE, True),
        (None, T0 + 30 * MINUTE, False),  # idle
        ("disable", T0 + MINUTE, False),
        ("leave", T0 + MINUTE, False),
        ("unknown sid", T0 + MINUTE, False),
    ],
)
def test_is_active(session: Session, change: str | None, at: datetime, active: bool) -> None:
    who = people(session)
    issued = sign_in(session, who.bob)
    sid = issued.session_row.sid
    if change == "disable":
        who.bob.status = UserStatus.DISABLED
    elif change == "leave":
        session.execute(sa.delete(Membership).where(Membership.user_id == who.bob.id))
    elif change == "unknown sid":
        sid = "not-a-session"
    session.commit()
    assert is_active(session, sid, now=at, lifetimes=LIFETIMES) is active


def test_prune_deletes_sessions_a_day_after_they_ended(session: Session) -> None:
    who = people(session)
    live = sign_in(session, who.alice, at=T0 + timedelta(hours=30))
    logged_out = sign_in(session, who.alice)
    rotate(session, logged_out.refresh_token, at=T0 + MINUTE)
    revoke(session, logged_out.session_row.sid, reason="logout", now=T0 + 2 * MINUTE)
    idle = sign_in(session, who.bob)
    recently_out = sign_in(session, who.bob, at=T0 + timedelta(hours=30))
    revoke(session, recently_out.session_row.sid, reason="logout", now=T0 + timedelta(hours=30))
    session.commit()

    assert prune(session, now=T0 + timedelta(hours=24, minutes=10), lifetimes=LIFETIMES) == 1  # out > 1 day
    session.commit()
    assert prune(session, now=T0 + timedelta(hours=31), lifetimes=LIFETIMES) == 1  # idle since T0 + 30 min
    session.commit()
    kept = set(session.scalars(sa.select(UserSession.sid)))
    assert kept == {live.session_row.sid, recently_out.session_row.sid}
    assert idle.session_row.sid not in kept
    assert {t.session_id for t in session.scalars(sa.select(RefreshToken))} == {
        live.session_row.id,
        recently_out.session_row.id,
    }


# --- settings ---------------------------------------------------------------------------------------


def test_lifetimes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SPECTRA_ACCESS_TOKEN_TTL_S", "SPECTRA_SESSION_IDLE_TIMEOUT_S", "SPECTRA_SESSION_ABSOLUTE_TIMEOUT_S"):
        monkeypatch.delenv(name, raising=False)
    assert Lifetimes.from_environment() == Lifetimes(
        access=timedelta(minutes=10), idle=timedelta(minutes=30), absolute=timedelta(hours=12)
    )
    monkeypatch.setenv("SPECTRA_SESSION_IDLE_TIMEOUT_S", "3600")
    monkeypatch.setenv("SPECTRA_SESSION_ABSOLUTE_TIMEOUT_S", "28800")
    assert Lifetimes.from_environment() == Lifetimes(
        access=timedelta(minutes=10), idle=timedelta(hours=1), absolute=timedelta(hours=8)
    )
    monkeypatch.setenv("SPECTRA_SESSION_ABSOLUTE_TIMEOUT_S", "1800")
    with pytest.raises(ValueError, match=r"idle \(1:00:00\) <= absolute \(0:30:00\)"):
        Lifetimes.from_environment()
    monkeypatch.setenv("SPECTRA_SESSION_IDLE_TIMEOUT_S", "60")
    with pytest.raises(ValueError, match="SPECTRA_SESSION_IDLE_TIMEOUT_S='60' must be between 300 and 86400"):
        Lifetimes.from_environment()


# --- two refreshes racing with one token ------------------------------------------------------------


def race(sessions: sessionmaker[Session], token: str, *, at: datetime) -> list[Issued | SessionRefused]:
    """Two threads, each with its own database connection, refresh with `token` at once."""
    outcomes: list[Issued | SessionRefused] = []
    barrier = threading.Barrier(2)

    def one_refresh() -> None:
        with sessions() as session:
            barrier.wait(timeout=30)
            try:
                outcomes.append(refresh(session, token, now=at, lifetimes=LIFETIMES, keys=KEYS))
                session.commit()
            except SessionRefused as refused:
                outcomes.append(refused)

    threads = [threading.Thread(target=one_refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_racing_refreshes_give_exactly_one_success(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        who = people(session)
        issued = sign_in(session, who.alice)
    rounds = 5
    for round_ in range(rounds):
        at = T0 + (round_ + 1) * MINUTE
        with sessions() as session:  # a fresh family each round (the previous one was revoked)
            user = session.get(User, who.alice.id)
            assert user is not None
            token = issued.refresh_token if round_ == 0 else sign_in(session, user, at=at).refresh_token
        outcomes = race(sessions, token, at=at)
        winners = [o for o in outcomes if isinstance(o, Issued)]
        losers = [o for o in outcomes if isinstance(o, SessionRefused)]
        assert (len(winners), [loser.reason for loser in losers]) == (1, ["reuse"]), outcomes
        with sessions() as session:
            # No grace window: the loser counts as reuse, so the winner's new token is dead as well.
            with pytest.raises(SessionRefused) as dead:
                refresh(session, winners[0].refresh_token, now=at, lifetimes=LIFETIMES, keys=KEYS)
            assert dead.value.reason == "revoked (reuse)"
            rotated = session.scalars(sa.select(RefreshToken).where(RefreshToken.token_hash == digest(token))).one()
            assert rotated.rotated_at == at
    with sessions() as session:
        assert actions(session) == ["session.reuse_detected"] * rounds


def test_a_refresh_waiting_on_the_winners_lock_sees_reuse(sessions: sessionmaker[Session], database_url: str) -> None:
    """The interleaving the compare-and-set exists for: the second refresh arrives while the first holds
    its claim uncommitted, waits for it, and then finds the token rotated."""
    with sessions() as session:
        issued = sign_in(session, people(session).alice)
    at = T0 + MINUTE
    outcome: list[Issued | SessionRefused] = []

    def second_refresh() -> None:
        with sessions() as session:
            try:
                outcome.append(refresh(session, issued.refresh_token, now=at, lifetimes=LIFETIMES, keys=KEYS))
                session.commit()
            except SessionRefused as refused:
                outcome.append(refused)

    with sessions() as first:
        winner = refresh(first, issued.refresh_token, now=at, lifetimes=LIFETIMES, keys=KEYS)
        second = threading.Thread(target=second_refresh)
        second.start()
        if database_url.startswith("mysql"):
            with sessions() as observer:
                wait_for(
                    lambda: observer.scalar(
                        sa.text("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'")
                    ),
                    "the second refresh to wait on the first's row lock",
                )
        else:
            # SQLite shows no waiters; the outcome is the same if the second comes after the commit.
            time.sleep(0.5)
        first.commit()
    second.join(timeout=60)
    assert [getattr(o, "reason", "issued") for o in outcome] == ["reuse"]
    with sessions() as session, pytest.raises(SessionRefused) as dead:
        refresh(session, winner.refresh_token, now=at, lifetimes=LIFETIMES, keys=KEYS)
    assert dead.value.reason == "revoked (reuse)"
