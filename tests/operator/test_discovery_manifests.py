"""What an annotated Ingress, HTTPRoute or Service asks for: Monitor bodies, or the problem naming the annotation."""

from __future__ import annotations

from typing import Any

import pytest

from spectra.api import parse_object
from spectra.api.discovery import SOURCE, SOURCE_UID
from spectra.operator.discovery_manifests import (
    SOURCE_KINDS,
    Discovered,
    NamespaceDiscovery,
    Source,
    discovered,
    fingerprint,
    monitor_name,
)
from tests.factories.manifests import http_route, ingress, namespace_object, service

ON = {"spectra.dev/monitor": "true"}


def run(body: dict[str, Any], namespace: NamespaceDiscovery | None = None, uid: str = "uid-1") -> Discovered:
    body["metadata"]["uid"] = uid
    return discovered(Source(SOURCE_KINDS[body["kind"]], body), namespace or NamespaceDiscovery())


def urls(result: Discovered) -> list[str]:
    assert result.problem is None, result.problem
    return sorted(m["spec"]["http"]["url"] for m in result.monitors)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            ingress("shop", ["shop.example.com"], tls_hosts=["shop.example.com"], annotations=ON),
            ["https://shop.example.com/"],
        ),
        (ingress("shop", ["shop.example.com"], annotations=ON), ["http://shop.example.com/"]),
        (
            ingress(
                "shop",
                ["a.example.com", "b.example.com"],
                tls_hosts=["a.example.com"],
                paths=["/", "/api"],
                annotations=ON,
            ),
            [
                "http://b.example.com/",
                "http://b.example.com/api",
                "https://a.example.com/",
                "https://a.example.com/api",
            ],
        ),
        # A path override: one Monitor per host.
        (
            ingress("shop", ["a.example.com"], paths=["/", "/api"], annotations={**ON, "spectra.dev/path": "/healthz"}),
            ["http://a.example.com/healthz"],
        ),
        # A regular-expression path keeps its literal beginning; wildcard hosts cannot be requested.
        (
            ingress("shop", ["a.example.com", "*.example.com"], paths=["/api(/|$)(.*)"], annotations=ON),
            ["http://a.example.com/api"],
        ),
        (
            ingress(
                "shop", ["a.example.com"], annotations={**ON, "spectra.dev/scheme": "https", "spectra.dev/port": "8443"}
            ),
            ["https://a.example.com:8443/"],
        ),
        (http_route("web", ["www.example.com"], annotations=ON), ["https://www.example.com/"]),
        (
            http_route(
                "web",
                ["www.example.com", "*.example.com"],
                paths=["/", "/shop"],
                annotations={**ON, "spectra.dev/scheme": "http"},
            ),
            ["http://www.example.com/", "http://www.example.com/shop"],
        ),
        (
            service("api", {"http": 8080, "metrics": 9090}, namespace="shop", annotations=ON),
            ["http://api.shop.svc:8080/"],
        ),
        (
            service(
                "api",
                {"http": 8080, "metrics": 9090},
                namespace="shop",
                annotations={**ON, "spectra.dev/port": "metrics", "spectra.dev/path": "/ready"},
            ),
            ["http://api.shop.svc:9090/ready"],
        ),
    ],
)
def test_sources_become_urls(body: dict[str, Any], expected: list[str]) -> None:
    assert urls(run(body)) == expected


def test_the_monitor_is_owned_labelled_and_valid() -> None:
    body = ingress(
        "shop",
        ["shop.example.com"],
        namespace="web",
        annotations={
            **ON,
            "spectra.dev/interval": "30s",
            "spectra.dev/escalation-policy": "web-team",
            "spectra.dev/locations": "eu, us",
            "spectra.dev/quorum": "2",
            "spectra.dev/expected-status": "200,204",
            "spectra.dev/severity": "warning",
            "spectra.dev/paused": "true",
            "spectra.dev/status-page": "public",
            "spectra.dev/component": "Web Shop",
        },
    )
    (monitor,) = run(body, uid="0b6f").monitors
    meta = monitor["metadata"]
    assert meta["namespace"] == "web"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "name": "shop",
            "uid": "0b6f",
            "controller": True,
            "blockOwnerDeletion": False,
        }
    ]
    assert meta["labels"] == {
        "app.kubernetes.io/managed-by": "spectra-discovery",
        "spectra.dev/discovered-from": "ingress",
        "spectra.dev/source-name": "shop",
        "spectra.dev/source-uid": "0b6f",
        "spectra.dev/status-page": "public",
        "spectra.dev/component": "web-shop",
    }
    assert meta["annotations"] == {SOURCE: "Ingress/web/shop"}
    spec = monitor["spec"]
    assert (spec["interval"], spec["locations"], spec["quorum"], spec["severity"], spec["paused"]) == (
        "30s",
        ["eu", "us"],
        2,
        "warning",
        True,
    )
    assert spec["escalationPolicyRef"] == {"name": "web-team"}
    assert spec["http"]["expect"] == {"status": [200, 204]}
    parse_object(monitor)  # what discovery writes is a valid Monitor


@pytest.mark.parametrize(
    ("annotations", "named"),
    [
        ({"spectra.dev/interval": "soon"}, "spectra.dev/interval"),
        ({"spectra.dev/interval": "10s", "spectra.dev/timeout": "20s"}, "spectra.dev/timeout"),
        ({"spectra.dev/quorum": "two"}, "spectra.dev/quorum"),
        ({"spectra.dev/quorum": "3", "spectra.dev/locations": "eu"}, "spectra.dev/quorum"),
        ({"spectra.dev/expected-status": "200,abc"}, "spectra.dev/expected-status"),
        ({"spectra.dev/expected-status": "999"}, "spectra.dev/expected-status"),
        ({"spectra.dev/locations": "EU West"}, "spectra.dev/locations"),
        ({"spectra.dev/escalation-policy": "../../etc"}, "spectra.dev/escalation-policy"),
        ({"spectra.dev/severity": "apocalyptic"}, "spectra.dev/severity"),
        ({"spectra.dev/paused": "yes please"}, "spectra.dev/paused"),
        ({"spectra.dev/path": "http://169.254.169.254/latest"}, "spectra.dev/path"),
        ({"spectra.dev/path": "/a b"}, "spectra.dev/path"),
        ({"spectra.dev/scheme": "ftp"}, "spectra.dev/scheme"),
        ({"spectra.dev/port": "70000"}, "spectra.dev/port"),
        ({"spectra.dev/status-page": "public"}, "spectra.dev/component"),
        ({"spectra.dev/status-page": "public", "spectra.dev/component": "!!!"}, "spectra.dev/component"),
        ({"spectra.dev/status-page": "a b", "spectra.dev/component": "Web"}, "spectra.dev/status-page"),
        ({"spectra.dev/description": "\x00"}, None),  # not ours: ignored
    ],
)
def test_bad_annotations_are_refused_naming_the_annotation(annotations: dict[str, str], named: str | None) -> None:
    result = run(ingress("shop", ["shop.example.com"], annotations={**ON, **annotations}))
    if named is None:
        assert result.problem is None
        assert len(result.monitors) == 1
        return
    assert result.monitors == ()
    assert result.problem is not None
    assert f"annotation {named}:" in result.problem


@pytest.mark.parametrize(
    "body",
    [
        ingress("shop", ["shop example com"], annotations=ON),  # not a host name
        ingress("shop", ["user@shop.example.com"], annotations=ON),  # credentials in the URL
        http_route("web", ["www.example.com/../x"], annotations=ON),
    ],
)
def test_hostile_hosts_make_no_monitor(body: dict[str, Any]) -> None:
    result = run(body)
    assert result.monitors == ()
    assert result.problem is not None
    assert "host" in result.problem


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (ingress("shop", ["*.example.com"], annotations=ON), "wildcard"),
        (http_route("web", [], annotations=ON), "no hostnames"),
        (service("api", {}, annotations=ON), "no ports"),
        (
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "annotations": ON}, "spec": "garbage"},
            "no ports",
        ),
        (
            service(
                "api",
                {"http": 80},
                annotations={**ON, "spectra.dev/port": "grpc"},
            ),
            "no port named",
        ),
    ],
)
def test_sources_without_a_target_say_why(body: dict[str, Any], reason: str) -> None:
    result = run(body)
    assert result.monitors == ()
    assert result.problem is not None
    assert reason in result.problem


def test_namespace_opts_in_ingresses_and_routes_not_services_and_gives_defaults() -> None:
    labelled = namespace_object("web")
    labelled["metadata"] |= {
        "labels": {"spectra.dev/monitor": "true"},
        "annotations": {"spectra.dev/interval": "5m", "spectra.dev/severity": "info"},
    }
    namespace = NamespaceDiscovery.of(labelled)
    assert namespace.opted_in
    (monitor,) = run(ingress("shop", ["shop.example.com"], namespace="web"), namespace).monitors
    assert (monitor["spec"]["interval"], monitor["spec"]["severity"]) == ("5m", "info")
    own = run(
        ingress("shop", ["shop.example.com"], namespace="web", annotations={"spectra.dev/interval": "30s"}), namespace
    )
    assert own.monitors[0]["spec"]["interval"] == "30s"  # the object's own annotation wins
    assert (
        run(
            ingress("shop", ["shop.example.com"], namespace="web", annotations={"spectra.dev/monitor": "false"}),
            namespace,
        )
        == Discovered()
    )
    assert run(http_route("web", ["www.example.com"], namespace="web"), namespace).monitors
    assert run(service("api", {"http": 80}, namespace="web"), namespace) == Discovered()
    assert run(ingress("shop", ["shop.example.com"])) == Discovered()  # no annotation, no opt-in


def test_names_are_stable_short_and_distinct() -> None:
    long_name = "a" * 200 + ".b"
    source = Source(SOURCE_KINDS["Ingress"], ingress(long_name, ["x.example.com"]))
    names = {monitor_name(source, key) for key in ("x.example.com/", "x.example.com/api")}
    assert len(names) == 2
    assert all(len(n) <= 63 and n.startswith("aaa") for n in names)
    assert monitor_name(source, "x.example.com/") == monitor_name(source, "x.example.com/")
    other = Source(SOURCE_KINDS["Service"], service(long_name, {"http": 80}))
    assert monitor_name(other, "x.example.com/") not in names


def test_fingerprint_ignores_status_and_kopf_but_not_hand_edits() -> None:
    (monitor,) = run(ingress("shop", ["shop.example.com"], annotations=ON)).monitors
    handled = {**monitor, "status": {"state": "up"}}
    handled["metadata"] = {
        **monitor["metadata"],
        "finalizers": ["spectra.dev/finalizer"],
        "resourceVersion": "7",
        "annotations": {**monitor["metadata"]["annotations"], "spectra.dev/last-handled-configuration": "{}"},
        "labels": {**monitor["metadata"]["labels"], "team": "web"},
    }
    assert fingerprint(handled) == fingerprint(monitor)
    edited = {**monitor, "spec": {**monitor["spec"], "interval": "1s"}}
    assert fingerprint(edited) != fingerprint(monitor)
    relabelled = {
        **monitor,
        "metadata": {**monitor["metadata"], "labels": {**monitor["metadata"]["labels"], SOURCE_UID: "x"}},
    }
    assert fingerprint(relabelled) != fingerprint(monitor)
