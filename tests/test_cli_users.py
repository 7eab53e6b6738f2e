"""`spectra users` and the first admin's setup link of `spectra run`, as real processes on a real store."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from spectra.auth.accounts import check_link, claim_first_admin, use_link
from spectra.store import Base, make_engine, session_factory
from spectra.store.accounts import AuditLog
from spectra.tokens import Purpose, Tokens
from tests.factories.manifests import organization, to_yaml
from tests.support.databases import sqlite_only
from tests.support.processes import run_spectra
from tests.support.providers import Providers
from tests.support.standalone import Run
from tests.support.waiting import wait_for

# Every test here runs the real `spectra` command in a process of its own: the e2e tier.
pytestmark = pytest.mark.e2e

KEY = "cli-users-test-key-0123456789abcdef"
PUBLIC = "https://spectra.example.com"
GOOD = "plum-orbit-saddle-91"
LINK = re.compile(rf"^{re.escape(PUBLIC)}/setup/([A-Za-z0-9._\-]+)$")


def environment(**changes: str | None) -> dict[str, str]:
    env = {**os.environ, "SPECTRA_SECRET_KEY": KEY, "SPECTRA_PUBLIC_URL": PUBLIC}
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def users(database: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_spectra("users", *args, "--database", database, env=env or environment())


@contextmanager
def store(url: str) -> Iterator[sa.orm.Session]:
    engine = make_engine(url)
    try:
        with session_factory(engine).begin() as session:
            yield session
    finally:
        engine.dispose()


def rows(url: str) -> dict[str, list[str]]:
    with store(url) as session:
        return {
            table.name: sorted(repr(tuple(row)) for row in session.execute(sa.select(table)))
            for table in Base.metadata.sorted_tables
        }


def test_users_commands_manage_accounts(database_url: str) -> None:
    added = users(database_url, "add", "Alice@Example.com", "--name", "Alice", "--platform-admin")
    assert added.returncode == 0, added.stderr
    assert added.stderr == (
        "alice@example.com: invited platform admin, admin of the implicit organization; "
        "send them this one-time setup link (valid for 7 days):\n"
    )
    link = LINK.match(added.stdout.strip())
    assert link is not None, added.stdout
    now = datetime.now(UTC)
    with store(database_url) as session:  # the link is one the server (same key) takes
        target = check_link(session, Purpose.SETUP, link.group(1), now=now, tokens=Tokens(KEY))
        assert target.user is not None
        assert target.user.email == "alice@example.com"
        use_link(session, Purpose.SETUP, link.group(1), GOOD, now=now, tokens=Tokens(KEY))

    bob = users(database_url, "add", "bob@example.com")
    assert bob.returncode == 0, bob.stderr
    assert bob.stderr.startswith("bob@example.com: invited account, user of the implicit organization;")

    listed = users(database_url, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "EMAIL              STATUS   MFA  PLATFORM ADMIN  MEMBERSHIPS",
        "alice@example.com  active   off  yes             (implicit):admin",
        "bob@example.com    invited  off  no              (implicit):user",
    ]
    assert listed.stderr == ""

    for args, said in (
        (
            ("set-role", "bob@example.com", "--organization", "", "--role", "admin"),
            "bob@example.com: admin of the implicit organization",
        ),
        (("disable", "BOB@example.com"), "bob@example.com: disabled"),
        (("disable", "bob@example.com"), "bob@example.com: was disabled already"),
        (("enable", "bob@example.com"), "bob@example.com: enabled"),
        (("reset-mfa", "bob@example.com"), "bob@example.com: had no two-factor authentication"),
    ):
        done = users(database_url, *args)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", said + "\n"), args

    with store(database_url) as session:
        audit = list(session.execute(sa.select(AuditLog.actor, AuditLog.action).order_by(AuditLog.id)))
    assert [action for actor, action in audit if actor == "cli"] == [
        "user.created",
        "user.created",
        "users.listed",
        "member.role_changed",
        "user.disabled",
        "user.enabled",
    ]


@sqlite_only
@pytest.mark.parametrize(
    ("args", "env", "code", "said"),
    [
        (("add", "carol"), None, 1, "spectra: this is not a valid email address\n"),
        (
            ("add", "carol@example.com", "--organization", "initech"),
            None,
            1,
            "spectra: there is no Organization named 'initech'\n",
        ),
        (
            ("add", "alice@example.com"),
            None,
            1,
            "spectra: alice@example.com already has an account (active); a forgotten password is reset by mail\n",
        ),
        (("disable", "nobody@example.com"), None, 1, "spectra: there is no account for nobody@example.com\n"),
        (
            ("disable", "alice@example.com"),
            None,
            1,
            "spectra: alice@example.com is the last active platform admin and cannot be disabled\n",
        ),
        (
            ("set-role", "nobody@example.com", "--organization", "", "--role", "user"),
            None,
            1,
            "spectra: nobody@example.com is not a member of this organization\n",
        ),
        (
            ("set-role", "alice@example.com", "--organization", "", "--role", "user"),
            None,
            1,
            "spectra: alice@example.com is the last admin of the organization and cannot be demoted: make another member admin first\n",
        ),
        (("set-role", "alice@example.com", "--organization", "", "--role", "owner"), None, 2, None),
    ],
    ids=[
        "bad address",
        "unknown organization",
        "set up already",
        "unknown account",
        "last platform admin",
        "not a member",
        "last admin",
        "unknown role",
    ],
)
def test_refusals_exit_non_zero_and_change_nothing(
    database_url: str, args: tuple[str, ...], env: dict[str, str] | None, code: int, said: str | None
) -> None:
    added = users(database_url, "add", "alice@example.com", "--platform-admin")
    token = LINK.match(added.stdout.strip())
    assert token is not None, added.stdout + added.stderr
    with store(database_url) as session:
        use_link(session, Purpose.SETUP, token.group(1), GOOD, now=datetime.now(UTC), tokens=Tokens(KEY))
    before = rows(database_url)
    done = users(database_url, *args, env=env)
    assert done.returncode == code, done.stderr
    assert done.stdout == ""
    if said is not None:
        assert done.stderr == said
    assert "Traceback" not in done.stderr
    assert rows(database_url) == before


def started(tmp: Path, manifests: Path, database: str, env: dict[str, str]) -> Run:
    run = Run(tmp, manifests, database=database, env=env)
    try:
        run.wait_ready()
    except BaseException:
        run.close()
        raise
    return run


SETUP_LINE = re.compile(r"no platform admin yet: set up the first one at (\S+)/setup/(\S+) \(once, within 7 days\)")


@sqlite_only
def test_run_logs_a_first_admin_link_at_each_start_until_one_is_set_up(
    tmp_path: Path, database_url: str, providers: Providers
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "org.yaml").write_text(to_yaml(organization("acme", ["shop"], admins=["ada@acme.example"])))
    env = environment(SPECTRA_PUBLIC_URL=None, **providers.env())

    first = started(tmp_path, manifests, database_url, env)
    try:
        found = SETUP_LINE.search(first.log_text())
        assert found is not None, first.log_text()
        assert found.group(1) == f"http://127.0.0.1:{first.port}"  # SPECTRA_PUBLIC_URL unset: run's own address
        # The declared admin is invited through the outbox, mailed by the run's sender, never logged.
        mails = wait_for(lambda: providers.emails("ada@acme.example"), "the invitation mail")
        body = "\n".join(str(part["value"]) for part in mails[0]["content"])
        invitation = re.search(r"/invite/([A-Za-z0-9._\-]+)", body)
        assert invitation is not None, body
        assert invitation.group(1) not in first.log_text()
        assert "Organization acme: invited ada@acme.example as an admin (spec.admins)" in first.log_text()
        first.stop()
    finally:
        first.close()

    second = started(tmp_path, manifests, database_url, env)
    try:
        again = SETUP_LINE.search(second.log_text())
        assert again is not None, second.log_text()
        assert again.group(2) != found.group(2)
        second.stop()
    finally:
        second.close()
    assert len(providers.emails("ada@acme.example")) == 1  # invited once, not at every start

    with store(database_url) as session:
        claim_first_admin(
            session,
            again.group(2),
            email="root@spectra.example",
            display_name="Root",
            password=GOOD,
            now=datetime.now(UTC),
            tokens=Tokens(KEY),
        )
    third = started(tmp_path, manifests, database_url, env)
    try:
        assert "no platform admin yet" not in third.log_text()
        third.stop()
    finally:
        third.close()


@sqlite_only
def test_users_token_prints_a_token_once_within_the_members_role(database_url: str) -> None:
    assert users(database_url, "add", "dana@example.com").returncode == 0  # a user of the implicit organization
    made = users(
        database_url,
        "token",
        "dana@example.com",
        "--organization",
        "",
        "--name",
        "ci",
        "--scope",
        "read",
        "--expires",
        "90d",
    )
    assert made.returncode == 0, made.stderr
    assert made.stderr.startswith("dana@example.com: API token 'ci' (read) until ")
    token = made.stdout.strip()
    assert re.fullmatch(r"spt_[A-Za-z0-9_\-]{20,}", token)
    with store(database_url) as session:
        stored = [tuple(row) for row in session.execute(sa.text("SELECT name, scopes, token_hash FROM api_tokens"))]
    assert len(stored) == 1
    assert stored[0][0] == "ci"
    assert token not in repr(stored)  # only its digest

    before = rows(database_url)
    for args, said in (
        (
            ("--organization", "", "--name", "ops", "--scope", "admin"),
            "spectra: the role user cannot give a token the scope admin\n",
        ),
        (
            ("--organization", "initech", "--name", "x", "--scope", "read"),
            "spectra: dana@example.com is not a member of initech\n",
        ),
        (
            ("--organization", "", "--name", "ci", "--scope", "read"),
            "spectra: you already have a token named 'ci' in this organization\n",
        ),
        (("--organization", "", "--name", "y", "--scope", "read", "--expires", "soon"), "spectra: --expires: "),
    ):
        refused = users(database_url, "token", "dana@example.com", *args)
        assert refused.returncode == 1, args
        assert refused.stdout == ""
        assert refused.stderr.startswith(said), (args, refused.stderr)
    assert rows(database_url) == before
