"""`/api/v1/monitors` of the real `spectra web` with real API tokens and signed-in sessions: each
organization's token, access token or browser cookie sees its own namespaces' monitors; a bad or missing
token gets 401 with a Bearer challenge, and the log says why without the token."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from spectra.auth.passwords import hash_password
from spectra.store import Role, User, make_engine, session_factory
from spectra.web.bearer import SESSION_ENDED
from spectra.web.credentials import cookie_names
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


PASSWORD = "plum-orbit-saddle-91"


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
            for user in session.scalars(select(User)):
                user.password_hash = hash_password(PASSWORD)
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
                by_session = _by_session(http)
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
    assert by_session == {
        "globex access token": (200, [("globex", "shop")]),
        "acme browser cookie": (200, [("acme-dev", "web"), ("acme-prod", "api")]),
        "forged access token": (401, {"error": SESSION_ENDED}),
        "stale cookie": (401, {"error": SESSION_ENDED}),
    }
    text = log.read_text()
    assert "API token refused: unknown" in text
    assert acme[4:] not in text
    assert acme[:-2] not in text
    assert "Traceback" not in text


def _by_session(http: httpx.Client) -> dict[str, tuple[int, Any]]:
    """/api/v1/monitors as a signed-in API client (Bearer JWT) and a browser (the access cookie): each
    its organization's; a forged JWT or a cookie that is not a token is a 401, never every monitor."""

    def listed(response: httpx.Response) -> tuple[int, Any]:
        if response.status_code != 200:
            return response.status_code, response.json()
        return 200, [(m["namespace"], m["name"]) for m in response.json()]

    login = {"email": "gina@globex.example", "password": PASSWORD}
    access = http.post("/api/v1/auth/login", json=login).json()["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    answers = {"globex access token": listed(http.get("/api/v1/monitors", headers=bearer))}
    forged = {"Authorization": f"Bearer {access[:-4]}AAAA"}
    with httpx.Client(base_url=str(http.base_url), timeout=30) as browser:
        browser.post(
            "/api/v1/auth/login", json={"email": "uma@acme.example", "password": PASSWORD, "use_cookies": True}
        )
        answers["acme browser cookie"] = listed(browser.get("/api/v1/monitors"))
        answers["forged access token"] = listed(browser.get("/api/v1/monitors", headers=forged))
        browser.cookies.set(cookie_names().access, "stale")
        answers["stale cookie"] = listed(browser.get("/api/v1/monitors"))
    return answers


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return 0
