"""Child objects the operator owns: valid Kubernetes 1.34 objects, restricted pods, stable names."""

from __future__ import annotations

import copy
import re
from typing import Any

import kubernetes_validate
import pytest

from spectra.api.statuspage import StatusPage
from spectra.operator.child_manifests import (
    CONFIG_HASH,
    MANAGED_BY_SELECTOR,
    Component,
    build_page_ingress,
    build_probe_deployment,
    dns_label,
    dns_subdomain,
    ingress_name,
    is_same,
    label_value,
    list_selector,
    owner_reference,
    probe_name,
    probe_replicas,
)
from spectra.operator.settings import OperatorSettings, ProbeSettings
from tests.factories.manifests import (
    OPERATOR_NAMESPACE,
    OPERATOR_UID,
    components,
    operator_config,
    operator_deployment,
    status_page,
)
from tests.support.pod_security import PROBE_SYSCTLS, assert_restricted

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

OWNER = owner_reference(operator_deployment(uid=OPERATOR_UID))


def settings(**values: Any) -> OperatorSettings:
    return OperatorSettings.model_validate(operator_config(**values))


def page(
    name: str = "public", namespace: str = "team-a", hostnames: tuple[str, ...] = ("status.example.com",)
) -> StatusPage:
    body = status_page(
        name, namespace=namespace, slug="example", title="Example", hostnames=hostnames, groups=components("web")
    )
    return StatusPage.model_validate(body)


def validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(copy.deepcopy(obj), "1.34", strict=True)


def is_subdomain(name: str) -> bool:
    return len(name) <= 253 and DNS_SUBDOMAIN.fullmatch(name) is not None


def is_label_value(value: str) -> bool:
    return len(value) <= 63 and LABEL_VALUE.fullmatch(value) is not None


def ingress_for(conf: OperatorSettings, status_page: StatusPage) -> dict[str, Any]:
    ingress = build_page_ingress(conf, status_page, OWNER)
    assert ingress is not None
    return ingress


def assert_labels_valid(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        assert is_label_value(value), f"{key}={value!r}"


# --- replicas ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "per", "low", "high", "expected"),
    [
        (0, 1000, 1, 10, 0),  # no monitors: the caller deletes the Deployment
        (1, 1000, 1, 10, 1),
        (1000, 1000, 1, 10, 1),
        (1001, 1000, 1, 10, 2),
        (2500, 1000, 1, 10, 3),
        (1, 1000, 2, 10, 2),  # clamped up to minReplicas
        (50_000, 1000, 1, 10, 10),  # clamped down to maxReplicas
        (5, 1, 0, 10, 5),
        (1, 1000, 5, 3, 3),  # min above max: max wins
    ],
)
def test_probe_replicas(count: int, per: int, low: int, high: int, expected: int) -> None:
    probe = ProbeSettings(monitors_per_replica=per, min_replicas=low, max_replicas=high)
    assert probe_replicas(count, probe) == expected


# --- probe deployments -------------------------------------------------------------------------

PROBE_CASES = [
    pytest.param({}, "eu-west", id="defaults"),
    pytest.param(
        {
            "probe": {
                "image": "registry.example.com/spectra:1.2.3-browser",
                "imagePullPolicy": "Always",
                "allowPrivateTargets": True,
                "env": [
                    {"name": "SPECTRA_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}},
                    {"name": "TZ", "value": "UTC"},
                ],
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [{"key": "probes", "operator": "Exists", "effect": "NoSchedule"}],
                "imagePullSecrets": ["regcred"],
                "serviceAccountName": "custom-probe",
                "resources": {"requests": {"cpu": "1", "memory": "1Gi"}},
            }
        },
        "us-east",
        id="everything-set",
    ),
    pytest.param({"instance": "x" * 53}, "l" * 63, id="long-names"),
]


@pytest.mark.parametrize(("values", "location"), PROBE_CASES)
def test_probe_deployment_is_valid_and_restricted(values: dict[str, Any], location: str) -> None:
    conf = settings(**values)
    deployment = build_probe_deployment(conf, location, 3, OWNER)
    validate(deployment)
    meta = deployment["metadata"]
    assert DNS_LABEL.fullmatch(meta["name"])
    assert meta["namespace"] == OPERATOR_NAMESPACE
    assert meta["ownerReferences"] == [OWNER]
    pod = deployment["spec"]["template"]
    assert_restricted(pod["spec"], sysctls=PROBE_SYSCTLS, where=meta["name"])
    assert pod["spec"]["automountServiceAccountToken"] is True
    for labels in (meta["labels"], pod["metadata"]["labels"]):
        assert_labels_valid(labels)
        assert labels["app.kubernetes.io/name"] == "spectra"
        assert labels["app.kubernetes.io/component"] == "probe"
        assert labels["app.kubernetes.io/managed-by"] == "spectra-operator"
        assert labels["spectra.dev/location"] == location
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert "annotations" not in pod["metadata"]
    assert deployment["spec"]["replicas"] == 3


def test_probe_container_command_and_settings() -> None:
    env = [{"name": "SPECTRA_DATABASE_URL", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}]
    conf = settings(
        instance="prod",
        probe={"env": env, "nodeSelector": {"pool": "probes"}, "imagePullSecrets": ["regcred"], "image": "img:1"},
    )
    deployment = build_probe_deployment(conf, "eu-west", 2, None)
    assert deployment["metadata"]["name"] == "prod-probe-eu-west"
    assert "ownerReferences" not in deployment["metadata"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert [container["command"][0], *container["args"]] == [
        "spectra", "probe", "--location", "eu-west", "--listen", "0.0.0.0:8081",
    ]  # fmt: skip
    assert container["image"] == "img:1"
    assert container["env"][1:] == env
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"][0]["containerPort"] == 8081
    assert container["resources"] == ProbeSettings().resources
    assert pod["serviceAccountName"] == "spectra-probe"
    assert pod["nodeSelector"] == {"pool": "probes"}
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    private = build_probe_deployment(settings(probe={"allowPrivateTargets": True}), "eu-west", 1, None)
    assert private["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "--allow-private-targets"


def test_probe_env_home_is_not_duplicated() -> None:
    conf = settings(probe={"env": [{"name": "HOME", "value": "/home/probe"}]})
    env = build_probe_deployment(conf, "eu-west", 1, None)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "HOME", "value": "/home/probe"}]


def test_probe_objects_are_deterministic() -> None:
    conf = settings()
    assert build_probe_deployment(conf, "eu-west", 1, OWNER) == build_probe_deployment(conf, "eu-west", 1, OWNER)


def test_long_locations_stay_valid_and_distinct() -> None:
    conf = settings(instance="a-rather-long-release-name")
    locations = ["l" * 60 + suffix for suffix in ("a", "b", "c")] + ["eu-west"]
    names = [probe_name(conf, location) for location in locations]
    assert len(set(names)) == len(names)
    for name in names:
        assert DNS_LABEL.fullmatch(name), name
    assert names[-1] == "a-rather-long-release-name-probe-eu-west"
    assert probe_name(conf, locations[0]) == names[0]  # stable


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("eu-west", "eu-west"), ("a" * 63, "a" * 63)],
)
def test_dns_label_keeps_valid_names(raw: str, expected: str) -> None:
    assert dns_label(raw) == expected


@pytest.mark.parametrize("raw", ["EU_West", "a" * 64, "-x-", "a.b", "ÄÖ"])
def test_dns_label_fixes_invalid_names(raw: str) -> None:
    name = dns_label(raw)
    assert DNS_LABEL.fullmatch(name), name
    assert name != dns_label(raw.swapcase() + "z")


@pytest.mark.parametrize("raw", ["A..b", "a-.b", "x" * 300, "a.-b.", "page_1.team"])
def test_dns_subdomain_fixes_invalid_names(raw: str) -> None:
    name = dns_subdomain(raw)
    assert is_subdomain(name), name


@pytest.mark.parametrize("raw", ["x" * 64, "a.b-c_d", "-a-", "y" * 253])
def test_label_value(raw: str) -> None:
    value = label_value(raw)
    assert is_label_value(value), value


# --- status page ingresses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "tls"),
    [
        pytest.param({}, False, id="defaults"),
        pytest.param(
            {
                "ingress": {
                    "className": "nginx",
                    "tls": True,
                    "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                },
                "web": {"serviceName": "prod-web", "servicePort": 80},
            },
            True,
            id="class-tls-annotations",
        ),
    ],
)
def test_page_ingress(values: dict[str, Any], tls: bool) -> None:
    conf = settings(**values)
    hosts = ("status.example.com", "status.example.org")
    ingress = build_page_ingress(conf, page(hostnames=hosts), OWNER)
    assert ingress is not None
    validate(ingress)
    meta = ingress["metadata"]
    assert meta["name"] == "spectra-page-team-a.public"
    assert meta["namespace"] == OPERATOR_NAMESPACE
    assert meta["ownerReferences"] == [OWNER]
    assert meta["labels"]["app.kubernetes.io/component"] == "status-page"
    assert meta["labels"]["spectra.dev/status-page-namespace"] == "team-a"
    assert meta["labels"]["spectra.dev/status-page-name"] == "public"
    assert meta["annotations"]["spectra.dev/status-page"] == "team-a/public"
    for key, value in conf.ingress.annotations.items():
        assert meta["annotations"][key] == value
    spec = ingress["spec"]
    assert [rule["host"] for rule in spec["rules"]] == list(hosts)
    for rule in spec["rules"]:
        (path,) = rule["http"]["paths"]
        assert path["path"] == "/"
        assert path["pathType"] == "Prefix"
        assert path["backend"]["service"] == {
            "name": conf.web.service_name,
            "port": {"number": conf.web.service_port},
        }
    assert spec.get("ingressClassName") == conf.ingress.class_name
    if tls:
        assert spec["tls"] == [{"hosts": list(hosts), "secretName": "spectra-page-team-a.public-tls"}]
    else:
        assert "tls" not in spec


def test_no_ingress_when_disabled_or_without_hostnames() -> None:
    assert build_page_ingress(settings(ingress={"enabled": False}), page(), OWNER) is None
    assert build_page_ingress(settings(), page(hostnames=()), OWNER) is None


def test_long_page_names_stay_valid_and_distinct() -> None:
    conf = settings(ingress={"tls": True})
    namespace = "n" * 63
    names = ["p" * 240 + suffix for suffix in ("a", "b")] + ["x." + "q" * 240]
    ingresses = [build_page_ingress(conf, page(name, namespace), None) for name in names]
    seen = set()
    for ingress in ingresses:
        assert ingress is not None
        validate(ingress)
        meta = ingress["metadata"]
        assert is_subdomain(meta["name"]), meta["name"]
        secret = ingress["spec"]["tls"][0]["secretName"]
        assert is_subdomain(secret), secret
        assert_labels_valid(meta["labels"])
        seen.add(meta["name"])
    assert len(seen) == len(names)


def test_page_names_do_not_collide_across_namespaces() -> None:
    conf = settings()
    assert ingress_name(conf, "team-a", "status") != ingress_name(conf, "team", "a-status")


# --- selectors and owners ----------------------------------------------------------------------


def test_selectors_match_the_labels() -> None:
    conf = settings(instance="prod")
    deployment = build_probe_deployment(conf, "eu-west", 1, None)
    ingress = build_page_ingress(conf, page(), None)
    assert ingress is not None
    pairs: list[tuple[dict[str, Any], Component]] = [(deployment, "probe"), (ingress, "status-page")]
    for obj, component in pairs:
        labels = obj["metadata"]["labels"]
        for selector in (MANAGED_BY_SELECTOR, list_selector(conf, component)):
            for term in selector.split(","):
                key, value = term.split("=")
                assert labels[key] == value
    assert "component=probe" in list_selector(conf, "probe")
    assert "instance=prod" in list_selector(conf, "status-page")


def test_owner_reference() -> None:
    assert OWNER == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "spectra-operator",
        "uid": OPERATOR_UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    body = {"metadata": {"name": "op", "uid": "u"}}  # kopf bodies may lack apiVersion/kind
    assert owner_reference(body)["apiVersion"] == "apps/v1"


# --- is_same ------------------------------------------------------------------------------------


def server_defaulted(obj: dict[str, Any]) -> dict[str, Any]:
    """What the API server hands back: defaults added, quantities normalized, empty maps dropped."""
    live = copy.deepcopy(obj)
    meta = live["metadata"]
    meta.update(uid="abc", resourceVersion="42", generation=3, creationTimestamp="2025-01-01T00:00:00Z")
    meta["annotations"]["deployment.kubernetes.io/revision"] = "3"
    meta["labels"]["extra.example.com/added-by-someone"] = "x"
    live["status"] = {"replicas": 1}
    if live["kind"] == "Deployment":
        spec = live["spec"]
        spec.update(revisionHistoryLimit=10, progressDeadlineSeconds=600, strategy={"type": "RollingUpdate"})
        pod = spec["template"]["spec"]
        pod.update(restartPolicy="Always", dnsPolicy="ClusterFirst", schedulerName="default-scheduler")
        pod["volumes"][0]["emptyDir"] = {}
        container = pod["containers"][0]
        container.update(terminationMessagePath="/dev/termination-log", terminationMessagePolicy="File")
        container["livenessProbe"].update(timeoutSeconds=1, successThreshold=1)
        container["livenessProbe"]["httpGet"]["scheme"] = "HTTP"
        container["resources"]["requests"]["cpu"] = "1"  # was "1000m"
        container["resources"]["limits"]["memory"] = "512Mi"  # was "0.5Gi"
    else:
        live["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["name"] = None
        del live["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["name"]
    return live


def probe_settings(**probe: Any) -> OperatorSettings:
    resources = {"requests": {"cpu": "1000m", "memory": "128Mi"}, "limits": {"memory": "0.5Gi"}}
    return settings(probe={"resources": resources, **probe})


def desired_deployment(**probe: Any) -> dict[str, Any]:
    return build_probe_deployment(probe_settings(**probe), "eu-west", 2, OWNER)


def test_is_same_for_identical_and_server_defaulted() -> None:
    desired = desired_deployment()
    assert is_same(desired, copy.deepcopy(desired))
    assert is_same(desired, server_defaulted(desired))
    ingress = build_page_ingress(settings(), page(), OWNER)
    assert ingress is not None
    assert is_same(ingress, server_defaulted(ingress))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: d["spec"]["template"]["spec"]["containers"][0].update(image="other:2"), id="image"),
        pytest.param(lambda d: d["spec"].update(replicas=5), id="replicas"),
        pytest.param(lambda d: d["metadata"]["labels"].pop("spectra.dev/location"), id="label-removed"),
        pytest.param(lambda d: d["metadata"].pop("ownerReferences"), id="owner-missing"),
        pytest.param(lambda d: d["spec"]["template"]["spec"]["containers"][0]["args"].pop(), id="args"),
        pytest.param(
            lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"].update(memory="1Gi"),
            id="quantity",
        ),
        pytest.param(lambda d: d["metadata"]["annotations"].update({CONFIG_HASH: "0"}), id="config-hash"),
    ],
)
def test_is_same_sees_live_drift(change: Any) -> None:
    desired = desired_deployment()
    live = server_defaulted(desired)
    change(live)
    assert not is_same(desired, live)


def test_is_same_sees_changed_settings() -> None:
    live = server_defaulted(desired_deployment())
    assert not is_same(desired_deployment(image="other:2"), live)
    assert not is_same(build_probe_deployment(probe_settings(), "eu-west", 3, OWNER), live)
    # A key we stopped setting is a change too (the config hash moves), though live still covers desired.
    with_env = server_defaulted(desired_deployment(env=[{"name": "TZ", "value": "UTC"}]))
    assert not is_same(desired_deployment(), with_env)


def test_is_same_for_ingress_hostnames_and_annotations() -> None:
    conf = settings(ingress={"annotations": {"a.example.com/x": "1"}})
    desired = ingress_for(conf, page(hostnames=("status.example.com",)))
    other = ingress_for(conf, page(hostnames=("status.example.org",)))
    more = ingress_for(conf, page(hostnames=("status.example.com", "status.example.org")))
    fewer_annotations = ingress_for(settings(), page(hostnames=("status.example.com",)))
    live = server_defaulted(desired)
    assert is_same(desired, live)
    assert not is_same(other, live)
    assert not is_same(more, live)
    assert not is_same(fewer_annotations, live)


# --- the restricted-rules helper itself -----------------------------------------------------------


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = pod["containers"][0]
    return container


def _debug_sidecar(pod: dict[str, Any]) -> None:
    """An ephemeral container (kubectl debug) is held to the same rules: this one has none."""
    pod["ephemeralContainers"] = [{"name": "debug", "image": "busybox"}]


@pytest.mark.parametrize(
    "breach",
    [
        pytest.param(lambda p: p["securityContext"].pop("runAsNonRoot"), id="pod-runAsNonRoot"),
        pytest.param(lambda p: p["securityContext"].update(runAsUser=0), id="root"),
        pytest.param(lambda p: p["securityContext"].update(runAsGroup=0), id="root-group"),
        pytest.param(lambda p: p["securityContext"].pop("fsGroup"), id="fsGroup"),
        pytest.param(lambda p: p["securityContext"].pop("seccompProfile"), id="seccomp"),
        pytest.param(
            lambda p: p["securityContext"]["sysctls"].append({"name": "kernel.msgmax", "value": "1"}), id="sysctl"
        ),
        pytest.param(lambda p: p["securityContext"].pop("sysctls"), id="no-ping-sysctl"),
        pytest.param(lambda p: p.update(hostNetwork=True), id="hostNetwork"),
        pytest.param(lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), id="hostPath"),
        pytest.param(lambda p: p["volumes"].append({"name": "n", "nfs": {"server": "x", "path": "/"}}), id="nfs"),
        pytest.param(lambda p: p.update(volumes=[{"name": "tmp", "secret": {"secretName": "x"}}]), id="tmp-a-secret"),
        pytest.param(lambda p: _container(p)["securityContext"].update(allowPrivilegeEscalation=True), id="escalation"),
        pytest.param(lambda p: _container(p)["securityContext"].update(readOnlyRootFilesystem=False), id="rw-root"),
        pytest.param(lambda p: _container(p)["securityContext"].update(privileged=True), id="privileged"),
        pytest.param(lambda p: _container(p)["securityContext"].update(runAsUser=0), id="container-root"),
        pytest.param(lambda p: _container(p)["securityContext"].pop("runAsNonRoot"), id="container-runAsNonRoot"),
        pytest.param(
            lambda p: _container(p)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
            id="container-seccomp",
        ),
        pytest.param(lambda p: _container(p)["securityContext"]["capabilities"].update(add=["NET_RAW"]), id="caps"),
        pytest.param(lambda p: _container(p)["ports"][0].update(hostPort=8081), id="hostPort"),
        pytest.param(lambda p: _container(p).pop("volumeMounts"), id="no-tmp"),
        pytest.param(_debug_sidecar, id="ephemeral-container"),
    ],
)
def test_assert_restricted_catches_breaches(breach: Any) -> None:
    pod = build_probe_deployment(settings(), "eu-west", 1, None)["spec"]["template"]["spec"]
    assert_restricted(copy.deepcopy(pod), sysctls=PROBE_SYSCTLS)
    breach(pod)
    with pytest.raises(AssertionError):
        assert_restricted(pod, sysctls=PROBE_SYSCTLS)


def test_assert_restricted_names_the_pod_and_allows_no_sysctl_unasked() -> None:
    pod = build_probe_deployment(settings(), "eu-west", 1, None)["spec"]["template"]["spec"]
    with pytest.raises(AssertionError, match=r"^probe eu-west: sysctls"):
        assert_restricted(pod, where="probe eu-west")  # the chart's pods set none: a probe pod is not one of them


def test_validation_is_strict() -> None:
    """Guards the schema tests above: an unknown field fails validation."""
    deployment = build_probe_deployment(settings(), "eu-west", 1, None)
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
