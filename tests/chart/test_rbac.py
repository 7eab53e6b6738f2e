"""The chart's RBAC is exactly spectra/operator/rbac.py: one list to review, no drift."""

from __future__ import annotations

from typing import Any

from spectra.operator.rbac import OPERATOR_CLUSTER_RULES, OPERATOR_NAMESPACE_RULES, SECRET_READER_RULES
from tests.chart.rendering import NAMESPACE, RELEASE, Rendered

FULL = RELEASE


def _rules(role: dict[str, Any]) -> list[dict[str, list[str]]]:
    return [{k: list(v) for k, v in rule.items()} for rule in role["rules"]]


def _subjects(chart: Rendered, kind: str, role_kind: str, role_name: str) -> set[str]:
    bindings = [
        b
        for b in chart.of_kind(kind)
        if b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name}
    ]
    assert len(bindings) == 1, f"{kind} for {role_kind}/{role_name}"
    subjects = bindings[0]["subjects"]
    assert all(s["kind"] == "ServiceAccount" and s["namespace"] == NAMESPACE for s in subjects)
    return {s["name"] for s in subjects}


def test_operator_cluster_rules(default_chart: Rendered) -> None:
    name = f"{FULL}-operator-{NAMESPACE}"
    assert _rules(default_chart.get("ClusterRole", name)) == OPERATOR_CLUSTER_RULES
    assert _subjects(default_chart, "ClusterRoleBinding", "ClusterRole", name) == {f"{FULL}-operator"}


def test_operator_namespace_rules(default_chart: Rendered) -> None:
    role = default_chart.get("Role", f"{FULL}-operator")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert _rules(role) == OPERATOR_NAMESPACE_RULES
    assert _subjects(default_chart, "RoleBinding", "Role", f"{FULL}-operator") == {f"{FULL}-operator"}


def test_secret_reader_rules(default_chart: Rendered) -> None:
    name = f"{FULL}-secret-reader-{NAMESPACE}"
    assert _rules(default_chart.get("ClusterRole", name)) == SECRET_READER_RULES
    assert _subjects(default_chart, "ClusterRoleBinding", "ClusterRole", name) == {
        f"{FULL}-probe",
        f"{FULL}-alerter",
        f"{FULL}-web",
    }


def test_no_other_roles(default_chart: Rendered) -> None:
    assert len(default_chart.of_kind("ClusterRole")) == 2
    assert len(default_chart.of_kind("Role")) == 1


def test_workloads_use_their_service_accounts(default_chart: Rendered) -> None:
    for component in ("operator", "web", "alerter"):
        deployment = default_chart.get("Deployment", f"{FULL}-{component}")
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == f"{FULL}-{component}"
    accounts = {sa["metadata"]["name"] for sa in default_chart.of_kind("ServiceAccount")}
    assert accounts == {f"{FULL}-{c}" for c in ("operator", "web", "alerter", "probe")}
    for where, pod in default_chart.pod_specs():
        if "serviceAccountName" not in pod:
            assert pod["automountServiceAccountToken"] is False, f"{where}: no API access without its own account"
