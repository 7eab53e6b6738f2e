"""The rendered chart goes into a cluster: the real kubectl applies every object to the API emulator.

The emulator serves only the resources in `tests.support.kube.RESOURCES`, so an object of a kind the
harness does not know fails the apply (and says which resource to add there).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.chart.rendering import NAMESPACE, Rendered
from tests.support.kube import RESOURCES, ClusterEmulator, objects_of
from tests.support.paths import CHART

CHART_CRDS = CHART / "crds"
CRD_RESOURCE = "apiextensions.k8s.io/v1/customresourcedefinitions"
EVAL_VALUES = CHART / "ci" / "eval-mysql-values.yaml"

# What every install must create; the eval values add the bundled MariaDB.
REQUIRED = {
    ("Deployment", "spectra-operator"),
    ("ConfigMap", "spectra-operator"),
    ("ServiceAccount", "spectra-operator"),
    ("ClusterRole", "spectra-operator-monitoring"),
    ("ClusterRoleBinding", "spectra-operator-monitoring"),
    ("Role", "spectra-operator"),
    ("RoleBinding", "spectra-operator"),
    ("Deployment", "spectra-web"),
    ("Service", "spectra-web"),
    ("PodDisruptionBudget", "spectra-operator"),
    ("NetworkPolicy", "spectra-operator"),
    ("Job", "spectra-migrations"),
    ("Secret", "spectra-secret-key"),
    ("ClusterKopfPeering", "spectra"),
}
VARIANTS = {
    "defaults": ((), set()),
    "eval-mysql": (
        ("-f", str(EVAL_VALUES)),
        {("StatefulSet", "spectra-mariadb"), ("Service", "spectra-mariadb"), ("Secret", "spectra-mariadb")},
    ),
}


def _resource(obj: dict[str, Any]) -> str:
    """The emulator's "group/version/plural" for an object (fails for kinds the harness does not serve)."""
    served = [
        key
        for key, info in RESOURCES.items()
        if (key.rpartition("/")[0], info.kind) == (obj["apiVersion"], obj["kind"])
    ]
    assert len(served) == 1, (
        f"{obj['apiVersion']} {obj['kind']} is not served: add it to RESOURCES in tests/support/kube.py"
    )
    return served[0]


def _namespace(obj: dict[str, Any]) -> str | None:
    return NAMESPACE if RESOURCES[_resource(obj)].namespaced else None


def _line(obj: dict[str, Any], outcome: str) -> str:
    """kubectl's report for one object: `deployment.apps/spectra-web created`."""
    group = obj["apiVersion"].rpartition("/")[0]
    kind = obj["kind"].lower() + (f".{group}" if group else "")
    return f"{kind}/{obj['metadata']['name']} {outcome}"


def _is_test_hook(obj: dict[str, Any]) -> bool:
    hooks = (obj["metadata"].get("annotations") or {}).get("helm.sh/hook", "")
    return "test" in hooks.split(",")


def _always_patched(obj: dict[str, Any]) -> bool:
    """Objects for which a re-apply of the same manifest still sends a (no-op) patch.

    A Secret's stringData: the server only returns data, so kubectl sends stringData again (the emulator,
    like the API server, encodes it into the same data). A PodDisruptionBudget's spec.selector: policy/v1
    declares `patchStrategy: replace` for it, so kubectl's strategic-merge diff always includes it.
    """
    return (obj["kind"] == "Secret" and "stringData" in obj) or (
        obj["kind"] == "PodDisruptionBudget" and "selector" in obj.get("spec", {})
    )


def _assert_stored(cluster: ClusterEmulator, obj: dict[str, Any]) -> dict[str, Any]:
    """The object exists with the same kind, name and namespace, and with all the content kubectl sent."""
    where = f"{obj['kind']}/{obj['metadata']['name']}"
    stored = cluster.get(_resource(obj), _namespace(obj), obj["metadata"]["name"])
    assert stored is not None, f"{where} was not stored"
    assert (stored["apiVersion"], stored["kind"]) == (obj["apiVersion"], obj["kind"]), where
    assert stored["metadata"].get("namespace") == _namespace(obj), where
    assert stored["metadata"].get("labels") == obj["metadata"].get("labels"), where
    for key, value in obj.items():
        if key in {"metadata", "status", "stringData"}:
            continue
        assert stored.get(key) == value, f"{where}: .{key} differs"
    if "stringData" in obj:  # the API server keeps stringData base64-encoded in data
        assert "stringData" not in stored, where
        decoded = {key: base64.b64decode(value).decode() for key, value in stored["data"].items()}
        assert {key: decoded[key] for key in obj["stringData"]} == {k: str(v) for k, v in obj["stringData"].items()}
    return stored


def test_chart_crds_apply(cluster: ClusterEmulator) -> None:
    crds = [doc for path in sorted(CHART_CRDS.glob("*.yaml")) for doc in objects_of(path.read_text())]
    assert {crd["kind"] for crd in crds} == {"CustomResourceDefinition"}
    # The cluster fixture already holds spectra's own CRDs (as `spectra crds` makes them); kopf's is new.
    existing = {crd["metadata"]["name"] for crd in cluster.list(CRD_RESOURCE)}
    assert "clusterkopfpeerings.kopf.dev" not in existing

    applied = cluster.kubectl("apply", "-f", str(CHART_CRDS))
    expected = {_line(crd, "configured" if crd["metadata"]["name"] in existing else "created") for crd in crds}
    assert sorted(applied.stdout.splitlines()) == sorted(expected)
    for crd in crds:
        _assert_stored(cluster, crd)

    reapplied = cluster.kubectl("apply", "-f", str(CHART_CRDS))
    assert sorted(reapplied.stdout.splitlines()) == sorted(_line(crd, "unchanged") for crd in crds)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rendered_chart_applies(cluster: ClusterEmulator, render: Callable[..., Rendered], variant: str) -> None:
    values, extra = VARIANTS[variant]
    chart = render(*values, name=variant)
    objects = [obj for obj in chart.objects if not _is_test_hook(obj)]
    assert len(objects) == len(chart.objects) - 1, "expected exactly one helm test hook (the web check Pod)"
    for kind, name in REQUIRED | extra:
        chart.get(kind, name)
    for obj in objects:  # namespaced objects carry the release namespace (`--namespace monitoring`)
        assert obj["metadata"].get("namespace") == _namespace(obj), f"{obj['kind']}/{obj['metadata']['name']}"

    cluster.kubectl("apply", "-f", str(CHART_CRDS))
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    created = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(namespace))
    assert created.stdout.splitlines() == [f"namespace/{NAMESPACE} created"]

    manifest = yaml.safe_dump_all(objects, sort_keys=False)
    applied = cluster.kubectl("apply", "-f", "-", input=manifest, check=False)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines() == [_line(obj, "created") for obj in objects]
    versions = {}
    for obj in objects:
        stored = _assert_stored(cluster, obj)
        versions[_line(obj, "")] = stored["metadata"]["resourceVersion"]

    # kubectl finds each object again through discovery, by its kind and name.
    listed = cluster.kubectl("get", "-f", "-", "-o", "name", input=manifest)
    assert listed.stdout.splitlines() == [_line(obj, "").strip() for obj in objects]

    # A second apply changes nothing: no object gets a new resourceVersion. Where kubectl's patch can
    # never be empty it still reports "configured" (see _always_patched), as against a real cluster.
    reapplied = cluster.kubectl("apply", "-f", "-", input=manifest)
    assert reapplied.stdout.splitlines() == [
        _line(obj, "configured" if _always_patched(obj) else "unchanged") for obj in objects
    ]
    for obj in objects:
        stored = _assert_stored(cluster, obj)
        assert stored["metadata"]["resourceVersion"] == versions[_line(obj, "")], f"{obj['kind']} changed"
