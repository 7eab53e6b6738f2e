"""The operator's safety net: a periodic pass over every object in the cluster.

kopf reacts to changes; some things change without an event on the object itself: a Secret it names
appears or is rotated, a referenced object arrives, an organization's plan, suspension or trial end
moves, or an object is deleted before kopf ever put its finalizer on. Each pass re-applies the objects
that may be affected (applying is idempotent, so unchanged ones cost a few reads) and removes rows of
objects that are gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from spectra.api import KINDS, Monitor, StatusPage
from spectra.operator import handlers
from spectra.operator.apply import Applier, ready_condition, secret_names, status_patch
from spectra.operator.kube import Kube
from spectra.operator.organizations import organizations
from spectra.operator.secrets import KubernetesSecrets
from spectra.reconcile import CLUSTER_SOURCE
from spectra.store import Resource as ResourceRow
from spectra.store.types import utcnow

SWEEP_MARGIN = timedelta(seconds=10)


class Resync:
    """Re-applies objects that are not Ready (a missing Secret or reference may have appeared), objects
    whose Secrets changed, and tenants' objects (plans, suspension and trial ends change over time)."""

    def __init__(self, applier: Applier, kube: Kube, secrets: KubernetesSecrets) -> None:
        self.applier = applier
        self.kube = kube
        self.secrets = secrets
        self._fingerprints: dict[tuple[str, str, str], str] = {}

    def objects(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for kind in KINDS:
            found.extend(self.kube.list_objects(kind))
        return found

    def run_once(self) -> int:
        """One pass over every object; returns how many got a new Ready condition."""
        listed_at = utcnow()
        objects = self.objects()
        with self.applier.sessions() as session:
            tenant_namespaces = {ns for org in organizations(session) for ns in org.spec.namespaces}
        updated = 0
        seen: set[tuple[str, str, str]] = set()
        for body in objects:
            meta = body.get("metadata") or {}
            key = (str(body.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))
            seen.add(key)
            if meta.get("deletionTimestamp"):
                continue  # kopf's delete handler removes its rows, then the finalizer
            refs = secret_names(body)
            fingerprint = self.secrets.fingerprint(refs) if refs else ""
            secrets_changed = self._fingerprints.get(key, fingerprint) != fingerprint
            self._fingerprints[key] = fingerprint
            condition = ready_condition(body)
            tenant = key[0] in (Monitor.__name__, StatusPage.__name__) and key[1] in tenant_namespaces
            if not (secrets_changed or tenant or condition is None or condition.get("status") != "True"):
                continue
            outcome = self.applier.apply(body)
            if handlers.changed(outcome, body):
                patch = status_patch(outcome, body, utcnow())
                if self.kube.patch_status(key[0], key[1], key[2], patch):
                    updated += 1
                    if not outcome.ready:
                        involved = _involved(body)
                        self.kube.event(involved, type_="Warning", reason=outcome.reason, message=outcome.message)
        for gone in set(self._fingerprints) - seen:
            del self._fingerprints[gone]
        self._sweep(seen, listed_at)
        return updated

    def _sweep(self, present: set[tuple[str, str, str]], listed_at: datetime) -> None:
        """Remove store rows of objects that no longer exist (deleted before kopf put its finalizer on).

        Only rows untouched since before the list began: a row written meanwhile may be an object
        created after the list was taken.
        """
        settled = listed_at - SWEEP_MARGIN
        with self.applier.sessions() as session:
            rows = session.execute(
                select(ResourceRow.kind, ResourceRow.namespace, ResourceRow.name).where(
                    ResourceRow.source == CLUSTER_SOURCE, ResourceRow.updated_at < settled
                )
            ).all()
        for kind, namespace, name in rows:
            if (kind, namespace, name) not in present:
                self.applier.delete(kind, namespace, name)


def _involved(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "name": meta.get("name"),
        "namespace": meta.get("namespace") or "default",
        "uid": meta.get("uid"),
    }
