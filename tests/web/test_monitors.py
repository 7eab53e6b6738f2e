"""`/api/v1/monitors`: the overview as JSON (`monitor_json`); with an API token, the monitors of the token's
organization, anywhere; without one, every monitor on loopback (to loopback Hosts only), else 401."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette

from spectra.auth import api_tokens
from spectra.store import ApiToken, Role, monitor_overview, save_states
from spectra.web.bearer import SESSION_ENDED
from spectra.web.monitors import monitor_json, monitor_routes, names_loopback
from tests.factories.accounts import TOKEN_MADE_AT, member, organization_resource, token_of
from tests.factories.store import NOW, monitor_factory, state_row
from tests.support.databases import sqlite_only

NEEDS_CREDENTIALS = 'Bearer realm="spectra"'
INVALID_TOKEN = 'Bearer realm="spectra", error="invalid_token"'


def test_overview_json_has_the_api_fields(session: Session) -> None:
    monitor = monitor_factory(session)("api", locations=("eu",))
    save_states(session, [state_row(monitor.resource_id, "eu", "up")])
    (item,) = monitor_overview(session, now=NOW)
    assert monitor_json(item) == {
        "namespace": "default",
        "name": "api",
        "type": "http",
        "target": "https://api.example",
        "paused": False,
        "state": "up",
        "lastCheck": NOW.isoformat(),
        "latencyMs": 12.5,
        "reason": "up in eu",
        "locations": [{"location": "eu", "state": "up", "lastCheck": NOW.isoformat(), "reporting": True}],
    }


def test_a_monitor_never_checked_has_no_times(session: Session) -> None:
    monitor_factory(session)("fresh", locations=("eu",))
    (item,) = monitor_overview(session, now=NOW)
    body = monitor_json(item)
    assert (body["state"], body["lastCheck"], body["latencyMs"], body["reason"]) == ("pending", None, None, "")
    assert body["locations"] == [{"location": "eu", "state": "pending", "lastCheck": None, "reporting": False}]


def client(
    sessions: sessionmaker[Session], *, loopback_only: bool, base_url: str = "http://spectra.test"
) -> httpx.AsyncClient:
    app = Starlette(routes=monitor_routes(sessions, loopback_only=loopback_only))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


def standalone_token(sessions: sessionmaker[Session]) -> str:
    """A `read` token of a member of standalone's implicit organization (no Organization stored)."""
    with sessions.begin() as session:
        return token_of(session, member(session, "solo@example.com", "", Role.USER))


@sqlite_only
async def test_on_loopback_the_api_is_open(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        monitor_factory(session)("api", locations=("eu",))
    async with client(sessions, loopback_only=True, base_url="http://127.0.0.1:8080") as http:
        response = await http.get("/api/v1/monitors")
    assert response.status_code == 200
    assert [(item["name"], item["state"]) for item in response.json()] == [("api", "pending")]


# What a browser sends as Host: the page's own name (DNS rebinding keeps it), or a loopback address.
LOOPBACK_HOSTS = ["127.0.0.1:8080", "127.0.0.1", "localhost", "LOCALHOST:80", "localhost:1", "[::1]:8080", "[::1]"]
LOOPBACK_HOSTS += ["127.0.0.2:9000", "127.0.0.1:"]
FOREIGN_HOSTS = ["evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost.evil", "localhost.evil:80"]
FOREIGN_HOSTS += ["", "evil@127.0.0.1", "127.0.0.1/x", "127.0.0.1?a", "127.0.0.1#a", "127.0.0.1:port", "::1"]
FOREIGN_HOSTS += ["[::ffff:127.0.0.1]", "0.0.0.0", "10.0.0.1:8080", "[fe80::1]", "localhost:99999", " localhost"]


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
def test_hosts_that_name_loopback(host: str) -> None:
    assert names_loopback(host)


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_hosts_that_do_not(host: str) -> None:
    assert not names_loopback(host)


@sqlite_only
async def test_on_loopback_a_foreign_host_is_misdirected(sessions: sessionmaker[Session]) -> None:
    async with client(sessions, loopback_only=True) as http:
        refused = {host: await http.get("/api/v1/monitors", headers={"Host": host}) for host in FOREIGN_HOSTS[:6]}
        served = {host: await http.get("/api/v1/monitors", headers={"Host": host}) for host in LOOPBACK_HOSTS}
    assert {host: response.status_code for host, response in refused.items()} == dict.fromkeys(FOREIGN_HOSTS[:6], 421)
    assert refused["evil.example"].json() == {"error": "this API answers only to localhost and loopback addresses"}
    assert {host: response.status_code for host, response in served.items()} == dict.fromkeys(LOOPBACK_HOSTS, 200)


@sqlite_only
async def test_behind_a_token_any_host_is_served(sessions: sessionmaker[Session]) -> None:
    # A rebinding page cannot send the bearer token, so the Host rule is only for the open API.
    token = standalone_token(sessions)
    for loopback_only in (False, True):
        async with client(sessions, loopback_only=loopback_only) as http:
            response = await http.get(
                "/api/v1/monitors", headers={"Host": "status.example.com", "Authorization": f"Bearer {token}"}
            )
        assert response.status_code == 200


@sqlite_only
async def test_elsewhere_it_needs_an_api_token(sessions: sessionmaker[Session]) -> None:
    token = standalone_token(sessions)
    cases: list[tuple[str | None, int, str | None]] = [
        # (Authorization, status, WWW-Authenticate)
        (None, 401, NEEDS_CREDENTIALS),
        (f"Basic {token}", 401, NEEDS_CREDENTIALS),
        ("Bearer", 401, NEEDS_CREDENTIALS),
        ("Bearer   ", 401, NEEDS_CREDENTIALS),
        ("Bearer not-the-token", 401, INVALID_TOKEN),  # not spt_...: taken for a session's access token
        (f"Bearer {token}x", 401, INVALID_TOKEN),
        (f"Bearer {token[:-1]}", 401, INVALID_TOKEN),
        (f"Bearer spt_{'A' * 43}", 401, INVALID_TOKEN),
        (f"Bearer {token}", 200, None),
        (f"bearer {token}", 200, None),  # the scheme is case-insensitive
        (f"BEARER  {token} ", 200, None),
    ]
    async with client(sessions, loopback_only=False) as http:
        for authorization, status, challenge in cases:
            headers = {"Authorization": authorization} if authorization is not None else {}
            response = await http.get("/api/v1/monitors", headers=headers)
            assert (authorization, response.status_code) == (authorization, status)
            assert response.headers.get("www-authenticate") == challenge
            if challenge == NEEDS_CREDENTIALS:
                assert response.json() == {"error": "this API needs an API token: Authorization: Bearer spt_..."}
            elif challenge == INVALID_TOKEN:
                session_token = not str(authorization).split()[-1].startswith("spt_")
                assert response.json() == {"error": SESSION_ENDED if session_token else "invalid API token"}
            else:
                assert response.json() == []


async def test_a_token_sees_its_organizations_monitors_only(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        organization_resource(session, "acme", ["acme-prod", "acme-dev"])
        organization_resource(session, "globex", ["globex"])
        make = monitor_factory(session)
        for namespace, name in [("acme-prod", "api"), ("acme-dev", "api"), ("globex", "shop"), ("default", "infra")]:
            make(name, namespace=namespace, locations=("eu",))
        uma = member(session, "uma@acme.example", "acme", Role.USER)
        gina = member(session, "gina@globex.example", "globex", Role.ADMIN)
        acme_read = token_of(session, uma, "read")
        acme_incidents = token_of(session, uma, "incidents:write", name="pager")
        globex_admin = token_of(session, gina, "admin", name="ops")
        revoked = token_of(session, gina, "read", name="old")
        row = session.scalars(select(ApiToken).where(ApiToken.name == "old")).one()
        api_tokens.revoke(session, gina, row.id, now=TOKEN_MADE_AT)

    async with client(sessions, loopback_only=False) as http:

        async def names(token: str, **headers: str) -> list[str]:
            response = await http.get("/api/v1/monitors", headers={"Authorization": f"Bearer {token}", **headers})
            assert response.status_code == 200, response.text
            return [f"{item['namespace']}/{item['name']}" for item in response.json()]

        assert await names(acme_read) == ["acme-dev/api", "acme-prod/api"]
        assert await names(globex_admin) == ["globex/shop"]
        no_scope = await http.get("/api/v1/monitors", headers={"Authorization": f"Bearer {acme_incidents}"})
        gone = await http.get("/api/v1/monitors", headers={"Authorization": f"Bearer {revoked}"})

    assert no_scope.status_code == 403
    assert no_scope.json() == {"error": "this API token's scopes do not allow monitors.read"}
    assert (
        no_scope.headers["www-authenticate"] == 'Bearer realm="spectra", error="insufficient_scope", scope="read admin"'
    )
    assert (gone.status_code, gone.json(), gone.headers["www-authenticate"]) == (
        401,
        {"error": "invalid API token"},
        INVALID_TOKEN,
    )
    # On loopback, a token still sees only its organization's monitors; without one, every monitor.
    async with client(sessions, loopback_only=True, base_url="http://127.0.0.1:8080") as http:
        mine = await http.get("/api/v1/monitors", headers={"Authorization": f"Bearer {acme_read}"})
        everything = await http.get("/api/v1/monitors")
    assert [item["namespace"] for item in mine.json()] == ["acme-dev", "acme-prod"]
    assert len(everything.json()) == 4
    with sessions() as session:
        used = {row.name: row.last_used_at for row in session.scalars(select(ApiToken))}
    # Each use is recorded (and committed), a refused scope's too; a revoked token's is not.
    assert {name for name, at in used.items() if at is not None} == {"ci", "pager", "ops"}
