"""The audit log: records name both people when impersonating, filters, and exports that a spreadsheet
cannot run."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from spectra.auth.audit import AuditFilter, export_csv, export_json_lines, query, record
from spectra.auth.identity import Actor, Principal
from spectra.store import Role

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
ALICE = Principal(user_id=1, email="alice@acme.example", organization="acme", role=Role.ADMIN)
STAFF_AS_ALICE = Principal(
    user_id=1,
    email="alice@acme.example",
    organization="acme",
    role=Role.ADMIN,
    impersonator_id=9,
    impersonator_email="staff@spectra.example",
)


def test_records_filter_newest_first_with_a_cursor(session: Session) -> None:
    record(session, Actor.of(ALICE, ip="192.0.2.1"), "user.login", now=T0)
    record(
        session,
        Actor.of(STAFF_AS_ALICE),
        "member.role_changed",
        now=T0 + timedelta(minutes=1),
        target=("User", None, "bob@acme.example"),
        details={"role": "admin"},
    )
    record(session, Actor.system("cli"), "maintenance.global_on", now=T0 + timedelta(minutes=2))
    record(
        session,
        Actor.of(Principal(user_id=2, email="eve@globex.example", organization="globex", role=Role.USER)),
        "user.login",
        now=T0 + timedelta(minutes=3),
    )
    session.commit()

    acme = query(session, AuditFilter(organization="acme"))
    assert [r.action for r in acme] == ["member.role_changed", "user.login"]
    assert (acme[0].actor, acme[0].impersonator, acme[0].target_name) == (
        "alice@acme.example",
        "staff@spectra.example",
        "bob@acme.example",
    )
    assert acme[1].ip == "192.0.2.1"
    assert [r.action for r in query(session, AuditFilter(action_prefix="user."))] == ["user.login", "user.login"]
    assert [r.organization for r in query(session, AuditFilter())] == ["globex", None, "acme", "acme"]
    first = query(session, AuditFilter(), limit=2)
    rest = query(session, AuditFilter(), limit=2, before_id=first[-1].id)
    assert [r.action for r in first + rest] == [
        "user.login",
        "maintenance.global_on",
        "member.role_changed",
        "user.login",
    ]
    assert (
        query(session, AuditFilter(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=2)))[0].action
        == "member.role_changed"
    )
    assert query(session, AuditFilter(action_prefix="%")) == []  # a wildcard is a character, not a pattern


def test_exports(session: Session) -> None:
    record(
        session,
        Actor.of(ALICE),
        "token.created",
        now=T0,
        details={"name": '=HYPERLINK("http://evil")'},
        target=("ApiToken", None, "@SUM(A1)"),
    )
    session.commit()
    rows = query(session, AuditFilter(organization="acme"))
    (line,) = list(export_json_lines(rows))
    assert json.loads(line)["details"] == {"name": '=HYPERLINK("http://evil")'}
    table = list(csv.reader(io.StringIO("".join(export_csv(rows)))))
    assert table[0][:3] == ["at", "actor", "impersonator"]
    assert table[1][table[0].index("targetName")] == "'@SUM(A1)"
    assert table[1][table[0].index("details")].startswith("{")  # JSON text: starts with {, not a formula
