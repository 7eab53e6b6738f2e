"""The sign-in steps that read before they write run again after a lock conflict (spectra.web.auth_routes),
on SQLite: signing out, setting a password from a link, starting two-factor set-up, asking for a reset.

Each is one transaction that reads, then writes. In WAL mode SQLite refuses that write at once ("database
is locked", whatever the busy timeout) when another connection committed in between, which `spectra run`
does all the time (checks, the alerter, the outbox): the browser test of the console met it as a 500 on
*Sign out* and on an invitation's password form. Each step now runs again, and ends as if nothing came
between. So does using an API token, which records its use (once a minute) after reading it. Here another
connection commits just before the step's first write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.datastructures import Headers

from spectra.auth import sessions
from spectra.auth.accounts import make_link_token
from spectra.store import Role, session_factory
from spectra.store.accounts import ApiToken, AuditLog, User, UserSession, UserStatus
from spectra.tokens import Purpose, Tokens
from spectra.web import credentials
from spectra.web.auth_routes import AuthPages, SignIn
from spectra.web.monitors import monitor_routes
from tests.factories.accounts import member, token_of
from tests.support.databases import sqlite_only
from tests.support.write_race import WriteRace

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PASSWORD = "quartz-meadow-lantern-27"

pytestmark = sqlite_only


@contextmanager
def another_writer_before(engine: sa.Engine, statement: str) -> Iterator[list[str]]:
    """Once, just before this process sends a statement starting with `statement`, another connection
    updates a row of its own and commits; yields the statements it came before (one, when it did)."""
    other = WriteRace(
        session_factory(engine),
        lambda session: session.execute(
            sa.update(User).where(User.email == "other@example.com").values(display_name="Other")
        ),
    )
    with other.before(engine, statement) as seen:
        yield seen
    other.finish()


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


def test_using_an_api_token_runs_again(engine: sa.Engine) -> None:
    factory, _ = _world(engine)
    with factory.begin() as session:
        token = token_of(session, member(session, "ci@example.com", "", Role.USER))
    with another_writer_before(engine, "UPDATE api_tokens") as seen:
        caller = credentials.identify(Headers({"authorization": f"Bearer {token}"}), {}, factory, now=NOW)
    assert len(seen) == 1
    assert caller.principal.email == "ci@example.com"
    with factory() as session:
        assert session.scalars(select(ApiToken.last_used_at)).all() == [NOW]


async def test_listing_monitors_with_an_api_token_runs_again(engine: sa.Engine) -> None:
    factory, _ = _world(engine)
    with factory.begin() as session:
        token = token_of(session, member(session, "ci@example.com", "", Role.USER))
    app = Starlette(routes=monitor_routes(factory, loopback_only=False))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://spectra.test") as http:
        with another_writer_before(engine, "UPDATE api_tokens") as seen:
            answer = await http.get("/api/v1/monitors", headers={"authorization": f"Bearer {token}"})
    assert len(seen) == 1
    assert (answer.status_code, answer.json()) == (200, [])
    with factory() as session:
        (used,) = session.scalars(select(ApiToken.last_used_at)).all()
        assert used is not None
