"""Keeps the objects the operator owns in line with the store: one probe Deployment per location in
use (scaled with its monitors) and one Ingress per StatusPage with host names.

Level-triggered: every pass compares what should exist with what does (listed by our labels) and
creates, patches or deletes the difference, so a restart mid-pass, a lost delete or a hand edit is
repaired by the next pass, and names are fixed so nothing is made twice.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from spectra.api import API_VERSION, StatusPage
from spectra.operator.child_manifests import (
    build_page_ingress,
    build_probe_deployment,
    is_same,
    list_selector,
    owner_reference,
    probe_replicas,
)
from spectra.operator.kube import Kube
from spectra.operator.settings import OperatorSettings
from spectra.reconcile import CLUSTER_SOURCE
from spectra.store import Monitor, MonitorLocation
from spectra.store import Resource as ResourceRow

log = logging.getLogger("spectra.operator")


def monitors_per_location(session: Session) -> dict[str, int]:
    """Scheduled (not paused) cluster monitors of each location."""
    stmt = (
        select(MonitorLocation.location, func.count())
        .join(Monitor, Monitor.resource_id == MonitorLocation.monitor_id)
        .join(ResourceRow, ResourceRow.id == Monitor.resource_id)
        .where(Monitor.paused.is_(False), ResourceRow.source == CLUSTER_SOURCE)
        .group_by(MonitorLocation.location)
    )
    return dict(session.execute(stmt).all())


def stored_pages(session: Session) -> list[StatusPage]:
    pages: list[StatusPage] = []
    rows = session.scalars(
        select(ResourceRow).where(ResourceRow.kind == "StatusPage", ResourceRow.source == CLUSTER_SOURCE)
    )
    for row in rows:
        body = {
            "apiVersion": API_VERSION,
            "kind": "StatusPage",
            "metadata": {"name": row.name, "namespace": row.namespace},
            "spec": row.spec,
        }
        try:
            pages.append(StatusPage.model_validate(body))
        except ValidationError:
            continue
    return pages


class ChildSync:
    def __init__(self, sessions: sessionmaker[Session], kube: Kube, settings: OperatorSettings) -> None:
        self.sessions = sessions
        self.kube = kube
        self.settings = settings
        self._owner: dict[str, Any] | None = None
        self.changes = 0  # creates, patches and deletes made (for logs and tests)

    def owner(self) -> dict[str, Any] | None:
        """The operator's own Deployment as owner (read once); None when not configured or not found."""
        name = self.settings.owner_deployment
        if self._owner is None and name:
            found = self.kube.read_deployment(self.settings.namespace, name)
            if found is None:
                log.warning("owner Deployment %s/%s not found: children get no owner", self.settings.namespace, name)
            else:
                self._owner = owner_reference(found)
        return self._owner

    def sync(self) -> None:
        with self.sessions() as session:
            counts = monitors_per_location(session)
            pages = stored_pages(session)
        owner = self.owner()
        namespace = self.settings.namespace
        wanted = {
            body["metadata"]["name"]: body
            for location, count in sorted(counts.items())
            if count > 0
            for body in [
                build_probe_deployment(self.settings, location, probe_replicas(count, self.settings.probe), owner)
            ]
        }
        live = self.kube.list_deployments(namespace, list_selector(self.settings, "probe"))
        self._converge("Deployment", wanted, live)
        ingresses: dict[str, dict[str, Any]] = {}
        if self.settings.ingress.enabled:
            for page in pages:
                body = build_page_ingress(self.settings, page, owner)
                if body is not None:
                    ingresses[body["metadata"]["name"]] = body
        live = self.kube.list_ingresses(namespace, list_selector(self.settings, "status-page"))
        self._converge("Ingress", ingresses, live)

    def _converge(self, kind: str, wanted: dict[str, dict[str, Any]], live: list[dict[str, Any]]) -> None:
        namespace = self.settings.namespace
        existing = {item["metadata"]["name"]: item for item in live}
        for name, body in wanted.items():
            current = existing.get(name)
            if current is None:
                log.info("creating %s %s/%s", kind, namespace, name)
                (self.kube.create_deployment if kind == "Deployment" else self.kube.create_ingress)(namespace, body)
                self.changes += 1
            elif not is_same(body, current):
                log.info("updating %s %s/%s", kind, namespace, name)
                (self.kube.patch_deployment if kind == "Deployment" else self.kube.patch_ingress)(namespace, name, body)
                self.changes += 1
        for name in set(existing) - set(wanted):
            log.info("deleting %s %s/%s: no longer needed", kind, namespace, name)
            (self.kube.delete_deployment if kind == "Deployment" else self.kube.delete_ingress)(namespace, name)
            self.changes += 1
