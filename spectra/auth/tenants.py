"""Tenants for platform admins: every Organization with its plan, usage, trial, suspension, members and
last activity; and the trial reminders its admins get by email.

Organizations are declared in Git (spec.plan, spec.trialEnds, spec.suspended, spec.namespaces); what a
trial's end or a suspension does is the operator's admission (spectra.operator.organizations), shown
here as text and not done again. Usage is counted by spectra.domain.organizations, the same query the
operator's rows come from.

Trial reminders: each active admin of an organization whose trial ends gets one email 7 days before,
one 1 day before, and one when it has ended, each once (idempotency keys on the outbox rows, which name
the trial's end: a trial moved later in Git gets its reminders again). `send_trial_reminders` runs from
housekeeping every hour, in every process that runs housekeeping; a reminder whose time has passed
unsent goes out late only while it is still the latest that applies (no "7 days left" once 1 day is
left), and the "ended" mail only within ENDED_MAIL_WITHIN of the end (a trial that ended long before a
deployment is not news).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from spectra.api import Organization
from spectra.auth.accounts import PRODUCT, links_base
from spectra.auth.audit import record
from spectra.auth.identity import Actor
from spectra.auth.mail import Mail, queue_mail
from spectra.domain.organizations import organizations, usage
from spectra.store.accounts import AuditLog, Membership, Role, User, UserSession, UserStatus

DAY: Final = timedelta(days=1)
# (stage, how long before the end it is due), latest first.
REMINDERS: Final = (("ended", timedelta(0)), ("1-day", DAY), ("7-days", 7 * DAY))
ENDED_MAIL_WITHIN: Final = 7 * DAY

# What the operator does, in words (spectra.operator.organizations.admit does it).
SUSPENDED_EFFECT: Final = (
    "Suspended: every monitor is held (stored paused: no checks run, nobody is paged); status pages are still served."
)
TRIAL_ENDED_EFFECT: Final = (
    "Trial ended: every monitor is held (stored paused: no checks run, nobody is paged) until "
    "spec.trialEnds is moved later or removed; status pages are still served."
)
TRIAL_EFFECT: Final = (
    "On trial: when it ends, every monitor is held (no checks run, nobody is paged) until the trial is extended."
)
ACTIVE_EFFECT: Final = "Active."

T = TypeVar("T")


@dataclass(frozen=True)
class Tenant:
    """One Organization as a platform admin sees it. Limits are None when the plan sets none."""

    name: str
    display_name: str
    namespaces: tuple[str, ...]
    max_monitors: int | None
    max_status_pages: int | None
    min_interval_s: float | None
    monitors: int
    status_pages: int
    trial_ends: datetime | None
    trial_days_left: int | None  # whole days, rounded up; 0 once it has ended; None without a trial
    suspended: bool
    members: int
    admins: int
    last_activity: datetime | None  # the latest audit record or session use in the organization
    effect: str  # what its state does, in words

    @property
    def trial_ended(self) -> bool:
        return self.trial_days_left == 0


def tenants(session: Session, *, now: datetime) -> list[Tenant]:
    """Every stored Organization, by name. The caller has asked spectra.auth.policy for
    `tenants.manage` (platform admins only)."""
    orgs = sorted(organizations(session), key=lambda org: org.name)
    names = [org.name for org in orgs]
    if not names:
        return []
    members = _by_organization(
        session, select(Membership.organization, func.count()).where(Membership.organization.in_(names))
    )
    admins = _by_organization(
        session,
        select(Membership.organization, func.count()).where(
            Membership.organization.in_(names), Membership.role == Role.ADMIN
        ),
    )
    audited = _by_organization(
        session, select(AuditLog.organization, func.max(AuditLog.at)).where(AuditLog.organization.in_(names))
    )
    used = _by_organization(
        session,
        select(UserSession.organization, func.max(UserSession.last_used_at)).where(UserSession.organization.in_(names)),
    )
    return [
        _tenant(org, session=session, now=now, members=members, admins=admins, audited=audited, used=used)
        for org in orgs
    ]


def days_left(trial_ends: datetime, *, now: datetime) -> int:
    """Whole days until the trial ends, rounded up (an hour left is 1 day); 0 once it has ended."""
    seconds = (trial_ends - now).total_seconds()
    return 0 if seconds <= 0 else math.ceil(seconds / DAY.total_seconds())


def send_trial_reminders(session: Session, *, now: datetime, public_url: str | None = None) -> int:
    """Queue the trial reminders due at `now` (see the module docstring); how many mails were queued."""
    queued = 0
    base = links_base(public_url)
    for org in sorted(organizations(session), key=lambda org: org.name):
        ends = org.spec.trial_ends
        stage = None if ends is None else _due_stage(ends, now=now)
        if ends is None or stage is None:
            continue
        recipients = list(
            session.scalars(
                select(User)
                .join(Membership, Membership.user_id == User.id)
                .where(
                    Membership.organization == org.name,
                    Membership.role == Role.ADMIN,
                    User.status == UserStatus.ACTIVE,
                )
                .order_by(User.id)
            )
        )
        sent = [admin.email for admin in recipients if queue_mail(session, _reminder(org, stage, admin, now, base))]
        if sent:
            record(
                session,
                Actor.system("housekeeping"),
                "tenant.trial_reminder",
                now=now,
                organization=org.name,
                target=("Organization", None, org.name),
                details={"stage": stage, "trial_ends": ends.isoformat(), "recipients": len(sent)},
            )
        queued += len(sent)
    return queued


# --- inside -------------------------------------------------------------------------------------------


def _by_organization(session: Session, statement: Select[str | None, T]) -> dict[str, T]:
    """organization -> the statement's aggregate, grouped by its first column."""
    found: dict[str, T] = {}
    for organization, value in session.execute(statement.group_by(statement.selected_columns[0])):
        if organization is not None and value is not None:
            found[organization] = value
    return found


def _tenant(
    org: Organization,
    *,
    session: Session,
    now: datetime,
    members: dict[str, int],
    admins: dict[str, int],
    audited: dict[str, datetime],
    used: dict[str, datetime],
) -> Tenant:
    spec = org.spec
    counts = usage(session, org)
    left = None if spec.trial_ends is None else days_left(spec.trial_ends, now=now)
    if spec.suspended:
        effect = SUSPENDED_EFFECT
    elif left == 0:
        effect = TRIAL_ENDED_EFFECT
    elif left is not None:
        effect = TRIAL_EFFECT
    else:
        effect = ACTIVE_EFFECT
    activity = [at for at in (audited.get(org.name), used.get(org.name)) if at is not None]
    return Tenant(
        name=org.name,
        display_name=spec.display_name,
        namespaces=tuple(spec.namespaces),
        max_monitors=spec.plan.max_monitors,
        max_status_pages=spec.plan.max_status_pages,
        min_interval_s=None if spec.plan.min_interval is None else spec.plan.min_interval.total_seconds(),
        monitors=counts["monitors"],
        status_pages=counts["statusPages"],
        trial_ends=spec.trial_ends,
        trial_days_left=left,
        suspended=spec.suspended,
        members=members.get(org.name, 0),
        admins=admins.get(org.name, 0),
        last_activity=max(activity) if activity else None,
        effect=effect,
    )


def _due_stage(ends: datetime, *, now: datetime) -> str | None:
    """The latest reminder whose time has come, or None (none yet, or the trial ended too long ago)."""
    if now >= ends + ENDED_MAIL_WITHIN:
        return None
    return next((stage for stage, before in REMINDERS if now >= ends - before), None)


def _reminder(org: Organization, stage: str, admin: User, now: datetime, base: str) -> Mail:
    ends = org.spec.trial_ends
    assert ends is not None
    title = org.spec.display_name
    url = f"{base}/login"
    when = f"{ends.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if stage == "ended":
        subject = f"The {PRODUCT} trial of {title} has ended"
        text = (
            f"The trial of {title} on {PRODUCT} ended at {when}. Its monitors are paused: no checks run and "
            "nobody is paged. Status pages are still served.\n\n"
            "To continue, ask us to extend the trial or choose a plan: everything you set up is kept.\n\n"
            f"Sign in: {url}"
        )
    else:
        left = days_left(ends, now=now)
        span = "1 day" if left == 1 else f"{left} days"
        subject = f"The {PRODUCT} trial of {title} ends in {span}"
        text = (
            f"The trial of {title} on {PRODUCT} ends at {when}, in {span}. Then its monitors are paused: "
            "no checks run and nobody is paged.\n\n"
            "To continue without a gap, ask us to extend the trial or choose a plan before then.\n\n"
            f"Sign in: {url}"
        )
    # Organization names may be 253 characters: a digest keeps the key within its 255.
    org_key = hashlib.sha256(org.name.encode()).hexdigest()[:24]
    return Mail(
        key=f"trial:{stage}:{org_key}:{int(ends.timestamp())}:{admin.id}",
        recipient=admin.email,
        subject=subject,
        text=text,
        link=url,
        button="Sign in",
        kind=f"trial-{stage}",
    )
