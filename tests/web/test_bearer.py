"""The bearer layer of the JSON API: parsing the header, logging a refusal's reason (never the token),
and the RFC 6750 answers."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.orm import Session

from spectra.auth.api_tokens import InvalidApiToken
from spectra.auth.identity import Principal
from spectra.auth.policy import Action, Forbidden, NotFound
from spectra.store import Role
from spectra.web.bearer import authenticate, bearer_token, denied
from tests.factories.accounts import TOKEN_MADE_AT
from tests.support.databases import sqlite_only

TOKEN = "spt_" + "k" * 43


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (f"Bearer {TOKEN}", TOKEN),
        (f"bearer {TOKEN}", TOKEN),
        (f"Bearer   {TOKEN}  ", TOKEN),
        ("Bearer", None),
        ("Bearer ", None),
        (f"Basic {TOKEN}", None),
        (f"Bearer{TOKEN}", None),
        ("", None),
    ],
)
def test_bearer_token(header: str, token: str | None) -> None:
    assert bearer_token(header) == token


@sqlite_only
def test_a_refusal_logs_its_reason_not_the_token(session: Session, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="spectra.web"), pytest.raises(InvalidApiToken):
        authenticate(session, TOKEN, now=TOKEN_MADE_AT)
    assert [record.getMessage() for record in caplog.records] == ["API token refused: unknown"]
    assert "k" * 10 not in caplog.text


USER_TOKEN = Principal(
    user_id=1,
    email="uma@acme.example",
    organization="acme",
    role=Role.USER,
    scopes=frozenset({"read"}),
    via="api-token",
)


def test_denied_answers() -> None:
    scope = denied(
        USER_TOKEN, Action.INCIDENTS_WRITE, Forbidden("this API token's scopes do not allow incidents.write")
    )
    assert scope.status_code == 403
    assert scope.headers["www-authenticate"] == (
        'Bearer realm="spectra", error="insufficient_scope", scope="incidents:write admin"'
    )
    # Refused by the role, not the scopes: no scope would help, so no challenge.
    role = denied(USER_TOKEN, Action.MONITORS_READ, Forbidden("the role user does not allow monitors.read"))
    assert (role.status_code, "www-authenticate" in role.headers) == (403, False)
    elsewhere = denied(USER_TOKEN, Action.INCIDENTS_WRITE, NotFound())
    assert (elsewhere.status_code, elsewhere.body, "www-authenticate" in elsewhere.headers) == (
        404,
        b'{"error":"not found"}',
        False,
    )
