"""The JSON forms of the organization admins' endpoints (spectra.web.admin_routes answers them): members,
the organization's settings, the caller's API tokens, the audit log. The request bodies are
admin_routes' own strict models (InviteBody, RoleBody, SettingsBody, TokenBody)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Answer(BaseModel):
    """An answer's body: exactly these fields."""

    model_config = ConfigDict(extra="forbid")


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
    organization: str
    members: list[Member]


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
    organization: str | None
    tokens: list[Token]


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
    details: dict[str, Any] | None


class AuditPage(Answer):
    records: list[AuditRecord]
    next: str | None = Field(description="the link of the following page, or null on the last")


class AuditQuery(BaseModel):
    """GET /api/v1/audit's query."""

    action: str | None = Field(None, max_length=100, description="a prefix of the action: member.")
    actor: str | None = Field(None, max_length=320)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    organization: str | None = Field(None, description="platform admins: one organization's records")
    limit: int = Field(100, ge=1, le=500)
    before: int | None = Field(None, ge=0, description="the id the page ends before (from `next`)")
    format: Literal["json", "csv", "jsonl"] = "json"


class OrganizationQuery(BaseModel):
    """`?organization=`: platform admins name the organization they manage the members of."""

    organization: str | None = None
