"""`spectra incidents list|ack|resolve|note` against the real `spectra run`, with API tokens made by
`spectra users token`: plain lines, --json, exit codes 0, 1 (the server's sentence), 2 and 69."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from spectra.store import Incident, IncidentEvent, User, UserStatus, make_engine, session_factory
from tests.support.processes import free_port, run_spectra
from tests.support.standalone import Run

pytestmark = pytest.mark.e2e

CONTACT = """apiVersion: spectra.dev/v1alpha1
kind: Contact
metadata: {name: alice}
spec: {displayName: Alice, email: alice@example.com, channels: [email]}
"""
UMA = "uma@example.com"


def environment(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SPECTRA_URL", "SPECTRA_TOKEN")}
    return {**env, "SPECTRA_SECRET_KEY": "cli-incidents-test-key-0123456789abcdef", **changes}


def token(database: str, scope: str) -> str:
    made = run_spectra("users", "token", UMA, "--organization", "", "--name", scope, "--scope", scope,
                       "--database", database, env=environment())  # fmt: skip
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def test_the_incidents_client_against_spectra_run(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "contacts.yaml").write_text(CONTACT)
    database = f"sqlite:///{tmp_path / 'spectra.db'}"
    run = Run(tmp_path, manifests, database=database, env=environment())
    try:
        run.wait_ready()
        added = run_spectra("users", "add", UMA, "--role", "user", "--database", database, env=environment())
        assert added.returncode == 0, added.stderr
        write, read = token(database, "incidents:write"), token(database, "read")
        engine = make_engine(database)
        with session_factory(engine).begin() as session:
            # as if Uma had followed her setup link (an invited account's tokens act for nobody)
            session.execute(update(User).where(User.email == UMA).values(status=UserStatus.ACTIVE))
            incident = Incident(code="K7QA", namespace="default", monitor_name="api", title="default/api is down",
                                severity="critical", state="open", opened_at=datetime.now(UTC) - timedelta(minutes=3))  # fmt: skip
            session.add(incident)
            session.flush()
            incident_id = incident.id

        def cli(*args: str, bearer: str = write, **env: str) -> tuple[int, str, str]:
            done = run_spectra(
                "incidents", *args, env=environment(**{"SPECTRA_URL": run.base, "SPECTRA_TOKEN": bearer, **env})
            )
            return done.returncode, done.stdout, done.stderr

        code, out, err = cli("list")
        assert code == 0, err
        assert out.startswith("K7QA   open")
        assert "default/api  default/api is down" in out
        assert f"#{incident_id})" in out
        code, out, _ = cli("--json", "list", "--state", "open")
        assert code == 0
        assert [item["code"] for item in json.loads(out)] == ["K7QA"]
        listed = json.loads(out)[0]  # the server's camelCase names, as the lines read them
        assert datetime.now(UTC) - datetime.fromisoformat(listed["openedAt"]) < timedelta(hours=1)
        assert listed["acknowledgedBy"] is None
        code, _, err = cli("ack", "k7qa", bearer=read)
        assert (code, err) == (1, "spectra: this API token's scopes do not allow incidents.write\n")
        code, out, _ = cli("ack", "k7qa")
        assert code == 0
        assert out.startswith(f"K7QA   acknowledged by {UMA}")  # the answer's acknowledgedBy
        assert f"(opened {listed['openedAt']}, #{incident_id})" in out
        code, _, err = cli("ack", str(incident_id))
        assert (code, err) == (1, f"spectra: Incident K7QA is already acknowledged by {UMA}.\n")
        code, _, _ = cli("note", "K7QA", "rolled back the deploy")
        assert code == 0
        code, out, _ = cli("resolve", "K7QA")
        assert code == 0
        assert "resolved" in out
        code, _, err = cli("resolve", "NOPE")
        assert (code, err) == (1, "spectra: There is no incident NOPE (or it is not yours to see).\n")
        with session_factory(engine)() as session:
            timeline = list(session.execute(select(IncidentEvent.type, IncidentEvent.actor, IncidentEvent.channel)
                                            .where(IncidentEvent.incident_id == incident_id).order_by(IncidentEvent.id)))  # fmt: skip
        engine.dispose()
        assert [tuple(row) for row in timeline] == [
            ("acknowledged", UMA, "api"), ("note", UMA, "api"), ("resolved", UMA, "api"),
        ]  # fmt: skip
        code, _, err = cli("list", bearer="spt_not_a_token")
        assert code == 1
        assert err.startswith("spectra: ")
        code, _, err = cli("list", SPECTRA_URL=f"http://127.0.0.1:{free_port()}")
        assert code == 69
        assert "cannot reach" in err
        assert run_spectra("incidents", "list", env=environment()).returncode == 2
        run.stop()
    finally:
        run.close()
