"""The JSON endpoints of the web floor, as Operations for the OpenAPI document: signing in
(`/api/v1/auth/*`, served by spectra.web.auth_routes), heartbeat pushes (spectra.web.heartbeats) and a
public status page's JSON (spectra.statuspage.pages).

Those modules read their bodies field by field (`text_field`, `flag`) and answer plain dictionaries; the
models here describe what they read and answer, field for field, without changing them (the web floor
cannot import the console's Operation). A test checks these against what the endpoints answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from .operations import Operation

AUTH_TAG: Final = "auth"
HEARTBEATS_TAG: Final = "heartbeats"
PUBLIC_TAG: Final = "public"
HEARTBEAT: Final = "/api/v1/heartbeat/{token}"
PUBLIC_PAGE: Final = "/api/v1/status-pages/{slug}"
OPENAPI: Final = "/api/v1/openapi.json"


# --- signing in ----------------------------------------------------------------------------------------------


class LoginBody(BaseModel):
    email: str = Field(description="the account's email address")
    password: str
    organization: str | None = Field(None, description="the organization to act in (default: the first by name)")
    use_cookies: bool = Field(False, description="a browser: cookies and a CSRF token instead of tokens in the body")


class MfaBody(BaseModel):
    mfa_token: str = Field(description="from the login's answer")
    code: str = Field(description="the authenticator's 6 digits, or a recovery code")
    use_cookies: bool = False


class RefreshBody(BaseModel):
    refresh_token: str | None = Field(None, description="API clients; browsers send the refresh cookie instead")


class EnrolBody(BaseModel):
    mfa_token: str | None = Field(None, description="the login's token, when the organization requires 2FA")


class ConfirmBody(BaseModel):
    code: str
    mfa_token: str | None = Field(None, description="the login's token, when the organization requires 2FA")
    use_cookies: bool = False


class Impersonating(BaseModel):
    email: str


class Who(BaseModel):
    """Who the caller is (`GET /api/v1/auth/me`), as every session answer starts."""

    email: str
    organization: str | None
    role: str | None
    platform_admin: bool
    impersonator: Impersonating | None
    via: str = Field(description="session, api-token or cli")


class BrowserSession(Who):
    """A session for a browser: the cookies are set; the CSRF token is for the X-CSRF-Token header."""

    model_config = ConfigDict(title="BrowserSession")
    access_expires_at: datetime
    csrf_token: str
    recovery_codes: list[str] | None = Field(None, description="after confirming an enrolment: shown this once")


class ApiSession(Who):
    """A session for an API client: send `Authorization: Bearer <access_token>`."""

    access_expires_at: datetime
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int
    recovery_codes: list[str] | None = Field(None, description="after confirming an enrolment: shown this once")


class MfaRequired(BaseModel):
    """The password was right: the second factor next (`POST /api/v1/auth/mfa`)."""

    mfa_required: Literal[True]
    mfa_token: str


class MfaEnrolmentRequired(BaseModel):
    """The organization requires 2FA and the account has none: enrol with this token first."""

    mfa_enrolment_required: Literal[True]
    mfa_token: str


class Session(RootModel[BrowserSession | ApiSession]):
    """A session, for a browser or an API client."""


class LoginAnswer(RootModel[BrowserSession | ApiSession | MfaRequired | MfaEnrolmentRequired]):
    """A session, or the next step of signing in."""


class Enrolment(BaseModel):
    uri: str = Field(description="otpauth:// URI for an authenticator app")
    secret: str
    qr_svg: str


class RecoveryCodes(BaseModel):
    recovery_codes: list[str]


class Confirmed(RootModel[RecoveryCodes | BrowserSession | ApiSession]):
    """The recovery codes (a signed-in enrolment), or the session it started (with the login's token)."""


class SignedOut(BaseModel):
    signed_out: Literal[True]


# --- a public status page -----------------------------------------------------------------------------------


class _Camel(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class PublicDay(_Camel):
    day: str = Field(description="YYYY-MM-DD")
    uptime: float | None
    down_minutes: int = Field(alias="downMinutes")
    maintenance: bool


class PublicComponent(_Camel):
    name: str
    description_html: str | None = Field(alias="descriptionHtml")
    state: str
    uptime_percent: float | None = Field(alias="uptimePercent")
    days: list[PublicDay]


class PublicGroup(BaseModel):
    name: str
    components: list[PublicComponent]


class PublicUpdate(_Camel):
    at: str
    state: str
    body_html: str = Field(alias="bodyHtml")


class PublicIncident(_Camel):
    id: int
    title: str
    state: str
    impact: str
    components: list[str]
    started_at: str = Field(alias="startedAt")
    resolved_at: str | None = Field(alias="resolvedAt")
    updates: list[PublicUpdate]


class PublicMaintenance(_Camel):
    name: str
    message_html: str | None = Field(alias="messageHtml")
    start: str
    end: str
    active: bool
    components: list[str]


class PublicDayIncidents(BaseModel):
    day: str
    incidents: list[PublicIncident]


class PublicBranding(_Camel):
    logo_url: str | None = Field(alias="logoUrl")
    accent_color: str | None = Field(alias="accentColor")


class PublicNotice(BaseModel):
    message: str
    until: str | None


class PublicPage(_Camel):
    """A public status page (never its namespace, resource name, hostnames or monitors)."""

    slug: str
    title: str
    description_html: str | None = Field(alias="descriptionHtml")
    overall: str
    branding: PublicBranding
    subscriptions_enabled: bool = Field(alias="subscriptionsEnabled")
    groups: list[PublicGroup]
    active_incidents: list[PublicIncident] = Field(alias="activeIncidents")
    maintenance: list[PublicMaintenance]
    past_incidents: list[PublicDayIncidents] = Field(alias="pastIncidents")
    generated_at: str = Field(alias="generatedAt")
    stale: bool
    notice: PublicNotice | None


class PublicNotFound(BaseModel):
    error: Literal["not found"]


class Document(RootModel[dict[str, object]]):
    """An OpenAPI 3.1 document."""


_SIGN_IN: Final = (400, 401, 403, 429)

OPERATIONS: Final = (
    Operation("POST", "/api/v1/auth/login", "Sign in with email and password", AUTH_TAG, LoginAnswer,
              body=LoginBody, refusals=_SIGN_IN),
    Operation("POST", "/api/v1/auth/mfa", "The second factor of a sign-in", AUTH_TAG, Session, body=MfaBody,
              refusals=_SIGN_IN),
    Operation("POST", "/api/v1/auth/mfa/enrol", "Begin two-factor enrolment (a new secret)", AUTH_TAG,
              Enrolment, body=EnrolBody, refusals=(401, 403, 409)),
    Operation("POST", "/api/v1/auth/mfa/confirm", "Confirm two-factor enrolment with a code", AUTH_TAG,
              Confirmed, body=ConfirmBody, refusals=_SIGN_IN),
    Operation("POST", "/api/v1/auth/refresh", "A new access token (the refresh token rotates)", AUTH_TAG, Session,
              body=RefreshBody, refusals=(400, 401, 403)),
    Operation("POST", "/api/v1/auth/logout", "End this session", AUTH_TAG, SignedOut, refusals=(401, 403)),
    Operation("POST", "/api/v1/auth/logout-everywhere", "End every session of the account", AUTH_TAG, SignedOut,
              refusals=(401, 403)),
    Operation("GET", "/api/v1/auth/me", "Who the caller is", AUTH_TAG, Who, refusals=(401,)),
    Operation("GET", HEARTBEAT, "A heartbeat monitor's push (cron jobs: curl URL)", HEARTBEATS_TAG,
              refusals=(404, 429)),
    Operation("POST", HEARTBEAT, "A heartbeat monitor's push", HEARTBEATS_TAG, refusals=(404, 429)),
    Operation("GET", PUBLIC_PAGE, "A public status page as JSON (cached: ETag, Last-Modified)", PUBLIC_TAG,
              PublicPage, refusals=(404,)),
    Operation("GET", OPENAPI, "This document (cached: ETag)", PUBLIC_TAG, Document, refusals=()),
)  # fmt: skip

# Operations anyone may call: no credentials (the document says `security: []`).
PUBLIC: Final = frozenset(
    {
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/mfa"),
        ("POST", "/api/v1/auth/refresh"),
        ("GET", HEARTBEAT),
        ("POST", HEARTBEAT),
        ("GET", PUBLIC_PAGE),
        ("GET", OPENAPI),
    }
)
