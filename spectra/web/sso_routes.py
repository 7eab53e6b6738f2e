"""Single sign-on over HTTP: the OpenID Connect authorization code flow with each configured provider.

- `GET /sso/{provider}` starts a sign-in: it redirects the browser to the provider's authorization
  endpoint with a random `state`, a `nonce` and a PKCE S256 challenge, and keeps them (and the PKCE
  verifier) in a short-lived cookie: signed, HttpOnly, SameSite=Lax (the provider's redirect back is a
  top-level navigation from another site), Path=/sso, 10 minutes. Nothing in the store changes.
- `GET /sso/{provider}/callback` finishes it: authlib checks `state` against the cookie, exchanges the
  code (with the PKCE verifier) at the token endpoint, and verifies the ID token: its signature by the
  provider's JWKS (asymmetric algorithms only), `iss` (the configured issuer, which the discovery
  document must also name), `aud` (our client id), `exp`/`iat` and `nonce`. spectra.auth.sso then maps
  the claims to an account and memberships and starts a session, which goes to the browser as the same
  cookies `/login` sets (spectra.web.auth_routes.set_session_cookies); the answer redirects to `/`.

Refusals are the login page with the reason, never a traceback: an unknown provider (404), a missing,
altered or expired state or a callback already used (400), a provider that refused or whose answer does
not verify (401), one that cannot be reached (502), and the account refusals of spectra.auth.sso (403).

The connections to the provider (discovery, token, JWKS) use authlib's httpx client with a 10 s
timeout and no redirects. They do not pass the egress guard (spectra.domain.egress): that guards what
tenants can steer, and a provider's issuer is the operator's setting, like the SendGrid and Twilio
endpoints; it may well be inside the cluster (a Keycloak service), which the guard would refuse.
"""

from __future__ import annotations

import functools
import logging
import re
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc.errors import JoseError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from spectra.auth import accounts, sso
from spectra.runtime.clients import client_key
from spectra.store import utcnow
from spectra.store.engine import retry_conflicts
from spectra.tokens import secret_key
from spectra.web import credentials
from spectra.web.auth_routes import Granted, page, set_session_cookies

with warnings.catch_warnings():
    # authlib >= 1.8 warns at import that it would rather use the httpx2 fork; it still uses httpx, ours.
    # authlib.deprecate first: importing it puts an "always" filter in front, which the next line overrides.
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.base_client.errors import MismatchingStateError
    from authlib.integrations.starlette_client import OAuth, OAuthError, StarletteOAuth2App

log = logging.getLogger("spectra.web")

IDP_TIMEOUT_S: Final = 10.0
# The algorithms an ID token may be signed with: the provider's keys, never a shared secret or none.
ID_TOKEN_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
_STATE_INFO: Final = b"spectra/web/sso-state/v1"
_HEADERS: Final = {"Cache-Control": "no-store"}

UNKNOWN_PROVIDER: Final = "There is no single sign-on provider of that name."
STATE_INVALID: Final = "This sign-in was not started here, or took longer than 10 minutes: start again."
UNVERIFIED: Final = "The identity provider's answer could not be verified: start again."
UNREACHABLE: Final = "The identity provider cannot be reached: try again later."


class _BadMetadata(Exception):
    """The provider's discovery document is not one we can trust; the text is for the log."""


def sso_routes(
    factory: sessionmaker[Session],
    *,
    providers: Sequence[sso.Provider] | None = None,
    clock: Callable[[], datetime] = utcnow,
    public_url: str | None = None,
) -> list[BaseRoute]:
    """The /sso routes of `providers` (default: SPECTRA_SSO_PROVIDERS; ValueError naming the field when it
    is not valid); none without providers."""
    chosen = tuple(sso.load_providers() if providers is None else providers)
    if not chosen:
        return []
    web = SsoWeb(factory, chosen, clock=clock, public_url=public_url)
    names = credentials.cookie_names()
    state_cookie = Middleware(
        SessionMiddleware,
        secret_key=_state_key(secret_key()),
        session_cookie="__Secure-spectra-sso" if names.secure else "spectra-sso",
        max_age=int(sso.FLOW_LIFETIME.total_seconds()),
        path="/sso",
        same_site="lax",
        https_only=names.secure,
    )
    routes = [
        Route("/{provider}", web.start, methods=["GET"]),
        Route("/{provider}/callback", web.callback, methods=["GET"]),
    ]
    return [Mount("/sso", routes=routes, middleware=[state_cookie])]


@functools.lru_cache(maxsize=4)
def _state_key(secret: str) -> str:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=_STATE_INFO).derive(secret.encode()).hex()


class SsoWeb:
    """The two endpoints, over one authlib client per provider (it caches discovery and the JWKS)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        providers: Sequence[sso.Provider],
        *,
        clock: Callable[[], datetime] = utcnow,
        public_url: str | None = None,
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.base = accounts.links_base(public_url)
        self.providers = {provider.name: provider for provider in providers}
        self.oauth = OAuth()
        for provider in providers:
            self.oauth.register(
                provider.name,
                client_id=provider.client_id,
                client_secret=provider.client_secret(),
                server_metadata_url=provider.metadata_url,
                client_kwargs={
                    "scope": " ".join(provider.scopes),
                    "code_challenge_method": "S256",
                    "timeout": IDP_TIMEOUT_S,
                    "follow_redirects": False,
                },
            )

    def _provider(self, request: Request) -> tuple[sso.Provider, StarletteOAuth2App]:
        provider = self.providers.get(str(request.path_params["provider"]))
        client = None if provider is None else self.oauth.create_client(provider.name)
        if provider is None or not isinstance(client, StarletteOAuth2App):
            raise _Refused(404, UNKNOWN_PROVIDER)
        return provider, client

    async def start(self, request: Request) -> Response:
        try:
            provider, client = self._provider(request)
            await _trusted_metadata(provider, client)
            redirect: Response = await client.authorize_redirect(request, self._callback_url(provider))
        except _Refused as refused:
            return refused.page()
        except (httpx.HTTPError, ValueError, _BadMetadata) as exc:
            log.warning("single sign-on: the provider's discovery failed: %s", _reason(exc))
            return _Refused(502, UNREACHABLE).page()
        redirect.headers.update(_HEADERS)
        return redirect

    def _callback_url(self, provider: sso.Provider) -> str:
        return f"{self.base}/sso/{provider.name}/callback"

    async def callback(self, request: Request) -> Response:
        try:
            provider, client = self._provider(request)
            claims = await self._verified_claims(provider, client, request)
        except _Refused as refused:
            return refused.page()
        identity = sso.Identity.of(claims, provider)
        state = request.query_params.get("state", "")
        ip, agent = client_key(request), request.headers.get("user-agent")
        now = self.clock()
        try:
            granted = await run_in_threadpool(self._sign_in, provider, identity, state, now, (ip, agent))
        except sso.SsoRefused as refused:
            log.info("single sign-on refused (%s): %s", provider.name, refused.reason)
            await run_in_threadpool(self._record_refusal, provider, refused, identity.email, now, ip)
            return _Refused(refused.status, str(refused)).page()
        response = RedirectResponse("/", status_code=303, headers=_HEADERS)
        set_session_cookies(response, granted, now=now)
        return response

    async def _verified_claims(
        self, provider: sso.Provider, client: StarletteOAuth2App, request: Request
    ) -> dict[str, Any]:
        try:
            await _trusted_metadata(provider, client)
            token = await client.authorize_access_token(
                request, claims_options={"iss": {"essential": True, "values": [provider.issuer]}}
            )
        except MismatchingStateError:
            raise _Refused(400, STATE_INVALID) from None
        except OAuthError as exc:
            code = exc.error if isinstance(exc.error, str) and re.fullmatch(r"[a-z_]{1,40}", exc.error) else "error"
            log.info("single sign-on (%s): the provider answered %s", provider.name, code)
            if code == "access_denied":
                raise _Refused(401, f"{provider.title} did not sign you in (access denied).") from None
            raise _Refused(401, UNVERIFIED) from None
        except (httpx.HTTPError, _BadMetadata) as exc:
            log.warning("single sign-on (%s): the provider failed: %s", provider.name, _reason(exc))
            raise _Refused(502, UNREACHABLE) from None
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            log.info("single sign-on (%s): the ID token was refused: %s", provider.name, _token_refusal(exc))
            raise _Refused(401, UNVERIFIED) from None
        claims = token.get("userinfo") if isinstance(token, dict) else None
        if not isinstance(claims, dict):
            log.info("single sign-on (%s): no ID token in the token response", provider.name)
            raise _Refused(401, UNVERIFIED)
        return claims

    def _sign_in(
        self,
        provider: sso.Provider,
        identity: sso.Identity,
        state: str,
        now: datetime,
        client: tuple[str, str | None],
    ) -> Granted:
        ip, agent = client

        def attempt() -> Granted:
            with self.factory.begin() as session:
                issued, _ = sso.sign_in(session, provider, identity, state=state, now=now, ip=ip, user_agent=agent)
                return Granted.of(issued)

        return retry_conflicts(attempt)

    def _record_refusal(
        self, provider: sso.Provider, refused: sso.SsoRefused, email: str | None, now: datetime, ip: str
    ) -> None:
        def attempt() -> None:
            with self.factory.begin() as session:
                sso.record_refusal(session, provider, refused, email=email, now=now, ip=ip)

        retry_conflicts(attempt)


async def _trusted_metadata(provider: sso.Provider, client: StarletteOAuth2App) -> None:
    """Load the discovery document (once; authlib keeps it) and hold it to what we trust: it must name the
    configured issuer (OpenID Connect Discovery 1.0, section 4.3: a document of another issuer is a
    mix-up), and ID tokens are verified with asymmetric algorithms only."""
    metadata: dict[str, Any] = await client.load_server_metadata()
    if metadata.get("issuer") != provider.issuer:
        metadata.pop("_loaded_at", None)  # asked again next time
        raise _BadMetadata(f"the discovery document names issuer {str(metadata.get('issuer'))[:200]!r}")
    offered = metadata.get("id_token_signing_alg_values_supported")
    listed = offered if isinstance(offered, list) else ["RS256"]
    metadata["id_token_signing_alg_values_supported"] = [alg for alg in listed if alg in ID_TOKEN_ALGORITHMS] or [
        "RS256"
    ]


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _token_refusal(exc: BaseException) -> str:
    """What the log says of a refused ID token: the error's type and authlib's error code, never its
    message, which may quote the token or a claim's value."""
    code = getattr(exc, "error", None)
    return type(exc).__name__ + (f" ({code})" if isinstance(code, str) and code.isascii() and len(code) < 60 else "")


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def page(self) -> Response:
        response = page("login.html", self.status, error=self.message, sso=sso.sign_in_links())
        response.headers.update(_HEADERS)
        return response
