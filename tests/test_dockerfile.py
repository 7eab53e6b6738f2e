"""The Dockerfile runs the same `spectra` commands the chart does; multi-stage; non-root uid 10001.

No container engine runs in CI: the build itself is documented in docs/helm.md. The chart is rendered
with the real helm (tests/support/kube.py) and each container command is checked against `spectra.cli`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pytest

from tests.chart.rendering import CI_VALUES, render_chart
from tests.support.cli import spectra_command
from tests.support.paths import REPO

if TYPE_CHECKING:
    from tests.support.kube import KubeTools

DOCKERFILE = REPO / "Dockerfile"
ChartCommand = tuple[str, list[str], list[str]]  # where, command, args


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for word, rest in _instructions():
        if word == "FROM":
            current = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
            stages[current] = []
        elif current is not None:
            stages[current].append((word, rest))
    return stages


def test_multi_stage_with_browser_variant() -> None:
    stages = _stages()
    assert {"builder", "base", "browser", "runtime"} <= set(stages)
    assert list(stages)[-1] == "runtime", "the default target is the plain runtime image"
    assert re.search(r"python:3\.11-slim-bookworm", DOCKERFILE.read_text())
    assert any("pip wheel" in rest for word, rest in stages["builder"] if word == "RUN")
    browser_runs = " ".join(rest for word, rest in stages["browser"] if word == "RUN")
    assert "chromium" in browser_runs
    assert "spectramonitor[browser]" in browser_runs
    assert ("ENV", "SPECTRA_CHROMIUM=/usr/bin/chromium") in stages["browser"]
    # The runtime never carries build tools or wheels: they are bind-mounted from the builder.
    assert all("COPY --from=builder" not in rest for word, rest in stages["runtime"])


@pytest.mark.parametrize("stage", ["runtime", "browser"])
def test_non_root_user_and_entry_point(stage: str) -> None:
    instructions = _stages()[stage]
    users = [rest for word, rest in instructions if word == "USER"]
    assert users
    assert users[-1].split(":")[0] == "10001"
    entrypoints = [json.loads(rest) for word, rest in instructions if word == "ENTRYPOINT"]
    assert entrypoints == [["spectra"]]
    assert "useradd --system --uid 10001" in DOCKERFILE.read_text()


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*")] == "*"
    assert {"!pyproject.toml", "!spectra/"} <= set(lines)


def _chart_commands(helm: Path) -> list[ChartCommand]:
    """The spectra image's containers in the chart rendered with its defaults and every ci/*-values.yaml."""
    found: list[ChartCommand] = []
    for values in [None, *CI_VALUES]:
        extra = ["-f", str(values)] if values else []
        for obj in render_chart(helm, *extra).objects:
            spec = obj["spec"] if obj["kind"] == "Pod" else obj.get("spec", {}).get("template", {}).get("spec")
            if obj["kind"] == "ConfigMap" and "operator.yaml" in obj.get("data", {}):
                continue
            for container in (spec or {}).get("containers", []):
                image = container["image"]
                if "spectramonitor/spectra" in image:
                    where = f"{obj['kind']}/{obj['metadata']['name']}/{container['name']}"
                    found.append((where, container.get("command", []), container.get("args", [])))
    return found


@pytest.fixture(scope="module")
def chart_commands(kube_tools: KubeTools) -> list[ChartCommand]:
    return _chart_commands(kube_tools.helm)


def test_chart_runs_every_server_command(chart_commands: list[ChartCommand]) -> None:
    subcommands = {tuple(args[:1]) for _, command, args in chart_commands if command == ["spectra"]}
    assert {("operator",), ("web",), ("alerter",), ("db",)} <= subcommands


def test_chart_commands_are_spectra_commands(chart_commands: list[ChartCommand]) -> None:
    checked: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    for where, command, args in chart_commands:
        if (tuple(command), tuple(args)) not in checked:
            checked.add((tuple(command), tuple(args)))
            _check_command(where, command, args)


def _check_command(where: str, command: list[str], args: list[str]) -> None:
    if command != ["spectra"]:
        assert command[0] == "python", f"{where}: {command}"  # the helm test pod's urllib check
        return
    group, path, words = spectra_command(args, where)
    options = {opt for param in group.params if isinstance(param, click.Option) for opt in param.opts}
    for word in words:
        if word.startswith("-"):
            assert word.split("=")[0] in options, f"{where}: spectra {' '.join(path)} has no {word}"
    # The console script pip installs, as in the image (ENTRYPOINT ["spectra"]).
    entry = Path(sys.executable).parent / "spectra"
    argv = [str(entry)] if entry.exists() else [sys.executable, "-m", "spectra.cli"]
    result = subprocess.run([*argv, *path, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, f"spectra {' '.join(path)} --help: {result.stderr}"
