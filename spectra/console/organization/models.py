"""The JSON forms of the organization admins' endpoints (spectra.web.admin_routes answers them): members,
the organization's settings, the caller's API tokens, the audit log. The request bodies are
admin_routes' own strict models (InviteBody, RoleBody, SettingsBody, TokenBody).

Field names are camelCase on the wire, as the rest of /api/v1 (`platformAdmin`, `lastSignInAt`,
`requireMfa`, ...): the models name fields in Python and answer by alias. Lists are `{"items", "next"}`
pages taking `limit` and `cursor` (PageQuery).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from spectra.web.admin_routes import CURSOR_MAX, PAGE_DEFAULT, PAGE_MAX


class Answer(BaseModel):
    """An answer's body: exactly these fields, camelCase."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True,
        extra="forbid",
    )  # fmt: skip


NEXT: Final = "The next page's relative URL (with its cursor); null on the last page."


class Member(Answer):
    email: str
    name: str
    role: Literal["user", "admin"] | None
    status: Literal["invited", "active", "disabled"]
    mfa: bool
    platform_admin: bool
    created_at: AwareDatetime
    last_sign_in_at: AwareDatetime | None


class Members(Answer):
    """The organization's members by email."""

    items: list[Member]
    next: str | None = Field(description=NEXT)


class Invited(Answer):
    email: str
    name: str
    role: Literal["user", "admin"]
    status: Literal["invited", "active", "disabled"]
    mailed: bool


class RoleSet(Answer):
    email: str
    role: Literal["user", "admin"]


class MemberChanged(Answer):
    email: str
    changed: bool = Field(description="False when there was nothing to do")


class MemberRemoved(Answer):
    email: str
    removed: bool


class Settings(Answer):
    organization: str
    require_mfa: bool
    changed: bool


class Token(Answer):
    id: int
    name: str
    prefix: str = Field(description="the 8 characters after spt_")
    scopes: list[str]
    state: Literal["active", "revoked", "expired"]
    created_at: AwareDatetime
    expires_at: AwareDatetime | None
    last_used_at: AwareDatetime | None
    revoked_at: AwareDatetime | None


class Tokens(Answer):
    """The caller's tokens in the organization, newest first (by id)."""

    items: list[Token]
    next: str | None = Field(description=NEXT)


class TokenCreated(Token):
    token: str = Field(description="the secret, shown this once")


class AuditRecord(Answer):
    id: int
    at: AwareDatetime
    actor: str
    impersonator: str | None
    organization: str | None
    ip: str | None
    action: str
    target_kind: str | None
    target_namespace: str | None
    target_name: str | None
    details: dict[str, Any] | None = Field(description="what the action recorded, as it recorded it")


class AuditPage(Answer):
    """Records newest first (by id)."""

    items: list[AuditRecord]
    next: str | None = Field(description=NEXT)


class PageQuery(BaseModel):
    """A list's page: `limit` items after `cursor` (the previous page's, from its `next`)."""

    limit: int = Field(PAGE_DEFAULT, ge=1, le=PAGE_MAX)
    cursor: str | None = Field(None, max_length=CURSOR_MAX, description="from the previous page's `next`")


class OrganizationQuery(BaseModel):
    """`?organization=`: platform admins name the organization they manage the members of."""

    organization: str | None = None


class MembersQuery(OrganizationQuery, PageQuery):
    """GET /api/v1/members: the organization (platform admins) and the page."""


class AuditQuery(PageQuery):
    """GET /api/v1/audit's query (any other parameter is refused)."""

    action: str | None = Field(None, max_length=100, description="a prefix of the action: member.")
    actor: str | None = Field(None, max_length=320)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    organization: str | None = Field(None, description="platform admins: one organization's records")
    format: Literal["json", "csv", "jsonl"] = Field(
        "json", description="csv or jsonl: every record after the cursor, streamed, audited as audit.exported"
    )
