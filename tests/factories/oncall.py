"""On-call test data: schedules built the way users write them (camelCase manifests), and instants; two
tenants with schedules and contacts in the store for the console's on-call area."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import yaml
from sqlalchemy.orm import Session

from spectra.api import parse_object
from spectra.api.schedule import ScheduleSpec
from spectra.auth.identity import Principal
from spectra.reconcile import apply_set
from spectra.store import Role
from tests.factories.accounts import member, organization_resource


def schedule(
    *layers: dict[str, Any], zone: str = "Europe/Berlin", overrides: list[dict[str, str]] | None = None
) -> ScheduleSpec:
    return ScheduleSpec.model_validate({"timeZone": zone, "layers": list(layers), "overrides": overrides or []})


def layer(
    participants: list[str],
    *,
    start: str = "2026-01-05",
    rotation: str = "1w",
    handoff: str = "09:00",
    restrictions: list[dict[str, Any]] | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    return {
        "name": name or "-".join(participants),
        "participants": participants,
        "start": start,
        "rotation": rotation,
        "handoffTime": handoff,
        "restrictions": restrictions or [],
    }


def t(text: str) -> datetime:
    """An aware instant from ISO 8601 text with offset."""
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None, text
    return value


# --- the console's on-call area: two tenants with a schedule each, stored the way `spectra apply` does ---

ONCALL_ADA, ONCALL_UMA, ONCALL_GUS = "ada@acme.example", "uma@acme.example", "gus@globex.example"

ONCALL_MANIFESTS = """
apiVersion: spectra.dev/v1alpha1
kind: Contact
metadata: {name: ada, namespace: acme}
spec: {displayName: Ada, email: ada@acme.example}
---
apiVersion: spectra.dev/v1alpha1
kind: Contact
metadata: {name: uma, namespace: acme}
spec: {displayName: Uma, email: Uma@Acme.Example}
---
apiVersion: spectra.dev/v1alpha1
kind: Schedule
metadata: {name: primary, namespace: acme}
spec:
  timeZone: UTC
  layers: [{name: week, participants: [ada, uma], start: 2026-01-05, rotation: 1w, handoffTime: "09:00"}]
---
apiVersion: spectra.dev/v1alpha1
kind: Contact
metadata: {name: gus, namespace: globex}
spec: {displayName: Gus, email: gus@globex.example}
---
apiVersion: spectra.dev/v1alpha1
kind: Schedule
metadata: {name: primary, namespace: globex}
spec:
  layers: [{name: all, participants: [gus], start: 2026-01-05}]
"""


def oncall_tenants(session: Session) -> dict[str, Principal]:
    """acme (namespace acme: ada admin, uma user, Schedule primary rotating ada and uma weekly at 09:00 UTC,
    ada's week from 2026-03-02) and globex (gus, user); flushed. The principals by e-mail."""
    organization_resource(session, "acme", ["acme"])
    organization_resource(session, "globex", ["globex"])
    principals = {
        ONCALL_ADA: member(session, ONCALL_ADA, "acme", Role.ADMIN),
        ONCALL_UMA: member(session, ONCALL_UMA, "acme", Role.USER),
        ONCALL_GUS: member(session, ONCALL_GUS, "globex", Role.USER),
    }
    resources = [parse_object(doc) for doc in yaml.safe_load_all(ONCALL_MANIFESTS) if doc]
    apply_set(session, resources, "files:/manifests", prune=False)
    session.flush()
    return principals
