"""Rendering the Helm chart with the real helm binary (`kube_tools`, see tests/support/kube.py).

Plain helpers and constants; the fixtures that share the rendered results are in conftest.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import CHART

CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "spectra"
NAMESPACE = "monitoring"
KUBE_VERSION = "1.34.0"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, check=False)


@dataclass
class Rendered:
    """The objects of one `helm template` run."""

    name: str
    objects: list[dict[str, Any]]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        matches = [obj for obj in self.of_kind(kind) if obj["metadata"]["name"] == name]
        assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
        return matches[0]

    def pod_specs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(Kind/name, PodSpec) of every workload and Pod."""
        for obj in self.objects:
            where = f"{obj['kind']}/{obj['metadata']['name']}"
            if obj["kind"] == "Pod":
                yield where, obj["spec"]
            elif obj["kind"] in WORKLOAD_KINDS:
                yield where, obj["spec"]["template"]["spec"]
            elif obj["kind"] == "CronJob":
                yield where, obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def render_chart(helm: Path, *args: str, name: str = "default") -> Rendered:
    """`helm template` of the chart as release RELEASE in NAMESPACE for Kubernetes KUBE_VERSION."""
    result = run_helm(
        helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION, *args
    )
    assert result.returncode == 0, f"helm template {' '.join(args)} failed:\n{result.stderr}"
    objects: list[dict[str, Any]] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return Rendered(name, objects)
