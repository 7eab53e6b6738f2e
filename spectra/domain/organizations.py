"""Organizations as the store holds them (declared in Git): every one parsed back, and each one's use of
its plan. The operator's admission and platform admins' tenant list (spectra.auth.tenants) both read them.
"""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from spectra.api import API_VERSION, Organization
from spectra.store import Resource as ResourceRow


def organizations(session: Session) -> list[Organization]:
    """Every stored Organization (a handful), parsed back from its stored spec."""
    found: list[Organization] = []
    for row in session.scalars(select(ResourceRow).where(ResourceRow.kind == "Organization")):
        body = {"apiVersion": API_VERSION, "kind": "Organization", "metadata": {"name": row.name}, "spec": row.spec}
        try:
            found.append(Organization.model_validate(body))
        except ValidationError:  # stored specs were valid when stored; a newer model may disagree
            continue
    return found


def usage(session: Session, org: Organization) -> dict[str, int]:
    """Objects of each limited kind in the organization's namespaces."""
    counts = dict.fromkeys(("Monitor", "StatusPage"), 0)
    stmt = (
        select(ResourceRow.kind, func.count())
        .where(ResourceRow.namespace.in_(org.spec.namespaces), ResourceRow.kind.in_(counts))
        .group_by(ResourceRow.kind)
    )
    for kind, count in session.execute(stmt):
        counts[kind] = count
    return {"monitors": counts["Monitor"], "statusPages": counts["StatusPage"]}
