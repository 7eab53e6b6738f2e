"""The resource API: pydantic models of SpectraMonitor's custom resources.

These models are the single source of truth: CRDs (`spectra crds`) and the field reference in the
README are generated from them, and both modes validate manifests through `parse_object`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from spectra.api.base import API_VERSION, GROUP, VERSION, Resource
from spectra.api.contact import Contact
from spectra.api.errors import Problem, problems_from
from spectra.api.escalation import EscalationPolicy
from spectra.api.maintenance import MaintenanceWindow
from spectra.api.monitor import Monitor, MonitorType
from spectra.api.organization import Organization
from spectra.api.plain_data import plain_data_problem
from spectra.api.schedule import Schedule
from spectra.api.statuspage import StatusPage

KINDS: dict[str, type[Resource]] = {
    kind.__name__: kind
    for kind in (Monitor, Contact, Schedule, EscalationPolicy, StatusPage, MaintenanceWindow, Organization)
}

__all__ = [
    "API_VERSION",
    "GROUP",
    "KINDS",
    "VERSION",
    "Contact",
    "EscalationPolicy",
    "InvalidObject",
    "MaintenanceWindow",
    "Monitor",
    "MonitorType",
    "Organization",
    "Problem",
    "Resource",
    "Schedule",
    "StatusPage",
    "parse_object",
]

# Server-set metadata and status are not part of what users declare; they never fail validation.
_IGNORED_TOP_LEVEL = ("status",)


class InvalidObject(ValueError):
    """An object that does not validate; `problems` name each field at fault."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def parse_object(body: Mapping[str, Any]) -> Resource:
    """Validate a manifest or custom-resource body into its kind's model.

    Raises InvalidObject with every problem found. `status` is dropped: it is ours to write.
    """
    refused = plain_data_problem(body)
    if refused is not None:
        raise InvalidObject([Problem(*refused)])
    api_version = body.get("apiVersion")
    kind = body.get("kind")
    if api_version != API_VERSION:
        raise InvalidObject([Problem("apiVersion", f"expected {API_VERSION}, got {api_version!r}")])
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise InvalidObject([Problem("kind", f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")])
    data = {key: value for key, value in body.items() if key not in _IGNORED_TOP_LEVEL}
    metadata = data.get("metadata")
    if not model.info.namespaced and isinstance(metadata, Mapping) and metadata.get("namespace"):
        raise InvalidObject([Problem("metadata.namespace", f"{kind} is cluster-scoped; remove the namespace")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidObject(problems_from(exc)) from None
