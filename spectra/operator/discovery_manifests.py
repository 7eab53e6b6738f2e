"""What an annotated Ingress, HTTPRoute or Service wants: the Monitor objects discovery keeps for it.

Pure functions from the source object (and its namespace's defaults) to whole Monitor bodies; the
controller in `discovery_sync` writes them. Every byte of a source is someone's input: hosts, paths,
ports and annotation values all pass through the Monitor model's validation before anything is written,
and a refusal names the annotation or the source field.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from spectra.api import GROUP, VERSION, InvalidObject, parse_object
from spectra.api.discovery import (
    COMPONENT_LABEL,
    DISCOVERED_FROM,
    MANAGED_BY,
    MANAGER,
    PREFIX,
    SOURCE,
    SOURCE_NAME,
    SOURCE_UID,
    STATUS_PAGE_LABEL,
    AnnotationError,
    annotation_of,
    effective,
    monitor_overrides,
    wanted,
)

MAX_NAME: Final = 63
# Labels discovery owns on a Monitor (the rest of a Monitor's labels are left alone).
OWNED_LABELS: Final = (MANAGED_BY, DISCOVERED_FROM, SOURCE_NAME, SOURCE_UID, STATUS_PAGE_LABEL, COMPONENT_LABEL)
_HOST: Final = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_PLAIN_PATH: Final = re.compile(r"/[A-Za-z0-9/._~%!$&'*+,;=:@-]*")


class SourceProblem(ValueError):
    """The source itself (not an annotation) cannot give a Monitor: the message names its field."""


@dataclass(frozen=True)
class SourceKind:
    kind: str
    group: str
    version: str
    plural: str
    short: str  # in Monitor names: web-ing-3f2a1c

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


SOURCE_KINDS: Final = {
    kind.kind: kind
    for kind in (
        SourceKind("Ingress", "networking.k8s.io", "v1", "ingresses", "ing"),
        SourceKind("HTTPRoute", "gateway.networking.k8s.io", "v1", "httproutes", "route"),
        SourceKind("Service", "", "v1", "services", "svc"),
    )
}


@dataclass(frozen=True)
class NamespaceDiscovery:
    """A namespace's say: labelled `spectra.dev/monitor: "true"`, every Ingress and HTTPRoute in it is
    discovered; its `spectra.dev/*` annotations are defaults for the objects' own."""

    opted_in: bool = False
    defaults: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> NamespaceDiscovery:
        meta = body.get("metadata") or {}
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        return cls(
            opted_in=str(labels.get(PREFIX + "monitor", "")).lower() == "true",
            defaults={str(k): str(v) for k, v in annotations.items() if str(k).startswith(PREFIX)},
        )


@dataclass(frozen=True)
class Source:
    kind: SourceKind
    body: Mapping[str, Any]

    @property
    def meta(self) -> Mapping[str, Any]:
        return self.body.get("metadata") or {}

    @property
    def namespace(self) -> str:
        return str(self.meta.get("namespace") or "default")

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or "")

    @property
    def uid(self) -> str:
        return str(self.meta.get("uid") or "")

    @property
    def annotations(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.meta.get("annotations") or {}).items()}

    @property
    def ref(self) -> str:
        return f"{self.kind.kind}/{self.namespace}/{self.name}"

    def wants_monitors(self, namespace: NamespaceDiscovery) -> bool:
        # A namespace's opt-in covers what is reached from outside; a Service asks for itself.
        namespace_wide = namespace.opted_in and self.kind.kind != "Service"
        return wanted(self.annotations, namespace_wide)


@dataclass(frozen=True)
class Endpoint:
    key: str  # what identifies it across edits (host and the rule's path, or the port): names the Monitor
    url: str


@dataclass(frozen=True)
class Discovered:
    monitors: tuple[dict[str, Any], ...] = ()
    problem: str | None = None  # why nothing could be made; the Monitors already there stay as they are


def discovered(source: Source, namespace: NamespaceDiscovery) -> Discovered:
    """The Monitors `source` wants (none when it does not ask for any), or the problem that stops them."""
    if not source.wants_monitors(namespace):
        return Discovered()
    annotations = effective(namespace.defaults, source.annotations)
    try:
        spec_overrides, expect, page_labels = monitor_overrides(annotations)
        endpoints = _endpoints(source, annotations)
    except (AnnotationError, SourceProblem) as exc:
        return Discovered(problem=str(exc))
    if not endpoints:
        return Discovered(problem=f"{source.kind.kind} {source.namespace}/{source.name}: {_no_endpoint(source)}")
    monitors = []
    for endpoint in endpoints:
        body = _monitor(source, endpoint, spec_overrides, expect, page_labels)
        try:
            parse_object(body)
        except InvalidObject as exc:
            return Discovered(problem="; ".join(_explained(p.field, p.message) for p in exc.problems))
        monitors.append(body)
    return Discovered(monitors=tuple(monitors))


def monitor_name(source: Source, endpoint_key: str) -> str:
    """`<source>-<ing|route|svc>-<6 hex of the endpoint>`, at most 63 characters."""
    digest = hashlib.sha256(f"{source.kind.kind}/{source.name}/{endpoint_key}".encode()).hexdigest()[:6]
    suffix = f"-{source.kind.short}-{digest}"
    base = re.sub(r"[^a-z0-9-]+", "-", source.name.lower())[: MAX_NAME - len(suffix)].strip("-") or "discovered"
    return base + suffix


def fingerprint(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What discovery decides about a Monitor: a hand edit changes it, a status patch or finalizer does not."""
    meta = body.get("metadata") or {}
    labels = meta.get("labels") or {}
    return (
        repr(body.get("spec")),
        tuple(sorted((k, v) for k, v in labels.items() if k in OWNED_LABELS)),
        (meta.get("annotations") or {}).get(SOURCE),
        repr(meta.get("ownerReferences")),
    )


def _monitor(
    source: Source,
    endpoint: Endpoint,
    spec_overrides: Mapping[str, Any],
    expect: Mapping[str, Any],
    page_labels: Mapping[str, str],
) -> dict[str, Any]:
    http: dict[str, Any] = {"url": endpoint.url}
    if expect:
        http["expect"] = dict(expect)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Monitor",
        "metadata": {
            "name": monitor_name(source, endpoint.key),
            "namespace": source.namespace,
            "labels": {
                MANAGED_BY: MANAGER,
                DISCOVERED_FROM: source.kind.kind.lower(),
                SOURCE_NAME: _label_value(source.name),
                SOURCE_UID: _label_value(source.uid),
                **page_labels,
            },
            "annotations": {SOURCE: source.ref},
            "ownerReferences": [
                {
                    "apiVersion": source.kind.api_version,
                    "kind": source.kind.kind,
                    "name": source.name,
                    "uid": source.uid,
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": {
            "type": "http",
            "description": f"Discovered from {source.kind.kind} {source.namespace}/{source.name}"[:1024],
            **spec_overrides,
            "http": http,
        },
    }


def _endpoints(source: Source, annotations: Mapping[str, str]) -> list[Endpoint]:
    override = annotations.get(PREFIX + "path")
    scheme = annotations.get(PREFIX + "scheme")
    if override is not None:
        override = override.strip()
        if not _PLAIN_PATH.fullmatch(override):
            raise AnnotationError(PREFIX + "path", f"{override!r} is not a path starting with /")
    if scheme is not None:
        scheme = scheme.strip().lower()
        if scheme not in ("http", "https"):
            raise AnnotationError(PREFIX + "scheme", f"{scheme!r} is not http or https")
    spec = _mapping(source.body.get("spec"))
    if source.kind.kind == "Service":
        return _service_endpoints(source, spec, annotations, override, scheme)
    if source.kind.kind == "Ingress":
        pairs, tls = _ingress_hosts(spec)
    else:
        pairs, tls = _route_hosts(spec), None
    port = _port_number(annotations.get(PREFIX + "port"))
    found: dict[str, Endpoint] = {}
    for host, path in pairs:
        if not _HOST.fullmatch(host):
            field_name = "spec.rules[].host" if source.kind.kind == "Ingress" else "spec.hostnames[]"
            raise SourceProblem(f"{source.ref}: {field_name} {host[:256]!r} is not a host name")
        chosen_scheme = scheme or ("https" if tls is None or tls(host) else "http")
        key = host if override is not None else f"{host}{path}"
        found.setdefault(key, Endpoint(key, f"{chosen_scheme}://{host}{port}{override or path}"))
    return list(found.values())


def _port_number(raw: str | None) -> str:
    """`:8443` for an Ingress or HTTPRoute whose hosts answer on another port than the scheme's."""
    if raw is None:
        return ""
    value = raw.strip()
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise AnnotationError(PREFIX + "port", f"{value!r} is not a port number (1-65535)")
    return f":{int(value)}"


def _ingress_hosts(spec: Mapping[str, Any]) -> tuple[list[tuple[str, str]], Any]:
    tls_hosts: set[str] = set()
    tls_everywhere = False
    for entry in _dicts(spec.get("tls")):
        hosts = _strings(entry.get("hosts"))
        tls_everywhere = tls_everywhere or not hosts
        tls_hosts.update(hosts)
    pairs: list[tuple[str, str]] = []
    for rule in _dicts(spec.get("rules")):
        host = rule.get("host")
        if not isinstance(host, str) or not host or "*" in host:
            continue  # no name to request (a wildcard or the controller's default host)
        paths = [_literal_path(p.get("path")) for p in _dicts(_mapping(rule.get("http")).get("paths"))] or ["/"]
        pairs.extend((host, path) for path in paths)
    return pairs, (lambda host: tls_everywhere or host in tls_hosts)


def _route_hosts(spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    hosts = [h for h in _strings(spec.get("hostnames")) if "*" not in h]
    paths = [
        _literal_path(_mapping(match.get("path")).get("value"))
        for rule in _dicts(spec.get("rules"))
        for match in _dicts(rule.get("matches"))
    ] or ["/"]
    return [(host, path) for host in hosts for path in dict.fromkeys(paths)]


def _service_endpoints(
    source: Source, spec: Mapping[str, Any], annotations: Mapping[str, str], path: str | None, scheme: str | None
) -> list[Endpoint]:
    ports = [p for p in _dicts(spec.get("ports")) if isinstance(p.get("port"), int)]
    wanted_port = annotations.get(PREFIX + "port")
    if wanted_port is not None:
        wanted_port = wanted_port.strip()
        ports = [p for p in ports if wanted_port in (str(p.get("name") or ""), str(p["port"]))]
        if not ports:
            raise AnnotationError(PREFIX + "port", f"the Service has no port named or numbered {wanted_port!r}")
    if not ports:
        return []
    port = int(ports[0]["port"])
    host = f"{source.name}.{source.namespace}.svc"
    return [Endpoint(f"port {port}", f"{scheme or 'http'}://{host}:{port}{path or '/'}")]


def _no_endpoint(source: Source) -> str:
    if source.kind.kind == "Service":
        return "the Service has no ports to check"
    if source.kind.kind == "Ingress":
        return "no rule names a host (wildcard hosts cannot be checked)"
    return "no hostnames (wildcard hosts cannot be checked)"


def _literal_path(raw: Any) -> str:
    """A rule's path as something to request: a regular expression keeps its literal beginning."""
    if not isinstance(raw, str) or not raw.startswith("/"):
        return "/"
    literal = _PLAIN_PATH.match(raw)
    return literal.group(0) if literal else "/"


def _explained(field_path: str, message: str) -> str:
    annotation = annotation_of(field_path)
    if annotation is not None:
        return f"annotation {annotation}: {message}"
    if field_path.startswith("spec.http.url"):
        return f"the host or path does not make a URL that can be checked: {message}"
    return f"{field_path}: {message}"


def _label_value(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63].strip("-_.")


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str) and item] if isinstance(value, list) else []
