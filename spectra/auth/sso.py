"""Single sign-on with OpenID Connect: the providers' settings, and what a verified identity becomes.

Providers come from SPECTRA_SSO_PROVIDERS, a JSON list (see :class:`Provider`); a client secret is never
in it, only the NAME of the environment variable that holds it (`client_secret_env`), so the list itself
can live in a ConfigMap or Helm values. :func:`load_providers` refuses a bad list at start with the field's
place in it (`SPECTRA_SSO_PROVIDERS[0].issuer: ...`), never echoing a value.

The web floor (spectra.web.sso_routes) runs the OpenID Connect code flow with authlib (state, PKCE S256,
nonce, the ID token's signature by the provider's JWKS, `iss`, `aud`, `exp`) and hands the verified claims
here as an :class:`Identity`. :func:`sign_in` then, in the caller's transaction:

- spends the flow's state (a UsedLink row): a callback replayed with the same state is refused;
- requires `email_verified` true and, when the provider lists domains, an address in one of them;
- maps the groups claim through the provider's mappings to organizations and roles (the highest role
  wins when several groups name one organization); no match is a refusal and nothing is stored;
- creates the account on its first sign-in (active, no password: it signs in through its provider), or
  takes the existing account with that address (an invited one becomes active); a disabled account and
  a platform admin's are refused (platform admins sign in with their password and TOTP);
- adds, changes and removes the account's memberships of the organizations the provider's mappings
  name (memberships of other organizations are left alone), each audited with actor `sso:<provider>`;
  the last admin of an organization keeps their role (as everywhere: accounts.set_role);
- starts a session exactly as a password sign-in does (spectra.auth.sessions.start): the same access
  JWT and rotating refresh token. The local second factor is skipped: it is the identity provider's
  job. The session's `mfa_verified` says whether the provider reported a multi-factor sign-in (`amr`,
  RFC 8176), and `user.login` records `method: sso`, the provider and that.

Every refusal is an :class:`SsoRefused` whose text is what the person reads; :func:`record_refusal` audits
it (`user.login_failed`) in a transaction of its own.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from spectra.auth import accounts, sessions
from spectra.auth.audit import record
from spectra.auth.identity import Actor
from spectra.store.accounts import EMAIL_LEN, Membership, Role, UsedLink, User, UserStatus
from spectra.store.config import NAME_LEN

PROVIDERS_ENV: Final = "SPECTRA_SSO_PROVIDERS"
# How long a started sign-in may take at the identity provider (the state cookie's lifetime).
FLOW_LIFETIME: Final = timedelta(minutes=10)
# RFC 8176 methods that are a second factor, or "mfa" itself; two or more distinct methods count too.
_MFA_METHODS: Final = frozenset({"mfa", "otp", "hwk", "sms", "tel", "sc", "fpt", "face", "iris", "retina", "vbm"})
_LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_ROLE_RANK: Final = {Role.USER: 0, Role.ADMIN: 1}

STATE_USED: Final = "This sign-in was already completed: start again."
NOT_VERIFIED: Final = "The identity provider has not verified your email address, so it cannot sign you in here."
NO_EMAIL: Final = (
    "The identity provider did not send an email address: ask your administrator to release the email claim."
)
DISABLED: Final = "This account is disabled: ask an administrator."
PLATFORM_ADMIN: Final = (
    "Platform admins sign in with their password and two-factor authentication, not with single sign-on."
)

Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")]


class SsoRefused(Exception):
    """A sign-in refused: `str()` is what the person reads; `reason` is for the audit log and the log."""

    def __init__(self, message: str, reason: str, status: int = 403) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


class GroupMapping(BaseModel):
    """Members of `group` (a value of the provider's groups claim) get `role` in `organization`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    # An Organization's name; "" is standalone's implicit organization.
    organization: Annotated[str, StringConstraints(max_length=NAME_LEN, pattern=r"^([a-z0-9]([a-z0-9.-]*[a-z0-9])?)?$")]
    role: Role


class Provider(BaseModel):
    """One OpenID Connect provider (an entry of SPECTRA_SSO_PROVIDERS)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name  # in the paths /sso/<name> and /sso/<name>/callback
    title: Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
    issuer: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    # The NAME of the environment variable holding the client secret: secrets are never in this list.
    client_secret_env: Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]
    scopes: tuple[Annotated[str, StringConstraints(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]{1,64}$")], ...] = (
        "openid",
        "email",
        "profile",
    )
    groups_claim: Annotated[str, StringConstraints(min_length=1, max_length=128)] = "groups"
    mappings: tuple[GroupMapping, ...] = Field(min_length=1, max_length=500)
    allowed_domains: tuple[Annotated[str, StringConstraints(max_length=253)], ...] = ()

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("must be an https:// URL (the provider's issuer identifier)")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must have no query, fragment or user name")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ValueError("must be https:// (plain http only for a provider on this machine's loopback)")
        return value  # as the provider writes it: some end in "/" (Auth0), and `iss` is compared exactly

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "openid" not in value:
            raise ValueError("must include openid")
        if "email" not in value:
            raise ValueError("must include email (accounts are matched by their verified address)")
        return value

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        domains = tuple(domain.strip().lower().lstrip("@") for domain in value)
        for domain in domains:
            if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+", domain):
                raise ValueError(f"{domain!r} is not a domain name")
        return domains

    @property
    def metadata_url(self) -> str:
        """OpenID Connect Discovery's document of the issuer."""
        return f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"

    def client_secret(self) -> str:
        return os.environ.get(self.client_secret_env, "")


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Providers(BaseModel):
    providers: tuple[Provider, ...] = Field(max_length=20)


def load_providers(raw: str | None = None) -> tuple[Provider, ...]:
    """The providers of `raw` (default: $SPECTRA_SSO_PROVIDERS); none when it is unset or empty.

    ValueError naming the variable and the field (`SPECTRA_SSO_PROVIDERS[1].mappings[0].role: ...`) when
    the list is not valid or a provider's client secret variable is unset; values are never repeated.
    """
    text = (os.environ.get(PROVIDERS_ENV, "") if raw is None else raw).strip()
    if not text:
        return ()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{PROVIDERS_ENV}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, list):
        raise ValueError(f"{PROVIDERS_ENV}: must be a JSON list of providers")
    try:
        providers = _Providers.model_validate({"providers": data}).providers
    except ValidationError as exc:
        raise ValueError(f"{PROVIDERS_ENV}{_first_problem(exc)}") from None
    seen: set[str] = set()
    for index, provider in enumerate(providers):
        if provider.name in seen:
            raise ValueError(f"{PROVIDERS_ENV}[{index}].name: {provider.name!r} is the name of another provider")
        seen.add(provider.name)
        if not provider.client_secret():
            raise ValueError(
                f"{PROVIDERS_ENV}[{index}].client_secret_env: the variable {provider.client_secret_env} "
                "is not set or empty (it holds the client secret)"
            )
    return providers


@functools.lru_cache(maxsize=8)
def _listed(raw: str) -> tuple[tuple[str, str], ...]:
    try:
        return tuple((provider.name, provider.title) for provider in load_providers(raw))
    except ValueError:
        return ()


def sign_in_links() -> tuple[tuple[str, str], ...]:
    """(name, title) of each configured provider, for the login page; none when the setting is bad (the
    server refused to start with it anyway)."""
    return _listed(os.environ.get(PROVIDERS_ENV, ""))


_PATTERNS: Final = {
    "name": "must be lower-case letters, digits and dashes, at most 32 (it is in the path /sso/<name>)",
    "client_secret_env": "must be the name of an environment variable (A-Z, 0-9 and _), not the secret",
    "organization": "must be an Organization's name (or \"\" for standalone's implicit organization)",
    "scopes": "must be a scope name (visible ASCII, no spaces or quotes)",
}


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors(include_input=False, include_url=False)[0]
    loc = error["loc"][1:]  # past "providers"
    place = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    field = next((part for part in reversed(loc) if isinstance(part, str)), "")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "is required"
    elif error["type"] == "extra_forbidden" and field == "client_secret":
        message = "secrets are never in this list: put it in an environment variable and name that in client_secret_env"
    elif error["type"] == "extra_forbidden":
        message = "is not a setting of a provider (a typo?)"
    elif error["type"] == "too_short" and field == "mappings":
        message = "needs at least one mapping of a group to an organization and role"
    elif error["type"] == "enum":
        message = "must be user or admin"
    elif error["type"] == "string_pattern_mismatch" and field in _PATTERNS:
        message = _PATTERNS[field]
    return f"{place}: {message}"


# --- what a verified identity becomes ------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    """The claims of a verified ID token that matter here."""

    subject: str
    email: str | None
    email_verified: bool
    name: str = ""
    groups: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()  # `amr`

    @classmethod
    def of(cls, claims: Mapping[str, Any], provider: Provider) -> Identity:
        email = claims.get("email")
        amr = claims.get("amr")
        name = claims.get("name")
        return cls(
            subject=str(claims.get("sub", "")),
            email=email.strip().lower() if isinstance(email, str) and email.strip() else None,
            # Only the JSON value true: "true" or 1 from a sloppy provider is not a verification.
            email_verified=claims.get("email_verified") is True,
            name=name.strip()[:255] if isinstance(name, str) else "",
            groups=groups_of(claims, provider.groups_claim),
            methods=tuple(m for m in amr if isinstance(m, str)) if isinstance(amr, list) else (),
        )

    @property
    def multi_factor(self) -> bool:
        """Whether the provider says the person passed more than a password (RFC 8176 `amr`)."""
        methods = set(self.methods)
        return bool(methods & _MFA_METHODS) or len(methods) >= 2


def groups_of(claims: Mapping[str, Any], claim: str) -> tuple[str, ...]:
    """The groups in `claim`: a list of strings or one string; a dotted path (`realm_access.roles`) when no
    claim has that exact name (Auth0's namespaced claims are URLs with dots)."""
    value: Any = claims.get(claim)
    if value is None and "." in claim:
        value = claims
        for part in claim.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(group for group in value if isinstance(group, str))
    return ()


def wanted_memberships(provider: Provider, groups: Sequence[str]) -> dict[str, Role]:
    """organization -> role that `groups` give by the provider's mappings (the highest role wins)."""
    member_of = set(groups)
    wanted: dict[str, Role] = {}
    for mapping in provider.mappings:
        if mapping.group in member_of:
            current = wanted.get(mapping.organization)
            if current is None or _ROLE_RANK[mapping.role] > _ROLE_RANK[current]:
                wanted[mapping.organization] = mapping.role
    return wanted


@dataclass(frozen=True)
class Outcome:
    """What :func:`sign_in` changed, besides the session."""

    created: bool
    added: dict[str, str] = field(default_factory=dict)
    changed: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # last admins the mappings would have demoted or removed


def no_mapping(provider: Provider) -> str:
    return f"Your account at {provider.title} is in no group that gives access here: ask your administrator."


def not_allowed_domain(provider: Provider) -> str:
    return f"Addresses of your email domain do not sign in with {provider.title}."


def spend_state(session: Session, state: str, *, now: datetime) -> None:
    """Mark the flow's `state` used (a callback is good once); SsoRefused(STATE_USED) when it was."""
    key = hashlib.sha256(f"sso:{state}".encode()).hexdigest()
    try:
        with session.begin_nested():
            session.add(UsedLink(token_hash=key, used_at=now, expires_at=now + FLOW_LIFETIME))
    except IntegrityError:
        raise SsoRefused(STATE_USED, "state replayed", status=400) from None


def sign_in(
    session: Session,
    provider: Provider,
    identity: Identity,
    *,
    state: str,
    now: datetime,
    ip: str | None,
    user_agent: str | None,
) -> tuple[sessions.Issued, Outcome]:
    """Map `identity` to an account and memberships and start its session (see the module docstring);
    SsoRefused with nothing changed. Flushes; the caller commits."""
    if identity.email is None or len(identity.email) > EMAIL_LEN:
        raise SsoRefused(NO_EMAIL, "no email claim")
    if not identity.email_verified:
        raise SsoRefused(NOT_VERIFIED, "email not verified")
    domain = identity.email.rpartition("@")[2]
    if provider.allowed_domains and domain not in provider.allowed_domains:
        raise SsoRefused(not_allowed_domain(provider), "email domain not allowed")
    try:
        email = accounts.normalized_email(identity.email)
    except accounts.AccountError:
        raise SsoRefused(NO_EMAIL, "email claim not an address") from None
    known = accounts.organizations(session)
    wanted = {org: role for org, role in wanted_memberships(provider, identity.groups).items() if org in known}
    if not wanted:
        raise SsoRefused(no_mapping(provider), "no mapping")
    spend_state(session, state, now=now)
    user = accounts.find_user(session, email)
    if user is not None and user.status == UserStatus.DISABLED:
        raise SsoRefused(DISABLED, "account disabled")
    if user is not None and user.platform_admin:
        raise SsoRefused(PLATFORM_ADMIN, "platform admin")
    by_provider = Actor(name=f"sso:{provider.name}", ip=ip)
    created = user is None
    if user is None:
        user = User(email=email, display_name=identity.name, status=UserStatus.ACTIVE, created_at=now)
        session.add(user)
        session.flush()
        record(
            session,
            by_provider,
            "user.created",
            now=now,
            target=("User", None, email),
            details={"via": "sso", "provider": provider.name},
        )
    elif user.status == UserStatus.INVITED:
        user.status = UserStatus.ACTIVE
        record(
            session,
            by_provider,
            "user.activated",
            now=now,
            target=("User", None, email),
            details={"via": "sso", "provider": provider.name},
        )
    outcome = _sync_memberships(session, provider, user, wanted, actor=by_provider, now=now)
    organization = _organization_of(session, user)
    issued = sessions.start(
        session,
        user,
        organization=organization,
        now=now,
        mfa_verified=identity.multi_factor,
        ip=ip,
        user_agent=user_agent,
    )
    user.last_login_at = now
    record(
        session,
        Actor.of(issued.principal, ip=ip),
        "user.login",
        now=now,
        details={
            "method": "sso",
            "provider": provider.name,
            # The local second factor is not asked: it is the identity provider's job. `mfa` says
            # whether the provider reported one (amr).
            "mfa": identity.multi_factor,
            "mfa_by": "identity provider",
        },
    )
    return issued, Outcome(created, outcome.added, outcome.changed, outcome.removed, outcome.kept)


def _sync_memberships(
    session: Session, provider: Provider, user: User, wanted: Mapping[str, Role], *, actor: Actor, now: datetime
) -> Outcome:
    managed = {mapping.organization for mapping in provider.mappings}
    current = {
        m.organization: m
        for m in session.scalars(
            select(Membership).where(Membership.user_id == user.id, Membership.organization.in_(managed))
        )
    }
    outcome = Outcome(created=False)
    details = {"via": "sso", "provider": provider.name}
    for organization, role in sorted(wanted.items()):
        membership = current.get(organization)
        if membership is None:
            session.add(Membership(user_id=user.id, organization=organization, role=role, created_at=now))
            session.flush()
            record(
                session,
                actor,
                "member.added",
                now=now,
                organization=organization,
                target=("User", None, user.email),
                details={"role": role.value, **details},
            )
            outcome.added[organization] = role.value
        elif membership.role != role:
            try:
                accounts.set_role(session, user.email, organization, role, actor=actor, now=now)
                outcome.changed[organization] = role.value
            except accounts.AccountError:  # the organization's last admin stays one
                outcome.kept.append(organization)
    for organization in sorted(set(current) - set(wanted)):
        try:
            accounts.remove_member(session, user.email, organization, actor=actor, now=now)
            outcome.removed.append(organization)
        except accounts.AccountError:
            outcome.kept.append(organization)
    return outcome


def _organization_of(session: Session, user: User) -> str:
    """The organization the session acts in: the member's first by name (as a password sign-in without one)."""
    names = session.scalars(
        select(Membership.organization).where(Membership.user_id == user.id).order_by(Membership.organization)
    )
    return next(iter(names))


def record_refusal(
    session: Session, provider: Provider, refused: SsoRefused, *, email: str | None, now: datetime, ip: str | None
) -> None:
    """Audit a refused sign-in (`user.login_failed`), naming the account only when it exists."""
    user = None if email is None else accounts.find_user(session, email)
    record(
        session,
        Actor(name="anonymous", ip=ip),
        "user.login_failed",
        now=now,
        target=None if user is None else ("User", None, user.email),
        details={"reason": refused.reason, "method": "sso", "provider": provider.name},
    )
