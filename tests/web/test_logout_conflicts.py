"""Signing out while another process writes (spectra.web.auth_routes.SignIn.logout), on SQLite.

Signing out reads the session, then ends it: one transaction that reads before it writes. In WAL mode
SQLite refuses that write at once ("database is locked", whatever the busy timeout) when another
connection committed in between, which `spectra run` does all the time (checks, the alerter, the outbox):
the browser test of the console met it as a 500 on *Sign out*. Signing out runs again instead.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, func, select

from spectra.auth import sessions
from spectra.store import Role, session_factory
from spectra.store.accounts import AuditLog, User, UserSession
from spectra.web.auth_routes import SignIn
from tests.factories.accounts import member
from tests.support.databases import sqlite_only

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@sqlite_only
def test_signing_out_runs_again_when_another_writer_commits_between_its_read_and_its_write(engine: sa.Engine) -> None:
    factory = session_factory(engine)
    with factory.begin() as session:
        ada = member(session, "ada@example.com", "", Role.ADMIN)
        user = session.get(User, ada.user_id)
        assert user is not None
        issued = sessions.start(session, user, organization="", now=NOW, mfa_verified=False, ip=None, user_agent=None)
        principal, sid = issued.principal, issued.session_row.sid
    path = engine.url.database
    assert path is not None
    interleaved: list[str] = []

    def another_writer(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        """Once: another connection commits just before signing out writes (its read is done by then)."""
        if statement.startswith("UPDATE sessions SET revoked_at") and not interleaved:
            interleaved.append(statement)
            other = sqlite3.connect(path, timeout=30)
            try:
                other.execute("UPDATE users SET display_name = 'Ada' WHERE id = ?", (ada.user_id,))
                other.commit()
            finally:
                other.close()

    event.listen(engine, "before_cursor_execute", another_writer)
    try:
        SignIn(factory, clock=lambda: NOW).logout(principal, client="127.0.0.1", everywhere=False)
    finally:
        event.remove(engine, "before_cursor_execute", another_writer)

    assert len(interleaved) == 1
    with factory() as session:
        row = session.scalars(select(UserSession).where(UserSession.sid == sid)).one()
        assert (row.revoked_reason, row.revoked_at) == ("logout", NOW)
        revoked = session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "session.revoked"))
        assert revoked == 1  # the refused attempt left nothing behind
        assert session.scalar(select(User.display_name).where(User.id == ada.user_id)) == "Ada"
