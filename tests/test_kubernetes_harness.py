"""The Kubernetes test harness itself: real kubectl against the emulator, and the Python client."""

from __future__ import annotations

import base64
import datetime
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from spectra.api import KINDS
from spectra.runtime.timefmt import rfc3339
from tests.factories.manifests import monitor, resource, to_yaml
from tests.support.kube import MONITORS, RESOURCES, ClusterEmulator, objects_of
from tests.support.kube_tables import UnsupportedJsonPath, age, go_print, human_duration, read_table, table_version
from tests.support.kube_tables import table as printed_table
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
        resource, info = next(
            (path, info)
            for path, info in RESOURCES.items()
            if path.rpartition("/")[0] == doc["apiVersion"] and info.kind == kind
        )
        namespace = doc["metadata"].get("namespace", "default") if info.namespaced else None
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


# --- server-side printing: what `kubectl get` shows (tests/support/kube_tables.py) --------------------

COLUMNS: list[dict[str, Any]] = [
    {"name": "Kind", "type": "string", "jsonPath": ".spec.type"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "First", "type": "string", "jsonPath": ".status.names[*]"},
    {"name": "Names", "type": "string", "jsonPath": ".status.names"},
    {"name": "Count", "type": "integer", "jsonPath": ".status.count"},
    {"name": "Ratio", "type": "number", "jsonPath": ".status.ratio"},
    {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
    {"name": "Missing", "type": "string", "jsonPath": ".status.nothing"},
    {"name": "Since", "type": "date", "jsonPath": ".status.since"},
    {"name": "Detail", "type": "string", "jsonPath": ".status.detail", "priority": 1},
]


def _set_columns(cluster: ClusterEmulator, plural: str, columns: list[dict[str, Any]]) -> None:
    """Change a CRD's printer columns, as `kubectl apply` of an edited CRD would."""
    patch = [{"op": "replace", "path": "/spec/versions/0/additionalPrinterColumns", "value": columns}]
    cluster.kubectl("patch", "crd", f"{plural}.spectra.dev", "--type=json", "-p", json.dumps(patch))


def _set_status(cluster: ClusterEmulator, kind: str, name: str, status: dict[str, Any]) -> None:
    body = json.dumps({"status": status})
    cluster.kubectl("patch", kind, name, "--subresource=status", "--type=merge", "-p", body)


def _ago(**delta: float) -> str:
    return rfc3339(datetime.datetime.now(datetime.UTC) - datetime.timedelta(**delta))


def test_kubectl_get_prints_the_crds_printer_columns(cluster: ClusterEmulator) -> None:
    _set_columns(cluster, "monitors", COLUMNS)
    cluster.kubectl("apply", "-f", "-", input=to_yaml(monitor("web", paused=False)))
    status = {
        "conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}],
        "names": ["alice", "bob"],
        "count": 3.0,  # an integer column truncates, as Go's int64() does
        "ratio": 0.5,
        "since": _ago(hours=20),  # HumanDuration says "20h" for the next hour
        "detail": "only with -o wide",
    }
    _set_status(cluster, "monitor", "web", status)

    headers, rows = read_table(cluster.kubectl("get", "monitors").stdout)
    assert headers == ["NAME", "KIND", "READY", "FIRST", "NAMES", "COUNT", "RATIO", "PAUSED", "MISSING", "SINCE"]
    assert rows == [["web", "http", "True", "alice", "[alice bob]", "3", "0.5", "false", "", "20h"]]
    assert read_table(cluster.kubectl("get", "monitor", "web").stdout) == (headers, rows)

    headers, rows = read_table(cluster.kubectl("get", "monitors", "-A", "-o", "wide").stdout)
    assert headers[0] == "NAMESPACE"  # kubectl takes it from each row's object metadata
    assert headers[-1] == "DETAIL"
    assert rows[0][0] == "default"
    assert rows[0][-1] == "only with -o wide"

    # Clients that ask for JSON (kopf, the Python client, -o json) still get objects.
    assert _json(cluster, "get", "monitor", "web")["status"]["names"] == ["alice", "bob"]


def test_a_crd_without_columns_shows_age(cluster: ClusterEmulator) -> None:
    _set_columns(cluster, "monitors", [])
    cluster.kubectl("apply", "-f", "-", input=MONITOR)
    headers, rows = read_table(cluster.kubectl("get", "monitors").stdout)
    assert headers == ["NAME", "AGE"]
    assert rows[0][0] == "web"
    assert re.fullmatch(r"\d+s", rows[0][1])


def test_a_date_column_shows_a_future_time_as_invalid(cluster: ClusterEmulator) -> None:
    """The bug a real API server showed: NEXT HANDOFF as a `date` column holding a future time."""
    _set_columns(
        cluster,
        "schedules",
        [{"name": "Next Handoff", "type": "date", "jsonPath": ".status.nextHandoff"}],
    )
    spec = {"timeZone": "UTC", "layers": [{"name": "main", "participants": ["alice"], "start": "2026-01-05"}]}
    for name in ("later", "earlier", "unreadable"):
        cluster.kubectl("apply", "-f", "-", input=to_yaml(resource("Schedule", name, spec)))
    now = datetime.datetime.now(datetime.UTC)
    _set_status(cluster, "schedule", "later", {"nextHandoff": rfc3339(now + datetime.timedelta(hours=3))})
    _set_status(cluster, "schedule", "earlier", {"nextHandoff": _ago(hours=20)})
    _set_status(cluster, "schedule", "unreadable", {"nextHandoff": "next Monday"})

    headers, rows = read_table(cluster.kubectl("get", "schedules").stdout)
    assert headers == ["NAME", "NEXT HANDOFF"]
    assert rows == [["earlier", "20h"], ["later", "<invalid>"], ["unreadable", "<invalid>"]]


def test_watch_prints_table_rows(cluster: ClusterEmulator) -> None:
    watch = subprocess.Popen(
        [_kubectl(cluster), "get", "monitors", "--watch"],
        env=cluster.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for(lambda: cluster.requests("GET", MONITORS)[1:], "kubectl to watch")
        cluster.kubectl("apply", "-f", "-", input=MONITOR)
        assert watch.stdout is not None
        header, row = watch.stdout.readline(), watch.stdout.readline()
    finally:
        watch.kill()
        watch.communicate()
    headers, rows = read_table(header + row)
    assert headers[:3] == ["NAME", "TYPE", "TARGET"]
    assert rows[0][:2] == ["web", "http"]


@pytest.mark.parametrize(
    ("elapsed", "shown"),
    [
        # apimachinery's duration.HumanDuration, boundary by boundary (its own test's cases).
        (datetime.timedelta(seconds=-2), "<invalid>"),
        (datetime.timedelta(seconds=-2, microseconds=1), "0s"),
        (datetime.timedelta(0), "0s"),
        (datetime.timedelta(minutes=2, milliseconds=-1), "119s"),
        (datetime.timedelta(minutes=2, seconds=1), "2m1s"),
        (datetime.timedelta(minutes=10), "10m"),
        (datetime.timedelta(hours=3, milliseconds=-1), "179m"),
        (datetime.timedelta(hours=3, minutes=1), "3h1m"),
        (datetime.timedelta(hours=8, minutes=59), "8h"),
        (datetime.timedelta(hours=49), "2d1h"),
        (datetime.timedelta(days=8, hours=23), "8d"),
        (datetime.timedelta(days=2 * 365 + 1, milliseconds=-1), "2y"),
        (datetime.timedelta(days=2 * 365 + 1), "2y1d"),
        (datetime.timedelta(days=8 * 365, milliseconds=-1), "7y364d"),
        (datetime.timedelta(days=9 * 365), "9y"),
    ],
)
def test_human_duration_matches_apimachinery(elapsed: datetime.timedelta, shown: str) -> None:
    assert human_duration(elapsed) == shown


def test_date_cells_parse_rfc3339_only() -> None:
    now = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
    assert age("2026-03-02T09:00:00Z", now) == "60m"
    assert age("2026-03-02T10:00:00.123456+00:00", now) == "0s"
    assert age("2026-03-02T10:00:05Z", now) == "<invalid>"
    assert age("", now) == "<unknown>"
    assert age("2026-03-02", now) == "<invalid>"


@pytest.mark.parametrize(
    ("value", "printed"),
    [
        ("text", "text"),
        (True, "true"),
        (3, "3"),
        (99.5, "99.5"),
        (100.0, "100"),
        (1e6, "1e+06"),
        (0.00001, "1e-05"),
        (-0.25, "-0.25"),
        (["a", 1, None], "[a 1 <nil>]"),
        ({"b": 1, "a": [True]}, "map[a:[true] b:1]"),
    ],
)
def test_string_cells_print_as_go_does(value: Any, printed: str) -> None:
    assert go_print(value) == printed


def test_cells_by_column_type() -> None:
    columns = [
        {"name": "I", "type": "integer", "jsonPath": ".v"},
        {"name": "N", "type": "number", "jsonPath": ".v"},
        {"name": "B", "type": "boolean", "jsonPath": ".v"},
        {"name": "D", "type": "date", "jsonPath": ".v"},
        {"name": "S", "type": "string", "jsonPath": ".v"},
        {"name": "X", "type": "string", "jsonPath": ".list[5]"},
        {"name": "Y", "type": "string", "jsonPath": ".v[*]"},
    ]
    objects: list[dict[str, Any]] = [
        {"metadata": {"name": name}, "v": v, "list": [1]}
        for name, v in [("int", 7), ("float", 2.9), ("bool", True), ("text", "x"), ("null", None)]
    ]
    printed = printed_table(columns, objects, api_version="meta.k8s.io/v1", resource_version="1")
    assert [definition["name"] for definition in printed["columnDefinitions"]] == [
        "Name",
        "I",
        "N",
        "B",
        "D",
        "S",
        "X",
        "Y",
    ]
    assert [row["cells"] for row in printed["rows"]] == [
        ["int", 7, 7.0, None, None, "7", None, None],
        ["float", 2, 2.9, None, None, "2.9", None, None],
        ["bool", None, None, True, None, "true", None, None],
        ["text", None, None, None, "<invalid>", "x", None, None],
        ["null", None, None, None, None, None, None, None],
    ]
    assert printed["rows"][0]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"name": "int"},
    }


def test_unsupported_jsonpath_fails_loudly() -> None:
    with pytest.raises(UnsupportedJsonPath, match=r"\.\."):
        printed_table(
            [{"name": "R", "type": "string", "jsonPath": "..name"}], [], api_version="v1", resource_version="1"
        )


@pytest.mark.parametrize(
    ("accept", "version"),
    [
        (
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
            "meta.k8s.io/v1",
        ),
        ("application/json;as=Table;v=v1beta1;g=meta.k8s.io, application/json", "meta.k8s.io/v1beta1"),
        ("application/json", None),
        ("application/json, application/json;as=Table;v=v1;g=meta.k8s.io", None),
        ("", None),
    ],
)
def test_table_is_answered_when_asked_for_first(accept: str, version: str | None) -> None:
    assert table_version({"Accept": accept}) == version
