"""`Authorization: Bearer` on the JSON API: who is calling, and the answers of RFC 6750 when not allowed.

- no credentials (no header, another scheme, an empty token): 401 with `WWW-Authenticate: Bearer
  realm="spectra"` and no error code (section 3.1: the client may not know it needs one);
- a token that is not good (unknown, malformed, revoked, expired, its owner disabled or no longer a
  member): 401, `error="invalid_token"`, one message for all (the reason goes to the log, at info);
- a good token whose scopes do not allow the action: 403, `error="insufficient_scope"` naming the
  scopes that would; another tenant's object: 404.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session
from starlette.responses import JSONResponse

from spectra.auth import api_tokens, policy
from spectra.auth.identity import SCOPES, Principal

log = logging.getLogger("spectra.web")

REALM: Final = 'Bearer realm="spectra"'


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme in any case), or None."""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def authenticate(session: Session, token: str, *, now: datetime) -> Principal:
    """The principal of a bearer token, or `api_tokens.InvalidApiToken` (logged with its reason)."""
    try:
        return api_tokens.authenticate(session, token, now=now)
    except api_tokens.InvalidApiToken as refused:
        log.info("API token refused: %s", refused.reason)
        raise


def needs_credentials(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, 401, headers={"WWW-Authenticate": REALM})


def invalid_token(refused: api_tokens.InvalidApiToken) -> JSONResponse:
    return JSONResponse({"error": str(refused)}, 401, headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'})


SESSION_ENDED: Final = "invalid or expired access token: refresh it or sign in again"


def session_ended() -> JSONResponse:
    """A session's access token (header or cookie) that is not good: one message for every reason."""
    return JSONResponse({"error": SESSION_ENDED}, 401, headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'})


def denied(principal: Principal, action: policy.Action, refused: policy.Denied) -> JSONResponse:
    """403 or 404 for a refusal of the policy; a token lacking the scope hears which scopes would do."""
    headers: dict[str, str] = {}
    if refused.status == 403 and principal.scopes is not None and action not in policy.scope_actions(principal.scopes):
        granting = " ".join(scope for scope in SCOPES if action in policy.SCOPE_ACTIONS[scope])
        headers["WWW-Authenticate"] = f'{REALM}, error="insufficient_scope", scope="{granting}"'
    return JSONResponse({"error": str(refused)}, refused.status, headers=headers)
