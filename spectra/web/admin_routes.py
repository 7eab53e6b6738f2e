"""JSON endpoints for organization admins and platform admins: thin handlers over spectra.auth.

Every handler identifies the caller (`AuthApi.caller`: an access token, an API token or the session
cookie, with the CSRF token on every state change made with a cookie), asks spectra.auth.policy, and calls
the same functions as the command line (`spectra users ...`, `spectra maintenance global ...`), which
audit what they do with the caller as the actor (both names while a platform admin impersonates).

The organization is the caller's (the `org` claim of its session or token); `?organization=NAME` names
another, which the policy allows only where it allows it (platform admins read every organization's
audit log and manage every organization's members; everything else answers 404 for an organization that
is not the caller's). A member,
token or impersonation of another tenant is 404 as well; a role that does not allow the action is 403.

A session's caller is checked against the store before anything is read or changed
(`sessions.is_active`): an admin who logged out, was disabled or removed, or whose impersonation ended,
loses these powers at once rather than when the access token expires.

Field names are camelCase, in bodies and answers, as everywhere under /api/v1 but /api/v1/auth (which keeps
OAuth 2.0's names): a body taking `requireMfa` refuses `require_mfa` as an unknown field. Lists answer
`{"items": [...], "next": <the next page's relative URL, or null>}` and take `limit` (1 to 500, default 50)
and `cursor` (from `next`: base64url of the last item's key, one encoding for every list here); each
list keeps one order (members by email, tenants by name, tokens, impersonations and audit records newest
first by id), so a page never repeats or skips an item that was there.

Errors are RFC 9457 problem details with the exact sentence; bodies are JSON objects validated strictly
(types, unknown fields, roles) with `field: message` details. Nothing is cached (`Cache-Control:
no-store`); GET never changes anything.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, Protocol, TypeVar
from urllib.parse import urlencode

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from pydantic.alias_generators import to_camel
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from spectra.auth import accounts, api_tokens, audit, impersonation, organization_settings, policy, sessions, tenants
from spectra.auth import global_maintenance as maintenance
from spectra.auth.identity import Actor, Principal
from spectra.auth.policy import Action
from spectra.domain.global_maintenance import parse_until
from spectra.runtime.clients import client_key
from spectra.runtime.timefmt import rfc3339
from spectra.store import utcnow
from spectra.store.accounts import EMAIL_LEN, ApiToken, Membership, User, UserSession
from spectra.store.engine import retry_conflicts
from spectra.tokens import Tokens
from spectra.web.auth_routes import AuthApi, Granted, Refusal, SignIn, problem, session_answer, session_fields
from spectra.web.bearer import REALM
from spectra.web.bodies import read_json

log = logging.getLogger("spectra.web")

T = TypeVar("T")
K = TypeVar("K", int, str)

PAGE_DEFAULT: Final = 50  # items per page of a list unless `limit` says
PAGE_MAX: Final = 500  # as every list under /api/v1
CURSOR_MAX: Final = 400  # characters of a `cursor`: the key of an item (an email at most 320) in base64url
EXPORT_BATCH: Final = 500  # records read per query while an export streams
EXPORT_TYPES: Final = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
ACTION_MAX: Final = 100  # an audit action prefix (`member.`, `user.login`)
DISPLAY_NAME_MAX: Final = 255  # the column's size
SCOPES_MAX: Final = 10

BAD_EMAIL: Final = f"email: {accounts.BAD_EMAIL}"
BAD_LIMIT: Final = f"limit must be a whole number from 1 to {PAGE_MAX}."
BAD_CURSOR: Final = "cursor is not valid: start again from the first page."
BAD_FORMAT: Final = "format must be json, csv or jsonl."
AUDIT_PARAMETERS: Final = ("action", "actor", "since", "until", "organization", "limit", "cursor", "format")
_CURSOR_TEXT: Final = re.compile(r"[A-Za-z0-9_-]+")

_HEADERS: Final = {"Cache-Control": "no-store"}

# Refusals of what was asked (not of who asks): 400 with their own sentence.
REFUSED_AS_ASKED: Final = (
    accounts.AccountError,
    api_tokens.TokenProblem,
    impersonation.ImpersonationError,
    maintenance.GlobalMaintenanceRefused,
)


# --- bodies -------------------------------------------------------------------------------------------


class _Body(BaseModel):
    # camelCase by alias only, so a snake_case spelling of a field is an unknown field, not a silent twin.
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=False, validate_by_alias=True, extra="forbid", strict=True,
        frozen=True,
    )  # fmt: skip


class InviteBody(_Body):
    email: StrictStr
    role: Literal["user", "admin"]
    name: StrictStr = Field(default="", max_length=DISPLAY_NAME_MAX)


class RoleBody(_Body):
    role: Literal["user", "admin"]


class SettingsBody(_Body):
    require_mfa: StrictBool


class TokenBody(_Body):
    name: StrictStr
    scopes: list[StrictStr] = Field(max_length=SCOPES_MAX)
    expires_at: AwareDatetime | None = None


class ImpersonationBody(_Body):
    email: StrictStr
    organization: StrictStr
    reason: StrictStr
    minutes: StrictInt = impersonation.DEFAULT_MINUTES
    use_cookies: StrictBool = False


class MaintenanceBody(_Body):
    message: StrictStr
    until: StrictStr | None = None  # an ISO 8601 time with an offset, or a duration (90m, 2h, 1d)
    show_on_status_pages: StrictBool = False


def _email(text: str) -> str:
    try:
        return accounts.normalized_email(text)
    except accounts.AccountError:
        raise Refusal(400, BAD_EMAIL) from None


# --- JSON forms ---------------------------------------------------------------------------------------


def _member(summary: accounts.UserSummary) -> dict[str, Any]:
    return {
        "email": summary.email,
        "name": summary.display_name,
        "role": summary.memberships[0][1].value if summary.memberships else None,
        "status": summary.status.value,
        "mfa": summary.mfa_enabled,
        "platformAdmin": summary.platform_admin,
        "createdAt": rfc3339(summary.created_at),
        "lastSignInAt": rfc3339(summary.last_login_at),
    }


def _token(row: ApiToken, *, now: datetime) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "scopes": list(row.scopes),
        "state": api_tokens.state(row, now=now).value,
        "createdAt": rfc3339(row.created_at),
        "expiresAt": rfc3339(row.expires_at),
        "lastUsedAt": rfc3339(row.last_used_at),
        "revokedAt": rfc3339(row.revoked_at),
    }


def _tenant(tenant: tenants.Tenant) -> dict[str, Any]:
    return {
        "name": tenant.name,
        "displayName": tenant.display_name,
        "namespaces": list(tenant.namespaces),
        "plan": {
            "maxMonitors": tenant.max_monitors,
            "maxStatusPages": tenant.max_status_pages,
            "minIntervalSeconds": tenant.min_interval_s,
        },
        "usage": {"monitors": tenant.monitors, "statusPages": tenant.status_pages},
        "trialEnds": rfc3339(tenant.trial_ends),
        "trialDaysLeft": tenant.trial_days_left,
        "trialEnded": tenant.trial_ended,
        "suspended": tenant.suspended,
        "effect": tenant.effect,
        "members": tenant.members,
        "admins": tenant.admins,
        "lastActivity": rfc3339(tenant.last_activity),
    }


def _impersonation(found: impersonation.ActiveImpersonation) -> dict[str, Any]:
    return {
        "id": found.id,
        "impersonator": found.impersonator,
        "email": found.user,
        "organization": found.organization,
        "reason": found.reason,
        "startedAt": rfc3339(found.started_at),
        "expiresAt": rfc3339(found.expires_at),
    }


def _maintenance(status: maintenance.Status) -> dict[str, Any]:
    return {
        "on": status.on,
        "message": status.message,
        "until": rfc3339(status.until),
        "showOnStatusPages": status.show_on_status_pages,
        "startedBy": status.started_by,
        "startedAt": rfc3339(status.started_at),
        "endedAt": rfc3339(status.ended_at),
    }


def _camel(fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` with camelCase names (the values as they are: an audit record's `details` is its data)."""
    return {to_camel(name): value for name, value in fields.items()}


def _record(row: Any) -> dict[str, Any]:
    return {"id": row.id, **audit.as_dict(row)}


def _started_session(granted: Granted, *, cookies: bool, now: datetime, started: dict[str, Any]) -> JSONResponse:
    """The impersonated member's session as a sign-in hands one back (auth_routes.session_fields), in
    /api/v1's camelCase and timestamps: OAuth 2.0's names stay with /api/v1/auth."""
    fields, csrf = session_fields(granted, cookies=cookies, now=now)
    fields["access_expires_at"] = rfc3339(granted.access_expires_at)
    return session_answer(granted, {**_camel(fields), "impersonation": started}, csrf, now=now, status=201)


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status, headers=_HEADERS)


# --- pages -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageAsked:
    """A list's `limit` and `cursor`: the key of the previous page's last item (None: the first page)."""

    limit: int
    after: str | None

    @classmethod
    def of(cls, query: Mapping[str, str]) -> PageAsked:
        limit = whole_number(query.get("limit", str(PAGE_DEFAULT)))
        if limit is None or not 1 <= limit <= PAGE_MAX:
            raise Refusal(400, BAD_LIMIT)
        cursor = query.get("cursor")
        return cls(limit, None if cursor is None else decode_cursor(cursor))

    def after_id(self) -> int | None:
        """The cursor of a list kept by id."""
        if self.after is None:
            return None
        found = whole_number(self.after)
        if found is None:
            raise Refusal(400, BAD_CURSOR)
        return found


def encode_cursor(key: int | str) -> str:
    """An item's key as a cursor: base64url without padding (opaque to clients, not a secret)."""
    return base64.urlsafe_b64encode(str(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The key `cursor` holds, or Refusal(400) for what encode_cursor never made."""
    if len(cursor) > CURSOR_MAX or not _CURSOR_TEXT.fullmatch(cursor):
        raise Refusal(400, BAD_CURSOR)
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Refusal(400, BAD_CURSOR) from None
    if not key or encode_cursor(key) != cursor:  # one spelling per key
        raise Refusal(400, BAD_CURSOR)
    return key


def keyset_page(
    found: Sequence[T], key: Callable[[T], K], after: K | None, *, limit: int, descending: bool = False
) -> tuple[list[T], K | None]:
    """One page of `found` in the order of `key` (`descending`: largest first), after the key `after`: its
    items, and the key its successor starts after (None: the last page)."""
    ordered = sorted(found, key=key, reverse=descending)
    if after is not None:
        ordered = [item for item in ordered if (key(item) < after if descending else key(item) > after)]
    page = ordered[:limit]
    return page, (key(page[-1]) if len(ordered) > limit else None)


def listing(request: Request, items: list[dict[str, Any]], last: int | str | None) -> JSONResponse:
    """`{"items", "next"}`: `next` is this request with the cursor after `last` (null without one)."""
    following = None
    if last is not None:
        kept = {name: value for name, value in request.query_params.items() if name != "cursor"}
        following = f"{request.url.path}?{urlencode({**kept, 'cursor': encode_cursor(last)})}"
    return _json({"items": items, "next": following})


# --- the endpoints -------------------------------------------------------------------------------------


Work = Callable[[Session, datetime], T]
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class MemberChange:
    """What a change to one member is asked for: whom, where, by whom, when (and the new role)."""

    email: str
    organization: str
    actor: Actor
    now: datetime
    role: str | None


class AccountChange(Protocol):
    def __call__(
        self, session: Session, email: str, *, actor: Actor, now: datetime, organization: str | None = None
    ) -> bool: ...


class AdminApi:
    """The handlers; each raises Refusal or policy.Denied for a problem answer (see `answering`)."""

    def __init__(self, factory: sessionmaker[Session], *, clock: Callable[[], datetime], tokens: Tokens) -> None:
        self.factory = factory
        self.clock = clock
        self.tokens = tokens
        self.auth = AuthApi(SignIn(factory, clock=clock, tokens=tokens))

    # --- plumbing ----------------------------------------------------------------------------------------

    async def caller(self, request: Request, *, changes: bool) -> Principal:
        return (await self.auth.caller(request, changes=changes)).principal

    async def run(self, principal: Principal, work: Work[T]) -> T:
        """`work(session, now)` in one transaction in a worker thread, after checking that the caller's
        session is still live; a refusal raised by `work` rolls everything back."""

        def attempt() -> T:
            now = self.clock()
            with self.factory.begin() as session:
                if principal.session_id is not None and not sessions.is_active(session, principal.session_id, now=now):
                    raise Refusal(401, sessions.SIGN_IN_AGAIN, {"WWW-Authenticate": f'{REALM}, error="invalid_token"'})
                return work(session, now)

        return await run_in_threadpool(retry_conflicts, attempt)

    @staticmethod
    def organization(request: Request, principal: Principal, action: Action) -> str:
        """The organization acted in (the caller's, or `?organization=`) once the policy allows `action` there."""
        return acting_organization(request.query_params.get("organization"), principal, action)

    @staticmethod
    def actor(request: Request, principal: Principal) -> Actor:
        return Actor.of(principal, ip=client_key(request))

    # --- members -----------------------------------------------------------------------------------------

    async def members(self, request: Request) -> Response:
        principal = await self.caller(request, changes=False)
        organization = self.organization(request, principal, Action.MEMBERS_MANAGE)
        asked = PageAsked.of(request.query_params)
        actor = self.actor(request, principal)

        def work(session: Session, now: datetime) -> tuple[list[dict[str, Any]], str | None]:
            found = accounts.list_users(session, actor=actor, now=now, organization=organization)
            page, last = keyset_page(found, lambda summary: summary.email, asked.after, limit=asked.limit)
            return [_member(summary) for summary in page], last

        return listing(request, *await self.run(principal, work))

    async def invite(self, request: Request) -> Response:
        principal = await self.caller(request, changes=True)
        organization = self.organization(request, principal, Action.MEMBERS_MANAGE)
        body = await read_json(request, InviteBody)
        email = _email(body.email)
        actor = self.actor(request, principal)

        def work(session: Session, now: datetime) -> dict[str, Any]:
            invited = accounts.invite(
                session,
                email,
                organization,
                body.role,
                actor=actor,
                now=now,
                display_name=body.name,
                tokens=self.tokens,
            )
            return {
                "email": invited.user.email,
                "name": invited.user.display_name,
                "role": body.role,
                "status": invited.user.status,
                "mailed": invited.mailed,
            }

        return _json(await self.run(principal, work), 201)

    async def _on_member(self, request: Request, change: Callable[[Session, MemberChange], Any]) -> Response:
        """A change to one member of the organization (404 when the address is not one of its members);
        the answer is the address and what `change` returns."""
        principal = await self.caller(request, changes=True)
        organization = self.organization(request, principal, Action.MEMBERS_MANAGE)
        email = str(request.path_params["email"]).strip().lower()
        policy.require_member_change(principal, email, resets_mfa=request.url.path.endswith("/reset-mfa"))
        role = (await read_json(request, RoleBody)).role if request.url.path.endswith("/role") else None
        actor = self.actor(request, principal)

        def work(session: Session, now: datetime) -> dict[str, Any]:
            require_member(session, email, organization)
            return {"email": email, **change(session, MemberChange(email, organization, actor, now, role))}

        return _json(await self.run(principal, work))

    async def set_role(self, request: Request) -> Response:
        def change(session: Session, asked: MemberChange) -> dict[str, Any]:
            role = asked.role or ""
            done = accounts.set_role(session, asked.email, asked.organization, role, actor=asked.actor, now=asked.now)
            return {"role": done.role}

        return await self._on_member(request, change)

    async def remove(self, request: Request) -> Response:
        def change(session: Session, asked: MemberChange) -> dict[str, Any]:
            accounts.remove_member(session, asked.email, asked.organization, actor=asked.actor, now=asked.now)
            return {"removed": True}

        return await self._on_member(request, change)

    def account_change(self, function: AccountChange) -> Handler:
        """disable, enable, reset-mfa: account-wide changes an organization's admin may make to its members
        who belong to no other organization (spectra.auth.accounts decides); `changed` is False when there
        was nothing to do."""

        async def handler(request: Request) -> Response:
            def change(session: Session, asked: MemberChange) -> dict[str, Any]:
                done = function(session, asked.email, actor=asked.actor, now=asked.now, organization=asked.organization)
                return {"changed": done}

            return await self._on_member(request, change)

        return handler

    # --- organization settings ---------------------------------------------------------------------------------

    async def settings(self, request: Request) -> Response:
        principal = await self.caller(request, changes=True)
        organization = self.organization(request, principal, Action.ORG_SETTINGS)
        body = await read_json(request, SettingsBody)
        ip = client_key(request)

        def work(session: Session, now: datetime) -> dict[str, Any]:
            changed = organization_settings.require_mfa(session, principal, body.require_mfa, now=now, ip=ip)
            return {"organization": organization, "requireMfa": body.require_mfa, "changed": changed}

        return _json(await self.run(principal, work))

    # --- the caller's API tokens ---------------------------------------------------------------------------------

    async def tokens_list(self, request: Request) -> Response:
        principal = await self.caller(request, changes=False)
        policy.require(principal, Action.SELF_TOKENS, organization=principal.organization)
        asked = PageAsked.of(request.query_params)
        after = asked.after_id()

        def work(session: Session, now: datetime) -> tuple[list[dict[str, Any]], int | None]:
            rows = api_tokens.list_for(session, principal.user_id, organization=principal.organization)
            page, last = keyset_page(rows, lambda row: row.id, after, limit=asked.limit, descending=True)
            return [_token(row, now=now) for row in page], last

        return listing(request, *await self.run(principal, work))

    async def token_create(self, request: Request) -> Response:
        principal = await self.caller(request, changes=True)
        policy.require(principal, Action.SELF_TOKENS, organization=principal.organization)
        body = await read_json(request, TokenBody)
        ip = client_key(request)

        def work(session: Session, now: datetime) -> dict[str, Any]:
            text, row = api_tokens.create(
                session, principal, name=body.name, scopes=body.scopes, expires_at=body.expires_at, now=now, ip=ip
            )
            return {**_token(row, now=now), "token": text}

        return _json(await self.run(principal, work), 201)

    async def token_revoke(self, request: Request) -> Response:
        principal = await self.caller(request, changes=True)
        token_id = whole_number(request.path_params["token_id"])
        ip = client_key(request)

        def work(session: Session, now: datetime) -> dict[str, Any]:
            if token_id is None:
                raise policy.NotFound()
            return _token(api_tokens.revoke(session, principal, token_id, now=now, ip=ip), now=now)

        return _json(await self.run(principal, work))

    # --- the audit log -------------------------------------------------------------------------------------------

    async def audit_log(self, request: Request) -> Response:
        principal = await self.caller(request, changes=False)
        query = request.query_params
        where = audit_filter(query, principal)
        unknown = sorted(set(query.keys()) - set(AUDIT_PARAMETERS))
        if unknown:  # `before`, the cursor of old, among them: never quietly the first page
            raise Refusal(400, f"{unknown[0]}: not a parameter of the audit log ({', '.join(AUDIT_PARAMETERS)}).")
        asked = PageAsked.of(query)
        after = asked.after_id()
        wanted = query.get("format", "json")
        if wanted not in ("json", *EXPORT_TYPES):
            raise Refusal(400, BAD_FORMAT)
        if wanted != "json":
            return await self._export(request, principal, where, wanted, after)

        def work(session: Session, _: datetime) -> list[Any]:
            return audit.query(session, where, limit=asked.limit + 1, before_id=after)

        rows = await self.run(principal, work)
        page = rows[: asked.limit]
        return listing(request, [_record(row) for row in page], page[-1].id if len(rows) > asked.limit else None)

    async def _export(
        self, request: Request, principal: Principal, where: audit.AuditFilter, wanted: str, after: int | None
    ) -> Response:
        """Every record that matches (after the cursor's, that is older, if one is given), streamed; the
        export is audited first (`audit.exported`) and holds the records before that one."""
        actor = self.actor(request, principal)

        def work(session: Session, now: datetime) -> tuple[int, datetime]:
            details = {
                "format": wanted,
                "organization": where.organization,
                "action": where.action_prefix,
                "actor": where.actor,
                "since": rfc3339(where.since),
                "until": rfc3339(where.until),
            }
            row = audit.record(
                session,
                actor,
                "audit.exported",
                now=now,
                organization=where.organization,
                details={name: value for name, value in details.items() if value is not None},
            )
            return row.id, now

        bound, now = await self.run(principal, work)
        first = bound if after is None else min(bound, after)

        def rows() -> Iterator[Any]:
            cursor = first
            while True:
                with self.factory() as session:
                    batch = audit.query(session, where, limit=EXPORT_BATCH, before_id=cursor)
                yield from batch
                if len(batch) < EXPORT_BATCH:
                    return
                cursor = batch[-1].id

        lines = audit.export_csv(rows()) if wanted == "csv" else audit.export_json_lines(rows())
        name = f"spectra-audit-{now:%Y%m%dT%H%M%SZ}.{wanted}"
        headers = {**_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
        return StreamingResponse(lines, media_type=EXPORT_TYPES[wanted], headers=headers)

    # --- platform: tenants and impersonation -------------------------------------------------------------------

    async def tenants(self, request: Request) -> Response:
        principal = await self.caller(request, changes=False)
        policy.require(principal, Action.TENANTS_MANAGE, organization=None)
        asked = PageAsked.of(request.query_params)

        def work(session: Session, now: datetime) -> tuple[list[dict[str, Any]], str | None]:
            found = tenants.tenants(session, now=now)
            page, last = keyset_page(found, lambda tenant: tenant.name, asked.after, limit=asked.limit)
            return [_tenant(tenant) for tenant in page], last

        return listing(request, *await self.run(principal, work))

    async def impersonations(self, request: Request) -> Response:
        principal = await self.caller(request, changes=False)
        policy.require(principal, Action.IMPERSONATE, organization=None)
        asked = PageAsked.of(request.query_params)
        after = asked.after_id()

        def work(session: Session, now: datetime) -> tuple[list[dict[str, Any]], int | None]:
            found = impersonation.active(session, now=now)
            page, last = keyset_page(found, lambda one: one.id, after, limit=asked.limit, descending=True)
            return [_impersonation(one) for one in page], last

        return listing(request, *await self.run(principal, work))

    async def impersonate(self, request: Request) -> Response:
        principal = await self.caller(request, changes=True)
        policy.require(principal, Action.IMPERSONATE, organization=None)
        body = await read_json(request, ImpersonationBody)
        client, agent = client_key(request), request.headers.get("user-agent")

        def work(session: Session, now: datetime) -> tuple[Granted, dict[str, Any]]:
            issued = impersonation.start(
                session,
                principal,
                body.email,
                body.organization,
                reason=body.reason,
                minutes=body.minutes,
                now=now,
                ip=client,
                user_agent=agent,
            )
            started = {"id": issued.session_row.impersonation_id, "expiresAt": rfc3339(issued.session_row.expires_at)}
            return Granted.of(issued), started

        granted, started = await self.run(principal, work)
        return _started_session(granted, cookies=body.use_cookies, now=self.clock(), started=started)

    async def end_impersonation(self, request: Request) -> Response:
        """A platform admin ends any impersonation; the impersonated session may end its own."""
        principal = await self.caller(request, changes=True)
        wanted = whole_number(request.path_params["impersonation_id"])
        actor = self.actor(request, principal)

        def work(session: Session, now: datetime) -> dict[str, Any]:
            own = False
            if principal.impersonated and principal.session_id is not None and wanted is not None:
                mine = select(UserSession.impersonation_id).where(UserSession.sid == principal.session_id)
                own = session.scalar(mine) == wanted
            if not own:
                policy.require(principal, Action.IMPERSONATE, organization=None)
            if wanted is None:
                raise policy.NotFound()
            try:
                ended = impersonation.end(session, wanted, actor=actor, now=now)
            except impersonation.ImpersonationError as unknown:
                raise Refusal(404, str(unknown)) from None
            return {"id": wanted, "ended": ended}

        return _json(await self.run(principal, work))

    # --- platform: global maintenance --------------------------------------------------------------------------

    async def global_maintenance(self, request: Request) -> Response:
        changes = request.method != "GET"
        principal = await self.caller(request, changes=changes)
        policy.require(principal, Action.MAINTENANCE_GLOBAL, organization=None)
        body = await read_json(request, MaintenanceBody) if request.method == "PUT" else None
        actor = self.actor(request, principal)

        def work(session: Session, now: datetime) -> maintenance.Status:
            if body is not None:
                until = None if body.until is None else parse_until(body.until, now=now)
                return maintenance.turn_on(
                    session,
                    message=body.message,
                    until=until,
                    show_on_status_pages=body.show_on_status_pages,
                    actor=actor,
                    now=now,
                )
            if request.method == "DELETE":
                try:
                    return maintenance.turn_off(session, actor=actor, now=now)
                except maintenance.GlobalMaintenanceRefused as refused:
                    raise Refusal(409, str(refused)) from None
            return maintenance.current(session, now=now)

        return _json(_maintenance(await self.run(principal, work)))


def acting_organization(asked: str | None, principal: Principal, action: Action) -> str:
    """The organization acted in (the principal's, or `asked`) once the policy allows `action` there."""
    organization = principal.organization if asked is None else asked
    policy.require(principal, action, organization=organization)
    if organization is None:  # the policy refused this already; this tells the type checker
        raise policy.NotFound()
    return organization


def require_member(session: Session, email: str, organization: str) -> None:
    """Refusal(404) unless `email` is a member of `organization` (one answer for an unknown address and
    another tenant's member)."""
    member = session.scalar(
        select(Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(User.email == email, Membership.organization == organization)
    )
    if member is None:
        raise Refusal(404, f"{email} is not a member of {organization or 'this organization'}")


def audit_filter(query: Mapping[str, str], principal: Principal) -> audit.AuditFilter:
    """The audit records `principal` may read, as `query` asks (action, actor, since, until, organization):
    platform admins every organization (or the one named), an organization's admins their own."""
    for name, longest in (("action", ACTION_MAX), ("actor", EMAIL_LEN)):
        if len(query.get(name, "")) > longest:
            raise Refusal(400, f"{name} has at most {longest} characters.")
    if query.get("organization") is None and policy.allowed(principal, Action.AUDIT_READ, organization=None):
        organization = None
    else:
        organization = acting_organization(query.get("organization"), principal, Action.AUDIT_READ)
    return audit.AuditFilter(
        organization=organization,
        action_prefix=query.get("action") or None,
        actor=query.get("actor") or None,
        since=parse_time(query.get("since"), "since"),
        until=parse_time(query.get("until"), "until"),
    )


def whole_number(text: object) -> int | None:
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def parse_time(text: str | None, name: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or moment.utcoffset() is None:
        raise Refusal(400, f"{name} must be a time in ISO 8601 with an offset, e.g. 2026-03-02T09:00:00Z.")
    return moment


def answering(handler: Handler) -> Handler:
    async def answer(request: Request) -> Response:
        try:
            return await handler(request)
        except Refusal as refused:
            return problem(refused.status, refused.detail, refused.headers)
        except policy.Denied as refused:
            return problem(refused.status, str(refused))
        except REFUSED_AS_ASKED as refused:
            return problem(400, str(refused))

    return answer


def admin_routes(
    factory: sessionmaker[Session], *, clock: Callable[[], datetime] = utcnow, tokens: Tokens | None = None
) -> list[Route]:
    """The admin endpoints (see the module docstring and docs/access.md, "JSON endpoints for admins")."""
    api = AdminApi(factory, clock=clock, tokens=tokens or Tokens())
    disable, enable = api.account_change(accounts.disable), api.account_change(accounts.enable)
    reset_mfa = api.account_change(accounts.reset_mfa)
    return [
        Route("/api/v1/members", answering(api.members), methods=["GET"]),
        Route("/api/v1/members", answering(api.invite), methods=["POST"]),
        Route("/api/v1/members/{email}/role", answering(api.set_role), methods=["POST"]),
        Route("/api/v1/members/{email}/disable", answering(disable), methods=["POST"]),
        Route("/api/v1/members/{email}/enable", answering(enable), methods=["POST"]),
        Route("/api/v1/members/{email}/reset-mfa", answering(reset_mfa), methods=["POST"]),
        Route("/api/v1/members/{email}", answering(api.remove), methods=["DELETE"]),
        Route("/api/v1/organization/settings", answering(api.settings), methods=["PUT"]),
        Route("/api/v1/tokens", answering(api.tokens_list), methods=["GET"]),
        Route("/api/v1/tokens", answering(api.token_create), methods=["POST"]),
        Route("/api/v1/tokens/{token_id}", answering(api.token_revoke), methods=["DELETE"]),
        Route("/api/v1/audit", answering(api.audit_log), methods=["GET"]),
        Route("/api/v1/platform/tenants", answering(api.tenants), methods=["GET"]),
        Route("/api/v1/platform/impersonations", answering(api.impersonations), methods=["GET"]),
        Route("/api/v1/platform/impersonations", answering(api.impersonate), methods=["POST"]),
        Route(
            "/api/v1/platform/impersonations/{impersonation_id}", answering(api.end_impersonation), methods=["DELETE"]
        ),
        Route(
            "/api/v1/platform/global-maintenance", answering(api.global_maintenance), methods=["GET", "PUT", "DELETE"]
        ),
    ]
