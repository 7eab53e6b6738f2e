"""Global maintenance end to end: the real `spectra maintenance global` command beside a real `spectra run`.

A real target goes down while global maintenance is on: the incident opens, its timeline says global
maintenance, nothing reaches the SendGrid and Twilio stand-ins (tests/support/providers.py) and the status
page shows the message, escaped. Turned off with the command, the page goes out and the banner goes away;
both switches are in the audit log as `cli`. The command's refusals exit 1 with their reason and write
nothing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from spectra.alerting.escalation import HELD
from spectra.store import AuditLog, EscalationState, Incident, IncidentEvent, Notification, make_engine
from tests.factories.manifests import components, local_monitor, resource, status_page, to_yaml
from tests.support.cluster import child_env
from tests.support.processes import Target, get, run_spectra
from tests.support.providers import Providers
from tests.support.standalone import Run
from tests.support.waiting import wait_for

ALICE_EMAIL = "alice@example.com"
ALICE_PHONE = "+15550001111"
MESSAGE = "Upgrading <b>the database</b> & more"
ESCAPED = "Upgrading &lt;b&gt;the database&lt;/b&gt; &amp; more"


def manifests(port: int) -> str:
    """Alice is paged by email and SMS as soon as `local-web` is down; a public page shows it."""
    alice = {"displayName": "Alice", "email": ALICE_EMAIL, "phone": ALICE_PHONE, "channels": ["email", "sms"]}
    steps = [{"delay": "0s", "targets": [{"contact": "alice"}], "channels": ["email", "sms"]}]
    return to_yaml(
        resource("Contact", "alice", alice),
        resource("EscalationPolicy", "primary", {"steps": steps}),
        local_monitor(
            "local-web", port, failureThreshold=2, successThreshold=1, escalationPolicyRef={"name": "primary"}
        ),
        status_page("public", groups=components("local-web")),
    )


def maintenance(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_spectra("maintenance", "global", *args, "--database", database)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[str, sa.Engine]]:
    """The SQLite file `spectra run` uses, and an engine of the test's own to read it."""
    url = f"sqlite:///{tmp_path / 'spectra.db'}"
    engine = make_engine(url)
    yield url, engine
    engine.dispose()


def test_nothing_is_paged_during_global_maintenance_and_the_page_goes_out_after(
    tmp_path: Path, target: Target, providers: Providers, store: tuple[str, sa.Engine]
) -> None:
    database, engine = store
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "site.yaml").write_text(manifests(target.port))
    env = child_env(SPECTRA_SECRET_KEY="e2e-global-maintenance-key-0123456789", **providers.env())
    run = Run(tmp_path, folder, database=database, env=env)
    try:
        run.wait_ready()
        _scenario(run.base, database, engine, target, providers)
        run.stop(timeout=15)
    finally:
        run.close()
    assert "Traceback" not in run.log_text()


def _state(base: str) -> str | None:
    status, body = get(f"{base}/api/v1/monitors")
    if status != 200:
        return None
    return next((item["state"] for item in json.loads(body) if item["name"] == "local-web"), None)


def _page(base: str) -> str:
    status, body = get(f"{base}/s/public")
    return body if status == 200 else ""


def _held(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        return connection.execute(select(EscalationState.next_step_at)).scalar() == HELD


def _timeline(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(IncidentEvent.type, IncidentEvent.message).order_by(IncidentEvent.at, IncidentEvent.id)
        )
        return [(row.type, row.message) for row in rows]


def _scenario(
    base: str,
    database: str,
    engine: sa.Engine,
    target: Target,
    providers: Providers,
) -> None:
    wait_for(lambda: _state(base) == "up", "monitor up")
    assert "Platform maintenance" not in _page(base)

    # On, with the banner: every public page shows the message as text.
    done = maintenance(database, "on", "--message", MESSAGE, "--show-on-status-pages")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:4] == [
        "global maintenance: on (incidents open, nobody is paged)",
        f"message: {MESSAGE}",
        "until: turned off",
        "status pages: show the message",
    ]
    wait_for(lambda: "Platform maintenance" in _page(base), "the banner")
    page = _page(base)
    assert ESCAPED in page
    assert "<b>the database</b>" not in page
    notice = json.loads(get(f"{base}/api/v1/status-pages/public")[1])["notice"]
    assert notice == {"message": MESSAGE, "until": None}

    # Down: the incident opens, its step is held, nothing is queued or sent.
    target.stop()
    wait_for(lambda: _held(engine), "the escalation step held by global maintenance", timeout=30)
    suppressed = ("suppressed", f"global maintenance until it is turned off: nobody is paged ({MESSAGE})")
    assert suppressed in _timeline(engine)
    with engine.connect() as connection:
        assert connection.execute(select(Incident.state)).scalar_one() == "open"
        assert connection.execute(select(Notification.id)).all() == []
    assert providers.emails(ALICE_EMAIL) == []
    assert providers.texts(ALICE_PHONE) == []
    status = maintenance(database, "status")
    assert status.returncode == 0
    assert status.stdout.startswith("global maintenance: on")

    # Off: the held step falls due, Alice gets her email and SMS; the banner goes.
    done = maintenance(database, "off")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("global maintenance: off (ended ")
    wait_for(lambda: providers.emails(ALICE_EMAIL), "the page email at SendGrid", timeout=30)
    wait_for(lambda: providers.texts(ALICE_PHONE), "the page SMS at Twilio", timeout=30)
    types = [kind for kind, _ in _timeline(engine)]
    assert types.index("suppressed") < types.index("notified")
    wait_for(lambda: "Platform maintenance" not in _page(base), "the banner to go", timeout=30)
    assert "Platform maintenance" not in _page(base)

    with engine.connect() as connection:
        audit = connection.execute(select(AuditLog.action, AuditLog.actor).order_by(AuditLog.id)).all()
    assert [tuple(row) for row in audit] == [("maintenance.global_on", "cli"), ("maintenance.global_off", "cli")]


# --- the command's refusals: exit 1, the reason, nothing written -------------------------------------------------


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (("on", "--message", "   "), "spectra: the message is empty: say why nothing is paged"),
        (
            ("on", "--message", "x", "--until", "2020-01-01T00:00Z"),
            "spectra: until 2020-01-01T00:00:00Z is not in the future (now: ",
        ),
        (
            ("on", "--message", "x", "--until", "2030-01-01T00:00"),
            "spectra: until '2030-01-01T00:00' has no offset; add one, e.g. +01:00 or Z",
        ),
        (
            ("on", "--message", "x", "--until", "soon"),
            "spectra: until 'soon' is neither a time (ISO 8601 with an offset, e.g. 2026-03-02T12:00+01:00) "
            "nor a duration (e.g. 90m, 2h, 1d)",
        ),
        (("off",), "spectra: global maintenance is not on; nothing changed"),
    ],
)
def test_refusals_exit_1_and_write_nothing(store: tuple[str, sa.Engine], args: tuple[str, ...], refusal: str) -> None:
    database, engine = store
    assert run_spectra("db", "upgrade", "--database", database).returncode == 0
    done = maintenance(database, *args)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(refusal), done.stderr
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM global_maintenance WHERE active")).scalar() == 0
        assert connection.execute(select(AuditLog.id)).all() == []


def test_a_database_not_migrated_is_refused(store: tuple[str, sa.Engine]) -> None:
    database, _ = store
    done = maintenance(database, "status")
    assert done.returncode == 1
    assert done.stderr.strip().endswith("run `spectra db upgrade`")
