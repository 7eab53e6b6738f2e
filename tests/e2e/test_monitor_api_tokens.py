"""`/api/v1/monitors` of the real `spectra web` with real API tokens: each organization's token sees its
own namespaces' monitors; a bad or missing token gets 401 with a Bearer challenge, and the log says why
without the token."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from spectra.store import Role, make_engine, session_factory
from tests.factories.accounts import member, token_of
from tests.factories.manifests import monitor, organization, to_yaml
from tests.support.processes import SPECTRA, free_port, run_spectra
from tests.support.waiting import wait_for

MANIFESTS = to_yaml(
    organization("acme", ["acme-prod", "acme-dev"]),
    organization("globex", ["globex"]),
    monitor("api", namespace="acme-prod", url="https://api.acme.example/health"),
    monitor("web", namespace="acme-dev", url="https://dev.acme.example/"),
    monitor("shop", namespace="globex", url="https://shop.globex.example/"),
    monitor("infra", namespace="default", url="https://infra.example/"),
)


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPECTRA_", "SENDGRID_", "TWILIO_"))}
    return env | {"SPECTRA_SECRET_KEY": "e2e-api-token-secret-key-0123456789abcdef", "PYTHONUNBUFFERED": "1"}


def test_tokens_see_their_organizations_monitors(tmp_path: Path) -> None:
    (tmp_path / "tenants.yaml").write_text(MANIFESTS)
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    applied = run_spectra("apply", str(tmp_path / "tenants.yaml"), "--database", database, env=_env())
    assert applied.returncode == 0, applied.stderr
    engine = make_engine(database)
    try:
        with session_factory(engine).begin() as session:
            acme = token_of(session, member(session, "uma@acme.example", "acme", Role.USER))
            globex = token_of(session, member(session, "gina@globex.example", "globex", Role.ADMIN), "admin")
    finally:
        engine.dispose()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "web.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [SPECTRA, "web", "--database", database, "--listen", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(),
        )
        try:
            wait_for(lambda: _status(f"{base}/readyz") == 200, "spectra web to be ready", timeout=60)
            with httpx.Client(base_url=base, timeout=30) as http:
                seen = {
                    name: http.get("/api/v1/monitors", headers={"Authorization": f"Bearer {token}"})
                    for name, token in (("acme", acme), ("globex", globex))
                }
                missing = http.get("/api/v1/monitors")
                wrong = http.get("/api/v1/monitors", headers={"Authorization": f"Bearer {acme[:-2]}xx"})
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    listed = {name: [(m["namespace"], m["name"]) for m in response.json()] for name, response in seen.items()}
    assert listed == {"acme": [("acme-dev", "web"), ("acme-prod", "api")], "globex": [("globex", "shop")]}
    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, 'Bearer realm="spectra"')
    assert (wrong.status_code, wrong.json(), wrong.headers["www-authenticate"]) == (
        401,
        {"error": "invalid API token"},
        'Bearer realm="spectra", error="invalid_token"',
    )
    text = log.read_text()
    assert "API token refused: unknown" in text
    assert acme[4:] not in text
    assert acme[:-2] not in text
    assert "Traceback" not in text


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return 0
