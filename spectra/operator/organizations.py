"""Organizations: which tenant a namespace belongs to, and whether its plan lets an object run.

Monitors and StatusPages are ranked by when they were first stored (the row id); the first
`maxMonitors` run, later ones are held until one goes away or the plan grows. A held Monitor keeps its
rows and history and is stored paused; a held StatusPage is not served. A suspended organization, or one
whose trial has ended, has all its monitors held. The answer names the limit and the organization.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from spectra.api import Monitor, Organization, Resource, StatusPage
from spectra.api.durations import format_duration
from spectra.domain.organizations import organizations
from spectra.store import Resource as ResourceRow

__all__ = ["ADMITTED", "Admission", "admit", "organization_of", "organizations"]


@dataclass(frozen=True)
class Admission:
    """Whether an object may run; when not, a CamelCase reason and a message for people."""

    admitted: bool
    reason: str = ""
    message: str = ""


ADMITTED = Admission(True)


def organization_of(session: Session, namespace: str) -> Organization | None:
    for org in organizations(session):
        if namespace in org.spec.namespaces:
            return org
    return None


def admit(session: Session, resource: Resource, now: datetime) -> Admission:
    """Whether `resource` may be scheduled (Monitor) or served (StatusPage) under its organization's plan."""
    if not isinstance(resource, Monitor | StatusPage):
        return ADMITTED
    org = organization_of(session, resource.namespace)
    if org is None:
        return ADMITTED
    spec = org.spec
    if isinstance(resource, Monitor):
        if spec.suspended:
            return Admission(
                False, "OrganizationSuspended", f"Organization {org.name} is suspended: checks and paging are stopped"
            )
        if spec.trial_ends is not None and spec.trial_ends <= now:
            return Admission(
                False,
                "TrialEnded",
                f"the trial of Organization {org.name} ended at {spec.trial_ends:%Y-%m-%d %H:%M %Z}: "
                "checks are stopped",
            )
        minimum = spec.plan.min_interval
        if minimum is not None and resource.spec.interval < minimum:
            return Admission(
                False,
                "IntervalBelowPlan",
                f"spec.interval: {format_duration(resource.spec.interval)} is shorter than the minimum "
                f"{format_duration(minimum)} of Organization {org.name}'s plan",
            )
        return _within(session, resource, org, spec.plan.max_monitors, what="monitors", field="maxMonitors")
    return _within(session, resource, org, spec.plan.max_status_pages, what="status pages", field="maxStatusPages")


def _within(
    session: Session, resource: Resource, org: Organization, limit: int | None, *, what: str, field: str
) -> Admission:
    kind = resource.kind_name
    if limit is None:
        return ADMITTED
    own_id = session.scalar(
        select(ResourceRow.id).where(
            ResourceRow.kind == kind, ResourceRow.namespace == resource.namespace, ResourceRow.name == resource.name
        )
    )
    older = select(func.count()).where(ResourceRow.kind == kind, ResourceRow.namespace.in_(org.spec.namespaces))
    if own_id is not None:
        older = older.where(ResourceRow.id < own_id)
    rank = session.scalar(older) or 0
    if rank < limit:
        return ADMITTED
    return Admission(
        False,
        "OverPlanLimit",
        f"Organization {org.name} allows {limit} {what} (spec.plan.{field}); this is number {rank + 1}",
    )
