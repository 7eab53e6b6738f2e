"""Validated resources -> store rows, idempotently: the one path standalone mode and the operator share.

Applying the same objects twice writes nothing the second time (rows are compared by a hash of
spec and labels); applying a set with `prune=True` removes the rows of that source that the set no
longer holds, so deleting a manifest deletes its rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from spectra.api import Monitor, Resource
from spectra.api.secrets import NoSecrets, SecretResolver
from spectra.store import Monitor as MonitorRow
from spectra.store import MonitorLocation, push_token_hash
from spectra.store import Resource as ResourceRow
from spectra.store.config import SOURCE_FILE_LEN
from spectra.store.types import utcnow

MANIFEST_SOURCE = "manifests"
CLUSTER_SOURCE = "cluster"

Key = tuple[str, str, str]


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)

    def __str__(self) -> str:
        return (
            f"{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged, {len(self.deleted)} deleted"
        )


def spec_hash(resource: Resource, token_hash: str | None = None, *, held: bool = False) -> str:
    """A stable digest of what the user declared (spec and labels; server-set metadata is left out).

    A heartbeat's token hash is mixed in so that rotating the token in its Secret re-applies the monitor;
    so is `held` (the operator holds monitors over their organization's plan), only when set.
    """
    declared: dict[str, Any] = {"spec": resource.spec_dict(), "labels": resource.metadata.labels, "token": token_hash}
    if held:
        declared["held"] = True
    canonical = json.dumps(declared, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def key_of(resource: Resource) -> Key:
    return (resource.kind_name, resource.namespace, resource.name)


def apply_set(
    session: Session,
    resources: Iterable[Resource],
    source: str,
    *,
    prune: bool = True,
    secrets: SecretResolver | None = None,
    files: Mapping[Key, str] | None = None,
) -> ApplyReport:
    """Upsert every resource; with `prune`, delete this source's rows the set no longer has.

    `secrets` answers heartbeat monitors' token references: only a hash of the token is stored. `files`
    names the manifest file each resource was read from, by `key_of` (`ManifestSet.source_files`): stored
    as `source_file` for people to read, never used to group rows (pruning goes by `source`).
    """
    report = ApplyReport()
    secrets = secrets or NoSecrets()
    files = files or {}
    existing = {(row.kind, row.namespace, row.name): row for row in session.scalars(select(ResourceRow))}
    wanted: set[Key] = set()
    for resource in resources:
        key = key_of(resource)
        wanted.add(key)
        _apply(session, resource, source, existing.get(key), report, secrets=secrets, source_file=files.get(key))
    if prune:
        for key, row in existing.items():
            if row.source == source and key not in wanted:
                session.delete(row)
                report.deleted.append("/".join(part for part in key if part))
    session.flush()
    return report


def apply_one(
    session: Session, resource: Resource, source: str, *, secrets: SecretResolver | None = None, held: bool = False
) -> ApplyReport:
    """Upsert one resource (the operator's create/update handler).

    `held` stores a Monitor as paused whatever its spec says: the operator holds monitors that are over
    their organization's plan, or whose organization is suspended, without losing their history.
    """
    report = ApplyReport()
    kind, namespace, name = key_of(resource)
    row = session.scalars(
        select(ResourceRow).where(
            ResourceRow.kind == kind, ResourceRow.namespace == namespace, ResourceRow.name == name
        )
    ).one_or_none()
    _apply(session, resource, source, row, report, secrets=secrets or NoSecrets(), held=held)
    session.flush()
    return report


def delete_one(session: Session, kind: str, namespace: str, name: str) -> bool:
    """Remove one resource's rows (and, by cascade, its monitor, locations and results)."""
    result = session.execute(
        delete(ResourceRow).where(
            ResourceRow.kind == kind, ResourceRow.namespace == namespace, ResourceRow.name == name
        )
    )
    return bool(getattr(result, "rowcount", 0))


def _apply(
    session: Session,
    resource: Resource,
    source: str,
    row: ResourceRow | None,
    report: ApplyReport,
    *,
    secrets: SecretResolver,
    held: bool = False,
    source_file: str | None = None,
) -> None:
    digest = spec_hash(resource, _push_token(resource, secrets), held=held)
    if source_file is not None and len(source_file) > SOURCE_FILE_LEN:
        source_file = "..." + source_file[-(SOURCE_FILE_LEN - 3) :]  # the end names the file
    declared_generation = resource.metadata.generation
    if row is None:
        row = ResourceRow(
            kind=resource.kind_name,
            namespace=resource.namespace,
            name=resource.name,
            uid=resource.metadata.uid,
            generation=declared_generation or 1,
            spec=resource.spec_dict(),
            labels=dict(resource.metadata.labels),
            spec_hash=digest,
            source=source,
            source_file=source_file,
        )
        session.add(row)
        session.flush()  # the id is needed for the monitor row
        _sync_monitor(session, row, resource, secrets, held=held)
        report.created.append(resource.ref)
        return
    same_generation = declared_generation is None or declared_generation == row.generation
    same_origin = row.source == source and row.source_file == source_file
    if row.spec_hash == digest and same_origin and same_generation and row.uid == resource.metadata.uid:
        report.unchanged.append(resource.ref)
        return
    if row.spec_hash != digest:
        row.spec = resource.spec_dict()
        row.labels = dict(resource.metadata.labels)
        row.spec_hash = digest
        row.generation = declared_generation or row.generation + 1
        _sync_monitor(session, row, resource, secrets, held=held)
    elif declared_generation is not None:
        row.generation = declared_generation
    row.uid = resource.metadata.uid
    row.source = source
    row.source_file = source_file
    row.updated_at = utcnow()
    report.updated.append(resource.ref)


def _push_token(resource: Resource, secrets: SecretResolver) -> str | None:
    """The hash of a heartbeat monitor's push token (None when it is not a heartbeat or the Secret is missing)."""
    if not isinstance(resource, Monitor) or resource.spec.heartbeat is None:
        return None
    ref = resource.spec.heartbeat.token_from.secret_key_ref
    token = secrets.get(resource.namespace, ref.name, ref.key)
    return push_token_hash(token) if token else None


def monitor_columns(resource: Monitor, secrets: SecretResolver | None = None, *, held: bool = False) -> dict[str, Any]:
    """The hot-path columns of a Monitor (what probes and the alerter read every cycle)."""
    spec = resource.spec
    policy = spec.escalation_policy_ref
    return {
        "namespace": resource.namespace,
        "name": resource.name,
        "type": str(spec.type),
        "target": spec.target[:2048],
        "interval_ms": int(spec.interval.total_seconds() * 1000),
        "timeout_ms": int(spec.effective_timeout.total_seconds() * 1000),
        "paused": spec.paused or held,
        "quorum": spec.effective_quorum,
        "failure_threshold": spec.failure_threshold,
        "success_threshold": spec.success_threshold,
        "escalation_policy": policy.name if policy is not None else None,
        "severity": str(spec.severity),
        "labels": dict(resource.metadata.labels),
        "push_token_hash": _push_token(resource, secrets or NoSecrets()),
    }


def _sync_monitor(
    session: Session, row: ResourceRow, resource: Resource, secrets: SecretResolver, *, held: bool = False
) -> None:
    if not isinstance(resource, Monitor):
        return
    columns = monitor_columns(resource, secrets, held=held)
    monitor = session.get(MonitorRow, row.id)
    if monitor is None:
        monitor = MonitorRow(resource_id=row.id, **columns)
        session.add(monitor)
    else:
        for name, value in columns.items():
            setattr(monitor, name, value)
    wanted = set(resource.spec.effective_locations)
    current = {loc.location: loc for loc in monitor.locations}
    for name, location in current.items():
        if name not in wanted:
            monitor.locations.remove(location)
    for name in sorted(wanted - set(current)):
        monitor.locations.append(MonitorLocation(location=name))
