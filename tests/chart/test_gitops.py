"""deploy/: Argo CD Application, Flux HelmRelease + Kustomization, the pull-request workflow."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from spectra.cli import cli
from tests.support.paths import CHART, REPO

DEPLOY = REPO / "deploy"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _chart_values_keys() -> set[str]:
    return set(yaml.safe_load((CHART / "values.yaml").read_text()))


def test_argocd_application() -> None:
    apps = {doc["metadata"]["name"]: doc for doc in _docs(DEPLOY / "argocd" / "application.yaml")}
    chart = apps["spectra"]
    assert chart["apiVersion"] == "argoproj.io/v1alpha1"
    assert chart["kind"] == "Application"
    assert chart["spec"]["source"]["path"] == "charts/spectra"
    assert set(chart["spec"]["source"]["helm"]["valuesObject"]) <= _chart_values_keys()
    assert "ServerSideApply=true" in chart["spec"]["syncPolicy"]["syncOptions"]
    assert chart["spec"]["destination"]["namespace"]
    monitors = apps["spectra-monitors"]
    assert monitors["spec"]["source"]["directory"]["recurse"] is True


def test_flux_helmrelease() -> None:
    docs = {doc["kind"]: doc for doc in _docs(DEPLOY / "flux" / "helmrelease.yaml")}
    source, release = docs["GitRepository"], docs["HelmRelease"]
    assert source["apiVersion"] == "source.toolkit.fluxcd.io/v1"
    assert release["apiVersion"] == "helm.toolkit.fluxcd.io/v2"
    ref = release["spec"]["chart"]["spec"]
    assert ref["chart"] == "charts/spectra"
    assert ref["sourceRef"] == {"kind": "GitRepository", "name": source["metadata"]["name"], "namespace": "flux-system"}
    assert release["spec"]["install"]["crds"] == release["spec"]["upgrade"]["crds"] == "CreateReplace"
    assert set(release["spec"]["values"]) <= _chart_values_keys()


def test_flux_kustomization() -> None:
    docs = {doc["kind"]: doc for doc in _docs(DEPLOY / "flux" / "kustomization.yaml")}
    kustomization = docs["Kustomization"]
    assert kustomization["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert kustomization["spec"]["prune"] is True
    assert kustomization["spec"]["sourceRef"]["name"] == docs["GitRepository"]["metadata"]["name"]
    assert kustomization["spec"]["path"]


def _workflow() -> dict[Any, Any]:
    """The workflow document (its keys are not all strings: YAML 1.1 reads `on` as True)."""
    workflow: dict[Any, Any] = yaml.safe_load((DEPLOY / "github-actions" / "spectra-pr.yaml").read_text())
    return workflow


def _spectra_commands() -> list[list[str]]:
    commands = []
    for job in _workflow()["jobs"].values():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                words = shlex.split(line, comments=True)
                for i, word in enumerate(words):
                    if word == "spectra" and i + 1 < len(words):
                        commands.append(words[i + 1 :])
    return commands


def test_workflow_shape() -> None:
    workflow = _workflow()
    assert "pull_request" in workflow[True]  # YAML 1.1 reads `on` as True
    assert workflow["permissions"] == {"contents": "read"}
    text = (DEPLOY / "github-actions" / "spectra-pr.yaml").read_text()
    assert text.count('>> "$GITHUB_STEP_SUMMARY"') >= 3
    subcommands = [command[0] for command in _spectra_commands()]
    assert subcommands.index("validate") < subcommands.index("check")
    assert any("--strict-egress" in command for command in _spectra_commands())


@pytest.mark.parametrize("command", _spectra_commands(), ids=lambda c: " ".join(c[:2]))
def test_workflow_commands_are_real(command: list[str]) -> None:
    name, *args = command
    assert name in cli.commands, f"spectra {name} is not a command"
    sub = cli.commands[name]
    options = {opt for param in sub.params if isinstance(param, click.Option) for opt in param.opts}
    for arg in args:
        if arg.startswith("-"):
            assert arg.split("=")[0] in options, f"spectra {name}: no option {arg}"
    assert CliRunner().invoke(cli, [name, "--help"]).exit_code == 0
