"""Custom-resource bodies, as a user writes them, for the operator, kubectl and the processes.

Each function returns one body (`apiVersion`, `kind`, `metadata`, `spec`) as a dict: pass it to the
code (`spectra.api.parse_object`, the operator's Applier, the emulator's `create`), or turn bodies into
one YAML stream with `to_yaml` for kubectl and `spectra run`. Keyword arguments are spec fields by
their camelCase names, so a test states only what it is about:

    monitor("web", interval="10s")
    local_monitor("web", target.port, failureThreshold=1)
    to_yaml(*operator_cluster(), monitor("api"))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from spectra.api import API_VERSION
from tests.factories.monitors import LOCAL_INTERVAL, LOCAL_TIMEOUT

Body = dict[str, Any]

OPERATOR_NAMESPACE = "spectra"  # where the operator runs and makes its children
OPERATOR_NAME = "spectra-operator"  # its Deployment: the owner of those children
OPERATOR_IMAGE = "example.test/spectra:test"
OPERATOR_UID = "0c1d2e3f-0000-4000-8000-000000000001"


def resource(
    kind: str,
    name: str,
    spec: Mapping[str, Any],
    *,
    namespace: str | None = "default",
    labels: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Body:
    """Any spectra.dev custom resource; `namespace=None` for cluster-scoped kinds (Organization)."""
    meta: Body = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    meta.update(metadata or {})
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta, "spec": dict(spec)}


def monitor(
    name: str,
    *,
    namespace: str = "default",
    url: str | None = None,
    labels: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    **spec: Any,
) -> Body:
    """A Monitor: an http check of `url` (default https://example.com/) every 30 s, unless `spec` says otherwise."""
    fields: Body = {"type": "http", "interval": "30s", **spec}
    if url is not None:
        fields["http"] = {"url": url}
    elif fields["type"] == "http":
        fields.setdefault("http", {"url": "https://example.com/"})
    return resource("Monitor", name, fields, namespace=namespace, labels=labels, metadata=metadata)


def local_monitor(name: str, port: int, *, path: str = "/", namespace: str = "default", **spec: Any) -> Body:
    """An http Monitor of a server of the test on 127.0.0.1:`port`, with the timing of every check of a
    local target (`LOCAL_INTERVAL`, `LOCAL_TIMEOUT` of tests.factories.monitors): a busy machine must not
    fail a check of a target that is up; a stopped target is refused at once anyway.
    """
    fields: Body = {"interval": LOCAL_INTERVAL, "timeout": LOCAL_TIMEOUT, **spec}
    return monitor(name, namespace=namespace, url=f"http://127.0.0.1:{port}{path}", **fields)


def heartbeat_monitor(
    name: str, secret: str, key: str = "token", *, namespace: str = "default", interval: str = "1h", grace: str = "10m"
) -> Body:
    """A heartbeat Monitor whose push token is in Secret `secret` under `key`."""
    heartbeat = {"grace": grace, "tokenFrom": {"secretKeyRef": {"name": secret, "key": key}}}
    return monitor(name, namespace=namespace, type="heartbeat", interval=interval, heartbeat=heartbeat)


def components(*monitors: str, group: str = "All", component: str = "Site") -> list[Body]:
    """The groups of a status page with one component over `monitors`."""
    return [{"name": group, "components": [{"name": component, "monitors": list(monitors)}]}]


def status_page(
    name: str = "public",
    *,
    namespace: str = "default",
    slug: str | None = None,
    title: str | None = None,
    hostnames: Sequence[str] = (),
    groups: Sequence[Mapping[str, Any]] | None = None,
    **spec: Any,
) -> Body:
    """A StatusPage (slug: its name; title: its name capitalized; one component over monitor `web`)."""
    fields: Body = {
        "slug": slug or name,
        "title": title or name.title(),
        "hostnames": list(hostnames),
        "groups": [dict(group) for group in groups] if groups is not None else components("web"),
        **spec,
    }
    return resource("StatusPage", name, fields, namespace=namespace)


def organization(
    name: str, namespaces: Sequence[str], *, metadata: Mapping[str, Any] | None = None, **spec: Any
) -> Body:
    """An Organization (cluster-scoped) owning `namespaces`; displayName: its name capitalized."""
    fields: Body = {"displayName": name.title(), "namespaces": list(namespaces), **spec}
    return resource("Organization", name, fields, namespace=None, metadata=metadata)


def operator_config(**values: Any) -> Body:
    """The operator's settings file (camelCase, as the chart's ConfigMap holds it) with its namespace and owner."""
    return {"namespace": OPERATOR_NAMESPACE, "ownerDeployment": OPERATOR_NAME, **values}


# --- core objects -------------------------------------------------------------------------------------


def secret(name: str, *, namespace: str = "default", **string_data: str) -> Body:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": dict(string_data),
    }


def namespace_object(name: str) -> Body:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def ingress(
    name: str,
    hosts: Sequence[str],
    *,
    namespace: str = "default",
    paths: Sequence[str] = ("/",),
    tls_hosts: Sequence[str] = (),
    annotations: Mapping[str, str] | None = None,
) -> Body:
    """An Ingress routing `paths` of each host to one backend Service (discovery reads hosts and paths)."""
    backend = {"service": {"name": "backend", "port": {"number": 80}}}
    spec: Body = {
        "rules": [
            {"host": host, "http": {"paths": [{"path": p, "pathType": "Prefix", "backend": backend} for p in paths]}}
            for host in hosts
        ]
    }
    if tls_hosts:
        spec["tls"] = [{"hosts": list(tls_hosts), "secretName": f"{name}-tls"}]
    return _core("networking.k8s.io/v1", "Ingress", name, namespace, spec, annotations)


def http_route(
    name: str,
    hostnames: Sequence[str],
    *,
    namespace: str = "default",
    paths: Sequence[str] = ("/",),
    annotations: Mapping[str, str] | None = None,
) -> Body:
    """A Gateway API HTTPRoute attached to a Gateway `web`."""
    spec: Body = {
        "parentRefs": [{"name": "web"}],
        "hostnames": list(hostnames),
        "rules": [
            {
                "matches": [{"path": {"type": "PathPrefix", "value": p}} for p in paths],
                "backendRefs": [{"name": "backend", "port": 80}],
            }
        ],
    }
    return _core("gateway.networking.k8s.io/v1", "HTTPRoute", name, namespace, spec, annotations)


def service(
    name: str,
    ports: Mapping[str, int],
    *,
    namespace: str = "default",
    annotations: Mapping[str, str] | None = None,
) -> Body:
    """A ClusterIP Service with named ports."""
    spec: Body = {"selector": {"app": name}, "ports": [{"name": n, "port": p} for n, p in ports.items()]}
    return _core("v1", "Service", name, namespace, spec, annotations)


def _core(
    api_version: str, kind: str, name: str, namespace: str, spec: Body, annotations: Mapping[str, str] | None
) -> Body:
    metadata: Body = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}


def operator_deployment(*, uid: str | None = None) -> Body:
    """The operator's own Deployment (with `uid`: as the API server returns it)."""
    labels = {"app": OPERATOR_NAME}
    metadata: Body = {"name": OPERATOR_NAME, "namespace": OPERATOR_NAMESPACE}
    if uid is not None:
        metadata["uid"] = uid
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "operator", "image": OPERATOR_IMAGE}]},
            },
        },
    }


def operator_cluster() -> list[Body]:
    """What a cluster holds before the operator starts: kopf's peering, the namespace and the operator's Deployment."""
    peering = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "spectra"}}
    return [peering, namespace_object(OPERATOR_NAMESPACE), operator_deployment()]


def to_yaml(*bodies: Mapping[str, Any]) -> str:
    """One YAML stream of `bodies`, in order (for `kubectl apply -f -` and manifest folders)."""
    return yaml.safe_dump_all([dict(body) for body in bodies], sort_keys=False)


# One http Monitor as YAML: `MONITOR_YAML.format(name=..., namespace=...)`, for tests of files and sets.
MONITOR_YAML = """\
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata:
  name: {name}
  namespace: {namespace}
spec:
  type: http
  http: {{url: "https://example.com/"}}
"""
