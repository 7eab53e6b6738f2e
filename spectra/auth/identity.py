"""Who is acting: the principal every permission is decided for, whatever proved it (a session's access
token, an API token, the command line)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from spectra.store.accounts import Role

# What an API token may be given; a session carries every power its role has.
SCOPES: Final = ("read", "incidents:write", "statuspages:write", "admin")


@dataclass(frozen=True)
class Principal:
    """A user acting in one organization (None: a platform admin outside any, or the command line).

    `impersonator_*` are set while a platform admin acts as this user: the audit log names both.
    `scopes` is None for a session (its role decides) and the token's scopes for an API token.
    """

    user_id: int
    email: str
    organization: str | None
    role: Role | None
    platform_admin: bool = False
    scopes: frozenset[str] | None = None
    session_id: str | None = None  # the session's `sid`
    impersonator_id: int | None = None
    impersonator_email: str | None = None
    via: str = "session"  # session | api-token | cli

    @property
    def impersonated(self) -> bool:
        return self.impersonator_id is not None


@dataclass(frozen=True)
class Actor:
    """How the audit log names who acted: a principal, or the system (the command line, a process)."""

    name: str
    user_id: int | None = None
    organization: str | None = None
    impersonator: str | None = None
    ip: str | None = None
    details: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, principal: Principal, *, ip: str | None = None) -> Actor:
        return cls(
            name=principal.email,
            user_id=principal.user_id,
            organization=principal.organization,
            impersonator=principal.impersonator_email,
            ip=ip,
        )

    @classmethod
    def system(cls, name: str) -> Actor:
        """`cli` (a person at the command line), `operator` (Git), a process name."""
        return cls(name=name)
