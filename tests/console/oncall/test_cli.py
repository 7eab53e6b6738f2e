"""`spectra oncall SCHEDULE --server URL --token T` against the real `spectra run`, after an override taken
through the API: the same lines as from manifests, plus the override."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from spectra.store import Role, make_engine, session_factory
from tests.factories.accounts import member, token_of
from tests.support.processes import run_spectra
from tests.support.standalone import Run

MANIFESTS = """
apiVersion: spectra.dev/v1alpha1
kind: Contact
metadata: {name: ada}
spec: {displayName: Ada, email: ada@example.com}
---
apiVersion: spectra.dev/v1alpha1
kind: Contact
metadata: {name: uma}
spec: {displayName: Uma, email: uma@example.com}
---
apiVersion: spectra.dev/v1alpha1
kind: Schedule
metadata: {name: primary}
spec:
  timeZone: UTC
  layers: [{name: week, participants: [ada], start: 2026-01-05, rotation: 1w, handoffTime: "09:00"}]
"""


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPECTRA_", "SENDGRID_", "TWILIO_"))}
    return env | {"SPECTRA_SECRET_KEY": "e2e-oncall-secret-key-0123456789abcdef"}


def test_spectra_oncall_asks_the_server_and_shows_the_override(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "oncall.yaml").write_text(MANIFESTS)
    run = Run(tmp_path, manifests, env=_env())
    try:
        run.wait_ready()
        engine = make_engine(f"sqlite:///{tmp_path / 'spectra.db'}")
        try:
            with session_factory(engine).begin() as session:
                uma = member(session, "uma@example.com", "", Role.USER)
                token = token_of(session, uma, "read")
                ops = token_of(session, member(session, "ops@example.com", "", Role.ADMIN), "admin", name="ops")
        finally:
            engine.dispose()
        before = run_spectra("oncall", "primary", "--server", run.base, "--token", token, env=_env())
        assert before.returncode == 0, before.stderr
        assert "On call: ada (Ada)" in before.stdout
        taken = httpx.post(
            f"{run.base}/api/v1/oncall/default/primary/overrides",
            json={"until": "3h", "contact": "uma", "reason": "ada is flying"},
            headers={"Authorization": f"Bearer {ops}"},
            timeout=30,
        )
        assert taken.status_code == 201, taken.text
        override = taken.json()["override"]
        env = _env() | {"SPECTRA_URL": run.base, "SPECTRA_TOKEN": token}
        after = run_spectra("oncall", "primary", env=env)  # the server and token from the environment
        assert after.returncode == 0, after.stderr
        lines = after.stdout.splitlines()
        assert lines[0].startswith("Schedule default/primary (UTC) at ")
        assert lines[1] == "On call: uma (Uma)"
        end = override["end"].replace("T", " ")[:16]
        assert lines[2] == f"Next handoff: {end} UTC (UTC+0000) = {end} UTC"
        assert lines[3].startswith(f"Override {override['id']}: uma (Uma) from ")
        assert lines[3].endswith(f"until {end} UTC (UTC+0000), taken by ops@example.com: ada is flying")
        refused = run_spectra("oncall", "primary", "--server", run.base, "--token", token[:-2] + "xx", env=_env())
        assert refused.returncode != 0
        assert f"spectra: {run.base} answered 401" in refused.stderr
        run.stop()
    finally:
        run.close()
