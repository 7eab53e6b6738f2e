"""Checks across a set of objects: duplicates and references to objects or Secrets that are missing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel

from spectra.api.base import Resource, ValueSource
from spectra.api.errors import Problem, field_path
from spectra.api.escalation import EscalationPolicy
from spectra.api.maintenance import MaintenanceWindow
from spectra.api.monitor import Monitor
from spectra.api.organization import Organization
from spectra.api.schedule import Schedule
from spectra.api.statuspage import StatusPage

_R = TypeVar("_R", bound=Resource)

SecretKeys = Mapping[tuple[str, str], frozenset[str]]
"""(namespace, name) of each known Secret -> the keys it holds."""


@dataclass(frozen=True)
class Reference:
    """`field` of an object names another object (`kind`, same namespace) called `name`."""

    field: str
    kind: str
    name: str


def references(resource: Resource) -> Iterator[Reference]:
    """Every object name a resource refers to (Secrets are walked separately)."""
    if isinstance(resource, Monitor):
        if resource.spec.escalation_policy_ref is not None:
            yield Reference(
                "spec.escalationPolicyRef.name", "EscalationPolicy", resource.spec.escalation_policy_ref.name
            )
    elif isinstance(resource, EscalationPolicy):
        for s, step in enumerate(resource.spec.steps):
            for t, target in enumerate(step.targets):
                if target.schedule is not None:
                    yield Reference(f"spec.steps[{s}].targets[{t}].schedule", "Schedule", target.schedule)
                if target.contact is not None:
                    yield Reference(f"spec.steps[{s}].targets[{t}].contact", "Contact", target.contact)
    elif isinstance(resource, Schedule):
        for li, layer in enumerate(resource.spec.layers):
            for pi, person in enumerate(layer.participants):
                yield Reference(f"spec.layers[{li}].participants[{pi}]", "Contact", person)
        for oi, override in enumerate(resource.spec.overrides):
            yield Reference(f"spec.overrides[{oi}].contact", "Contact", override.contact)
    elif isinstance(resource, StatusPage):
        for gi, group in enumerate(resource.spec.groups):
            for ci, component in enumerate(group.components):
                for mi, monitor in enumerate(component.monitors or []):
                    yield Reference(f"spec.groups[{gi}].components[{ci}].monitors[{mi}]", "Monitor", monitor)
    elif isinstance(resource, MaintenanceWindow):
        for mi, monitor in enumerate(resource.spec.monitors):
            yield Reference(f"spec.monitors[{mi}]", "Monitor", monitor)
        for pi, page in enumerate(resource.spec.status_pages):
            yield Reference(f"spec.statusPages[{pi}]", "StatusPage", page)


def secret_refs(resource: Resource) -> Iterator[tuple[str, ValueSource]]:
    """(field path, source) of every secretKeyRef anywhere in the spec."""
    yield from _walk(getattr(resource, "spec"), ["spec"])  # noqa: B009


def _walk(value: object, path: list[int | str]) -> Iterator[tuple[str, ValueSource]]:
    if isinstance(value, ValueSource):
        yield field_path([*path, "secretKeyRef"]), value
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            yield from _walk(getattr(value, name), [*path, info.alias or name])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, [*path, index])


def check_set(resources: Iterable[Resource], secrets: SecretKeys | None) -> list[tuple[Resource, Problem]]:
    """Problems that only show across objects. `secrets=None` skips Secret checks (they live elsewhere)."""
    objects = list(resources)
    problems: list[tuple[Resource, Problem]] = []
    names: dict[tuple[str, str, str], Resource] = {}
    for obj in objects:
        key = (obj.kind_name, obj.namespace, obj.name)
        if key in names:
            problems.append((obj, Problem("metadata.name", f"{obj.ref} is defined twice")))
        names[key] = obj

    for obj in objects:
        for ref in references(obj):
            if (ref.kind, obj.namespace, ref.name) not in names:
                where = f" in namespace {obj.namespace}" if obj.namespace else ""
                problems.append((obj, Problem(ref.field, f"{ref.kind} {ref.name!r} does not exist{where}")))
        if secrets is not None:
            for field, source in secret_refs(obj):
                problem = _secret_problem(obj.namespace, source, secrets)
                if problem:
                    problems.append((obj, Problem(field, problem)))

    problems.extend(_unique_across(objects, StatusPage, lambda p: [p.spec.slug], "spec.slug", "slug"))
    problems.extend(_unique_across(objects, StatusPage, lambda p: p.spec.hostnames, "spec.hostnames", "host name"))
    problems.extend(_unique_across(objects, Organization, lambda o: o.spec.namespaces, "spec.namespaces", "namespace"))
    return problems


def _secret_problem(namespace: str, source: ValueSource, secrets: SecretKeys) -> str | None:
    ref = source.secret_key_ref
    keys = secrets.get((namespace, ref.name))
    if keys is None:
        return f"Secret {ref.name!r} does not exist in namespace {namespace}"
    if ref.key not in keys:
        return f"Secret {ref.name!r} has no key {ref.key!r}"
    return None


def _unique_across(
    objects: list[Resource], kind: type[_R], values: Callable[[_R], list[str]], field: str, what: str
) -> Iterator[tuple[Resource, Problem]]:
    claimed: dict[str, Resource] = {}
    for obj in objects:
        if not isinstance(obj, kind):
            continue
        for value in values(obj):
            owner = claimed.setdefault(value, obj)
            if owner is not obj:
                yield obj, Problem(field, f"{what} {value!r} is already used by {owner.ref}")
