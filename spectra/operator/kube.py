"""The few Kubernetes API calls the operator makes besides kopf's own, through the official client.

Calls are synchronous (the kubernetes client is); async callers run them with `asyncio.to_thread`.
Secret values never pass through here except in `read_secret`, whose result goes straight into the
resolver's cache.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from spectra.api import GROUP, KINDS, VERSION
from spectra.runtime.timefmt import rfc3339

log = logging.getLogger("spectra.operator")

PLURALS = {kind: model.info.plural for kind, model in KINDS.items()}
MERGE_PATCH = "application/merge-patch+json"


def load_config(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster credentials inside a pod, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.networking = client.NetworkingV1Api(api)

    # --- custom resources -------------------------------------------------------------------------

    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> bool:
        """Merge `status` into the object's status subresource; False when the object is gone."""
        plural = PLURALS[kind]
        body = {"status": status}
        try:
            if namespace:
                self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, plural, name, body)
            else:
                self.custom.patch_cluster_custom_object_status(GROUP, VERSION, plural, name, body)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as the API has it now (None when it is gone); namespace "" for cluster-scoped kinds."""
        plural = PLURALS[kind]
        try:
            if namespace:
                found: Any = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
            else:
                found = self.custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        body: dict[str, Any] = found
        return body

    def list_objects(self, kind: str) -> list[dict[str, Any]]:
        result: Any = self.custom.list_cluster_custom_object(GROUP, VERSION, PLURALS[kind])
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    def event(self, involved: dict[str, Any], *, type_: str, reason: str, message: str) -> None:
        """Post a core/v1 Event about `involved` (apiVersion, kind, namespace, name, uid)."""
        namespace = involved.get("namespace") or "default"
        now = datetime.now(UTC)
        body: Any = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{involved['name']}.", "namespace": namespace},
            "involvedObject": involved,
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "spectra-operator"},
            "reportingComponent": "spectra-operator",
            "firstTimestamp": rfc3339(now),
            "lastTimestamp": rfc3339(now),
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(namespace, body)
        except ApiException as exc:  # an Event is best effort; status is the record
            log.warning("could not post event %s for %s/%s: %s", reason, namespace, involved["name"], exc.reason)

    def peering_exists(self, name: str) -> bool:
        """Whether the ClusterKopfPeering `name` exists (the chart makes it; without it kopf would wait)."""
        try:
            self.custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", name)
        except ApiException as exc:
            if exc.status in (403, 404):
                return False
            raise
        return True

    # --- Secrets ----------------------------------------------------------------------------------

    def read_secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's base64 `data` (None when it does not exist)."""
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if exc.status in (403, 404):
                return None
            raise
        return {key: str(value) for key, value in (secret.data or {}).items()}

    # --- children ---------------------------------------------------------------------------------

    def read_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = self.apps.read_namespaced_deployment(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return self._plain(found)

    def list_deployments(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        found = self.apps.list_namespaced_deployment(namespace, label_selector=selector)
        return [self._plain(item) for item in found.items]

    def list_ingresses(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        found = self.networking.list_namespaced_ingress(namespace, label_selector=selector)
        return [self._plain(item) for item in found.items]

    def create_deployment(self, namespace: str, body: dict[str, Any]) -> None:
        self._create(self.apps.create_namespaced_deployment, namespace, body)

    def patch_deployment(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        # A JSON merge patch replaces lists (containers, env) whole: what we no longer set goes away.
        self.apps.patch_namespaced_deployment(name, namespace, body, _content_type=MERGE_PATCH)

    def delete_deployment(self, namespace: str, name: str) -> bool:
        return self._delete(self.apps.delete_namespaced_deployment, namespace, name)

    def create_ingress(self, namespace: str, body: dict[str, Any]) -> None:
        self._create(self.networking.create_namespaced_ingress, namespace, body)

    def patch_ingress(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.networking.patch_namespaced_ingress(name, namespace, body, _content_type=MERGE_PATCH)

    def delete_ingress(self, namespace: str, name: str) -> bool:
        return self._delete(self.networking.delete_namespaced_ingress, namespace, name)

    def _plain(self, obj: Any) -> dict[str, Any]:
        plain: dict[str, Any] = self.api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return plain

    @staticmethod
    def _create(method: Any, namespace: str, body: dict[str, Any]) -> None:
        try:
            method(namespace, body)
        except ApiException as exc:
            if exc.status != 409:  # made by us a moment ago (a restart mid-reconcile): nothing to do
                raise

    @staticmethod
    def _delete(method: Any, namespace: str, name: str) -> bool:
        try:
            method(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True
