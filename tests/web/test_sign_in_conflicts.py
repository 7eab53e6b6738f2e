"""The sign-in steps that read before they write run again after a lock conflict (spectra.web.auth_routes),
on SQLite: signing out, setting a password from a link, starting two-factor set-up, asking for a reset.

Each is one transaction that reads, then writes. In WAL mode SQLite refuses that write at once ("database
is locked", whatever the busy timeout) when another connection committed in between, which `spectra run`
does all the time (checks, the alerter, the outbox): the browser test of the console met it as a 500 on
*Sign out* and on an invitation's password form. Each step now runs again, and ends as if nothing came
between. Here another connection commits just before the step's first write.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth import sessions
from spectra.auth.accounts import make_link_token
from spectra.store import Role, session_factory
from spectra.store.accounts import AuditLog, User, UserSession, UserStatus
from spectra.tokens import Purpose, Tokens
from spectra.web.auth_routes import AuthPages, SignIn
from tests.factories.accounts import member
from tests.support.databases import sqlite_only

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PASSWORD = "quartz-meadow-lantern-27"

pytestmark = sqlite_only


@contextmanager
def another_writer_before(engine: sa.Engine, statement: str) -> Iterator[list[str]]:
    """Once, just before this process sends a statement starting with `statement`, another connection
    updates a row of its own and commits; yields the statements it came before (one, when it did)."""
    path = engine.url.database
    assert path is not None
    seen: list[str] = []

    def interleave(_conn: Any, _cursor: Any, sent: str, *_: Any) -> None:
        if sent.startswith(statement) and not seen:
            seen.append(sent)
            other = sqlite3.connect(path, timeout=30)
            try:
                other.execute("UPDATE users SET display_name = 'Other' WHERE email = 'other@example.com'")
                other.commit()
            finally:
                other.close()

    event.listen(engine, "before_cursor_execute", interleave)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", interleave)


def _world(engine: sa.Engine) -> tuple[sessionmaker[Session], int]:
    """The factory, and Ada (an admin of the implicit organization) beside the row the other writer changes."""
    factory = session_factory(engine)
    with factory.begin() as session:
        member(session, "other@example.com", "", Role.USER)
        ada = member(session, "ada@example.com", "", Role.ADMIN)
    return factory, ada.user_id


def _count(session: Session, action: str) -> int:
    return session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == action)) or 0


def test_signing_out_runs_again(engine: sa.Engine) -> None:
    factory, ada = _world(engine)
    with factory.begin() as session:
        user = session.get(User, ada)
        assert user is not None
        issued = sessions.start(session, user, organization="", now=NOW, mfa_verified=False, ip=None, user_agent=None)
    with another_writer_before(engine, "UPDATE sessions SET revoked_at") as seen:
        SignIn(factory, clock=lambda: NOW).logout(issued.principal, client="127.0.0.1", everywhere=False)
    assert len(seen) == 1
    with factory() as session:
        row = session.scalars(select(UserSession).where(UserSession.sid == issued.session_row.sid)).one()
        assert (row.revoked_reason, row.revoked_at) == ("logout", NOW)
        assert _count(session, "session.revoked") == 1  # the refused attempt left nothing behind


def test_setting_a_password_from_an_invitation_runs_again(engine: sa.Engine) -> None:
    factory, ada = _world(engine)
    tokens = Tokens()
    with factory.begin() as session:
        user = session.get(User, ada)
        assert user is not None
        user.status = UserStatus.INVITED
        session.flush()
        link = make_link_token(Purpose.INVITE, user, now=NOW, tokens=tokens)
    pages = AuthPages(SignIn(factory, clock=lambda: NOW, tokens=tokens), tokens)
    with another_writer_before(engine, "INSERT INTO used_links") as seen:
        pages._use(Purpose.INVITE, link, {"password": PASSWORD}, "127.0.0.1")
    assert len(seen) == 1
    with factory() as session:
        user = session.get(User, ada)
        assert user is not None
        assert (user.status, user.password_hash is not None) == (UserStatus.ACTIVE, True)
        assert _count(session, "user.activated") == 1


def test_starting_two_factor_set_up_runs_again(engine: sa.Engine) -> None:
    factory, ada = _world(engine)
    with another_writer_before(engine, "UPDATE users SET") as seen:
        enrolment = SignIn(factory, clock=lambda: NOW).begin_enrolment(ada, sid=None)
    assert len(seen) == 1
    assert enrolment.secret_text
    with factory() as session:
        user = session.get(User, ada)
        assert user is not None
        assert (user.mfa_secret is not None, user.mfa_enabled) == (True, False)


def test_asking_for_a_reset_runs_again(engine: sa.Engine) -> None:
    factory, _ = _world(engine)
    pages = AuthPages(SignIn(factory, clock=lambda: NOW), Tokens())
    with another_writer_before(engine, "INSERT INTO") as seen:
        answer = pages._ask("ada@example.com", "127.0.0.1")
    assert len(seen) == 1
    assert answer.startswith("If an account exists for that address")
    with factory() as session:
        assert _count(session, "user.reset_requested") == 1
