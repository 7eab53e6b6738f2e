"""Accounts: setup, invitation and reset links (signed, expiring, single use, dead once the account changed),
invitations and resets through the outbox, roles, disabling, MFA resets, the first platform admin, and the
admins Organizations declare. Every refusal is exact and leaves the store as it was."""

from __future__ import annotations

import asyncio
import logging
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.api import parse_object
from spectra.auth import accounts
from spectra.auth.accounts import (
    BAD_EMAIL,
    LINK_EXPIRED,
    LINK_INVALID,
    LINK_SUPERSEDED,
    LINK_USED,
    RESET_ANSWER,
    AccountError,
    add_user,
    check_link,
    claim_first_admin,
    disable,
    enable,
    first_admin_link,
    invite,
    invite_declared_admins,
    list_users,
    prune_used_links,
    remove_member,
    request_reset,
    reset_mfa,
    set_role,
    use_link,
)
from spectra.auth.identity import Actor
from spectra.auth.passwords import BREACHED, PERSONAL, TOO_SHORT, verify_password
from spectra.notify.channel import Delivery, Message
from spectra.notify.console import ConsoleChannel
from spectra.notify.outbox import message_of
from spectra.reconcile import apply_set
from spectra.runtime.redaction import REDACTED, SecretRedactor
from spectra.store import Base, Notification
from spectra.store.accounts import AuditLog, Membership, RecoveryCode, Role, UsedLink, User, UserSession, UserStatus
from spectra.tokens import Purpose, Tokens
from tests.factories.manifests import organization
from tests.support.providers import Providers, deliver_outbox_emails

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
KEY = "accounts-test-key-0123456789abcdef"
TOKENS = Tokens(KEY)
PUBLIC = "https://spectra.example.com"
GOOD = "plum-orbit-saddle-91"
OTHER_GOOD = "violet-canyon-ledger-27"
CLI = Actor.system("cli")
ALICE = "alice@acme.example"
BOB = "bob@acme.example"


# --- helpers ---------------------------------------------------------------------------------------


def exactly(message: str) -> str:
    """A `pytest.raises` pattern that matches `message` and nothing else."""
    return f"^{re.escape(message)}$"


def snapshot(session: Session) -> dict[str, list[str]]:
    """Every row of every table, as text: what "nothing changed" compares."""
    return {
        table.name: sorted(repr(tuple(row)) for row in session.execute(sa.select(table)))
        for table in Base.metadata.sorted_tables
    }


def declare(session: Session, *orgs: dict[str, Any]) -> None:
    apply_set(session, [parse_object(body) for body in orgs], "test")


def user(session: Session, email: str) -> User:
    found = session.scalar(sa.select(User).where(User.email == email))
    assert found is not None
    return found


def actions(session: Session) -> list[str]:
    return list(session.scalars(sa.select(AuditLog.action).order_by(AuditLog.id)))


def mails(session: Session) -> list[Message]:
    return [message_of(row) for row in session.scalars(sa.select(Notification).order_by(Notification.id))]


def token_in(message: Message, purpose: Purpose) -> str:
    found = re.search(rf"/{accounts.LINK_PATHS[purpose]}/([A-Za-z0-9._\-]+)", message.text)
    assert found is not None, message.text
    return found.group(1)


def active(session: Session, email: str, password: str = GOOD) -> User:
    """An account that has set its password (through its setup link)."""
    account, token = add_user(session, email, display_name="", platform_admin=False, actor=CLI, now=T0, tokens=TOKENS)
    use_link(session, Purpose.SETUP, token, password, now=T0, tokens=TOKENS)
    return account


def signed_in(session: Session, account: User, organization: str | None, sid: str) -> UserSession:
    row = UserSession(
        sid=sid, user_id=account.id, organization=organization, created_at=T0, expires_at=T0 + timedelta(hours=12)
    )
    session.add(row)
    session.flush()
    return row


# --- setup links -----------------------------------------------------------------------------------


def test_add_user_gives_a_setup_link_that_sets_the_password_once(session: Session) -> None:
    declare(session, organization("acme", ["shop"]))
    account, token = add_user(
        session,
        " Alice@ACME.example ",
        display_name="Alice",
        platform_admin=True,
        actor=CLI,
        now=T0,
        organization="acme",
        role=Role.ADMIN,
        tokens=TOKENS,
    )
    assert (account.email, account.status, account.platform_admin, account.password_hash) == (
        ALICE,
        UserStatus.INVITED,
        True,
        None,
    )
    assert [(m.organization, m.role) for m in account.memberships] == [("acme", Role.ADMIN)]
    target = check_link(session, Purpose.SETUP, token, now=T0 + timedelta(days=6), tokens=TOKENS)
    assert target.user is account

    done = use_link(session, Purpose.SETUP, token, GOOD, now=T0 + timedelta(hours=1), tokens=TOKENS, ip="192.0.2.7")

    assert done is account
    assert account.status == UserStatus.ACTIVE
    assert account.password_hash is not None
    assert verify_password(account.password_hash, GOOD)
    assert account.password_changed_at == T0 + timedelta(hours=1)
    assert session.scalar(sa.select(sa.func.count()).select_from(UsedLink)) == 1
    assert actions(session) == ["user.created", "user.activated"]
    activated = session.scalars(sa.select(AuditLog).order_by(AuditLog.id.desc())).first()
    assert activated is not None
    assert (activated.actor, activated.ip, activated.details) == (
        ALICE,
        "192.0.2.7",
        {"via": "account-setup", "was": "invited"},
    )
    with pytest.raises(AccountError, match=exactly(LINK_USED)):
        use_link(session, Purpose.SETUP, token, OTHER_GOOD, now=T0 + timedelta(hours=2), tokens=TOKENS)


def test_adding_an_invited_address_again_issues_a_new_link_and_an_account_set_up_is_refused(session: Session) -> None:
    first, old = add_user(session, ALICE, display_name="", platform_admin=False, actor=CLI, now=T0, tokens=TOKENS)
    again, new = add_user(session, ALICE, display_name="Alice", platform_admin=True, actor=CLI, now=T0, tokens=TOKENS)
    assert again is first
    assert old != new
    assert (again.display_name, again.platform_admin) == ("Alice", True)
    use_link(session, Purpose.SETUP, new, GOOD, now=T0, tokens=TOKENS)
    with pytest.raises(AccountError, match=exactly(LINK_SUPERSEDED)):  # the older link died with the password set
        check_link(session, Purpose.SETUP, old, now=T0, tokens=TOKENS)
    before = snapshot(session)
    with pytest.raises(
        AccountError, match=exactly(f"{ALICE} already has an account (active); a forgotten password is reset by mail")
    ):
        add_user(session, ALICE, display_name="", platform_admin=False, actor=CLI, now=T0, tokens=TOKENS)
    assert snapshot(session) == before


def _tampered(token: str) -> str:
    return token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")


@dataclass(frozen=True)
class BadLink:
    name: str
    # Prepares the store; returns (purpose, token, now) of the attempt that must be refused.
    prepare: Callable[[Session], tuple[Purpose, str, datetime]]
    refusal: str


def _setup(session: Session) -> str:
    return add_user(session, ALICE, display_name="", platform_admin=False, actor=CLI, now=T0, tokens=TOKENS)[1]


def _used(session: Session) -> tuple[Purpose, str, datetime]:
    token = _setup(session)
    use_link(session, Purpose.SETUP, token, GOOD, now=T0, tokens=TOKENS)
    return Purpose.SETUP, token, T0 + timedelta(minutes=1)


def _superseded(session: Session) -> tuple[Purpose, str, datetime]:
    _, first = add_user(session, BOB, display_name="", platform_admin=False, actor=CLI, now=T0, tokens=TOKENS)
    _, second = add_user(session, BOB, display_name="", platform_admin=False, actor=CLI, now=T0, tokens=TOKENS)
    use_link(session, Purpose.SETUP, second, GOOD, now=T0, tokens=TOKENS)
    return Purpose.SETUP, first, T0


def _reset_after_password_changed(session: Session) -> tuple[Purpose, str, datetime]:
    active(session, ALICE)
    first = accounts.make_link_token(Purpose.RESET, user(session, ALICE), now=T0, tokens=TOKENS)
    second = accounts.make_link_token(Purpose.RESET, user(session, ALICE), now=T0, tokens=TOKENS)
    use_link(session, Purpose.RESET, second, OTHER_GOOD, now=T0, tokens=TOKENS)
    return Purpose.RESET, first, T0


def _disabled(session: Session) -> tuple[Purpose, str, datetime]:
    token = _setup(session)
    disable(session, ALICE, actor=CLI, now=T0)
    return Purpose.SETUP, token, T0


def _first_admin(session: Session) -> tuple[Purpose, str, datetime]:
    token = first_admin_link(session, now=T0, tokens=TOKENS)
    assert token is not None
    return Purpose.SETUP, token, T0


BAD_LINKS = [
    BadLink("tampered", lambda s: (Purpose.SETUP, _tampered(_setup(s)), T0), LINK_INVALID),
    BadLink("empty", lambda s: (Purpose.SETUP, "", T0), LINK_INVALID),
    BadLink("garbage", lambda s: (Purpose.INVITE, "not.a.token", T0), LINK_INVALID),
    BadLink("wrong purpose: setup link used as reset", lambda s: (Purpose.RESET, _setup(s), T0), LINK_INVALID),
    BadLink(
        "wrong purpose: reset link used as invitation",
        lambda s: (
            Purpose.INVITE,
            accounts.make_link_token(Purpose.RESET, active(s, ALICE), now=T0, tokens=TOKENS),
            T0,
        ),
        LINK_INVALID,
    ),
    BadLink(
        "another key",
        lambda s: (
            Purpose.SETUP,
            accounts.make_link_token(
                Purpose.SETUP,
                add_user(s, ALICE, display_name="", platform_admin=False, actor=CLI, now=T0, tokens=TOKENS)[0],
                now=T0,
                tokens=Tokens("another-key-0123456789abcdef"),
            ),
            T0,
        ),
        LINK_INVALID,
    ),
    BadLink("setup link after 7 days", lambda s: (Purpose.SETUP, _setup(s), T0 + timedelta(days=7)), LINK_EXPIRED),
    BadLink(
        "reset link after an hour",
        lambda s: (
            Purpose.RESET,
            accounts.make_link_token(Purpose.RESET, active(s, ALICE), now=T0, tokens=TOKENS),
            T0 + timedelta(hours=1, seconds=1),
        ),
        LINK_EXPIRED,
    ),
    BadLink("reused", _used, LINK_USED),
    BadLink("superseded by a newer link that was used", _superseded, LINK_SUPERSEDED),
    BadLink("reset link after the password changed", _reset_after_password_changed, LINK_SUPERSEDED),
    BadLink("account disabled since", _disabled, LINK_SUPERSEDED),
    BadLink("the first admin's link is no account's link", _first_admin, LINK_INVALID),
]


@pytest.mark.parametrize("case", BAD_LINKS, ids=[case.name for case in BAD_LINKS])
def test_bad_links_are_refused_exactly_and_change_nothing(session: Session, case: BadLink) -> None:
    purpose, token, now = case.prepare(session)
    before = snapshot(session)
    with pytest.raises(AccountError) as refused:
        use_link(session, purpose, token, GOOD, now=now, tokens=TOKENS)
    assert str(refused.value) == case.refusal
    assert snapshot(session) == before


@pytest.mark.parametrize(
    ("password", "refusal"),
    [("short pw", TOO_SHORT), ("password123456", BREACHED), (ALICE, PERSONAL), ("Alice Liddell", PERSONAL)],
    ids=["too short", "breached", "the email", "the name"],
)
def test_a_weak_password_is_refused_and_the_link_still_works(session: Session, password: str, refusal: str) -> None:
    _, token = add_user(
        session, ALICE, display_name="Alice Liddell", platform_admin=False, actor=CLI, now=T0, tokens=TOKENS
    )
    before = snapshot(session)
    with pytest.raises(AccountError) as refused:
        use_link(session, Purpose.SETUP, token, password, now=T0, tokens=TOKENS)
    assert str(refused.value) == refusal
    assert snapshot(session) == before
    assert use_link(session, Purpose.SETUP, token, GOOD, now=T0, tokens=TOKENS).status == UserStatus.ACTIVE


def test_used_links_are_forgotten_once_they_would_have_expired(session: Session) -> None:
    token = _setup(session)
    use_link(session, Purpose.SETUP, token, GOOD, now=T0, tokens=TOKENS)
    assert prune_used_links(session, now=T0 + timedelta(days=6)) == 0
    assert prune_used_links(session, now=T0 + timedelta(days=7)) == 1
    with pytest.raises(AccountError, match=exactly(LINK_EXPIRED)):  # and the link itself is dead by then
        check_link(session, Purpose.SETUP, token, now=T0 + timedelta(days=7), tokens=TOKENS)


# --- the first platform admin ----------------------------------------------------------------------


def test_the_first_admin_link_makes_one_platform_admin(session: Session) -> None:
    declare(session, organization("acme", ["shop"], admins=[BOB]))
    invite_declared_admins(session, now=T0, public_url=PUBLIC, tokens=TOKENS)  # an org admin is no platform admin
    one = first_admin_link(session, now=T0, tokens=TOKENS)
    two = first_admin_link(session, now=T0 + timedelta(minutes=5), tokens=TOKENS)  # a restart prints another
    assert one is not None
    assert two is not None
    assert one != two
    assert check_link(session, Purpose.SETUP, one, now=T0, tokens=TOKENS).user is None

    before = snapshot(session)
    with pytest.raises(AccountError, match=exactly(BAD_EMAIL)):
        claim_first_admin(session, one, email="root", display_name="", password=GOOD, now=T0, tokens=TOKENS)
    with pytest.raises(AccountError, match=exactly(TOO_SHORT)):
        claim_first_admin(session, one, email=ALICE, display_name="", password="short", now=T0, tokens=TOKENS)
    assert snapshot(session) == before

    admin = claim_first_admin(session, two, email=ALICE, display_name="Alice", password=GOOD, now=T0, tokens=TOKENS)
    assert (admin.email, admin.status, admin.platform_admin) == (ALICE, UserStatus.ACTIVE, True)
    assert admin.memberships == []  # Organizations are declared: no implicit one to administer
    assert first_admin_link(session, now=T0, tokens=TOKENS) is None
    with pytest.raises(AccountError, match=exactly(LINK_USED)):  # every first-admin link is one link
        claim_first_admin(
            session, one, email="carol@acme.example", display_name="", password=GOOD, now=T0, tokens=TOKENS
        )
    assert "user.created" in actions(session)


def test_standalone_the_first_admin_administers_the_implicit_organization(session: Session) -> None:
    token = first_admin_link(session, now=T0, tokens=TOKENS)
    assert token is not None
    admin = claim_first_admin(session, token, email=ALICE, display_name="", password=GOOD, now=T0, tokens=TOKENS)
    assert [(m.organization, m.role) for m in admin.memberships] == [("", Role.ADMIN)]


def test_the_first_admin_link_can_set_up_an_invited_account_but_not_take_over_one_in_use(session: Session) -> None:
    active(session, BOB)
    add_user(session, ALICE, display_name="", platform_admin=False, actor=CLI, now=T0, tokens=TOKENS)
    token = first_admin_link(session, now=T0, tokens=TOKENS)
    assert token is not None
    before = snapshot(session)
    with pytest.raises(AccountError, match=exactly(f"{BOB} already has an account: choose another address")):
        claim_first_admin(session, token, email=BOB, display_name="", password=OTHER_GOOD, now=T0, tokens=TOKENS)
    assert snapshot(session) == before
    admin = claim_first_admin(session, token, email=ALICE, display_name="", password=GOOD, now=T0, tokens=TOKENS)
    assert admin is user(session, ALICE)
    assert admin.platform_admin
    assert admin.status == UserStatus.ACTIVE


def test_a_first_admin_link_dies_once_a_platform_admin_exists_another_way(session: Session) -> None:
    token = first_admin_link(session, now=T0, tokens=TOKENS)
    assert token is not None
    _, setup = add_user(session, ALICE, display_name="", platform_admin=True, actor=CLI, now=T0, tokens=TOKENS)
    assert check_link(session, Purpose.SETUP, token, now=T0, tokens=TOKENS).user is None  # invited: not yet
    use_link(session, Purpose.SETUP, setup, GOOD, now=T0, tokens=TOKENS)
    with pytest.raises(AccountError, match=exactly(LINK_SUPERSEDED)):
        check_link(session, Purpose.SETUP, token, now=T0, tokens=TOKENS)


# --- invitations -----------------------------------------------------------------------------------


def test_an_invitation_is_mailed_through_the_outbox_and_its_link_sets_the_account_up(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPECTRA_SECRET_KEY", KEY)
    admin = Actor(name="boss@acme.example", user_id=99, organization="acme")
    with sessions.begin() as session:
        declare(session, organization("acme", ["shop"]))
        invitation = invite(session, BOB, "acme", "user", actor=admin, now=T0, display_name="Bob", public_url=PUBLIC)
        assert invitation.mailed
        assert invitation.user.status == UserStatus.INVITED
    providers = Providers()
    try:
        assert deliver_outbox_emails(sessions, providers) == 1
        delivered = providers.emails(BOB)
    finally:
        providers.close()
    assert len(delivered) == 1
    mail = delivered[0]
    assert mail["subject"] == "You are invited to Acme on SpectraMonitor"
    text = "\n".join(str(part["value"]) for part in mail["content"])
    assert "boss@acme.example invited you to join Acme on SpectraMonitor as a member." in text
    found = re.search(rf"{re.escape(PUBLIC)}/invite/([A-Za-z0-9._\-]+)", text)
    assert found is not None
    with sessions.begin() as session:
        member = use_link(session, Purpose.INVITE, found.group(1), GOOD, now=T0 + timedelta(days=1))
        assert (member.email, member.display_name, member.status) == (BOB, "Bob", UserStatus.ACTIVE)
        assert actions(session) == ["member.invited", "user.activated"]


def test_invitation_cases(session: Session) -> None:
    declare(session, organization("acme", ["shop"]), organization("globex", ["factory"]))
    admin = Actor(name="boss@acme.example", user_id=99, organization="acme")

    first = invite(session, BOB, "acme", "user", actor=admin, now=T0, public_url=PUBLIC, tokens=TOKENS)
    again = invite(session, BOB, "acme", "user", actor=admin, now=T0, public_url=PUBLIC, tokens=TOKENS)  # resend
    assert again.membership is first.membership
    links = [token_in(message, Purpose.INVITE) for message in mails(session)]
    assert len(links) == 2
    assert links[0] != links[1]

    active(session, ALICE)
    added = invite(session, ALICE, "globex", "admin", actor=CLI, now=T0, public_url=PUBLIC, tokens=TOKENS)
    assert added.mailed
    assert added.membership.role == Role.ADMIN
    notice = mails(session)[-1]
    assert (notice.recipient, notice.subject) == (ALICE, "You were added to Globex on SpectraMonitor")
    assert f"{PUBLIC}/login" in notice.text
    assert "/invite/" not in notice.text

    disable(session, BOB, actor=CLI, now=T0)
    quiet = invite(session, BOB, "globex", "user", actor=CLI, now=T0, public_url=PUBLIC, tokens=TOKENS)
    assert not quiet.mailed
    assert len(mails(session)) == 3
    assert actions(session).count("member.invited") == 4


@pytest.mark.parametrize(
    ("email", "org", "role", "refusal"),
    [
        ("not an address", "acme", "user", BAD_EMAIL),
        (BOB, "initech", "user", "there is no Organization named 'initech'"),
        (BOB, "", "user", "Organizations are declared, so there is no implicit organization: name one"),
        (BOB, "acme", "owner", "'owner' is not a role: use user or admin"),
        (ALICE, "acme", "user", f"{ALICE} is already a member of acme"),
        (
            "carol@acme.example",
            "acme",
            "admin",
            "carol@acme.example is already invited to acme as user: change the role instead",
        ),
    ],
    ids=[
        "bad address",
        "unknown organization",
        "no implicit organization",
        "unknown role",
        "member already",
        "invited with another role",
    ],
)
def test_refused_invitations_change_nothing(session: Session, email: str, org: str, role: str, refusal: str) -> None:
    declare(session, organization("acme", ["shop"]))
    active(session, ALICE)
    invite(session, ALICE, "acme", "user", actor=CLI, now=T0, public_url=PUBLIC, tokens=TOKENS)
    invite(session, "carol@acme.example", "acme", "user", actor=CLI, now=T0, public_url=PUBLIC, tokens=TOKENS)
    before = snapshot(session)
    with pytest.raises(AccountError) as refused:
        invite(session, email, org, role, actor=CLI, now=T0, public_url=PUBLIC, tokens=TOKENS)
    assert str(refused.value) == refusal
    assert snapshot(session) == before


def test_declared_admins_are_invited_once(session: Session) -> None:
    declare(
        session,
        organization("acme", ["shop"], admins=[ALICE, "Bob@Acme.example"]),
        organization("globex", ["factory"], admins=[ALICE]),
    )
    first = invite_declared_admins(session, now=T0, public_url=PUBLIC, tokens=TOKENS)
    assert first.invited == [("acme", ALICE), ("acme", BOB), ("globex", ALICE)]
    assert first.refused == []
    assert {(m.organization, m.role) for m in user(session, ALICE).memberships} == {
        ("acme", "admin"),
        ("globex", "admin"),
    }
    assert {m.recipient for m in mails(session)} == {ALICE, BOB}
    set_role(session, BOB, "acme", "user", actor=CLI, now=T0)  # the app changed it since: Git does not undo that

    before = snapshot(session)
    again = invite_declared_admins(session, now=T0 + timedelta(minutes=1), public_url=PUBLIC, tokens=TOKENS)
    assert again.invited == []
    assert again.refused == []
    assert snapshot(session) == before
    audit = session.scalars(sa.select(AuditLog).where(AuditLog.action == "member.invited")).first()
    assert audit is not None
    assert audit.actor == "operator"


def test_standalone_has_one_implicit_organization(session: Session) -> None:
    assert accounts.organizations(session) == {"": "SpectraMonitor"}
    invitation = invite(session, BOB, "", "user", actor=CLI, now=T0, public_url=PUBLIC, tokens=TOKENS)
    assert invitation.membership.organization == ""
    assert mails(session)[0].subject == "You are invited to SpectraMonitor on SpectraMonitor"
    declare(session, organization("acme", ["shop"]))
    assert accounts.organizations(session) == {"acme": "Acme"}


# --- password resets -------------------------------------------------------------------------------


def test_a_reset_mails_a_link_that_sets_a_new_password_and_ends_every_session(session: Session) -> None:
    declare(session, organization("acme", ["shop"]))
    account = active(session, ALICE)
    signed_in(session, account, "acme", "s1")
    signed_in(session, account, None, "s2")

    assert (
        request_reset(session, " Alice@acme.EXAMPLE", now=T0, public_url=PUBLIC, tokens=TOKENS, ip="192.0.2.9")
        == RESET_ANSWER
    )
    assert (
        request_reset(session, ALICE, now=T0 + timedelta(minutes=3), public_url=PUBLIC, tokens=TOKENS) == RESET_ANSWER
    )
    sent = mails(session)
    assert len(sent) == 1  # one mail per ten minutes, however often someone asks
    assert (sent[0].recipient, sent[0].subject) == (ALICE, "Reset your SpectraMonitor password")
    assert sent[0].text.count(f"{PUBLIC}/reset/") == 1

    use_link(
        session,
        Purpose.RESET,
        token_in(sent[0], Purpose.RESET),
        OTHER_GOOD,
        now=T0 + timedelta(minutes=30),
        tokens=TOKENS,
    )
    assert account.password_hash is not None
    assert verify_password(account.password_hash, OTHER_GOOD)
    assert {(row.sid, row.revoked_reason) for row in session.scalars(sa.select(UserSession))} == {
        ("s1", "password-reset"),
        ("s2", "password-reset"),
    }
    assert actions(session)[-4:] == [
        "user.reset_requested",
        "user.reset_requested",
        "session.revoked_all",
        "user.password_reset",
    ]
    assert (
        request_reset(session, ALICE, now=T0 + timedelta(minutes=11), public_url=PUBLIC, tokens=TOKENS) == RESET_ANSWER
    )
    assert len(mails(session)) == 2


@pytest.mark.parametrize("who", ["unknown", "disabled"])
def test_a_reset_for_an_address_that_cannot_sign_in_answers_the_same_and_mails_nothing(
    session: Session, who: str
) -> None:
    active(session, ALICE)
    active(session, BOB)
    if who == "disabled":
        disable(session, ALICE, actor=CLI, now=T0)
    email = ALICE if who == "disabled" else "nobody@acme.example"
    assert request_reset(session, email, now=T0, public_url=PUBLIC, tokens=TOKENS) == RESET_ANSWER
    assert mails(session) == []
    last = session.scalars(sa.select(AuditLog).order_by(AuditLog.id.desc())).first()
    assert last is not None
    assert (last.action, last.target_name, last.actor) == (
        "user.reset_requested",
        email,
        "anonymous",
    )


def test_a_reset_for_a_malformed_address_is_refused_and_changes_nothing(session: Session) -> None:
    before = snapshot(session)
    with pytest.raises(AccountError, match=exactly(BAD_EMAIL)):
        request_reset(session, "alice", now=T0, public_url=PUBLIC, tokens=TOKENS)
    assert snapshot(session) == before


def test_known_and_unknown_addresses_take_comparable_work(sessions: sessionmaker[Session]) -> None:
    """Interleaved, so the machine's load falls on both alike; medians of many requests each."""
    with sessions.begin() as session:
        active(session, ALICE)
    timings: dict[str, list[float]] = {ALICE: [], "nobody@acme.example": []}
    for step in range(15):
        for email, spent in timings.items():
            now = T0 + step * accounts.RESET_MAIL_WINDOW  # a new mail every time for the known address
            started = time.perf_counter()
            with sessions.begin() as session:
                assert request_reset(session, email, now=now, public_url=PUBLIC, tokens=TOKENS) == RESET_ANSWER
            spent.append(time.perf_counter() - started)
    known, unknown = (statistics.median(spent) for spent in timings.values())
    print(f"request_reset median: known {known * 1000:.2f} ms, unknown {unknown * 1000:.2f} ms")
    assert 0.5 < unknown / known < 2


def test_mailed_links_never_reach_the_log(session: Session, caplog: pytest.LogCaptureFixture) -> None:
    """Without a mail provider the console channel logs each message: the link tokens in it are redacted."""
    active(session, ALICE)
    invite(session, BOB, "", "user", actor=CLI, now=T0, public_url=PUBLIC, tokens=TOKENS)
    request_reset(session, ALICE, now=T0, public_url=PUBLIC, tokens=TOKENS)
    caplog.set_level(logging.WARNING)
    caplog.handler.addFilter(SecretRedactor())
    sent: list[Delivery] = [asyncio.run(ConsoleChannel().send(message)) for message in mails(session)]
    assert len(sent) == 2
    tokens = [token_in(mails(session)[0], Purpose.INVITE), token_in(mails(session)[1], Purpose.RESET)]
    assert all(token not in caplog.text for token in tokens)
    assert caplog.text.count(f"/invite/{REDACTED}") == 1
    assert caplog.text.count(f"/reset/{REDACTED}") == 1


# --- roles, removal, disabling, MFA, lists ----------------------------------------------------------


@pytest.fixture
def team(session: Session) -> Session:
    """acme: alice (admin), bob (user); globex: carol (admin), bob (user); dave: platform admin."""
    declare(session, organization("acme", ["shop"]), organization("globex", ["factory"]))
    for email, org, role in (
        (ALICE, "acme", Role.ADMIN),
        (BOB, "acme", Role.USER),
        ("carol@globex.example", "globex", Role.ADMIN),
        (BOB, "globex", Role.USER),
    ):
        account = session.scalar(sa.select(User).where(User.email == email)) or active(session, email)
        session.add(Membership(user_id=account.id, organization=org, role=role, created_at=T0))
    _dave, token = add_user(
        session, "dave@spectra.example", display_name="", platform_admin=True, actor=CLI, now=T0, tokens=TOKENS
    )
    use_link(session, Purpose.SETUP, token, GOOD, now=T0, tokens=TOKENS)
    session.flush()
    return session


def test_roles_change_audited_and_an_organization_keeps_an_admin(team: Session) -> None:
    session = team
    assert set_role(session, BOB, "acme", "admin", actor=CLI, now=T0).role == Role.ADMIN
    assert set_role(session, BOB, "acme", "admin", actor=CLI, now=T0).role == Role.ADMIN  # no change, no record
    changed = session.scalars(sa.select(AuditLog).where(AuditLog.action == "member.role_changed")).all()
    assert [(row.organization, row.target_name, row.details) for row in changed] == [
        ("acme", BOB, {"from": "user", "to": "admin"})
    ]
    set_role(session, ALICE, "acme", "user", actor=CLI, now=T0)  # bob is admin now: alice may step down
    before = snapshot(session)
    with pytest.raises(
        AccountError,
        match=exactly(f"{BOB} is the last admin of acme and cannot be demoted: make another member admin first"),
    ):
        set_role(session, BOB, "acme", "user", actor=CLI, now=T0)
    with pytest.raises(
        AccountError,
        match=exactly(f"{BOB} is the last admin of acme and cannot be removed: make another member admin first"),
    ):
        remove_member(session, BOB, "acme", actor=CLI, now=T0)
    with pytest.raises(AccountError, match=exactly("carol@globex.example is not a member of acme")):
        set_role(session, "carol@globex.example", "acme", "admin", actor=CLI, now=T0)
    with pytest.raises(AccountError, match=exactly("nobody@acme.example is not a member of acme")):  # same words
        set_role(session, "nobody@acme.example", "acme", "admin", actor=CLI, now=T0)
    assert snapshot(session) == before


def test_removing_a_member_ends_their_sessions_in_that_organization_only(team: Session) -> None:
    session = team
    bob = user(session, BOB)
    signed_in(session, bob, "acme", "in-acme")
    signed_in(session, bob, "globex", "in-globex")
    remove_member(session, BOB, "acme", actor=CLI, now=T0)
    assert [m.organization for m in session.scalars(sa.select(Membership).where(Membership.user_id == bob.id))] == [
        "globex"
    ]
    assert {(row.sid, row.revoked_reason) for row in session.scalars(sa.select(UserSession))} == {
        ("in-acme", "removed"),
        ("in-globex", None),
    }


def test_disable_ends_every_session_and_enable_restores_the_account(team: Session) -> None:
    session = team
    bob = user(session, BOB)
    signed_in(session, bob, "acme", "one")
    assert disable(session, BOB, actor=CLI, now=T0) is True
    assert disable(session, BOB, actor=CLI, now=T0) is False
    assert bob.status == UserStatus.DISABLED
    assert session.scalar(sa.select(UserSession.revoked_reason)) == "disabled"
    assert enable(session, BOB, actor=CLI, now=T0) is True
    assert enable(session, BOB, actor=CLI, now=T0) is False
    assert bob.status == UserStatus.ACTIVE
    invited, _ = add_user(
        session, "erin@acme.example", display_name="", platform_admin=False, actor=CLI, now=T0, tokens=TOKENS
    )
    disable(session, invited.email, actor=CLI, now=T0)
    enable(session, invited.email, actor=CLI, now=T0)
    assert invited.status == UserStatus.INVITED  # it never set a password
    assert actions(session).count("user.disabled") == 2
    assert actions(session).count("user.enabled") == 2


@pytest.mark.parametrize(
    ("email", "organization", "refusal"),
    [
        ("dave@spectra.example", None, "dave@spectra.example is the last active platform admin and cannot be disabled"),
        ("nobody@acme.example", None, "there is no account for nobody@acme.example"),
        ("carol@globex.example", "acme", "carol@globex.example is not a member of acme"),
        (BOB, "acme", f"{BOB} is also a member of other organizations: remove them from yours instead"),
    ],
    ids=["last platform admin", "unknown", "another tenant's member", "member of another tenant too"],
)
def test_refused_account_changes_change_nothing(
    team: Session, email: str, organization: str | None, refusal: str
) -> None:
    session = team
    before = snapshot(session)
    for change in (disable, enable, reset_mfa):
        if change is not disable and "last active" in refusal:
            continue
        with pytest.raises(AccountError) as refused:
            change(session, email, actor=CLI, now=T0, organization=organization)
        assert str(refused.value) == refusal
    assert snapshot(session) == before


def test_an_organization_admin_may_disable_its_own_members(team: Session) -> None:
    session = team
    acme_admin = Actor(name=ALICE, user_id=user(session, ALICE).id, organization="acme")
    invite(session, "erin@acme.example", "acme", "user", actor=acme_admin, now=T0, public_url=PUBLIC, tokens=TOKENS)
    assert disable(session, "erin@acme.example", actor=acme_admin, now=T0, organization="acme") is True
    record = session.scalars(sa.select(AuditLog).order_by(AuditLog.id.desc())).first()
    assert record is not None
    assert (record.action, record.actor, record.organization) == ("user.disabled", ALICE, "acme")


def test_reset_mfa_removes_the_secret_and_the_recovery_codes(team: Session) -> None:
    session = team
    bob = user(session, BOB)
    bob.mfa_secret, bob.mfa_enabled, bob.mfa_last_step = "sealed", True, 123
    session.add_all(RecoveryCode(user_id=bob.id, code_hash=f"{n:064x}") for n in range(10))
    session.flush()
    assert reset_mfa(session, BOB, actor=CLI, now=T0) is True
    reset = user(session, BOB)
    assert (reset.mfa_secret, reset.mfa_enabled, reset.mfa_last_step) == (None, False, None)
    assert session.scalar(sa.select(sa.func.count()).select_from(RecoveryCode)) == 0
    assert reset_mfa(session, BOB, actor=CLI, now=T0) is False
    assert actions(session).count("mfa.reset") == 1


def test_lists_show_every_account_or_one_organization_s_members_only(team: Session) -> None:
    session = team
    everyone = list_users(session, actor=CLI, now=T0)
    assert [(u.email, u.status, u.platform_admin, u.memberships) for u in everyone] == [
        (ALICE, UserStatus.ACTIVE, False, (("acme", Role.ADMIN),)),
        (BOB, UserStatus.ACTIVE, False, (("acme", Role.USER), ("globex", Role.USER))),
        ("carol@globex.example", UserStatus.ACTIVE, False, (("globex", Role.ADMIN),)),
        ("dave@spectra.example", UserStatus.ACTIVE, True, ()),
    ]
    acme = list_users(session, actor=CLI, now=T0, organization="acme")
    assert [(u.email, u.memberships) for u in acme] == [(ALICE, (("acme", Role.ADMIN),)), (BOB, (("acme", Role.USER),))]
    listed = session.scalars(sa.select(AuditLog).where(AuditLog.action == "users.listed")).all()
    assert [(row.organization, row.details) for row in listed] == [(None, {"count": 4}), ("acme", {"count": 2})]
