"""The Kubernetes objects the operator owns, built as plain manifests (no I/O).

- one probe worker Deployment per location in use, in the operator's namespace;
- one Ingress per StatusPage with hostnames, in the operator's namespace (an Ingress can only route
  to a Service in its own namespace, and the web Service lives there).

Every child is owned by the operator's own Deployment (`owner_reference`): owner references cannot
cross namespaces, and this way `helm uninstall` removes the children with the release.

Apply the built objects with server-side apply (one field manager) and skip the call when `is_same`
says nothing changed. `is_same` compares only what we set (the API server adds defaults) plus a hash
of the whole desired object kept in an annotation, so a key we stopped setting still counts as a change.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from spectra.api.statuspage import StatusPage
from spectra.operator.settings import OperatorSettings, ProbeSettings

Manifest = dict[str, Any]

MANAGED_BY: Final = "spectra-operator"
MANAGED_BY_SELECTOR: Final = f"app.kubernetes.io/managed-by={MANAGED_BY}"
CONFIG_HASH: Final = "spectra.dev/config-hash"
LOCATION_LABEL: Final = "spectra.dev/location"
PAGE_NAMESPACE_LABEL: Final = "spectra.dev/status-page-namespace"
PAGE_NAME_LABEL: Final = "spectra.dev/status-page-name"
PAGE_ANNOTATION: Final = "spectra.dev/status-page"  # exact namespace/name: label values may be hashed

PROBE_PORT: Final = 8081
TMP: Final = "/tmp"  # noqa: S108 - a per-pod emptyDir, the only writable path (read-only root filesystem)
RUN_AS: Final = 10001
# Lets the unprivileged user open ICMP datagram sockets, so ping checks need no NET_RAW; the
# sysctl is namespaced and on Kubernetes' "safe" list, which the restricted Pod Security level allows.
PING_GROUP_RANGE: Final = {"name": "net.ipv4.ping_group_range", "value": "0 2147483647"}

Component = Literal["probe", "status-page"]


# --- names -------------------------------------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _fit(raw: str, limit: int, cleaned: str) -> str:
    """`cleaned` if it is `raw` unchanged and short enough; else cut and suffixed with a hash of `raw`,
    so different inputs never end up with the same name."""
    if cleaned == raw and len(cleaned) <= limit:
        return cleaned
    head = cleaned[: limit - 9].rstrip("-.")
    return f"{head}-{_digest(raw)}" if head else _digest(raw)


def dns_label(raw: str) -> str:
    """A DNS-1123 label (<= 63 chars, [a-z0-9-]) made from `raw`; stable and collision-free."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    return _fit(raw, 63, cleaned)


def dns_subdomain(raw: str) -> str:
    """A DNS-1123 subdomain (<= 253 chars) made from `raw`; stable and collision-free."""
    cleaned = re.sub(r"[^a-z0-9.-]+", "-", raw.lower())
    cleaned = re.sub(r"\.[-.]*|-*\.", ".", cleaned).strip("-.")  # every dot-separated part starts/ends alnum
    return _fit(raw, 253, cleaned)


def label_value(raw: str) -> str:
    """A valid label value (<= 63 chars, alnum at both ends)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", raw).strip("-._")
    return _fit(raw, 63, cleaned) if raw else ""


def probe_name(settings: OperatorSettings, location: str) -> str:
    return dns_label(f"{settings.instance}-probe-{location}")


def ingress_name(settings: OperatorSettings, namespace: str, name: str) -> str:
    # A dot between namespace and name: namespaces have no dots, so team-a/x and team/a-x stay distinct.
    return dns_subdomain(f"{settings.instance}-page-{namespace}.{name}")


# --- labels and selectors ----------------------------------------------------------------------


def _labels(settings: OperatorSettings, component: Component) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "spectra",
        "app.kubernetes.io/instance": label_value(settings.instance),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def list_selector(settings: OperatorSettings, component: Component) -> str:
    """Label selector for listing this instance's children of one kind (to delete the unwanted ones)."""
    return (
        f"{MANAGED_BY_SELECTOR},app.kubernetes.io/instance={label_value(settings.instance)},"
        f"app.kubernetes.io/component={component}"
    )


def owner_reference(deployment_body: dict[str, Any]) -> dict[str, Any]:
    """An ownerReference to the operator's Deployment, from its body as read from the API."""
    meta = deployment_body["metadata"]
    return {
        "apiVersion": deployment_body.get("apiVersion", "apps/v1"),
        "kind": deployment_body.get("kind", "Deployment"),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(name: str, namespace: str, labels: dict[str, str], owner: dict[str, Any] | None) -> Manifest:
    meta: Manifest = {"name": name, "namespace": namespace, "labels": labels}
    if owner is not None:
        meta["ownerReferences"] = [dict(owner)]
    return meta


def _stamp(obj: Manifest) -> Manifest:
    """Record a hash of the desired object, so `is_same` sees keys we dropped as well as values."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    obj["metadata"].setdefault("annotations", {})[CONFIG_HASH] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return obj


# --- probe workers -----------------------------------------------------------------------------


def probe_replicas(monitor_count: int, probe: ProbeSettings) -> int:
    """ceil(monitors / monitorsPerReplica) within [minReplicas, maxReplicas] (maxReplicas wins).

    0 for a location with no monitors: nothing to run there, the caller deletes its Deployment.
    """
    if monitor_count <= 0:
        return 0
    wanted = math.ceil(monitor_count / probe.monitors_per_replica)
    return min(probe.max_replicas, max(probe.min_replicas, wanted))


def restricted_pod_security() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
        "sysctls": [dict(PING_GROUP_RANGE)],
    }


def restricted_container_security() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def build_probe_deployment(
    settings: OperatorSettings, location: str, replicas: int, owner: dict[str, Any] | None
) -> Manifest:
    """The probe worker Deployment of one location (`replicas` from `probe_replicas`)."""
    probe = settings.probe
    labels = {**_labels(settings, "probe"), LOCATION_LABEL: label_value(location)}
    # The selector is immutable: only labels that never change for this Deployment.
    selector = {key: labels[key] for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", LOCATION_LABEL)}
    selector["app.kubernetes.io/component"] = "probe"
    args = ["probe", "--location", location, "--listen", f"0.0.0.0:{PROBE_PORT}"]
    if probe.allow_private_targets:
        args.append("--allow-private-targets")
    env = copy.deepcopy(probe.env)
    if not any(item.get("name") == "HOME" for item in env):
        # The root filesystem is read-only and uid 10001 has no home: Chromium and fontconfig write here.
        env.insert(0, {"name": "HOME", "value": TMP})
    container: Manifest = {
        "name": "probe",
        "image": probe.image,
        "imagePullPolicy": probe.image_pull_policy,
        "command": ["spectra"],
        "args": args,
        "env": env,
        "ports": [{"name": "http", "containerPort": PROBE_PORT, "protocol": "TCP"}],
        # Startup allows a slow first database connection before liveness may restart the pod.
        "startupProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 2, "failureThreshold": 30},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10, "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5, "failureThreshold": 2},
        "securityContext": restricted_container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": TMP}],
    }
    if probe.resources:
        container["resources"] = copy.deepcopy(probe.resources)
    pod: Manifest = {
        "serviceAccountName": probe.service_account_name,
        "automountServiceAccountToken": True,  # probes read referenced Secrets through the API
        "securityContext": restricted_pod_security(),
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}],  # browser profiles, screenshots, temp files
    }
    if probe.node_selector:
        pod["nodeSelector"] = dict(probe.node_selector)
    if probe.tolerations:
        pod["tolerations"] = copy.deepcopy(probe.tolerations)
    if probe.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": name} for name in probe.image_pull_secrets]
    return _stamp(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(probe_name(settings, location), settings.namespace, labels, owner),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector},
                # Nothing time-varying in the template: an unchanged apply must not roll the pods.
                "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
            },
        }
    )


# --- status page ingresses ---------------------------------------------------------------------


def build_page_ingress(settings: OperatorSettings, page: StatusPage, owner: dict[str, Any] | None) -> Manifest | None:
    """The Ingress serving a StatusPage on its own hostnames; None when none is wanted."""
    hostnames = list(page.spec.hostnames)
    if not settings.ingress.enabled or not hostnames:
        return None
    name = ingress_name(settings, page.namespace, page.name)
    labels = {
        **_labels(settings, "status-page"),
        PAGE_NAMESPACE_LABEL: label_value(page.namespace),
        PAGE_NAME_LABEL: label_value(page.name),
    }
    metadata = _metadata(name, settings.namespace, labels, owner)
    metadata["annotations"] = {**settings.ingress.annotations, PAGE_ANNOTATION: f"{page.namespace}/{page.name}"}
    backend = {"service": {"name": settings.web.service_name, "port": {"number": settings.web.service_port}}}
    spec: Manifest = {
        "rules": [
            {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
            for host in hostnames
        ]
    }
    if settings.ingress.class_name:
        spec["ingressClassName"] = settings.ingress.class_name
    if settings.ingress.tls:
        spec["tls"] = [{"hosts": hostnames, "secretName": dns_subdomain(f"{name}-tls")}]
    return _stamp({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": spec})


# --- comparing with the live object ------------------------------------------------------------

_QUANTITY = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))([a-zA-Z]*)")
_SUFFIXES: Final = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15, "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}  # fmt: skip


def _quantity(value: str) -> Decimal | None:
    match = _QUANTITY.fullmatch(value)
    if match is None or match.group(2) not in _SUFFIXES:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation:
        return None


def _covers(want: Any, have: Any, in_resources: bool = False) -> bool:
    """True when `have` holds everything in `want` (extra keys in `have` are server defaults)."""
    if isinstance(want, dict):
        if not isinstance(have, dict):
            return False
        for key, value in want.items():
            nested = in_resources or key == "resources"
            if key not in have:
                if value not in (None, {}, []):  # the API server drops empty maps and lists
                    return False
            elif not _covers(value, have[key], nested):
                return False
        return True
    if isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            return False
        return all(_covers(w, h, in_resources) for w, h in zip(want, have, strict=True))
    if in_resources and isinstance(want, str) and isinstance(have, str) and want != have:
        # The API server rewrites quantities ("1000m" -> "1", "0.5Gi" -> "512Mi").
        wanted, had = _quantity(want), _quantity(have)
        return wanted is not None and wanted == had
    return type(want) is type(have) and want == have


def is_same(desired: Manifest, live: Manifest) -> bool:
    """True when `live` already matches `desired` in everything we set: labels, our annotations (incl.
    the config hash), owner references and spec. Server-added defaults and fields are ignored."""
    want_meta, have_meta = desired.get("metadata", {}), live.get("metadata", {})
    for key in ("labels", "annotations", "ownerReferences"):
        if key in want_meta and not _covers({key: want_meta[key]}, have_meta):
            return False
    return _covers({k: v for k, v in desired.items() if k not in ("apiVersion", "kind", "metadata", "status")}, live)
