"""The JSON forms of the platform admins' endpoints: the system page's (GET /api/v1/platform/system), and
those spectra.web.admin_routes answers (tenants, impersonations, global maintenance). camelCase on the wire
(organization.models.Answer), the impersonation's session too: OAuth 2.0's names stay with /api/v1/auth.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from ..organization.models import NEXT, Answer
from . import service

# --- the system page -----------------------------------------------------------------------------------


class Worker(Answer):
    worker_id: str
    started_at: AwareDatetime
    last_seen_at: AwareDatetime = Field(description="its last heartbeat")
    silent: bool = Field(description="not seen for 90 s")
    monitors: int = Field(description="the leases it holds that have not run out")


class Location(Answer):
    location: str
    monitors: int = Field(description="the location's monitors (lease rows)")
    unowned: int = Field(description="of those, held by no worker or run out")
    workers: list[Worker]


class Leader(Answer):
    name: str
    holder: str | None = Field(description="null: nobody holds the lease now")
    lease_until: AwareDatetime | None


class Outbox(Answer):
    backlog: int = Field(description="pending, sending and failed messages")
    by_status: dict[str, int]
    oldest_pending_at: AwareDatetime | None
    oldest_pending_age_seconds: int | None


class Database(Answer):
    reachable: bool
    dialect: str
    size_bytes: int | None
    revision: str | None = Field(description="alembic's current revision")
    head: str = Field(description="the newest revision this version ships")
    up_to_date: bool


class System(Answer):
    checked_at: AwareDatetime
    locations: list[Location]
    alerter: Leader
    leaders: list[Leader]
    outbox: Outbox
    database: Database

    @classmethod
    def of(cls, found: service.System) -> System:
        return cls(
            checked_at=found.checked_at,
            locations=[
                Location(
                    location=location.name,
                    monitors=location.monitors,
                    unowned=location.unowned,
                    workers=[
                        Worker(
                            worker_id=w.worker_id,
                            started_at=w.started_at,
                            last_seen_at=w.last_seen_at,
                            silent=w.silent,
                            monitors=w.monitors,
                        )
                        for w in location.workers
                    ],
                )
                for location in found.locations
            ],
            alerter=Leader(**vars(found.alerter)),
            leaders=[Leader(**vars(leader)) for leader in found.leaders],
            outbox=Outbox(
                backlog=found.outbox.backlog,
                by_status=found.outbox.by_status,
                oldest_pending_at=found.outbox.oldest_pending_at,
                oldest_pending_age_seconds=found.outbox.oldest_pending_age_s,
            ),
            database=Database(
                reachable=found.database.reachable,
                dialect=found.database.dialect,
                size_bytes=found.database.size_bytes,
                revision=found.database.revision,
                head=found.database.head,
                up_to_date=found.database.up_to_date,
            ),
        )


# --- tenants, impersonation, global maintenance (spectra.web.admin_routes) ---------------------------------


class Plan(Answer):
    max_monitors: int | None
    max_status_pages: int | None
    min_interval_seconds: float | None


class Usage(Answer):
    monitors: int
    status_pages: int


class Tenant(Answer):
    name: str
    display_name: str
    namespaces: list[str]
    plan: Plan
    usage: Usage
    trial_ends: AwareDatetime | None
    trial_days_left: int | None
    trial_ended: bool
    suspended: bool
    effect: str = Field(description="what its state does, in words")
    members: int
    admins: int
    last_activity: AwareDatetime | None


class Tenants(Answer):
    """Every organization by name."""

    items: list[Tenant]
    next: str | None = Field(description=NEXT)


class Impersonation(Answer):
    id: int
    impersonator: str
    email: str
    organization: str
    reason: str
    started_at: AwareDatetime
    expires_at: AwareDatetime


class Impersonations(Answer):
    """The impersonations in effect, newest first (by id)."""

    items: list[Impersonation]
    next: str | None = Field(description=NEXT)


class Impersonator(Answer):
    email: str


class Started(Answer):
    id: int
    expires_at: AwareDatetime


class ImpersonationSession(Answer):
    """The member's new session, as a sign-in answers one: tokens in the body, or (`useCookies`) cookies
    and the CSRF token."""

    email: str
    organization: str | None
    role: Literal["user", "admin"] | None
    platform_admin: bool
    impersonator: Impersonator | None
    via: str
    access_expires_at: AwareDatetime
    csrf_token: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    token_type: Literal["Bearer"] | None = None
    expires_in: int | None = None
    impersonation: Started


class Ended(Answer):
    id: int
    ended: bool = Field(description="False when it had ended already")


class Maintenance(Answer):
    on: bool
    message: str
    until: AwareDatetime | None
    show_on_status_pages: bool
    started_by: str | None
    started_at: AwareDatetime | None
    ended_at: AwareDatetime | None
