"""The organization admins' JSON endpoints, as the OpenAPI document lists them.

They are served by spectra.web.admin_routes (mounted by every process that serves people, beside signing
in), which the console pages share their helpers with; so `organization_api_routes` adds none, and
OPERATIONS describes them with this area's models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from starlette.routing import BaseRoute

from spectra.web.admin_routes import InviteBody, RoleBody, SettingsBody, TokenBody

from ..operations import Operation
from . import models

if TYPE_CHECKING:
    from ..routes import Console

TAG: Final = "organization"
MEMBER: Final = "/api/v1/members/{email}"

OPERATIONS: Final = (
    Operation("GET", "/api/v1/members", "The organization's members by email (audited as users.listed)", TAG,
              models.Members, query=models.MembersQuery),
    Operation("POST", "/api/v1/members", "Invite a member", TAG, models.Invited, body=InviteBody,
              query=models.OrganizationQuery, status=201),
    Operation("POST", f"{MEMBER}/role", "Set a member's role", TAG, models.RoleSet, body=RoleBody,
              query=models.OrganizationQuery),
    Operation("POST", f"{MEMBER}/disable", "Disable a member's account and end its sessions", TAG,
              models.MemberChanged, query=models.OrganizationQuery),
    Operation("POST", f"{MEMBER}/enable", "Enable a disabled member's account", TAG, models.MemberChanged,
              query=models.OrganizationQuery),
    Operation("POST", f"{MEMBER}/reset-mfa", "Remove a member's two-factor authentication", TAG,
              models.MemberChanged, query=models.OrganizationQuery),
    Operation("DELETE", MEMBER, "Take a member out of the organization", TAG, models.MemberRemoved,
              query=models.OrganizationQuery),
    Operation("PUT", "/api/v1/organization/settings", "Require two-factor authentication of every member, or not",
              TAG, models.Settings, body=SettingsBody),
    Operation("GET", "/api/v1/tokens", "The caller's own API tokens, newest first (never their secrets)", TAG,
              models.Tokens, query=models.PageQuery, refusals=(401, 403)),
    Operation("POST", "/api/v1/tokens", "A new API token; its secret is in `token`, shown this once", TAG,
              models.TokenCreated, body=TokenBody, status=201, refusals=(401, 403)),
    Operation("DELETE", "/api/v1/tokens/{token_id}", "Revoke an API token", TAG, models.Token),
    Operation("GET", "/api/v1/audit", "The audit log, newest first (format=csv or jsonl: the whole selection, "
              "streamed, audited as audit.exported)", TAG, models.AuditPage, query=models.AuditQuery),
)  # fmt: skip


def organization_api_routes(console: Console) -> list[BaseRoute]:
    """None of its own: spectra.web.admin_routes serves the endpoints OPERATIONS lists."""
    return []
