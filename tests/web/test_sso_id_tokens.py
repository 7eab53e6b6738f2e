"""ID tokens that must not sign anyone in: a stand-in OpenID Connect provider on 127.0.0.1 (discovery, JWKS
and a token endpoint, werkzeug in a thread) hands out the token each case makes, with what oidc-provider-mock
never gets wrong on purpose: another audience, another issuer, an expired token, no nonce, another key, `none`
or a shared-secret algorithm. Each is refused with the same words and nothing stored. SQLite and MariaDB."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import werkzeug.serving
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from werkzeug.wrappers import Request, Response

from spectra.auth import sso
from spectra.store.accounts import AuditLog, Membership, User, UserSession
from spectra.web import sso_routes
from tests.factories.accounts import organization_resource

PUBLIC_URL = "http://127.0.0.1:8080"
CLIENT_SECRET = "client-secret-of-the-stand-in-test-0123456789"
KEY = RSAKey.generate_key(2048, parameters={"kid": "signing-key"}, private=True)
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "signing-key"}, private=True)  # same kid, other key


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@dataclass
class StandIn:
    """The provider: its issuer URL, and the ID token its token endpoint answers with."""

    issuer: str = ""
    nonce: str = ""
    make_token: Callable[[StandIn], str] = field(default=lambda standin: standin.signed())
    changes: dict[str, Any] = field(default_factory=dict)

    def claims(self) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "ana-1",
            "aud": "spectra",
            "iat": now,
            "exp": now + 300,
            "nonce": self.nonce,
            "email": "ana@acme.example",
            "email_verified": True,
            "groups": ["acme-ops"],
        }
        claims.update(self.changes)
        return {k: v for k, v in claims.items() if v is not None}

    def signed(self, key: RSAKey = KEY) -> str:
        return jwt.encode({"alg": "RS256", "kid": "signing-key"}, self.claims(), key)

    def app(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        if request.path == "/.well-known/openid-configuration":
            body: dict[str, Any] = {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                # A provider may offer these; we take the asymmetric ones only.
                "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
            }
        elif request.path == "/jwks":
            body = dict(KeySet([KEY]).as_dict(private=False))
        elif request.path == "/token" and request.method == "POST":
            body = {"access_token": "at", "token_type": "Bearer", "expires_in": 60, "id_token": self.make_token(self)}
        else:
            return Response("not found", 404)(environ, start_response)
        return Response(json.dumps(body), 200, content_type="application/json")(environ, start_response)


@pytest.fixture
def standin() -> Iterator[StandIn]:
    provider = StandIn()
    server = werkzeug.serving.make_server("127.0.0.1", 0, provider.app, threaded=True)
    provider.issuer = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
async def app(
    standin: StandIn, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    with sessions.begin() as session:
        organization_resource(session, "acme", ["shop"])
    monkeypatch.setenv("SPECTRA_TEST_STANDIN_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("SPECTRA_PUBLIC_URL", PUBLIC_URL)
    provider = sso.Provider.model_validate(
        {
            "name": "standin",
            "title": "Stand-in",
            "issuer": standin.issuer,
            "client_id": "spectra",
            "client_secret_env": "SPECTRA_TEST_STANDIN_SECRET",
            "mappings": [{"group": "acme-ops", "organization": "acme", "role": "admin"}],
        }
    )
    routes = sso_routes.sso_routes(sessions, providers=[provider])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=Starlette(routes=routes)), base_url=PUBLIC_URL
    ) as client:
        yield client


def stored(sessions: sessionmaker[Session]) -> tuple[int, ...]:
    with sessions() as session:
        return tuple(
            int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (User, Membership, UserSession, AuditLog)
        )


async def sign_in(app: httpx.AsyncClient, standin: StandIn) -> httpx.Response:
    started = await app.get("/sso/standin")
    assert started.status_code == 302, started.text
    query = parse_qs(urlsplit(started.headers["location"]).query)
    standin.nonce = query["nonce"][0]
    return await app.get("/sso/standin/callback", params={"code": "a-code", "state": query["state"][0]})


def none_algorithm(standin: StandIn) -> str:
    return f"{_b64({'alg': 'none'})}.{_b64(standin.claims())}."


def shared_secret(standin: StandIn) -> str:
    # OpenID Connect allows HS256 keyed with the client secret; we never accept it (a leaked secret
    # would then mint identities).
    return jwt.encode({"alg": "HS256"}, standin.claims(), OctKey.import_key(CLIENT_SECRET))


BAD_TOKENS: list[tuple[str, dict[str, Any], Callable[[StandIn], str] | None]] = [
    ("another audience", {"aud": "another-application"}, None),
    ("another issuer", {"iss": "https://login.evil.example"}, None),
    ("expired", {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, None),
    ("another nonce", {"nonce": "a-nonce-of-another-sign-in"}, None),
    ("no nonce", {"nonce": None}, None),
    ("no subject", {"sub": None}, None),
    ("signed by another key", {}, lambda standin: standin.signed(OTHER_KEY)),
    ("the none algorithm", {}, none_algorithm),
    ("a shared-secret algorithm", {}, shared_secret),
    ("not a token", {}, lambda standin: "not.a.token"),
]


async def test_a_good_token_signs_in(app: httpx.AsyncClient, standin: StandIn, sessions: sessionmaker[Session]) -> None:
    answer = await sign_in(app, standin)
    assert answer.status_code == 303, answer.text
    assert stored(sessions)[:3] == (1, 1, 1)


@pytest.mark.parametrize(("changes", "make"), [c[1:] for c in BAD_TOKENS], ids=[c[0] for c in BAD_TOKENS])
async def test_a_bad_id_token_is_refused(
    app: httpx.AsyncClient,
    standin: StandIn,
    sessions: sessionmaker[Session],
    changes: dict[str, Any],
    make: Callable[[StandIn], str] | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    standin.changes = changes
    if make is not None:
        standin.make_token = make
    before = stored(sessions)
    with caplog.at_level("INFO", logger="spectra.web"):
        answer = await sign_in(app, standin)
    # The log names why, never a claim's value (an address, a nonce, the wrong audience or issuer).
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for value in (*(str(v) for v in changes.values() if isinstance(v, str)), CLIENT_SECRET):
        assert value not in logged
    assert answer.status_code == 401, answer.text
    assert "The identity provider&#39;s answer could not be verified: start again." in answer.text
    assert sso_routes.UNVERIFIED == "The identity provider's answer could not be verified: start again."
    assert stored(sessions) == before
    assert not [c for c in app.cookies.jar if c.name == "spectra-access"]


async def test_a_discovery_document_of_another_issuer_is_refused(
    app: httpx.AsyncClient, standin: StandIn, sessions: sessionmaker[Session]
) -> None:
    real = standin.issuer
    standin.issuer = "https://login.evil.example"  # what the document (and its tokens) now say
    before = stored(sessions)
    answer = await app.get("/sso/standin")
    assert answer.status_code == 502
    assert "The identity provider cannot be reached: try again later." in answer.text
    assert stored(sessions) == before
    standin.issuer = real
    assert (await app.get("/sso/standin")).status_code == 302  # asked again: good once it is right
