"""`spectra operator` end to end: the real kubectl applies manifests to a Kubernetes API emulator
(kmock), the operator (a real process with a kubeconfig) reconciles them into MariaDB, and status,
Events and owned children show up in the API."""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from spectra.store import push_token_hash
from tests.factories.manifests import (
    OPERATOR_IMAGE,
    OPERATOR_NAME,
    OPERATOR_NAMESPACE,
    heartbeat_monitor,
    local_monitor,
    operator_cluster,
    organization,
    secret,
    to_yaml,
)
from tests.support.kube import MONITORS, ClusterEmulator, spectra_resource
from tests.support.operator import FINALIZER, Operator, condition, finalized, ready, status
from tests.support.paths import EXAMPLES
from tests.support.processes import SPECTRA, Target, free_port, get
from tests.support.waiting import wait_for

DEPLOYMENTS = "apps/v1/deployments"
ORGANIZATIONS = spectra_resource("Organization")
SECRET_VALUE = "s3cr3t-heartbeat-token-value"
CONVERGENCE_BOUND_S = 30  # generous for a busy machine; the figures printed are what counts (goal: 5 s)


def _running(cluster: ClusterEmulator, database: str, tmp_path: Path, retry_seconds: float) -> Iterator[Operator]:
    # The operator's own Deployment: the owner of the children it makes.
    cluster.kubectl("apply", "-f", "-", input=to_yaml(*operator_cluster()))
    running = Operator(cluster, database, tmp_path, retry_seconds=retry_seconds)
    running.start()
    yield running
    running.kill()
    print(running.log_text()[-8000:])  # shown by pytest when the test failed


@pytest.fixture
def operator(cluster: ClusterEmulator, database: str, tmp_path: Path) -> Iterator[Operator]:
    """An operator whose periodic pass runs every second (Secret rotations and plans follow at once)."""
    yield from _running(cluster, database, tmp_path, retry_seconds=1)


# Longer than any test that uses it: the periodic pass runs once at start and never again, so whatever
# becomes Ready got there through the index of waits (a missing reference or Secret arriving).
PATIENT_RETRY_S = 600


@pytest.fixture
def patient_operator(cluster: ClusterEmulator, database: str, tmp_path: Path) -> Iterator[Operator]:
    """An operator whose periodic pass never comes round again during the test."""
    yield from _running(cluster, database, tmp_path, retry_seconds=PATIENT_RETRY_S)


def rows(database: str, sql: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(database)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params))
    finally:
        engine.dispose()


def test_every_example_becomes_ready(cluster: ClusterEmulator, operator: Operator, database: str) -> None:
    applied: list[tuple[str, str | None, str]] = []
    for folder in sorted(EXAMPLES.iterdir()):
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
        resource = spectra_resource(kind)
        wait_for(
            functools.partial(finalized, cluster, resource, namespace, name),
            f"{kind}/{namespace}/{name} Ready, with our finalizer",
            timeout=30,
        )
        body = cluster.existing(resource, namespace, name)
        assert body["status"]["observedGeneration"] == body["metadata"]["generation"]
        assert condition(cluster, resource, namespace, name)["reason"] == "Applied"
    # Live facts of the other kinds, from the store.
    schedule = wait_for(
        lambda: status(cluster, spectra_resource("Schedule"), "default", "platform-primary").get("onCallNow"),
        "who is on call, in the Schedule's status",
    )
    assert schedule
    page = wait_for(
        lambda: list(status(cluster, spectra_resource("StatusPage"), "default", "public").get("components") or []),
        "component states in the StatusPage's status",
    )
    assert {component["name"] for component in page}
    stored = rows(database, "SELECT kind, namespace, name FROM resources WHERE source = 'cluster'")
    assert {(k, n or None, m) for k, n, m in stored} >= {(k, n, m) for k, n, m in applied}

    # One probe Deployment per location in use, owned by the operator's Deployment.
    owner_uid = cluster.existing(DEPLOYMENTS, OPERATOR_NAMESPACE, OPERATOR_NAME)["metadata"]["uid"]
    locations = {loc for (loc,) in rows(database, "SELECT DISTINCT location FROM monitor_locations")}
    deployments = wait_for(
        lambda: found if len(found := cluster.list(DEPLOYMENTS, OPERATOR_NAMESPACE)) == len(locations) + 1 else [],
        "probe Deployments",
    )
    probes = [d for d in deployments if d["metadata"]["name"] != OPERATOR_NAME]
    assert {d["metadata"]["labels"]["spectra.dev/location"] for d in probes} == locations
    for deployment in probes:
        assert [ref["uid"] for ref in deployment["metadata"]["ownerReferences"]] == [owner_uid]
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == OPERATOR_IMAGE
        assert container["args"][:2] == ["probe", "--location"] or "probe" in container.get("command", [])

    # The status page's host names get an Ingress in the operator's namespace, owned the same way.
    ingresses = wait_for(lambda: cluster.list("networking.k8s.io/v1/ingresses", OPERATOR_NAMESPACE), "page Ingress")
    hosts = {rule["host"] for ingress in ingresses for rule in ingress["spec"]["rules"]}
    page_hosts = {
        host
        for path in EXAMPLES.glob("*/statuspage.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc.get("kind") == "StatusPage"
        for host in doc["spec"].get("hostnames", [])
    }
    assert hosts == page_hosts
    for ingress in ingresses:
        assert ingress["metadata"]["ownerReferences"][0]["uid"] == owner_uid
        assert ingress["spec"]["ingressClassName"] == "nginx"
        assert ingress["spec"]["tls"]


def spectra_objects(folder: Path) -> list[tuple[str, str | None, str]]:
    """(kind, namespace, name) of every spectra.dev object in a folder's manifests."""
    found: list[tuple[str, str | None, str]] = []
    for path in sorted(folder.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("apiVersion") == "spectra.dev/v1alpha1":
                namespace = None if doc["kind"] == "Organization" else doc["metadata"].get("namespace", "default")
                found.append((doc["kind"], namespace, doc["metadata"]["name"]))
    return found


def not_ready(cluster: ClusterEmulator, objects: list[tuple[str, str | None, str]]) -> list[str]:
    """Those of `objects` whose Ready condition is not True (one list per kind, not one get per object)."""
    conditions: dict[tuple[str, str | None, str], str] = {}
    for kind in {kind for kind, _, _ in objects}:
        for body in cluster.list(spectra_resource(kind)):
            meta = body["metadata"]
            found = [c for c in (body.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"]
            conditions[(kind, meta.get("namespace"), meta["name"])] = (
                f"{found[0]['status']} {found[0]['reason']}" if found else "none"
            )
    return [
        f"{kind}/{namespace}/{name}: {conditions.get((kind, namespace, name), 'absent')}"
        for kind, namespace, name in objects
        if not conditions.get((kind, namespace, name), "").startswith("True")
    ]


def all_ready(cluster: ClusterEmulator, objects: list[tuple[str, str | None, str]]) -> bool:
    return not not_ready(cluster, objects)


def test_each_example_folder_is_ready_seconds_after_one_apply(
    cluster: ClusterEmulator, patient_operator: Operator
) -> None:
    """`kubectl apply -f examples/<folder>`: objects arrive in file order, so a Monitor comes before the
    EscalationPolicy it names and a Contact before its Secret. All are Ready within seconds, long before
    the periodic pass would come round (it will not during this test)."""
    figures: dict[str, float] = {}
    for folder in sorted(path for path in EXAMPLES.iterdir() if path.is_dir()):
        objects = spectra_objects(folder)
        started = time.monotonic()
        cluster.kubectl("apply", "-f", str(folder))
        try:
            wait_for(functools.partial(all_ready, cluster, objects), f"{folder.name}", timeout=CONVERGENCE_BOUND_S)
        except AssertionError:
            raise AssertionError(f"{folder.name}: not Ready: {not_ready(cluster, objects)}") from None
        figures[folder.name] = time.monotonic() - started
    for name, seconds in figures.items():
        print(f"examples/{name}: every object Ready {seconds:.1f} s after the start of `kubectl apply -f`")
    assert set(figures) == {path.name for path in EXAMPLES.iterdir() if path.is_dir()}


def test_a_secret_created_after_its_monitor_makes_it_ready_without_the_periodic_pass(
    cluster: ClusterEmulator, patient_operator: Operator, database: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=HEARTBEAT)
    written = wait_for(lambda: condition(cluster, MONITORS, "default", "nightly"), "a Ready condition")
    assert (written["status"], written["reason"]) == ("False", "SecretMissing")
    time.sleep(3)  # the Secret is awaited for a while: its poll has backed off (0.5, 1, 2 s, ...)
    started = time.monotonic()
    cluster.kubectl("apply", "-f", "-", input=token_secret(SECRET_VALUE))
    wait_for(lambda: ready(cluster, MONITORS, "default", "nightly"), "Ready", timeout=CONVERGENCE_BOUND_S)
    print(f"heartbeat Monitor Ready {time.monotonic() - started:.1f} s after its Secret was created")
    stored = rows(database, "SELECT push_token_hash FROM monitors WHERE name = 'nightly'")
    assert stored == [(push_token_hash(SECRET_VALUE),)]


def monitor_manifest(name: str, port: int = 9, *, namespace: str = "default", **spec: Any) -> str:
    """A Monitor checked every second that goes down at the first failure (port 9: nothing listens)."""
    return to_yaml(local_monitor(name, port, namespace=namespace, failureThreshold=1, **spec))


def test_target_down_shows_in_status_and_events(
    cluster: ClusterEmulator, operator: Operator, database: str, target: Target, tmp_path: Path
) -> None:
    cluster.kubectl("apply", "-f", "-", input=monitor_manifest("web", target.port))
    wait_for(lambda: ready(cluster, MONITORS, "default", "web"), "Ready")
    probe_log = tmp_path / "probe.log"
    command = [SPECTRA, "probe", "--location", "default", "--database", database]
    with probe_log.open("wb") as out:
        probe = subprocess.Popen(
            [*command, "--listen", f"127.0.0.1:{free_port()}", "--allow-private-targets"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        shown = wait_for(
            lambda: found if (found := status(cluster, MONITORS, "default", "web")).get("state") == "up" else {},
            "state up in .status",
            timeout=30,
        )
        assert shown["target"] == f"http://127.0.0.1:{target.port}/"
        assert shown["lastCheck"].endswith("Z")
        target.stop()
        wait_for(
            lambda: status(cluster, MONITORS, "default", "web").get("state") == "down",
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
    written = wait_for(lambda: condition(cluster, MONITORS, "default", "bad"), "a Ready condition")
    assert written["status"] == "False"
    assert written["reason"] == "Invalid"
    assert field in written["message"]
    events = wait_for(
        lambda: [e for e in cluster.list("v1/events", "default") if e["involvedObject"]["name"] == "bad"], "an Event"
    )
    assert field in events[0]["message"]
    assert rows(database, "SELECT id FROM resources WHERE name = 'bad'") == []


def test_delete_removes_rows_and_releases_finalizer(
    cluster: ClusterEmulator, operator: Operator, database: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=monitor_manifest("gone"))
    wait_for(lambda: ready(cluster, MONITORS, "default", "gone"), "Ready")
    assert rows(database, "SELECT id FROM resources WHERE name = 'gone'")
    cluster.kubectl("delete", "monitor", "gone", "--wait=false")
    wait_for(lambda: cluster.get(MONITORS, "default", "gone") is None, "the object to go (finalizer released)")
    assert rows(database, "SELECT id FROM resources WHERE name = 'gone'") == []
    assert rows(database, "SELECT resource_id FROM monitors WHERE name = 'gone'") == []


def gone(cluster: ClusterEmulator, resource: str, namespace: str | None, name: str) -> bool:
    return cluster.get(resource, namespace, name) is None


def stored_names(database: str) -> set[str]:
    return {name for (name,) in rows(database, "SELECT name FROM resources WHERE kind = 'Monitor'")}


def test_restart_loses_no_delete_and_makes_nothing_twice(
    cluster: ClusterEmulator, operator: Operator, database: str
) -> None:
    names = [f"m{i:02d}" for i in range(20)]
    manifests = to_yaml(
        *(
            local_monitor(name, 9, failureThreshold=1, locations=["eu-west" if i % 2 else "us-east"])
            for i, name in enumerate(names)
        )
    )
    cluster.kubectl("apply", "-f", "-", input=manifests)

    def held() -> list[str]:
        return [
            m["metadata"]["name"]
            for m in cluster.list(MONITORS, "default")
            if FINALIZER in m["metadata"].get("finalizers", [])
        ]

    wait_for(lambda: len(held()) >= 3, "the first objects handled")
    operator.kill()  # SIGKILL in the middle of reconciling the rest
    handled = held()

    # While it is down: delete some (kept by the finalizer until the operator is back), edit one 50 times.
    doomed = handled[:3]
    for name in doomed:
        cluster.kubectl("delete", "monitor", name, "--wait=false")
    edited = next(name for name in names if name not in doomed)
    for attempt in range(1, 51):
        cluster.kubectl(
            "patch", "monitor", edited, "--type=merge", "-p", f'{{"spec": {{"interval": "{attempt + 9}s"}}}}'
        )
    final_generation = cluster.existing(MONITORS, "default", edited)["metadata"]["generation"]

    operator.start()
    survivors = [name for name in names if name not in doomed]
    for name in survivors:
        wait_for(
            functools.partial(ready, cluster, MONITORS, "default", name),
            f"{name} Ready after the restart",
            timeout=60,  # a killed replica's peering record may hold the new one for up to 20 s
        )
    for name in doomed:
        wait_for(functools.partial(gone, cluster, MONITORS, "default", name), f"{name} deleted", timeout=60)
    assert wait_for(lambda: stored_names(database) == set(survivors) or None, "the store to match the cluster")

    # The 50 edits: one reconcile, to the final spec.
    (interval_ms,) = rows(database, "SELECT interval_ms FROM monitors WHERE name = :n", n=edited)[0]
    assert interval_ms == 59_000
    body = cluster.existing(MONITORS, "default", edited)
    assert body["status"]["observedGeneration"] == final_generation
    assert operator.log_text().count(f"applied Monitor/default/{edited} ") == 1

    # Children: exactly one probe Deployment per location, however often the operator restarted.
    def probe_deployments() -> list[str]:
        return sorted(
            d["metadata"]["name"]
            for d in cluster.list(DEPLOYMENTS, OPERATOR_NAMESPACE)
            if d["metadata"]["name"] != OPERATOR_NAME
        )

    deployments = wait_for(
        lambda: found if (found := probe_deployments()) == ["spectra-probe-eu-west", "spectra-probe-us-east"] else [],
        "one probe Deployment per location",
    )
    assert len(deployments) == 2
    creates = cluster.requests("POST", DEPLOYMENTS)
    assert len(creates) == 2 + 1  # the two probes and the operator's own Deployment, each created once


def test_objects_deleted_before_the_operator_saw_them_leave_no_rows(
    cluster: ClusterEmulator, operator: Operator, database: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=monitor_manifest("brief"))
    wait_for(lambda: "brief" in stored_names(database), "the row")
    operator.kill()
    body = cluster.get(MONITORS, "default", "brief")
    if body is not None and body["metadata"].get("finalizers"):
        cluster.kubectl("patch", "monitor", "brief", "--type=merge", "-p", '{"metadata": {"finalizers": null}}')
    cluster.kubectl("delete", "monitor", "brief", "--wait=false")
    operator.start()
    wait_for(lambda: "brief" not in stored_names(database), "the orphaned row swept", timeout=40)


HEARTBEAT = to_yaml(heartbeat_monitor("nightly", "nightly-token"))


def token_secret(value: str) -> str:
    return to_yaml(secret("nightly-token", token=value))


def test_secrets_are_resolved_refreshed_and_never_shown(
    cluster: ClusterEmulator, operator: Operator, database: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=HEARTBEAT)
    written = wait_for(lambda: condition(cluster, MONITORS, "default", "nightly"), "a Ready condition")
    assert (written["status"], written["reason"]) == ("False", "SecretMissing")
    assert "spec.heartbeat.tokenFrom.secretKeyRef: Secret 'nightly-token' does not exist" in written["message"]
    assert rows(database, "SELECT id FROM resources WHERE name = 'nightly'") == []

    # The Secret appears: the object is applied without anyone touching it.
    cluster.kubectl("apply", "-f", "-", input=token_secret(SECRET_VALUE))
    wait_for(lambda: ready(cluster, MONITORS, "default", "nightly"), "Ready")

    def stored_hash() -> str | None:
        found = rows(database, "SELECT push_token_hash FROM monitors WHERE name = 'nightly'")
        return found[0][0] if found else None

    assert stored_hash() == push_token_hash(SECRET_VALUE)
    # The token is rotated in its Secret: the stored hash follows.
    rotated = SECRET_VALUE + "-rotated"
    cluster.kubectl("apply", "-f", "-", input=token_secret(rotated))
    wait_for(lambda: stored_hash() == push_token_hash(rotated), "the rotated token", timeout=30)

    # Values never reach status, Events or the log.
    shown = [yaml.safe_dump(cluster.get(MONITORS, "default", "nightly")), operator.log_text()]
    shown += [yaml.safe_dump(event) for event in cluster.list("v1/events", "default")]
    for text in shown:
        assert SECRET_VALUE not in text


def acme(*, suspended: bool) -> str:
    """An Organization whose plan allows one monitor, in namespace acme-prod."""
    return to_yaml(
        organization("acme", ["acme-prod"], displayName="ACME", plan={"maxMonitors": 1}, suspended=suspended)
    )


def test_organization_plan_is_enforced_and_suspension_honoured(
    cluster: ClusterEmulator, operator: Operator, database: str
) -> None:
    cluster.kubectl("apply", "-f", "-", input=acme(suspended=False))
    wait_for(lambda: ready(cluster, ORGANIZATIONS, None, "acme"), "org Ready")
    cluster.kubectl("apply", "-f", "-", input=monitor_manifest("first", namespace="acme-prod"))
    wait_for(lambda: ready(cluster, MONITORS, "acme-prod", "first"), "first Ready")
    cluster.kubectl("apply", "-f", "-", input=monitor_manifest("second", namespace="acme-prod"))
    written = wait_for(lambda: condition(cluster, MONITORS, "acme-prod", "second"), "second's condition")
    assert (written["status"], written["reason"]) == ("False", "OverPlanLimit")
    assert written["message"] == "Organization acme allows 1 monitors (spec.plan.maxMonitors); this is number 2"
    paused = dict(rows(database, "SELECT name, paused FROM monitors WHERE namespace = 'acme-prod'"))
    assert paused == {"first": 0, "second": 1}
    # The publisher may have written the usage before the second monitor arrived: wait for the count.
    wait_for(
        lambda: status(cluster, ORGANIZATIONS, None, "acme").get("usage") == {"monitors": 2, "statusPages": 0},
        "org usage to count both monitors",
    )

    # Suspended: every monitor of the tenant is held, without editing them.
    cluster.kubectl("apply", "-f", "-", input=acme(suspended=True))
    wait_for(
        lambda: condition(cluster, MONITORS, "acme-prod", "first").get("reason") == "OrganizationSuspended",
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
        cluster.kubectl("apply", "-f", "-", input=monitor_manifest("shared"))
        wait_for(lambda: ready(cluster, MONITORS, "default", "shared"), "Ready")
        holders = wait_for(lambda: rows(database, "SELECT holder FROM leader_leases WHERE name = 'operator'"), "lease")
        assert len(holders) == 1
        pids = {operator.pid: operator, second.pid: second}
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
        cluster.kubectl("apply", "-f", "-", input=monitor_manifest("after"))
        wait_for(
            lambda: finalized(cluster, MONITORS, "default", "after"),
            "the survivor to handle a new object",
            timeout=60,
        )
        survivor_pid = survivor.pid
        wait_for(
            lambda: rows(database, "SELECT holder FROM leader_leases WHERE name = 'operator'")[0][0].endswith(
                f"-{survivor_pid}"
            ),
            "the survivor to hold the lease",
        )
    finally:
        second.kill()
