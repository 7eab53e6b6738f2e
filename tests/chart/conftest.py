"""Fixtures of the chart tests: the helm binary and rendered charts shared per session
(rendering helpers: tests/chart/rendering.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .rendering import CI_VALUES, Rendered, render_chart

if TYPE_CHECKING:
    from tests.support.kube import KubeTools


@pytest.fixture(scope="session")
def helm(kube_tools: KubeTools) -> Path:
    return kube_tools.helm


@pytest.fixture(scope="session")
def render(helm: Path) -> Callable[..., Rendered]:
    """`render(*helm_args, name=...)`: the chart rendered with extra `helm template` arguments."""

    def _render(*args: str, name: str = "custom") -> Rendered:
        return render_chart(helm, *args, name=name)

    return _render


@pytest.fixture(scope="session")
def default_chart(helm: Path) -> Rendered:
    return render_chart(helm, name="defaults")


@pytest.fixture(scope="session")
def variants(helm: Path) -> list[Rendered]:
    """The defaults and every ci/*-values.yaml, with the test hook and CRDs included."""
    rendered = [render_chart(helm, "--include-crds", name="defaults")]
    rendered += [render_chart(helm, "--include-crds", "-f", str(path), name=path.name) for path in CI_VALUES]
    return rendered
