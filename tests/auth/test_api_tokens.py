"""API tokens: made once and shown once, kept as digests, refused whenever the token, its owner or the
membership it acts for is no longer good; every refusal leaves the store as it was."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.auth import api_tokens
from spectra.auth.api_tokens import InvalidApiToken, TokenProblem, TokenState
from spectra.auth.identity import Principal
from spectra.auth.policy import Action, Forbidden, NotFound, require
from spectra.store import ApiToken, AuditLog, Membership, Role, User, UserStatus
from tests.factories.accounts import member

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
SNAPSHOT_TABLES = (User, Membership, ApiToken, AuditLog)


def snapshot(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables these functions touch, as read from the database (pending changes flushed
    first: expiring would discard them and hide a change)."""
    session.flush()
    session.expire_all()
    found: dict[str, list[tuple[Any, ...]]] = {}
    for model in SNAPSHOT_TABLES:
        table = model.__table__
        primary_key = list(table.primary_key.columns)
        found[table.name] = [tuple(row) for row in session.execute(select(table).order_by(*primary_key))]
    return found


def impersonated(principal: Principal, by: Principal) -> Principal:
    return Principal(
        user_id=principal.user_id,
        email=principal.email,
        organization=principal.organization,
        role=principal.role,
        impersonator_id=by.user_id,
        impersonator_email=by.email,
    )


class People:
    def __init__(self, session: Session) -> None:
        self.uma = member(session, "uma@acme.example", "acme", Role.USER)
        self.adam = member(session, "adam@acme.example", "acme", Role.ADMIN)
        self.gina = member(session, "gina@globex.example", "globex", Role.ADMIN)
        self.staff = member(session, "staff@spectra.example", None, None, platform_admin=True)
        session.commit()


@pytest.fixture
def people(session: Session) -> People:
    return People(session)


def test_create_shows_the_token_once_and_keeps_its_digest(session: Session, people: People) -> None:
    expires = T0 + timedelta(days=90)
    text, row = api_tokens.create(
        session, people.uma, name="  grafana  ", scopes=["statuspages:write", "read"], expires_at=expires, now=T0
    )
    session.commit()

    assert text.startswith("spt_")
    assert len(text) == 4 + 43
    stored = session.scalars(select(ApiToken)).one()
    assert stored.token_hash == hashlib.sha256(text.encode()).hexdigest()
    assert text not in repr([stored.token_hash, stored.prefix, stored.name])
    assert (stored.name, stored.prefix, stored.scopes, stored.organization) == (
        "grafana",
        text[4:12],
        ["read", "statuspages:write"],  # in the order of identity.SCOPES
        "acme",
    )
    assert (stored.created_at, stored.expires_at, stored.last_used_at, stored.revoked_at) == (T0, expires, None, None)
    assert row is stored
    (audit,) = session.scalars(select(AuditLog))
    assert (audit.action, audit.actor, audit.organization, audit.target_kind, audit.target_name) == (
        "token.created",
        "uma@acme.example",
        "acme",
        "ApiToken",
        "grafana",
    )
    assert audit.details == {
        "prefix": text[4:12],
        "scopes": ["read", "statuspages:write"],
        "expires_at": expires.isoformat(),
    }
    assert text[12:] not in repr(audit.details)
    # Two tokens never share text.
    second, _ = api_tokens.create(session, people.uma, name="ci", scopes=["read"], expires_at=None, now=T0)
    assert second != text


def test_authenticate_acts_for_the_owner_in_its_organization(session: Session, people: People) -> None:
    text, row = api_tokens.create(session, people.adam, name="ops", scopes=["admin"], expires_at=None, now=T0)
    session.commit()

    principal = api_tokens.authenticate(session, text, now=T0 + timedelta(seconds=5))
    session.commit()
    assert principal == Principal(
        user_id=people.adam.user_id,
        email="adam@acme.example",
        organization="acme",
        role=Role.ADMIN,
        scopes=frozenset({"admin"}),
        via="api-token",
    )
    assert row.last_used_at == T0 + timedelta(seconds=5)
    # Within a minute of the last recorded use nothing is written; after it, the new time is.
    api_tokens.authenticate(session, text, now=T0 + timedelta(seconds=50))
    assert row.last_used_at == T0 + timedelta(seconds=5)
    api_tokens.authenticate(session, text, now=T0 + timedelta(seconds=65))
    session.commit()
    assert row.last_used_at == T0 + timedelta(seconds=65)


def test_a_demoted_owner_takes_the_admin_powers_from_the_token(session: Session, people: People) -> None:
    text, _ = api_tokens.create(session, people.adam, name="ops", scopes=["admin"], expires_at=None, now=T0)
    membership = session.scalars(select(Membership).where(Membership.user_id == people.adam.user_id)).one()
    membership.role = Role.USER
    session.commit()
    principal = api_tokens.authenticate(session, text, now=T0)
    assert principal.role == Role.USER
    require(principal, Action.INCIDENTS_WRITE, organization="acme")
    with pytest.raises(Forbidden, match=r"^the role user does not allow members.manage$"):
        require(principal, Action.MEMBERS_MANAGE, organization="acme")


# --- refusals of create -------------------------------------------------------------------------------


def _as(who: str) -> Callable[[People], Principal]:
    def pick(people: People) -> Principal:
        if who == "staff as adam":
            return impersonated(people.adam, by=people.staff)
        if who == "adam's token":
            return Principal(
                user_id=people.adam.user_id,
                email=people.adam.email,
                organization="acme",
                role=Role.ADMIN,
                scopes=frozenset({"admin"}),
                via="api-token",
            )
        picked: Principal = getattr(people, who)
        return picked

    return pick


CREATE_REFUSALS: list[tuple[str, str, dict[str, Any], type[Exception], str]] = [
    ("empty name", "uma", {"name": ""}, TokenProblem, "a token needs a name"),
    ("blank name", "uma", {"name": " \t "}, TokenProblem, "a token needs a name"),
    ("long name", "uma", {"name": "x" * 101}, TokenProblem, "a token's name has at most 100 characters"),
    (
        "control character",
        "uma",
        {"name": "ci\x1b[31m"},
        TokenProblem,
        "a token's name cannot hold control or invisible characters",
    ),
    (
        "invisible character",
        "uma",
        {"name": "ci\u200b"},
        TokenProblem,
        "a token's name cannot hold control or invisible characters",
    ),
    (
        "duplicate name",
        "uma",
        {"name": "existing"},
        TokenProblem,
        "you already have a token named 'existing' in this organization",
    ),
    ("no scope", "uma", {"scopes": []}, TokenProblem, "a token needs at least one scope"),
    (
        "unknown scope",
        "uma",
        {"scopes": ["read", "write"]},
        TokenProblem,
        "unknown scope 'write': the scopes are read, incidents:write, statuspages:write, admin",
    ),
    (
        "user asks for admin",
        "uma",
        {"scopes": ["read", "admin"]},
        Forbidden,
        "the role user cannot give a token the scope admin",
    ),
    (
        "expiry in the past",
        "uma",
        {"expires_at": T0 - timedelta(seconds=1)},
        TokenProblem,
        "a token's expiry must be in the future",
    ),
    ("expiry now", "uma", {"expires_at": T0}, TokenProblem, "a token's expiry must be in the future"),
    (
        "while impersonated",
        "staff as adam",
        {},
        Forbidden,
        "not while impersonating: self.tokens stays with the person impersonated",
    ),
    ("with a token", "adam's token", {}, Forbidden, "an API token cannot do self.tokens: sign in for it"),
    ("without a membership", "staff", {}, Forbidden, "self.tokens needs a membership of an organization"),
]


def test_create_refusals_change_nothing(session: Session, people: People, subtests: pytest.Subtests) -> None:
    # One database for the whole table (a fresh MariaDB schema per case would cost seconds each): each
    # case flushes its setup, and the rollback after it brings the committed people back.
    for case, who, change, refusal, message in CREATE_REFUSALS:
        with subtests.test(case):
            api_tokens.create(session, people.uma, name="existing", scopes=["read"], expires_at=None, now=T0)
            before = snapshot(session)
            asked: dict[str, Any] = {"name": "new", "scopes": ["read"], "expires_at": None} | change
            with pytest.raises(refusal) as raised:
                api_tokens.create(session, _as(who)(people), now=T0, **asked)
            assert str(raised.value) == message
            assert snapshot(session) == before
        session.rollback()


def test_a_revoked_or_expired_tokens_name_is_free_again(session: Session, people: People) -> None:
    _, old = api_tokens.create(session, people.uma, name="ci", scopes=["read"], expires_at=None, now=T0)
    api_tokens.revoke(session, people.uma, old.id, now=T0 + timedelta(minutes=1))
    text, new = api_tokens.create(
        session,
        people.uma,
        name="ci",
        scopes=["read"],
        expires_at=T0 + timedelta(hours=1),
        now=T0 + timedelta(minutes=2),
    )
    session.commit()
    assert [row.id for row in api_tokens.list_for(session, people.uma.user_id)] == [new.id]
    later = T0 + timedelta(hours=2)
    assert api_tokens.state(new, now=later) is TokenState.EXPIRED
    api_tokens.create(session, people.uma, name="ci", scopes=["read"], expires_at=None, now=later)
    session.commit()
    with pytest.raises(InvalidApiToken):
        api_tokens.authenticate(session, text, now=later)
    actions = [row.action for row in session.scalars(select(AuditLog).order_by(AuditLog.id))]
    assert actions == ["token.created", "token.revoked", "token.created", "token.created"]


def test_names_are_per_user_and_organization(session: Session, people: People) -> None:
    api_tokens.create(session, people.uma, name="ci", scopes=["read"], expires_at=None, now=T0)
    api_tokens.create(session, people.adam, name="ci", scopes=["read"], expires_at=None, now=T0)
    api_tokens.create(session, people.gina, name="ci", scopes=["read"], expires_at=None, now=T0)
    session.commit()
    assert len(session.scalars(select(ApiToken)).all()) == 3


# --- refusals of authenticate ------------------------------------------------------------------------


def _revoke(session: Session, people: People, row: ApiToken) -> None:
    row.revoked_at = T0


def _expire(session: Session, people: People, row: ApiToken) -> None:
    row.expires_at = T0 + timedelta(minutes=1)


def _disable_owner(session: Session, people: People, row: ApiToken) -> None:
    owner = session.get(User, row.user_id)
    assert owner is not None
    owner.status = UserStatus.DISABLED


def _invited_owner(session: Session, people: People, row: ApiToken) -> None:
    owner = session.get(User, row.user_id)
    assert owner is not None
    owner.status = UserStatus.INVITED


def _remove_membership(session: Session, people: People, row: ApiToken) -> None:
    session.delete(session.scalars(select(Membership).where(Membership.user_id == row.user_id)).one())


def _nothing(session: Session, people: People, row: ApiToken) -> None:
    """The token stays as made: only the text presented is wrong."""


AUTH_REFUSALS: list[tuple[str, Callable[[Session, People, ApiToken], None], Callable[[str], str], str]] = [
    ("unknown token", _nothing, lambda text: "spt_" + "A" * 43, "unknown"),
    ("one character changed", _nothing, lambda text: text[:-1] + ("A" if text[-1] != "A" else "B"), "unknown"),
    ("wrong prefix", _nothing, lambda text: "spx_" + text[4:], "malformed"),
    ("no prefix", _nothing, lambda text: text[4:], "malformed"),
    ("upper-case prefix", _nothing, lambda text: "SPT_" + text[4:], "malformed"),
    ("truncated", _nothing, lambda text: text[:-1], "malformed"),
    ("longer", _nothing, lambda text: text + "A", "malformed"),
    ("a character outside the alphabet", _nothing, lambda text: text[:-1] + "+", "malformed"),
    ("surrounded by spaces", _nothing, lambda text: f" {text} ", "malformed"),
    ("empty", _nothing, lambda text: "", "malformed"),
    ("the stored digest itself", _nothing, lambda text: hashlib.sha256(text.encode()).hexdigest(), "malformed"),
    ("revoked", _revoke, lambda text: text, "revoked"),
    ("expired", _expire, lambda text: text, "expired"),
    ("owner disabled", _disable_owner, lambda text: text, "owner disabled"),
    ("owner back to invited", _invited_owner, lambda text: text, "owner disabled"),
    ("membership removed", _remove_membership, lambda text: text, "not a member"),
]


def test_authenticate_refusals_change_nothing(session: Session, people: People, subtests: pytest.Subtests) -> None:
    for case, prepare, presented, reason in AUTH_REFUSALS:
        with subtests.test(case):
            text, row = api_tokens.create(session, people.uma, name="ci", scopes=["read"], expires_at=None, now=T0)
            prepare(session, people, row)
            before = snapshot(session)
            with pytest.raises(InvalidApiToken) as raised:
                api_tokens.authenticate(session, presented(text), now=T0 + timedelta(minutes=5))
            # One answer for every refusal; the reason is for logs.
            assert (str(raised.value), raised.value.reason) == ("invalid API token", reason)
            assert snapshot(session) == before  # last_used_at included
        session.rollback()


# --- revoking and listing ------------------------------------------------------------------------------


def test_revoke_own_then_again(session: Session, people: People) -> None:
    text, row = api_tokens.create(session, people.uma, name="ci", scopes=["read"], expires_at=None, now=T0)
    session.commit()
    revoked = api_tokens.revoke(session, people.uma, row.id, now=T0 + timedelta(minutes=1), ip="192.0.2.7")
    session.commit()
    assert revoked.revoked_at == T0 + timedelta(minutes=1)
    with pytest.raises(InvalidApiToken):
        api_tokens.authenticate(session, text, now=T0 + timedelta(minutes=2))
    before = snapshot(session)
    api_tokens.revoke(session, people.uma, row.id, now=T0 + timedelta(minutes=3))
    assert snapshot(session) == before  # the first revocation stands, recorded once
    last = session.scalars(select(AuditLog).order_by(AuditLog.id.desc())).first()
    assert last is not None
    assert (last.action, last.actor, last.ip, last.target_name, last.details) == (
        "token.revoked",
        "uma@acme.example",
        "192.0.2.7",
        "ci",
        {"prefix": row.prefix, "owner": "uma@acme.example"},
    )


def test_an_admin_revokes_a_members_token_even_while_impersonated(session: Session, people: People) -> None:
    _, row = api_tokens.create(session, people.uma, name="ci", scopes=["read"], expires_at=None, now=T0)
    session.commit()
    api_tokens.revoke(session, impersonated(people.adam, by=people.staff), row.id, now=T0)
    session.commit()
    last = session.scalars(select(AuditLog).order_by(AuditLog.id.desc())).first()
    assert last is not None
    assert (last.action, last.actor, last.impersonator, last.details) == (
        "token.revoked",
        "adam@acme.example",
        "staff@spectra.example",
        {"prefix": row.prefix, "owner": "uma@acme.example"},
    )


REVOKE_REFUSALS: list[tuple[str, str, str, type[Exception], str]] = [
    # (case, whose token, who revokes, refusal, message)
    ("a user revokes a colleague's", "adam", "uma", Forbidden, "the role user does not allow tokens.manage"),
    ("another tenant's admin", "uma", "gina", NotFound, "not found"),
    ("a platform admin without a membership", "uma", "staff", NotFound, "not found"),
    (
        "the impersonated admin's own",
        "adam",
        "staff as adam",
        Forbidden,
        "not while impersonating: self.tokens stays with the person impersonated",
    ),
    ("with a token", "adam", "adam's token", Forbidden, "an API token cannot do self.tokens: sign in for it"),
    ("no such token", "missing", "adam", NotFound, "not found"),
]


def test_revoke_refusals_change_nothing(session: Session, people: People, subtests: pytest.Subtests) -> None:
    for case, owner, who, refusal, message in REVOKE_REFUSALS:
        with subtests.test(case):
            token_id = 10_000
            if owner != "missing":
                _, row = api_tokens.create(
                    session, getattr(people, owner), name="ci", scopes=["read"], expires_at=None, now=T0
                )
                token_id = row.id
            before = snapshot(session)
            with pytest.raises(refusal) as raised:
                api_tokens.revoke(session, _as(who)(people), token_id, now=T0)
            assert str(raised.value) == message
            assert snapshot(session) == before
        session.rollback()


def test_lists(session: Session, people: People) -> None:
    _, first = api_tokens.create(session, people.uma, name="first", scopes=["read"], expires_at=None, now=T0)
    _, second = api_tokens.create(
        session, people.uma, name="second", scopes=["read"], expires_at=None, now=T0 + timedelta(seconds=1)
    )
    _, admins = api_tokens.create(session, people.adam, name="ops", scopes=["admin"], expires_at=None, now=T0)
    api_tokens.create(session, people.gina, name="ops", scopes=["admin"], expires_at=None, now=T0)
    session.commit()
    assert [row.name for row in api_tokens.list_for(session, people.uma.user_id)] == ["second", "first"]
    assert api_tokens.list_for(session, people.uma.user_id, organization="globex") == []
    assert {row.id for row in api_tokens.list_for_organization(session, people.adam)} == {
        first.id,
        second.id,
        admins.id,
    }
    with pytest.raises(Forbidden):
        api_tokens.list_for_organization(session, people.uma)
