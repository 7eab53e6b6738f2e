"""One custom-resource body -> validated model -> the same loader standalone mode uses -> the store.

The operator's kopf handlers, its periodic pass and its re-apply of waiting objects all call
`Applier.apply`; the answer (`Outcome`) becomes the object's `Ready` condition. An object that does not
validate, or whose Secret is missing, leaves the store as it was: the last good version keeps running,
and `Ready=False` names the field. Missing referenced objects are applied anyway (they may arrive in the
next second) and reported until they exist; the outcome says what they wait for (`waits.py`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from spectra.api import KINDS, InvalidObject, Monitor, Organization, Resource, StatusPage, parse_object
from spectra.api.cross_checks import Reference, references, secret_refs
from spectra.api.discovery import DISCOVERED_FROM
from spectra.auth.accounts import invite_declared_admins
from spectra.operator.organizations import admit
from spectra.operator.secrets import KubernetesSecrets
from spectra.operator.waits import ObjectKey, SecretKey
from spectra.reconcile import CLUSTER_SOURCE, apply_one, delete_one
from spectra.runtime.timefmt import rfc3339
from spectra.store import Monitor as MonitorRow
from spectra.store import Resource as ResourceRow
from spectra.store import push_token_hash
from spectra.store.engine import is_conflict
from spectra.store.types import utcnow

log = logging.getLogger("spectra.operator")

STORE_ATTEMPTS = 3


@dataclass(frozen=True)
class Outcome:
    """What became of an object: `ready` with a CamelCase reason and a message naming the field."""

    ready: bool
    reason: str
    message: str
    applied: bool = False  # the store now holds this version (possibly held)
    # What a MissingReference or SecretMissing outcome waits for (the operator re-applies it when it arrives).
    awaited_objects: tuple[ObjectKey, ...] = ()
    awaited_secrets: tuple[SecretKey, ...] = ()

    def condition(self, generation: int | None, previous: Mapping[str, Any] | None, now: datetime) -> dict[str, Any]:
        """The Ready condition; its transition time moves only when its status does."""
        status = "True" if self.ready else "False"
        since = rfc3339(now)
        if previous is not None and previous.get("status") == status and previous.get("lastTransitionTime"):
            since = str(previous["lastTransitionTime"])
        return {
            "type": "Ready",
            "status": status,
            "reason": self.reason,
            "message": self.message[:1024],
            "lastTransitionTime": since,
            "observedGeneration": generation,
        }


def ready_condition(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in (body.get("status") or {}).get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition
    return None


def changed(outcome: Outcome, body: Mapping[str, Any]) -> bool:
    """Whether the Ready condition would say something new (then an Event is worth posting)."""
    previous = ready_condition(body)
    status = "True" if outcome.ready else "False"
    return previous is None or (previous.get("status"), previous.get("reason"), previous.get("message")) != (
        status,
        outcome.reason,
        outcome.message[:1024],
    )


def needs_patch(outcome: Outcome, body: Mapping[str, Any]) -> bool:
    """Whether `status_patch` would change the object's status: a new condition, or a new generation."""
    if changed(outcome, body):
        return True
    generation = (body.get("metadata") or {}).get("generation")
    previous = ready_condition(body) or {}
    if previous.get("observedGeneration") != generation:
        return True
    observed = (body.get("status") or {}).get("observedGeneration")
    return (outcome.applied or outcome.ready) and observed != generation


def object_key(body: Mapping[str, Any]) -> ObjectKey:
    """(kind, namespace, name) of a body; the namespace is "" for cluster-scoped kinds."""
    kind = str(body.get("kind"))
    meta = body.get("metadata") or {}
    model = KINDS.get(kind)
    namespaced = model is None or model.info.namespaced
    namespace = str(meta.get("namespace") or "default") if namespaced else ""
    return kind, namespace, str(meta.get("name"))


def status_patch(outcome: Outcome, body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The `.status` merge patch for an outcome: the Ready condition and observedGeneration."""
    generation = (body.get("metadata") or {}).get("generation")
    condition = outcome.condition(generation, ready_condition(body), now)
    patch: dict[str, Any] = {"conditions": [condition]}
    if outcome.applied or outcome.ready:
        patch["observedGeneration"] = generation
    return patch


def secret_names(body: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(namespace, Secret name) of every secretKeyRef in a body; empty when it does not validate."""
    try:
        resource = parse_object(body)
    except InvalidObject:
        return set()
    return {(resource.namespace, source.secret_key_ref.name) for _, source in secret_refs(resource)}


class Applier:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        secrets: KubernetesSecrets,
        *,
        clock: Callable[[], datetime] = utcnow,
        allow_private_targets: bool = False,
        public_url: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.secrets = secrets
        self.clock = clock
        self.public_url = public_url  # where invitation links of spec.admins point (operator setting web.publicUrl)
        self.allow_private_targets = allow_private_targets  # the probes' setting (operator settings probe.*)

    def apply(self, body: Mapping[str, Any]) -> Outcome:
        try:
            resource = parse_object(body)
        except InvalidObject as exc:
            return Outcome(False, "Invalid", "; ".join(str(problem) for problem in exc.problems))
        if self._in_cluster_target(resource):
            # Nothing to check it with: the probes refuse cluster addresses. Stored, it would only be DOWN.
            self.delete(resource.kind_name, resource.namespace, resource.name)
            return Outcome(
                False,
                "PrivateTarget",
                "spec.http.url: a Service is checked inside the cluster, which the probes may not reach: "
                "set the operator setting probe.allowPrivateTargets (chart operator.config.probe.allowPrivateTargets)",
            )
        missing_secrets = self._missing_secrets(resource)
        if missing_secrets:
            return Outcome(
                False,
                "SecretMissing",
                "; ".join(problem for problem, _ in missing_secrets),
                awaited_secrets=tuple(sorted({(resource.namespace, name) for _, name in missing_secrets})),
            )
        # The kopf handler and the retry pass (maybe on another replica) can store the same new object
        # at once: the loser's insert hits the unique key. Applying is idempotent, so apply again: the
        # row now exists and becomes an update. (Raising instead would make kopf wait its 60 s backoff.)
        for _ in range(STORE_ATTEMPTS - 1):
            try:
                return self._store(resource)
            except (IntegrityError, OperationalError) as exc:
                if not _retryable(exc):
                    raise
                log.info("%s was written concurrently; applying again", resource.ref)
        return self._store(resource)

    def _store(self, resource: Resource) -> Outcome:
        with self.sessions() as session:
            conflict = _conflict(session, resource) or self._push_token_conflict(session, resource)
            if conflict:
                return Outcome(False, "Conflict", conflict)
            admission = admit(session, resource, self.clock())
            if not admission.admitted and isinstance(resource, StatusPage):
                delete_one(session, resource.kind_name, resource.namespace, resource.name)
                session.commit()
                return Outcome(False, admission.reason, admission.message)
            report = apply_one(session, resource, CLUSTER_SOURCE, secrets=self.secrets, held=not admission.admitted)
            missing = _missing_references(session, resource)
            admins = (
                invite_declared_admins(session, now=self.clock(), public_url=self.public_url)
                if isinstance(resource, Organization)
                else None
            )
            session.commit()
        if admins is not None:
            for organization, email in admins.invited:
                log.info("Organization %s: invited %s as an admin (spec.admins)", organization, email)
            for organization, email, why in admins.refused:
                log.warning("Organization %s: %s in spec.admins was not invited: %s", organization, email, why)
        if report.changed:
            log.info("applied %s (%s)", resource.ref, "created" if report.created else "updated")
        if not admission.admitted:
            return Outcome(False, admission.reason, admission.message, applied=True)
        if missing:
            return Outcome(
                False,
                "MissingReference",
                "; ".join(
                    f"{ref.field}: {ref.kind} {ref.name!r} does not exist in namespace {resource.namespace}"
                    for ref in missing
                ),
                applied=True,
                awaited_objects=tuple(sorted({(ref.kind, resource.namespace, ref.name) for ref in missing})),
            )
        return Outcome(True, "Applied", "in the store and scheduled", applied=True)

    def may_name(self, key: ObjectKey) -> list[ObjectKey]:
        """Stored objects of the cluster in `key`'s namespace whose spec mentions its name: a superset of
        those that reference it (applying one more object again is harmless; missing one is not)."""
        kind, namespace, name = key
        mention = json.dumps(name)
        with self.sessions() as session:
            rows = session.execute(
                select(ResourceRow.kind, ResourceRow.namespace, ResourceRow.name, ResourceRow.spec).where(
                    ResourceRow.namespace == namespace, ResourceRow.source == CLUSTER_SOURCE
                )
            ).all()
        return [
            (row_kind, row_namespace, row_name)
            for row_kind, row_namespace, row_name, spec in rows
            if (row_kind, row_name) != (kind, name) and mention in json.dumps(spec)
        ]

    def _in_cluster_target(self, resource: Resource) -> bool:
        """A Monitor discovered from a Service targets it inside the cluster (`<name>.<namespace>.svc`)."""
        return (
            not self.allow_private_targets
            and isinstance(resource, Monitor)
            and resource.metadata.labels.get(DISCOVERED_FROM) == "service"
        )

    def _push_token_conflict(self, session: Session, resource: Resource) -> str | None:
        """A heartbeat monitor's push token must name it alone (the store holds each token's hash once).
        The other monitor is not named: it may be another tenant's, and the token is a secret."""
        if not isinstance(resource, Monitor) or resource.spec.heartbeat is None:
            return None
        ref = resource.spec.heartbeat.token_from.secret_key_ref
        token = self.secrets.get(resource.namespace, ref.name, ref.key)
        if not token:
            return None
        owner = session.execute(
            select(MonitorRow.namespace, MonitorRow.name).where(MonitorRow.push_token_hash == push_token_hash(token))
        ).first()
        if owner is None or tuple(owner) == (resource.namespace, resource.name):
            return None
        return "spec.heartbeat.tokenFrom: this push token is already used by another monitor: give each its own"

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        with self.sessions() as session:
            removed = delete_one(session, kind, namespace, name)
            session.commit()
        if removed:
            log.info("removed %s/%s from the store", kind, f"{namespace}/{name}" if namespace else name)
        return removed

    def _missing_secrets(self, resource: Resource) -> list[tuple[str, str]]:
        """(problem, Secret name) of every secretKeyRef whose Secret or key is missing."""
        problems: list[tuple[str, str]] = []
        for field, source in secret_refs(resource):
            ref = source.secret_key_ref
            keys = self.secrets.keys(resource.namespace, ref.name)
            if keys is None:
                problem = f"{field}: Secret {ref.name!r} does not exist in namespace {resource.namespace}"
                problems.append((problem, ref.name))
            elif ref.key not in keys:
                problems.append((f"{field}: Secret {ref.name!r} has no key {ref.key!r}", ref.name))
        return problems


def _retryable(exc: IntegrityError | OperationalError) -> bool:
    """A unique-key race (the other writer's row now exists) or a deadlock/lock timeout (MySQL 1213/1205)."""
    return isinstance(exc, IntegrityError) or is_conflict(exc)


def _missing_references(session: Session, resource: Resource) -> list[Reference]:
    wanted = list(references(resource))
    if not wanted:
        return []
    stored = set(
        session.execute(
            select(ResourceRow.kind, ResourceRow.name).where(
                ResourceRow.namespace == resource.namespace,
                ResourceRow.kind.in_({ref.kind for ref in wanted}),
                ResourceRow.name.in_({ref.name for ref in wanted}),
            )
        ).all()
    )
    return [ref for ref in wanted if (ref.kind, ref.name) not in stored]


def _conflict(session: Session, resource: Resource) -> str | None:
    """What another object already claims (page slug or host name, an organization's namespace)."""
    if isinstance(resource, StatusPage):
        rows = session.scalars(select(ResourceRow).where(ResourceRow.kind == "StatusPage")).all()
        for row in rows:
            if (row.namespace, row.name) == (resource.namespace, resource.name):
                continue
            if row.spec.get("slug") == resource.spec.slug:
                return (
                    f"spec.slug: slug {resource.spec.slug!r} is already used by StatusPage/{row.namespace}/{row.name}"
                )
            taken = set(row.spec.get("hostnames") or []) & set(resource.spec.hostnames)
            if taken:
                return (
                    f"spec.hostnames: host name {sorted(taken)[0]!r} is already used by "
                    f"StatusPage/{row.namespace}/{row.name}"
                )
    if isinstance(resource, Organization):
        rows = session.scalars(select(ResourceRow).where(ResourceRow.kind == "Organization")).all()
        for row in rows:
            if row.name == resource.name:
                continue
            taken = set(row.spec.get("namespaces") or []) & set(resource.spec.namespaces)
            if taken:
                return f"spec.namespaces: namespace {sorted(taken)[0]!r} already belongs to Organization/{row.name}"
    return None
