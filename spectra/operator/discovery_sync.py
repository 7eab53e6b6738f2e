"""Discovery: keeps a Monitor object for every annotated Ingress, HTTPRoute and Service.

The source is the truth. kopf reports every event of the three kinds, of Namespaces (whose label opts
every Ingress and HTTPRoute in; whose annotations are defaults) and of discovered Monitors; each event
brings the source's Monitors to what `discovery_manifests.discovered` says: created, replaced when they
differ (a hand edit is put back), deleted when the source no longer asks for them or is gone.

Discovered Monitors are owned by their source (an ownerReference), so Kubernetes' garbage collector
removes them with it; the controller deletes them too, so that nothing depends on the collector's
timing. Nothing here holds a finalizer on anyone's Ingress or Service: watching events is enough, and a
Monitor that outlived a missed event is found when its own event arrives (at the latest at the
operator's next start, when kopf lists everything).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from spectra.api import GROUP, VERSION
from spectra.api.discovery import DISCOVERED_FROM, MANAGED_BY, MANAGER, SOURCE, SOURCE_UID
from spectra.operator.discovery_manifests import (
    OWNED_LABELS,
    SOURCE_KINDS,
    NamespaceDiscovery,
    Source,
    SourceKind,
    discovered,
    fingerprint,
)
from spectra.operator.handlers import plain
from spectra.operator.kube import Kube

log = logging.getLogger("spectra.operator.discovery")

MONITORS = "monitors"
REPLACE_ATTEMPTS = 3


class DiscoverySync:
    """Brings each source's Monitors to what it asks for. Called from kopf's handler threads."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._lock = threading.Lock()
        self._namespaces: dict[str, NamespaceDiscovery] = {}
        self._owned: dict[str, set[str]] = {}  # source uid -> names of its Monitors (in its namespace)
        self._written: dict[tuple[str, str], tuple[Any, ...]] = {}  # what we last wrote, by (namespace, name)
        self._problems: dict[str, str] = {}  # source uid -> the problem last reported in an Event

    # --- events -----------------------------------------------------------------------------------

    def source_event(self, kind: SourceKind, event_type: str | None, body: Mapping[str, Any]) -> None:
        source = Source(kind, body)
        if not source.uid or not source.name:
            return
        if event_type == "DELETED":
            self._remove_all(source.namespace, source.uid)
            return
        with self._lock:
            known = source.uid in self._owned
        if not known and not source.wants_monitors(self._namespace(source.namespace)):
            return  # the common case: an object nobody annotated, with no Monitors of ours
        self.sync(source)

    def namespace_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        name = str((body.get("metadata") or {}).get("name") or "")
        if not name:
            return
        now = NamespaceDiscovery() if event_type == "DELETED" else NamespaceDiscovery.of(body)
        with self._lock:
            before = self._namespaces.get(name)
            self._namespaces[name] = now
        if event_type == "DELETED" or before == now or (before is None and now == NamespaceDiscovery()):
            return
        for kind in (SOURCE_KINDS["Ingress"], SOURCE_KINDS["HTTPRoute"]):
            for body_ in self._list_sources(kind, name):
                self.source_event(kind, "MODIFIED", body_)

    def monitor_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        labels = meta.get("labels") or {}
        namespace, name = str(meta.get("namespace") or "default"), str(meta.get("name") or "")
        uid = str(labels.get(SOURCE_UID) or "")
        if not uid or not name:
            return
        if event_type == "DELETED":
            with self._lock:
                self._owned.get(uid, set()).discard(name)
                written = self._written.pop((namespace, name), None)
            if written is None:
                return  # we deleted it
        else:
            with self._lock:
                self._owned.setdefault(uid, set()).add(name)
                if self._written.get((namespace, name)) == fingerprint(body):
                    return  # as we wrote it (a status patch, a finalizer): nothing to put back
        source = self._source_of(meta)
        if source is None or source.uid != uid:
            self._delete(namespace, name, uid, why=f"its source {meta.get('annotations', {}).get(SOURCE)} is gone")
            return
        self.sync(source)

    # --- the work ---------------------------------------------------------------------------------

    def sync(self, source: Source) -> None:
        result = discovered(source, self._namespace(source.namespace))
        if result.problem is not None:
            self._report(source, result.problem)
            return  # the Monitors already there keep running: an invalid edit is not a deletion
        with self._lock:
            self._problems.pop(source.uid, None)
        existing = {str(m["metadata"]["name"]): m for m in self._list_monitors(source.namespace, source.uid)}
        desired = {str(m["metadata"]["name"]): m for m in result.monitors}
        for name, body in desired.items():
            current = existing.get(name)
            if current is None:
                self._create(body, source)
            elif fingerprint(current) != fingerprint(body):
                self._replace(current, body, source)
            else:
                with self._lock:
                    self._written[(source.namespace, name)] = fingerprint(body)
        for name in existing.keys() - desired.keys():
            self._delete(source.namespace, name, source.uid, why=f"{source.ref} no longer asks for it")
        with self._lock:
            if desired:
                self._owned[source.uid] = set(desired)
            else:
                self._owned.pop(source.uid, None)

    def _create(self, body: dict[str, Any], source: Source) -> None:
        namespace, name = source.namespace, str(body["metadata"]["name"])
        with self._lock:
            self._written[(namespace, name)] = fingerprint(body)
        try:
            self.kube.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, MONITORS, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            current = self._read_monitor(namespace, name)  # made a moment ago by another event's handler
            if current is not None and fingerprint(current) != fingerprint(body):
                self._replace(current, body, source)
            return
        log.info("discovered Monitor %s/%s from %s (%s)", namespace, name, source.ref, body["spec"]["http"]["url"])

    def _replace(self, current: Mapping[str, Any], desired: Mapping[str, Any], source: Source) -> None:
        namespace, name = source.namespace, str(desired["metadata"]["name"])
        for _ in range(REPLACE_ATTEMPTS):
            body = _merged(current, desired)
            with self._lock:
                self._written[(namespace, name)] = fingerprint(body)
            try:
                self.kube.custom.replace_namespaced_custom_object(GROUP, VERSION, namespace, MONITORS, name, body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                found = self._read_monitor(namespace, name)  # changed meanwhile: merge into the newer one
                if found is None:
                    self._create(dict(desired), source)
                    return
                current = found
                continue
            log.info("updated discovered Monitor %s/%s from %s", namespace, name, source.ref)
            return
        raise kopf.TemporaryError(f"Monitor {namespace}/{name} kept changing while discovery wrote it", delay=1)

    def _delete(self, namespace: str, name: str, uid: str, *, why: str) -> None:
        with self._lock:
            self._written.pop((namespace, name), None)
            self._owned.get(uid, set()).discard(name)
        try:
            self.kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, MONITORS, name)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return
        log.info("removed discovered Monitor %s/%s: %s", namespace, name, why)

    def _remove_all(self, namespace: str, uid: str) -> None:
        with self._lock:
            self._problems.pop(uid, None)
            self._owned.pop(uid, None)
        for monitor in self._list_monitors(namespace, uid):
            self._delete(namespace, str(monitor["metadata"]["name"]), uid, why="its source was deleted")

    def _report(self, source: Source, problem: str) -> None:
        """One Warning Event on the source per new problem (not one per event kopf delivers)."""
        with self._lock:
            if self._problems.get(source.uid) == problem:
                return
            self._problems[source.uid] = problem
        log.warning("discovery for %s: %s", source.ref, problem)
        involved = {
            "apiVersion": source.kind.api_version,
            "kind": source.kind.kind,
            "name": source.name,
            "namespace": source.namespace,
            "uid": source.uid,
        }
        self.kube.event(involved, type_="Warning", reason="MonitorNotDiscovered", message=problem)

    # --- reading ----------------------------------------------------------------------------------

    def _namespace(self, name: str) -> NamespaceDiscovery:
        with self._lock:
            known = self._namespaces.get(name)
        if known is not None:
            return known
        try:
            body = self._plain(self.kube.core.read_namespace(name))
        except ApiException as exc:
            if exc.status not in (403, 404):
                raise
            body = {}
        found = NamespaceDiscovery.of(body)
        with self._lock:
            return self._namespaces.setdefault(name, found)

    def _source_of(self, meta: Mapping[str, Any]) -> Source | None:
        ref = str((meta.get("annotations") or {}).get(SOURCE) or "")
        kind_name, _, rest = ref.partition("/")
        namespace, _, name = rest.partition("/")
        kind = SOURCE_KINDS.get(kind_name)
        if kind is None or namespace != str(meta.get("namespace") or "default") or not name:
            return None
        try:
            return Source(kind, self._read_source(kind, namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _read_source(self, kind: SourceKind, namespace: str, name: str) -> dict[str, Any]:
        if kind.kind == "Ingress":
            return self._plain(self.kube.networking.read_namespaced_ingress(name, namespace))
        if kind.kind == "Service":
            return self._plain(self.kube.core.read_namespaced_service(name, namespace))
        found: Any = self.kube.custom.get_namespaced_custom_object(
            kind.group, kind.version, namespace, kind.plural, name
        )
        return dict(found)

    def _list_sources(self, kind: SourceKind, namespace: str) -> list[dict[str, Any]]:
        try:
            if kind.kind == "Ingress":
                items = self._plain(self.kube.networking.list_namespaced_ingress(namespace)).get("items") or []
            else:
                found: Any = self.kube.custom.list_namespaced_custom_object(
                    kind.group, kind.version, namespace, kind.plural
                )
                items = found.get("items") or []
        except ApiException as exc:
            if exc.status == 404:  # e.g. no Gateway API in this cluster
                return []
            raise
        return [dict(item) for item in items if isinstance(item, dict)]

    def _plain(self, obj: Any) -> dict[str, Any]:
        plain: dict[str, Any] = self.kube.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return plain

    def _list_monitors(self, namespace: str, uid: str) -> list[dict[str, Any]]:
        found: Any = self.kube.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, MONITORS, label_selector=f"{SOURCE_UID}={uid},{MANAGED_BY}={MANAGER}"
        )
        items: list[dict[str, Any]] = found.get("items") or []
        return items

    def _read_monitor(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: Any = self.kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, MONITORS, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(found)


def _merged(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """`current` with discovery's parts from `desired`: spec, our labels and annotation, owner. The rest
    (kopf's finalizer and annotations, other labels, status, resourceVersion) stays."""
    meta = dict(current.get("metadata") or {})
    wanted_meta = desired["metadata"]
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in OWNED_LABELS}
    labels.update(wanted_meta["labels"])
    annotations = dict(meta.get("annotations") or {})
    annotations.update(wanted_meta["annotations"])
    meta.update(labels=labels, annotations=annotations, ownerReferences=wanted_meta["ownerReferences"])
    merged = {key: value for key, value in current.items() if key != "status"}
    merged.update(apiVersion=desired["apiVersion"], kind=desired["kind"], metadata=meta, spec=desired["spec"])
    return merged


def register(registry: kopf.OperatorRegistry, discovery: DiscoverySync) -> None:
    """kopf event handlers (no finalizers, no progress annotations on anyone's objects)."""

    for kind in SOURCE_KINDS.values():

        def on_source(*, type: str | None, body: kopf.Body, _kind: SourceKind = kind, **_: Any) -> None:
            discovery.source_event(_kind, type, plain(body))

        selector = (kind.group, kind.version, kind.plural) if kind.group else (kind.version, kind.plural)
        kopf.on.event(*selector, registry=registry, id=f"discover-{kind.kind.lower()}")(on_source)

    def on_namespace(*, type: str | None, body: kopf.Body, **_: Any) -> None:
        discovery.namespace_event(type, plain(body))

    def on_monitor(*, type: str | None, body: kopf.Body, **_: Any) -> None:
        discovery.monitor_event(type, plain(body))

    kopf.on.event("v1", "namespaces", registry=registry, id="discover-namespace")(on_namespace)
    kopf.on.event(
        GROUP, VERSION, MONITORS, registry=registry, id="discovered-monitor", labels={DISCOVERED_FROM: kopf.PRESENT}
    )(on_monitor)
