"""ChildSync against the Kubernetes API emulator: probe Deployments and page Ingresses follow the
store and the settings, level-triggered (create, patch, delete), owned by the operator's Deployment.
On SQLite only: what is under test is the sync with the cluster, not the store."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from spectra.api import parse_object
from spectra.operator.child_sync import ChildSync
from spectra.operator.kube import Kube, load_config
from spectra.operator.settings import OperatorSettings
from spectra.reconcile import CLUSTER_SOURCE, apply_one, delete_one
from tests.factories.manifests import (
    OPERATOR_NAME,
    OPERATOR_NAMESPACE,
    components,
    monitor,
    operator_config,
    operator_deployment,
    status_page,
)
from tests.support.databases import sqlite_only
from tests.support.kube import ClusterEmulator

pytestmark = sqlite_only

DEPLOYMENTS = "apps/v1/deployments"
INGRESSES = "networking.k8s.io/v1/ingresses"


@pytest.fixture
def kube(cluster: ClusterEmulator) -> Kube:
    cluster.create(DEPLOYMENTS, operator_deployment())
    return Kube(load_config(str(cluster.kubeconfig)))


def settings(**probe: Any) -> OperatorSettings:
    return OperatorSettings.model_validate(operator_config(probe={"monitorsPerReplica": 2, "maxReplicas": 3, **probe}))


def apply(sessions: sessionmaker[Session], body: dict[str, Any]) -> None:
    with sessions() as session:
        apply_one(session, parse_object(body), CLUSTER_SOURCE)
        session.commit()


def probes(cluster: ClusterEmulator) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d
        for d in cluster.list(DEPLOYMENTS, OPERATOR_NAMESPACE)
        if d["metadata"]["name"] != OPERATOR_NAME
    }


def test_probe_deployments_follow_the_monitors(
    cluster: ClusterEmulator, kube: Kube, sessions: sessionmaker[Session]
) -> None:
    owned = ChildSync(sessions, kube, settings())
    for i in range(5):
        apply(sessions, monitor(f"m{i}", locations=["eu-west"] if i < 4 else ["us-east"]))
    owned.sync()
    found = probes(cluster)
    assert {name: d["spec"]["replicas"] for name, d in found.items()} == {
        "spectra-probe-eu-west": 2,  # 4 monitors / 2 per replica
        "spectra-probe-us-east": 1,
    }
    owner = cluster.existing(DEPLOYMENTS, OPERATOR_NAMESPACE, OPERATOR_NAME)
    for deployment in found.values():
        assert deployment["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]

    # A second pass with nothing changed writes nothing.
    before = owned.changes
    owned.sync()
    assert owned.changes == before

    # The last monitor of a location goes: so does its Deployment.
    with sessions() as session:
        delete_one(session, "Monitor", "default", "m4")
        session.commit()
    owned.sync()
    assert set(probes(cluster)) == {"spectra-probe-eu-west"}


def test_settings_changes_reach_live_deployments_removed_values_included(
    cluster: ClusterEmulator, kube: Kube, sessions: sessionmaker[Session]
) -> None:
    apply(sessions, monitor("m", locations=["eu-west"]))
    extra = {"name": "EXTRA", "value": "1"}
    ChildSync(sessions, kube, settings(env=[extra], image="example.test/spectra:1")).sync()
    container = probes(cluster)["spectra-probe-eu-west"]["spec"]["template"]["spec"]["containers"][0]
    assert extra in container["env"]
    ChildSync(sessions, kube, settings(image="example.test/spectra:2")).sync()
    container = probes(cluster)["spectra-probe-eu-west"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "example.test/spectra:2"
    assert extra not in container.get("env", [])


def test_page_ingresses_follow_the_pages(cluster: ClusterEmulator, kube: Kube, sessions: sessionmaker[Session]) -> None:
    page = status_page(
        "public", namespace="shop", slug="shop", title="Shop", hostnames=["status.shop.test"], groups=components("m")
    )
    apply(sessions, page)
    owned = ChildSync(sessions, kube, settings())
    owned.sync()
    (ingress,) = cluster.list(INGRESSES, OPERATOR_NAMESPACE)
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == ["status.shop.test"]
    page["spec"]["hostnames"] = ["status.shop.test", "www.status.shop.test"]
    apply(sessions, page)
    owned.sync()
    (ingress,) = cluster.list(INGRESSES, OPERATOR_NAMESPACE)
    assert [rule["host"] for rule in ingress["spec"]["rules"]] == ["status.shop.test", "www.status.shop.test"]
    with sessions() as session:
        delete_one(session, "StatusPage", "shop", "public")
        session.commit()
    owned.sync()
    assert cluster.list(INGRESSES, OPERATOR_NAMESPACE) == []
