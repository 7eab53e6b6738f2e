"""`spectra operator` end to end: the real kubectl applies manifests to a Kubernetes API emulator
(kmock), the operator (a real process with a kubeconfig) reconciles them into MariaDB, and status,
Events and owned children show up in the API."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from spectra.store import upgrade
from tests.support.kube import ClusterEmulator
from tests.support.processes import REPO, SPECTRA, Target, free_port, get
from tests.support.waiting import wait_for

MONITORS = "spectra.dev/v1alpha1/monitors"
NAMESPACE = "spectra"  # where the operator runs and makes its children
SECRET_VALUE = "s3cr3t-heartbeat-token-value"


class Operator:
    """One `spectra operator` process; `restart()` keeps the same settings and database."""

    def __init__(self, cluster: ClusterEmulator, database: str, tmp: Path) -> None:
        self.cluster = cluster
        self.database = database
        self.tmp = tmp
        self.config = tmp / "operator.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "namespace": NAMESPACE,
                    "ownerDeployment": "spectra-operator",
                    "instance": "spectra",
                    "probe": {"image": "example.test/spectra:test", "monitorsPerReplica": 2, "maxReplicas": 3},
                    "ingress": {"className": "nginx", "tls": True},
                    "web": {"publicUrl": "https://status.example.test"},
                    "status": {"intervalSeconds": 0.5, "refreshSeconds": 2, "maxPatchesPerSecond": 200},
                    "secretRefreshSeconds": 1,
                }
            )
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.logs: list[Path] = []
        self.port = 0

    def start(self) -> None:
        self.port = free_port()
        log = self.tmp / f"operator-{len(self.logs)}.log"
        self.logs.append(log)
        command = [
            SPECTRA,
            "-v",
            "operator",
            "--config",
            str(self.config),
            "--database",
            self.database,
            "--kubeconfig",
            str(self.cluster.kubeconfig),
            "--listen",
            f"127.0.0.1:{self.port}",
        ]
        with log.open("wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=self.cluster.env())
        wait_for(lambda: get(f"http://127.0.0.1:{self.port}/readyz")[0] == 200 or self._died(), "operator ready")
        assert self.process.poll() is None, self.log_text()

    def _died(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    def log_text(self, index: int = -1) -> str:
        return self.logs[index].read_text(errors="replace") if self.logs else ""


@pytest.fixture
def database(mariadb_url: str) -> str:
    engine = sa.create_engine(mariadb_url)
    upgrade(engine)
    engine.dispose()
    return mariadb_url


@pytest.fixture
def operator(cluster: ClusterEmulator, database: str, tmp_path: Path) -> Iterator[Operator]:
    # The operator's own Deployment: the owner of the children it makes.
    cluster.kubectl("apply", "-f", "-", input=OPERATOR_DEPLOYMENT)
    running = Operator(cluster, database, tmp_path)
    running.start()
    yield running
    running.kill()
    print(running.log_text()[-8000:])  # shown by pytest when the test failed


OPERATOR_DEPLOYMENT = f"""
apiVersion: kopf.dev/v1
kind: ClusterKopfPeering
metadata: {{name: spectra}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: {NAMESPACE}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: spectra-operator, namespace: {NAMESPACE}}}
spec:
  selector: {{matchLabels: {{app: spectra-operator}}}}
  template:
    metadata: {{labels: {{app: spectra-operator}}}}
    spec: {{containers: [{{name: operator, image: example.test/spectra:test}}]}}
"""


def ready(cluster: ClusterEmulator, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
    """The Ready condition of an object once the operator has written one."""
    body = cluster.get(resource, namespace, name)
    for condition in ((body or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return dict(condition)
    return None


def rows(database: str, sql: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(database)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        engine.dispose()


def plural(kind: str) -> str:
    from spectra.api import KINDS

    info = KINDS[kind].info
    return f"spectra.dev/v1alpha1/{info.plural}"


def test_every_example_becomes_ready(cluster: ClusterEmulator, operator: Operator, database: str) -> None:
    applied: list[tuple[str, str | None, str]] = []
    for folder in sorted((REPO / "examples").iterdir()):
        if not folder.is_dir():
            continue
        cluster.kubectl("apply", "-f", str(folder))
        for path in sorted(folder.glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc and doc.get("apiVersion") == "spectra.dev/v1alpha1":
                    namespace = None if doc["kind"] == "Organization" else doc["metadata"].get("namespace", "default")
                    applied.append((doc["kind"], namespace, doc["metadata"]["name"]))
    assert len(applied) >= 25
    for kind, namespace, name in applied:
        condition = wait_for(
            lambda kind=kind, namespace=namespace, name=name: (
                (c := ready(cluster, plural(kind), namespace, name))
                and c["status"] == "True"
                and "spectra.dev/finalizer"
                in (cluster.get(plural(kind), namespace, name) or {})["metadata"].get("finalizers", [])
                and c
            ),
            f"{kind}/{namespace}/{name} Ready, with our finalizer",
            timeout=30,
        )
        body = cluster.get(plural(kind), namespace, name)
        assert body is not None
        assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
        assert condition["reason"] == "Applied"
    # Live facts of the other kinds, from the store.
    schedule = wait_for(
        lambda: (
            (cluster.get(plural("Schedule"), "default", "platform-primary") or {}).get("status", {}).get("onCallNow")
        ),
        "who is on call, in the Schedule's status",
    )
    assert schedule
    page = wait_for(
        lambda: (cluster.get(plural("StatusPage"), "default", "public") or {}).get("status", {}).get("components"),
        "component states in the StatusPage's status",
    )
    assert {component["name"] for component in page}
    stored = rows(database, "SELECT kind, namespace, name FROM resources WHERE source = 'cluster'")
    assert {(k, n or None, m) for k, n, m in stored} >= {(k, n, m) for k, n, m in applied}

    # One probe Deployment per location in use, owned by the operator's Deployment.
    owner_uid = cluster.get("apps/v1/deployments", NAMESPACE, "spectra-operator")["metadata"]["uid"]
    locations = {loc for (loc,) in rows(database, "SELECT DISTINCT location FROM monitor_locations")}
    deployments = wait_for(
        lambda: len(found := cluster.list("apps/v1/deployments", NAMESPACE)) == len(locations) + 1 and found,
        "probe Deployments",
    )
    probes = [d for d in deployments if d["metadata"]["name"] != "spectra-operator"]
    assert {d["metadata"]["labels"]["spectra.dev/location"] for d in probes} == locations
    for deployment in probes:
        assert [ref["uid"] for ref in deployment["metadata"]["ownerReferences"]] == [owner_uid]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "example.test/spectra:test"
        assert container["args"][:2] == ["probe", "--location"] or "probe" in container.get("command", [])

    # The status page's host names get an Ingress in the operator's namespace, owned the same way.
    ingresses = wait_for(lambda: cluster.list("networking.k8s.io/v1/ingresses", NAMESPACE), "page Ingress")
    hosts = {rule["host"] for ingress in ingresses for rule in ingress["spec"]["rules"]}
    page_hosts = {
        host
        for path in (REPO / "examples").glob("*/statuspage.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "StatusPage"
        for host in doc["spec"].get("hostnames", [])
    }
    assert hosts == page_hosts
    for ingress in ingresses:
        assert ingress["metadata"]["ownerReferences"][0]["uid"] == owner_uid
        assert ingress["spec"]["ingressClassName"] == "nginx"
        assert ingress["spec"]["tls"]


def monitor_manifest(name: str, port: int, *, namespace: str = "default", extra: str = "") -> str:
    return f"""
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  type: http
  interval: 1s
  timeout: 500ms
  failureThreshold: 1
  http: {{url: "http://127.0.0.1:{port}/"}}
{extra}"""


def test_target_down_shows_in_status_and_events(
    cluster: ClusterEmulator, operator: Operator, database: str, target: Target, tmp_path: Path
) -> None:
    cluster.kubectl("apply", "-f", "-", input=monitor_manifest("web", target.port))
    wait_for(lambda: (c := ready(cluster, MONITORS, "default", "web")) and c["status"] == "True", "Ready")
    probe_log = tmp_path / "probe.log"
    command = [SPECTRA, "probe", "--location", "default", "--database", database]
    with probe_log.open("wb") as out:
        probe = subprocess.Popen(
            [*command, "--listen", f"127.0.0.1:{free_port()}", "--allow-private-targets"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        status = wait_for(
            lambda: (s := (cluster.get(MONITORS, "default", "web") or {}).get("status", {})).get("state") == "up" and s,
            "state up in .status",
            timeout=30,
        )
        assert status["target"] == f"http://127.0.0.1:{target.port}/"
        assert status["lastCheck"].endswith("Z")
        target.stop()
        wait_for(
            lambda: (cluster.get(MONITORS, "default", "web") or {}).get("status", {}).get("state") == "down",
            "state down in .status",
            timeout=30,
        )
        events = wait_for(
            lambda: [
                e
                for e in cluster.list("v1/events", "default")
                if e.get("reason") == "MonitorDown" and e["involvedObject"]["name"] == "web"
            ],
            "a MonitorDown Event",
        )
        assert events[0]["type"] == "Warning"
        # The operator's own metrics count what it sent; a probe worker's figures are not among them.
        status_code, metrics = get(f"http://127.0.0.1:{operator.port}/metrics")
        assert status_code == 200
        counters = {
            name: float(value)
            for name, _, value in (line.partition(" ") for line in metrics.splitlines())
            if name.startswith("spectra_operator_")
        }
        assert counters["spectra_operator_status_patches_total"] >= 2  # up, then down
        assert counters["spectra_operator_events_total"] >= 1  # the MonitorDown Event
        assert "spectra_checks_total" not in metrics
    finally:
        probe.kill()
        probe.wait()


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("type: http\n  interval: 10s\n  timeout: 20s\n  http: {url: 'http://127.0.0.1:1/'}", "spec.timeout"),
        ("type: http\n  interval: 10s\n  http: {url: 'ftp://127.0.0.1/'}", "spec.http.url"),
        ("type: tcp\n  interval: 10s\n  http: {url: 'http://127.0.0.1:1/'}", "spec.tcp"),
        ("type: http\n  intervall: 10s\n  http: {url: 'http://127.0.0.1:1/'}", "spec.intervall"),
    ],
)
def test_bad_monitor_is_not_ready_and_names_the_field(
    cluster: ClusterEmulator, operator: Operator, database: str, spec: str, field: str
) -> None:
    manifest = f"apiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {{name: bad}}\nspec:\n  {spec}\n"
    cluster.kubectl("apply", "-f", "-", input=manifest)
    condition = wait_for(lambda: ready(cluster, MONITORS, "default", "bad"), "a Ready condition")
    assert condition["status"] == "False"
    assert condition["reason"] == "Invalid"
    assert field in condition["message"]
    events = wait_for(
        lambda: [e for e in cluster.list("v1/events", "default") if e["involvedObject"]["name"] == "bad"], "an Event"
    )
    assert field in events[0]["message"]
    assert rows(database, "SELECT id FROM resources WHERE name = 'bad'") == []


def test_delete_removes_rows_and_releases_finalizer(
    cluster: ClusterEmulator, operator: Operator, database: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=monitor_manifest("gone", 9))
    wait_for(lambda: (c := ready(cluster, MONITORS, "default", "gone")) and c["status"] == "True", "Ready")
    assert rows(database, "SELECT id FROM resources WHERE name = 'gone'")
    cluster.kubectl("delete", "monitor", "gone", "--wait=false")
    wait_for(lambda: cluster.get(MONITORS, "default", "gone") is None, "the object to go (finalizer released)")
    assert rows(database, "SELECT id FROM resources WHERE name = 'gone'") == []
    assert rows(database, "SELECT resource_id FROM monitors WHERE name = 'gone'") == []


def stored_names(database: str) -> set[str]:
    return {name for (name,) in rows(database, "SELECT name FROM resources WHERE kind = 'Monitor'")}


def test_restart_loses_no_delete_and_makes_nothing_twice(
    cluster: ClusterEmulator, operator: Operator, database: str
) -> None:
    names = [f"m{i:02d}" for i in range(20)]
    manifests = "---".join(
        monitor_manifest(name, 9, extra=f"  locations: [{'eu-west' if i % 2 else 'us-east'}]\n")
        for i, name in enumerate(names)
    )
    cluster.kubectl("apply", "-f", "-", input=manifests)

    def finalized() -> list[str]:
        return [
            m["metadata"]["name"]
            for m in cluster.list(MONITORS, "default")
            if "spectra.dev/finalizer" in m["metadata"].get("finalizers", [])
        ]

    wait_for(lambda: len(finalized()) >= 3, "the first objects handled")
    operator.kill()  # SIGKILL in the middle of reconciling the rest
    handled = finalized()

    # While it is down: delete some (kept by the finalizer until the operator is back), edit one 50 times.
    doomed = handled[:3]
    for name in doomed:
        cluster.kubectl("delete", "monitor", name, "--wait=false")
    edited = next(name for name in names if name not in doomed)
    for attempt in range(1, 51):
        cluster.kubectl(
            "patch", "monitor", edited, "--type=merge", "-p", f'{{"spec": {{"interval": "{attempt + 9}s"}}}}'
        )
    final_generation = cluster.get(MONITORS, "default", edited)["metadata"]["generation"]

    operator.start()
    survivors = [name for name in names if name not in doomed]
    for name in survivors:
        wait_for(
            lambda name=name: (c := ready(cluster, MONITORS, "default", name)) and c["status"] == "True",
            f"{name} Ready after the restart",
            timeout=60,  # a killed replica's peering record may hold the new one for up to 20 s
        )
    for name in doomed:
        wait_for(lambda name=name: cluster.get(MONITORS, "default", name) is None, f"{name} deleted", timeout=60)
    assert wait_for(lambda: stored_names(database) == set(survivors) or None, "the store to match the cluster")

    # The 50 edits: one reconcile, to the final spec.
    (interval_ms,) = rows(database, "SELECT interval_ms FROM monitors WHERE name = :n", n=edited)[0]
    assert interval_ms == 59_000
    body = cluster.get(MONITORS, "default", edited)
    assert body["status"]["observedGeneration"] == final_generation
    assert operator.log_text().count(f"applied Monitor/default/{edited} ") == 1

    # Children: exactly one probe Deployment per location, however often the operator restarted.
    deployments = wait_for(
        lambda: (
            (
                found := sorted(
                    d["metadata"]["name"]
                    for d in cluster.list("apps/v1/deployments", NAMESPACE)
                    if d["metadata"]["name"] != "spectra-operator"
                )
            )
            == ["spectra-probe-eu-west", "spectra-probe-us-east"]
            and found
        ),
        "one probe Deployment per location",
    )
    assert len(deployments) == 2
    creates = cluster.requests("POST", "apps/v1/deployments")
    assert len(creates) == 2 + 1  # the two probes and the operator's own Deployment, each created once


def test_objects_deleted_before_the_operator_saw_them_leave_no_rows(
    cluster: ClusterEmulator, operator: Operator, database: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=monitor_manifest("brief", 9))
    wait_for(lambda: "brief" in stored_names(database), "the row")
    operator.kill()
    body = cluster.get(MONITORS, "default", "brief")
    if body is not None and body["metadata"].get("finalizers"):
        cluster.kubectl("patch", "monitor", "brief", "--type=merge", "-p", '{"metadata": {"finalizers": null}}')
    cluster.kubectl("delete", "monitor", "brief", "--wait=false")
    operator.start()
    wait_for(lambda: "brief" not in stored_names(database), "the orphaned row swept", timeout=40)


HEARTBEAT = """
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {name: nightly, namespace: default}
spec:
  type: heartbeat
  interval: 1h
  heartbeat:
    grace: 10m
    tokenFrom: {secretKeyRef: {name: nightly-token, key: token}}
"""


def secret(value: str) -> str:
    return (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: nightly-token, namespace: default}\n"
        f"stringData: {{token: {value}}}\n"
    )


def test_secrets_are_resolved_refreshed_and_never_shown(
    cluster: ClusterEmulator, operator: Operator, database: str
) -> None:
    from spectra.store import push_token_hash

    cluster.kubectl("apply", "-f", "-", input=HEARTBEAT)
    condition = wait_for(lambda: ready(cluster, MONITORS, "default", "nightly"), "a Ready condition")
    assert (condition["status"], condition["reason"]) == ("False", "SecretMissing")
    assert "spec.heartbeat.tokenFrom.secretKeyRef: Secret 'nightly-token' does not exist" in condition["message"]
    assert rows(database, "SELECT id FROM resources WHERE name = 'nightly'") == []

    # The Secret appears: the object is applied without anyone touching it.
    cluster.kubectl("apply", "-f", "-", input=secret(SECRET_VALUE))
    wait_for(lambda: (c := ready(cluster, MONITORS, "default", "nightly")) and c["status"] == "True", "Ready")

    def stored_hash() -> str | None:
        found = rows(database, "SELECT push_token_hash FROM monitors WHERE name = 'nightly'")
        return found[0][0] if found else None

    assert stored_hash() == push_token_hash(SECRET_VALUE)
    # The token is rotated in its Secret: the stored hash follows.
    rotated = SECRET_VALUE + "-rotated"
    cluster.kubectl("apply", "-f", "-", input=secret(rotated))
    wait_for(lambda: stored_hash() == push_token_hash(rotated), "the rotated token", timeout=30)

    # Values never reach status, Events or the log.
    shown = [yaml.safe_dump(cluster.get(MONITORS, "default", "nightly")), operator.log_text()]
    shown += [yaml.safe_dump(event) for event in cluster.list("v1/events", "default")]
    for text in shown:
        assert SECRET_VALUE not in text


ORGANIZATION = """
apiVersion: spectra.dev/v1alpha1
kind: Organization
metadata: {{name: acme}}
spec:
  displayName: ACME
  namespaces: [acme-prod]
  plan: {{maxMonitors: 1}}
  suspended: {suspended}
"""


def test_organization_plan_is_enforced_and_suspension_honoured(
    cluster: ClusterEmulator, operator: Operator, database: str
) -> None:
    organizations = "spectra.dev/v1alpha1/organizations"
    cluster.kubectl("apply", "-f", "-", input=ORGANIZATION.format(suspended="false"))
    wait_for(lambda: (c := ready(cluster, organizations, None, "acme")) and c["status"] == "True", "org Ready")
    cluster.kubectl("apply", "-f", "-", input=monitor_manifest("first", 9, namespace="acme-prod"))
    wait_for(lambda: (c := ready(cluster, MONITORS, "acme-prod", "first")) and c["status"] == "True", "first Ready")
    cluster.kubectl("apply", "-f", "-", input=monitor_manifest("second", 9, namespace="acme-prod"))
    condition = wait_for(lambda: ready(cluster, MONITORS, "acme-prod", "second"), "second's condition")
    assert (condition["status"], condition["reason"]) == ("False", "OverPlanLimit")
    assert condition["message"] == "Organization acme allows 1 monitors (spec.plan.maxMonitors); this is number 2"
    paused = dict(rows(database, "SELECT name, paused FROM monitors WHERE namespace = 'acme-prod'"))
    assert paused == {"first": 0, "second": 1}
    # The publisher may have written the usage before the second monitor arrived: wait for the count.
    wait_for(
        lambda: (
            (cluster.get(organizations, None, "acme") or {}).get("status", {}).get("usage")
            == {"monitors": 2, "statusPages": 0}
        ),
        "org usage to count both monitors",
    )

    # Suspended: every monitor of the tenant is held, without editing them.
    cluster.kubectl("apply", "-f", "-", input=ORGANIZATION.format(suspended="true"))
    wait_for(
        lambda: (c := ready(cluster, MONITORS, "acme-prod", "first")) and c["reason"] == "OrganizationSuspended",
        "first held",
        timeout=30,
    )
    assert dict(rows(database, "SELECT name, paused FROM monitors WHERE namespace = 'acme-prod'"))["first"] == 1


def test_two_replicas_one_acts_and_the_other_takes_over(
    cluster: ClusterEmulator, operator: Operator, database: str, tmp_path: Path
) -> None:
    (tmp_path / "second").mkdir()
    second = Operator(cluster, database, tmp_path / "second")
    second.start()
    try:
        cluster.kubectl("apply", "-f", "-", input=monitor_manifest("shared", 9))
        wait_for(lambda: (c := ready(cluster, MONITORS, "default", "shared")) and c["status"] == "True", "Ready")
        holders = wait_for(lambda: rows(database, "SELECT holder FROM leader_leases WHERE name = 'operator'"), "lease")
        assert len(holders) == 1
        pids = {operator.process.pid: operator, second.process.pid: second}  # type: ignore[union-attr]
        leader = next(p for pid, p in pids.items() if holders[0][0].endswith(f"-{pid}"))
        survivor = second if leader is operator else operator
        # Both run; the stored row was written once.
        assert (
            operator.log_text().count("applied Monitor/default/shared ")
            + second.log_text().count("applied Monitor/default/shared ")
            == 1
        )
        leader.kill()
        # The survivor takes over handlers (kopf peering) and loops (the database lease).
        cluster.kubectl("apply", "-f", "-", input=monitor_manifest("after", 9))
        wait_for(
            lambda: (
                (c := ready(cluster, MONITORS, "default", "after"))
                and c["status"] == "True"
                and "spectra.dev/finalizer"
                in cluster.get(MONITORS, "default", "after")["metadata"].get("finalizers", [])
            ),
            "the survivor to handle a new object",
            timeout=60,
        )
        wait_for(
            lambda: rows(database, "SELECT holder FROM leader_leases WHERE name = 'operator'")[0][0].endswith(
                f"-{survivor.process.pid}"  # type: ignore[union-attr]
            ),
            "the survivor to hold the lease",
        )
    finally:
        second.kill()
