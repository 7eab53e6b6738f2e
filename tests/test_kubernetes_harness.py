"""The Kubernetes test harness itself: real kubectl against the emulator, and the Python client."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from spectra.api import KINDS
from tests.factories.manifests import monitor, to_yaml
from tests.support.kube import MONITORS, ClusterEmulator, objects_of, spectra_resource
from tests.support.paths import EXAMPLES
from tests.support.waiting import wait_for

EXAMPLE_DIRS = sorted(path for path in EXAMPLES.iterdir() if path.is_dir())
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
MONITOR = to_yaml(monitor("web", url="http://127.0.0.1:9/"))


def _json(cluster: ClusterEmulator, *args: str) -> dict[str, Any]:
    listed: dict[str, Any] = json.loads(cluster.kubectl(*args, "-o", "json").stdout)
    return listed


def _kubectl(cluster: ClusterEmulator) -> str:
    assert cluster.tools is not None, "the cluster fixture comes with kubectl"
    return str(cluster.tools.kubectl)


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=[path.name for path in EXAMPLE_DIRS])
def test_kubectl_applies_each_example(cluster: ClusterEmulator, example: Path) -> None:
    applied = cluster.kubectl("apply", "-f", str(example))
    documents = [doc for path in sorted(example.glob("*.yaml")) for doc in objects_of(path.read_text())]
    assert applied.stdout.count(" created") == len(documents)
    for doc in documents:
        kind, name = doc["kind"], doc["metadata"]["name"]
        resource = spectra_resource(kind) if kind in KINDS else "v1/secrets"
        namespaced = kind not in KINDS or KINDS[kind].info.namespaced
        namespace = doc["metadata"].get("namespace", "default") if namespaced else None
        stored = cluster.get(resource, namespace, name)
        assert stored is not None, f"{kind}/{name}"
        assert stored["kind"] == kind
        if kind == "Secret":  # the API server keeps stringData base64-encoded in data
            assert "stringData" not in stored
            assert {key: base64.b64decode(value).decode() for key, value in stored["data"].items()} == {
                key: str(value) for key, value in doc.get("stringData", {}).items()
            }

    reapplied = cluster.kubectl("apply", "-f", str(example)).stdout.splitlines()
    assert all(line.endswith(" unchanged") for line in reapplied if not line.startswith("secret/")), reapplied


def test_listed_monitors_carry_server_metadata(cluster: ClusterEmulator) -> None:
    cluster.kubectl("apply", "-f", str(EXAMPLES / "02-check-types"))
    raw = json.loads(cluster.kubectl("get", "--raw", "/apis/spectra.dev/v1alpha1/monitors").stdout)
    assert raw["kind"] == "MonitorList"  # kubectl -o json rewraps lists as kind: List
    assert raw["apiVersion"] == "spectra.dev/v1alpha1"
    listed = _json(cluster, "get", "monitors", "-A")
    assert [item["metadata"]["name"] for item in listed["items"]] == [item["metadata"]["name"] for item in raw["items"]]
    assert len(listed["items"]) > 1
    versions = set()
    for item in listed["items"]:
        meta = item["metadata"]
        assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
        assert RFC3339.fullmatch(meta["creationTimestamp"])
        assert meta["generation"] == 1
        assert meta["namespace"] == "default"
        versions.add(int(meta["resourceVersion"]))
    assert len(versions) == len(listed["items"])  # one global, increasing counter
    assert int(raw["metadata"]["resourceVersion"]) >= max(versions)


def test_spec_edits_bump_generation_but_status_patches_do_not(cluster: ClusterEmulator) -> None:
    cluster.kubectl("apply", "-f", "-", input=MONITOR)
    first = cluster.get(MONITORS, "default", "web")
    assert first is not None
    assert first["metadata"]["generation"] == 1

    status = {"status": {"observedGeneration": 1, "phase": "Up"}, "spec": {"type": "tcp"}}
    cluster.kubectl("patch", "monitor", "web", "--subresource=status", "--type=merge", "-p", json.dumps(status))
    patched = cluster.get(MONITORS, "default", "web")
    assert patched is not None
    assert patched["status"] == status["status"]
    assert patched["spec"] == first["spec"]  # the status subresource changes nothing else
    assert patched["metadata"]["generation"] == 1
    assert int(patched["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert cluster.status_patches(MONITORS) == 1

    cluster.kubectl("annotate", "monitor", "web", "team=web")  # metadata only
    assert cluster.existing(MONITORS, "default", "web")["metadata"]["generation"] == 1

    cluster.kubectl("apply", "-f", "-", input=to_yaml(monitor("web", url="http://127.0.0.1:10/")))
    edited = cluster.get(MONITORS, "default", "web")
    assert edited is not None
    assert edited["spec"]["http"]["url"] == "http://127.0.0.1:10/"
    assert edited["metadata"]["generation"] == 2
    assert edited["status"] == status["status"]  # writes to the object leave .status alone
    assert edited["metadata"]["uid"] == first["metadata"]["uid"]

    # Merge-patch semantics: null removes a key.
    cluster.kubectl("patch", "monitor", "web", "--type=merge", "-p", '{"metadata": {"annotations": {"team": null}}}')
    assert "team" not in (cluster.existing(MONITORS, "default", "web")["metadata"].get("annotations") or {})


def test_delete_removes_and_finalizers_hold_deletion(cluster: ClusterEmulator) -> None:
    cluster.kubectl("apply", "-f", "-", input=MONITOR)
    cluster.kubectl("delete", "monitor", "web")
    assert cluster.get(MONITORS, "default", "web") is None
    assert cluster.kubectl("get", "monitor", "web", check=False).returncode != 0

    held = to_yaml(monitor("web", url="http://127.0.0.1:9/", metadata={"finalizers": ["spectra.dev/cleanup"]}))
    cluster.kubectl("apply", "-f", "-", input=held)
    cluster.kubectl("delete", "monitor", "web", "--wait=false")
    pending = cluster.get(MONITORS, "default", "web")
    assert pending is not None
    assert RFC3339.fullmatch(pending["metadata"]["deletionTimestamp"])

    cluster.kubectl("patch", "monitor", "web", "--type=merge", "-p", '{"metadata": {"finalizers": null}}')
    wait_for(lambda: cluster.get(MONITORS, "default", "web") is None, "the monitor to go", timeout=5)


def test_kubectl_lists_the_spectra_crds(cluster: ClusterEmulator) -> None:
    names = cluster.kubectl("get", "crd", "-o", "name").stdout.split()
    assert sorted(names) == sorted(
        f"customresourcedefinition.apiextensions.k8s.io/{m.info.plural}.spectra.dev" for m in KINDS.values()
    )
    assert len(names) == 7
    assert "default" in cluster.kubectl("get", "namespaces").stdout


def test_watch_streams_changes(cluster: ClusterEmulator) -> None:
    watch = subprocess.Popen(
        [_kubectl(cluster), "get", "monitors", "--watch", "-o", "name"],
        env=cluster.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for(lambda: cluster.requests("GET", MONITORS), "kubectl to watch")
        cluster.kubectl("apply", "-f", "-", input=MONITOR)
        assert watch.stdout is not None
        assert watch.stdout.readline().strip() == "monitor.spectra.dev/web"
    finally:
        watch.kill()
        watch.communicate()


def test_stop_ends_open_watches(cluster: ClusterEmulator, tmp_path: Path) -> None:
    with ClusterEmulator(cluster.tools, tmp_path / "second") as second:
        assert second.url != cluster.url
        watch = subprocess.Popen(
            [_kubectl(second), "get", "monitors", "--watch"],
            env=second.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: second.requests("GET", MONITORS)[1:], "kubectl to watch")
            started = time.monotonic()
            second.stop()
            assert time.monotonic() - started < 5
        finally:
            watch.kill()
            watch.wait()


def test_python_client_lists_and_patches_status(cluster: ClusterEmulator) -> None:
    from kubernetes import client, config

    cluster.kubectl("apply", "-f", str(EXAMPLES / "01-http-monitor"))
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    with api_client:
        api = client.CustomObjectsApi(api_client)
        listed: Any = api.list_namespaced_custom_object("spectra.dev", "v1alpha1", "default", "monitors")
        assert [item["metadata"]["name"] for item in listed["items"]] == ["local-web"]

        body = {"status": {"phase": "Up"}}
        api.patch_namespaced_custom_object_status("spectra.dev", "v1alpha1", "default", "monitors", "local-web", body)
        stored = cluster.get(MONITORS, "default", "local-web")
        assert stored is not None
        assert stored["status"] == {"phase": "Up"}
        assert stored["metadata"]["generation"] == 1
        assert cluster.status_patches() == 1

        core = client.CoreV1Api(api_client)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name="local-web-", namespace="default"),
            involved_object=client.V1ObjectReference(kind="Monitor", name="local-web", namespace="default"),
            reason="Probe",
            message="up",
        )
        core.create_namespaced_event("default", event)
        core.create_namespaced_event("default", event)  # generateName gives each its own name
        assert len(cluster.list("v1/events", "default")) == 2


def test_load_kube_config_uses_the_kubeconfig(cluster: ClusterEmulator) -> None:
    from kubernetes import client, config

    config.load_kube_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        names = [ns.metadata.name if ns.metadata else None for ns in client.CoreV1Api().list_namespace().items]
    finally:
        client.Configuration.set_default(None)
    assert names == ["default"]
