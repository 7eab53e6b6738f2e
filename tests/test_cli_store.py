"""The CLI's commands that change the store, beside a running `spectra run` on SQLite.

Each reads, then writes, in one transaction; SQLite would fail it ("database is locked") whenever the
running process's writer committed in between. They hold the write lock from BEGIN, so the other writer
waits for them instead (a CI run once lost `spectra users token` this way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from spectra import cli as spectra_cli
from spectra.auth import accounts as auth_accounts
from spectra.auth import api_tokens, global_maintenance
from spectra.store.accounts import ApiToken, AuditLog, GlobalMaintenance, User
from tests.support.databases import sqlite_only
from tests.support.write_race import WriteRace

pytestmark = sqlite_only


def invoke(database_url: str, *args: str) -> None:
    result = CliRunner().invoke(spectra_cli.cli, [*args, "--database", database_url])
    assert result.exit_code == 0, (result.output, result.exception)


@pytest.mark.parametrize(
    ("command", "module", "function", "written"),
    [
        (("users", "add", "bea@example.com"), auth_accounts, "add_user", User),
        (
            ("users", "token", "ann@example.com", "--organization", "", "--name", "ci", "--scope", "read"),
            api_tokens,
            "create",
            ApiToken,
        ),
        (
            ("maintenance", "global", "on", "--message", "Moving racks"),
            global_maintenance,
            "turn_on",
            GlobalMaintenance,
        ),
    ],
    ids=["users add", "users token", "maintenance global on"],
)
def test_a_command_that_reads_then_writes_is_not_failed_by_a_writer_committing_between(
    database_url: str,
    sessions: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
    module: Any,
    function: str,
    written: type[Any],
) -> None:
    monkeypatch.setenv("SPECTRA_SECRET_KEY", "cli-store-test-key-0123456789abcdef")
    invoke(database_url, "users", "add", "ann@example.com")  # a member of the implicit organization
    other = WriteRace(sessions, lambda session: session.add(AuditLog(actor="probe", action="wrote")))
    original: Callable[..., Any] = getattr(module, function)

    def with_a_write_between(session: Session, *args: Any, **kwargs: Any) -> Any:
        session.execute(sa.select(sa.func.count()).select_from(User)).scalar_one()  # a read comes first
        other.commit_now()
        return original(session, *args, **kwargs)

    def count() -> int | None:
        with sessions() as session:
            return session.scalar(sa.select(sa.func.count()).select_from(written))

    before = count()
    monkeypatch.setattr(module, function, with_a_write_between)
    invoke(database_url, *command)
    other.finish()
    assert count() == (before or 0) + 1
    with sessions() as session:
        assert session.scalars(sa.select(AuditLog.actor).where(AuditLog.actor == "probe")).all() == ["probe"]
