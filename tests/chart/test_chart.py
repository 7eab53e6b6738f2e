"""The Helm chart: lint, render with every ci/*-values.yaml, Kubernetes 1.34 validity, security, schema."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from spectra.operator.settings import OperatorSettings
from tests.chart.rendering import CI_VALUES, NAMESPACE, RELEASE, Rendered, render_chart, run_helm
from tests.support.paths import CHART
from tests.support.pod_security import assert_restricted

# Kinds from CRDs that kubernetes-validate has no schema for.
FOREIGN_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "Prometheus Operator CRD, not part of Kubernetes",
    ("kopf.dev/v1", "ClusterKopfPeering"): "kopf's peering CRD (shipped in charts/spectra/crds/)",
}
FULL = f"{RELEASE}"  # the release is named spectra, so the object prefix is just "spectra"


def test_lint_strict(helm: Path) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_lint_strict_with_ci_values(helm: Path, values: Path) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART), "-f", str(values))
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_values_exist() -> None:
    names = {path.name for path in CI_VALUES}
    assert {
        "default-values.yaml",
        "eval-mysql-values.yaml",
        "ingress-tls-values.yaml",
        "servicemonitor-values.yaml",
    } <= names


def test_every_object_is_valid_kubernetes_1_34(variants: list[Rendered]) -> None:
    checked = 0
    for rendered in variants:
        for obj in rendered.objects:
            if (obj["apiVersion"], obj["kind"]) in FOREIGN_KINDS:
                continue
            where = f"{rendered.name}: {obj['kind']}/{obj['metadata']['name']}"
            try:
                kubernetes_validate.validate(copy.deepcopy(obj), "1.34", strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{where}: {exc}")
            checked += 1
    assert checked > 100


def test_foreign_kinds_are_only_skipped_for_a_reason(variants: list[Rendered]) -> None:
    seen = {(obj["apiVersion"], obj["kind"]) for rendered in variants for obj in rendered.objects}
    assert ("monitoring.coreos.com/v1", "ServiceMonitor") in seen
    assert ("kopf.dev/v1", "ClusterKopfPeering") in seen


def test_no_rbac_wildcards(variants: list[Rendered]) -> None:
    for rendered in variants:
        for obj in rendered.objects:
            for rule in obj.get("rules", []) if obj["kind"] in {"Role", "ClusterRole"} else []:
                for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                    assert all("*" not in item for item in rule.get(field, [])), f"{obj['metadata']['name']}: {rule}"
            if obj["kind"] == "ClusterRole":
                assert "aggregationRule" not in obj


def test_every_pod_is_restricted(variants: list[Rendered]) -> None:
    for rendered in variants:
        specs = list(rendered.pod_specs())
        assert specs
        for where, pod in specs:
            assert_restricted(pod, where=f"{rendered.name}: {where}")


def test_every_container_has_requests_and_probes(variants: list[Rendered]) -> None:
    for rendered in variants:
        for obj in rendered.objects:
            if obj["kind"] not in {"Deployment", "StatefulSet"}:
                continue
            for container in obj["spec"]["template"]["spec"]["containers"]:
                where = f"{rendered.name}: {obj['kind']}/{obj['metadata']['name']}/{container['name']}"
                requests = container.get("resources", {}).get("requests", {})
                assert {"cpu", "memory"} <= set(requests), f"{where}: resource requests"
                assert "livenessProbe" in container, f"{where}: livenessProbe"
                assert "readinessProbe" in container, f"{where}: readinessProbe"
        for where, pod in rendered.pod_specs():
            for container in pod["containers"]:
                assert container["resources"]["requests"], f"{where}: requests"


def test_workloads_and_commands(default_chart: Rendered) -> None:
    deployments = {d["metadata"]["name"]: d for d in default_chart.of_kind("Deployment")}
    assert sorted(deployments) == [f"{FULL}-alerter", f"{FULL}-operator", f"{FULL}-web"]
    args = {name: d["spec"]["template"]["spec"]["containers"][0]["args"] for name, d in deployments.items()}
    assert args[f"{FULL}-operator"] == [
        "operator",
        "--config",
        "/etc/spectra/operator.yaml",
        "--listen",
        "0.0.0.0:8083",
    ]
    assert args[f"{FULL}-web"] == ["web", "--listen", "0.0.0.0:8080"]
    assert args[f"{FULL}-alerter"] == ["alerter", "--listen", "0.0.0.0:8082"]
    assert deployments[f"{FULL}-operator"]["spec"]["replicas"] == 2
    assert deployments[f"{FULL}-alerter"]["spec"]["replicas"] == 2
    for deployment in deployments.values():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "ghcr.io/spectramonitor/spectra:0.4.0"
        assert container["command"] == ["spectra"]
        probes = {container["livenessProbe"]["httpGet"]["path"], container["readinessProbe"]["httpGet"]["path"]}
        assert probes == {"/healthz", "/readyz"}
    job = default_chart.get("Job", f"{FULL}-migrations")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]
    # The migrations seal the outbox with the processes' key (optional: absent before the first install).
    assert _env(job)["SPECTRA_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{FULL}-secret-key",
        "key": "secret-key",
        "optional": True,
    }


def _env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_settings_come_from_secrets(render: Callable[..., Rendered]) -> None:
    chart = render("--set", "providers.existingSecret=providers", "--set", "publicUrl=https://status.example.com")
    alerter = _env(chart.get("Deployment", f"{FULL}-alerter"))
    web = _env(chart.get("Deployment", f"{FULL}-web"))
    operator = _env(chart.get("Deployment", f"{FULL}-operator"))
    for env in (alerter, web, operator):
        assert env["SPECTRA_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "spectra-database", "key": "url"}
    for env in (alerter, web):
        assert env["SPECTRA_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == f"{FULL}-secret-key"
        assert env["SPECTRA_PUBLIC_URL"]["value"] == "https://status.example.com"
        assert env["SPECTRA_SECRETS"]["value"] == "kubernetes"
        assert env["TWILIO_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "providers"
    for name in ("SENDGRID_API_KEY", "SPECTRA_EMAIL_FROM", "TWILIO_ACCOUNT_SID", "TWILIO_FROM_NUMBER"):
        assert alerter[name]["valueFrom"]["secretKeyRef"]["name"] == "providers"
        assert name not in web
    assert operator["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    # No secret value is ever inline.
    for env in (alerter, web, operator):
        for name, var in env.items():
            if name in {"SPECTRA_DATABASE_URL", "SPECTRA_SECRET_KEY", "TWILIO_AUTH_TOKEN", "SENDGRID_API_KEY"}:
                assert "value" not in var, name


def test_database_timeout_reaches_every_process(render: Callable[..., Rendered]) -> None:
    chart = render("--set", "database.timeoutSeconds=30")
    for name in ("alerter", "web", "operator"):
        assert _env(chart.get("Deployment", f"{FULL}-{name}"))["SPECTRA_DATABASE_TIMEOUT_S"]["value"] == "30"
    probe = {e["name"]: e for e in OperatorSettings.model_validate(_operator_config(chart)).probe.env}
    assert probe["SPECTRA_DATABASE_TIMEOUT_S"]["value"] == "30"


def _operator_config(chart: Rendered) -> dict[str, Any]:
    configmap = chart.get("ConfigMap", f"{FULL}-operator")
    data = yaml.safe_load(configmap["data"]["operator.yaml"])
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda p: p.name if p else "defaults")
def test_operator_config_is_valid_operator_settings(render: Callable[..., Rendered], values: Path | None) -> None:
    chart = render(*(["-f", str(values)] if values else []))
    settings = OperatorSettings.model_validate(_operator_config(chart))
    assert settings.namespace == NAMESPACE
    assert settings.owner_deployment == f"{FULL}-operator"
    assert settings.instance == RELEASE
    assert settings.probe.service_account_name == f"{FULL}-probe"
    chart.get("ServiceAccount", settings.probe.service_account_name)
    assert settings.web.service_name == f"{FULL}-web"
    service = chart.get("Service", settings.web.service_name)
    assert service["spec"]["ports"][0]["port"] == settings.web.service_port
    env = {e["name"]: e for e in settings.probe.env}
    assert env["SPECTRA_SECRETS"]["value"] == "kubernetes"
    url_ref = env["SPECTRA_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    web_env = _env(chart.get("Deployment", f"{FULL}-web"))
    assert url_ref == web_env["SPECTRA_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    operator = chart.get("Deployment", f"{FULL}-operator")
    assert settings.probe.image == operator["spec"]["template"]["spec"]["containers"][0]["image"] + (
        "-browser" if values and values.name == "servicemonitor-values.yaml" else ""
    )


def test_operator_config_passes_user_settings_through(render: Callable[..., Rendered]) -> None:
    chart = render(
        "--set",
        "operator.config.probe.allowPrivateTargets=true",
        "--set",
        "operator.config.ingress.className=nginx",
        "--set",
        "imagePullSecrets={regcred}",
        "--set",
        "publicUrl=https://status.example.com",
    )
    settings = OperatorSettings.model_validate(_operator_config(chart))
    assert settings.probe.allow_private_targets is True
    assert settings.ingress.class_name == "nginx"
    assert settings.probe.image_pull_secrets == ["regcred"]
    assert settings.web.public_url == "https://status.example.com"


def test_operator_config_schema_matches_operator_settings() -> None:
    """values.schema.json's operator.config may only name OperatorSettings fields (by alias)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["operator"]["properties"]["config"]

    def aliases(model: Any) -> set[str]:
        return {field.alias or name for name, field in model.model_fields.items()}

    def check(node: dict[str, Any], model: Any, path: str) -> None:
        assert node["additionalProperties"] is False, path
        names = set(node["properties"])
        assert names <= aliases(model), f"{path}: {names - aliases(model)} are not OperatorSettings fields"
        for name, child in node["properties"].items():
            field = next(f for n, f in model.model_fields.items() if (f.alias or n) == name)
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                check(child, annotation, f"{path}.{name}")

    check(config, OperatorSettings, "operator.config")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "web.replicas=abc"], "/web/replicas"),
        (["--set", "operator.replicas=-1"], "/operator/replicas"),
        (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["--set", "web.service.type=Nonsense"], "/web/service/type"),
        (["--set", "unknownTopLevel=1"], "unknownTopLevel"),
        (["--set", "operator.config.probe.typo=1"], "typo"),
        (["--set", "operator.config.probe.monitorsPerReplica=0"], "monitorsPerReplica"),
        (["--set", "web.port=70000"], "/web/port"),
        (["--set", "publicUrl=status.example.com"], "/publicUrl"),
        (["--set", "database.timeoutSeconds=0"], "/database/timeoutSeconds"),
        (["--set", "auth.accessTokenSeconds=3600"], "/auth/accessTokenSeconds"),
        (["--set", "auth.jwtKeys.value=inline"], "value"),
    ],
)
def test_schema_rejects_nonsense(helm: Path, args: list[str], message: str) -> None:
    result = run_helm(helm, "template", RELEASE, str(CHART), *args)
    assert result.returncode != 0
    assert "schema" in result.stderr
    assert message in result.stderr


def test_every_value_is_documented() -> None:
    """Every key of values.yaml has a `# --` comment above it, or sits inside a section that has one."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, bool]] = []  # (indent, documented) of the enclosing keys
    undocumented = []
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped:
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        above = number - 1
        while above >= 0 and lines[above].strip().startswith("#") and not lines[above].strip().startswith("# --"):
            above -= 1
        documented = above >= 0 and lines[above].strip().startswith("# --")
        inside_list = any(
            lines[j].lstrip().startswith("- ") and len(lines[j]) - len(lines[j].lstrip()) < indent
            for j in range(max(0, number - 2), number)
        )
        is_leaf = bool(stripped.partition(":")[2].strip())  # sections are judged by their leaves
        if is_leaf and not (documented or inside_list or any(d for _, d in stack)):
            undocumented.append(f"{number + 1}: {stripped}")
        stack.append((indent, documented or any(d for _, d in stack)))
    assert not undocumented, undocumented


def test_schema_accepts_the_defaults_and_every_key_of_values(default_chart: Rendered) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(schema_node: dict[str, Any], value: Any, path: str) -> None:
        if not isinstance(value, dict) or "properties" not in schema_node:
            return
        for key, child in value.items():
            assert key in schema_node["properties"], f"{path}.{key} is not in values.schema.json"
            walk(schema_node["properties"][key], child, f"{path}.{key}")

    walk(schema, values, "values")


def test_pdbs(default_chart: Rendered) -> None:
    pdbs = {p["metadata"]["name"]: p for p in default_chart.of_kind("PodDisruptionBudget")}
    assert sorted(pdbs) == [f"{FULL}-alerter", f"{FULL}-operator", f"{FULL}-web"]
    for name, pdb in pdbs.items():
        deployment = default_chart.get("Deployment", name)
        assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def test_network_policies(default_chart: Rendered, render: Callable[..., Rendered]) -> None:
    policies = {p["metadata"]["name"]: p["spec"] for p in default_chart.of_kind("NetworkPolicy")}
    probe = policies[f"{FULL}-probe"]
    assert probe["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "spectra",
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/component": "probe",
    }
    assert probe["egress"] == [{}], "probe egress is open"
    web = policies[f"{FULL}-web"]
    assert [p["port"] for rule in web["ingress"] for p in rule["ports"]] == [8080]
    operator = policies[f"{FULL}-operator"]
    egress_ports = {p["port"] for rule in operator["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 443, 6443, 3306}
    for name, spec in policies.items():
        assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"], name
    # With the evaluation MariaDB: only our pods reach it, and the others reach it by pod selector.
    chart = render("--set", "mariadb.enabled=true")
    policies = {p["metadata"]["name"]: p["spec"] for p in chart.of_kind("NetworkPolicy")}
    db = policies[f"{FULL}-mariadb"]
    assert [p["port"] for p in db["ingress"][0]["ports"]] == [3306]
    expressions = db["ingress"][0]["from"][0]["podSelector"]["matchExpressions"]
    assert {"key": "app.kubernetes.io/instance", "operator": "In", "values": [RELEASE]} in expressions
    assert db["egress"] == []
    to_db = [r for r in policies[f"{FULL}-operator"]["egress"] if r.get("to", [{}])[0].get("podSelector")]
    assert to_db[0]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "mariadb"


def test_evaluation_mariadb(render: Callable[..., Rendered], default_chart: Rendered) -> None:
    assert not default_chart.of_kind("StatefulSet"), "MariaDB is off by default"
    chart = render("--set", "mariadb.enabled=true")
    sts = chart.get("StatefulSet", f"{FULL}-mariadb")
    assert sts["metadata"]["annotations"]["spectra.dev/evaluation-only"] == "true"
    secret = chart.get("Secret", f"{FULL}-mariadb")
    assert secret["stringData"]["url"].startswith(
        f"mysql://spectra:{secret['stringData']['password']}@{FULL}-mariadb:3306/"
    )
    web_env = _env(chart.get("Deployment", f"{FULL}-web"))
    assert web_env["SPECTRA_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": f"{FULL}-mariadb", "key": "url"}
    job = chart.get("Job", f"{FULL}-migrations")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"


def test_web_ingress_with_tls(helm: Path) -> None:
    chart = render_chart(helm, "-f", str(CHART / "ci" / "ingress-tls-values.yaml"))
    ingress = chart.get("Ingress", f"{FULL}-web")
    assert ingress["spec"]["tls"] == [{"hosts": ["status.example.com"], "secretName": f"{FULL}-web-tls"}]
    assert ingress["spec"]["rules"][0]["host"] == "status.example.com"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": f"{FULL}-web", "port": {"name": "http"}}
    assert not chart.of_kind("Secret"), "secretKey.existingSecret set: no generated Secret"


def test_service_monitor(render: Callable[..., Rendered], default_chart: Rendered) -> None:
    assert not default_chart.of_kind("ServiceMonitor")
    chart = render("--set", "serviceMonitor.enabled=true")
    monitors = chart.of_kind("ServiceMonitor")
    assert {m["metadata"]["name"] for m in monitors} == {f"{FULL}-web", f"{FULL}-alerter"}
    for monitor in monitors:
        service = chart.get("Service", monitor["metadata"]["name"])
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
        assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]


def test_helm_test_hook_checks_web_healthz(helm: Path) -> None:
    chart = render_chart(helm)  # `helm template` includes test hooks
    pod = chart.get("Pod", f"{FULL}-test-web")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = "\n".join(pod["spec"]["containers"][0]["command"])
    assert f"http://{FULL}-web:8080/healthz" in script
    assert_restricted(pod["spec"], where="helm test pod")


def test_labels_and_names(default_chart: Rendered) -> None:
    for obj in default_chart.objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "spectra"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == "0.4.0"
        assert len(obj["metadata"]["name"]) <= 63
        if obj["kind"] not in {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}:
            assert obj["metadata"]["namespace"] == NAMESPACE


def test_generated_secret_key_is_kept(default_chart: Rendered) -> None:
    secret = default_chart.get("Secret", f"{FULL}-secret-key")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert len(secret["data"]["secret-key"]) >= 48


def test_notes_render(helm: Path, tmp_path: Path) -> None:
    result = run_helm(helm, "install", RELEASE, str(CHART), "--dry-run=client", "--namespace", NAMESPACE)
    assert result.returncode == 0, result.stderr
    assert "kubectl get monitors" in result.stdout
    assert "console channel" in result.stdout


def test_alerter_private_targets_are_off_unless_set(render: Callable[..., Rendered], default_chart: Rendered) -> None:
    # Webhook and Slack URLs come from tenants' Secrets: inside the cluster only when the operator says so.
    def alerter_args(chart: Rendered) -> list[str]:
        return list(chart.get("Deployment", f"{FULL}-alerter")["spec"]["template"]["spec"]["containers"][0]["args"])

    assert "--allow-private-targets" not in alerter_args(default_chart)
    allowed = render("--set", "alerter.allowPrivateTargets=true")
    assert alerter_args(allowed) == ["alerter", "--listen", "0.0.0.0:8082", "--allow-private-targets"]


def test_access_token_keys_and_session_lifetimes(render: Callable[..., Rendered]) -> None:
    default = _env(render().get("Deployment", f"{FULL}-web"))
    assert "SPECTRA_JWT_KEYS" not in default  # signed with a key derived from SPECTRA_SECRET_KEY
    assert (
        default["SPECTRA_ACCESS_TOKEN_TTL_S"]["value"],
        default["SPECTRA_SESSION_IDLE_TIMEOUT_S"]["value"],
        default["SPECTRA_SESSION_ABSOLUTE_TIMEOUT_S"]["value"],
    ) == ("600", "1800", "43200")
    chart = render(
        "--set", "auth.jwtKeys.existingSecret=jwt", "--set", "auth.accessTokenSeconds=300",
        "--set", "auth.sessionIdleSeconds=900",
    )  # fmt: skip
    web = _env(chart.get("Deployment", f"{FULL}-web"))
    assert web["SPECTRA_JWT_KEYS"]["valueFrom"]["secretKeyRef"] == {"name": "jwt", "key": "jwt-keys"}
    assert "value" not in web["SPECTRA_JWT_KEYS"]
    assert (web["SPECTRA_ACCESS_TOKEN_TTL_S"]["value"], web["SPECTRA_SESSION_IDLE_TIMEOUT_S"]["value"]) == (
        "300",
        "900",
    )
