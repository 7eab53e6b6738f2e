"""The chart's web limits: X-Forwarded-For is believed only from the proxies `web.trustedProxies` names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from spectra.processes.bootstrap import TRUSTED_PROXIES_ENV
from spectra.runtime.server_limits import trusted_proxies
from tests.chart.rendering import RELEASE, Rendered, run_helm
from tests.support.paths import CHART

WEB = f"{RELEASE}-web"


def web_env(chart: Rendered) -> dict[str, dict[str, Any]]:
    container = chart.get("Deployment", WEB)["spec"]["template"]["spec"]["containers"][0]
    return {env["name"]: env for env in container["env"]}


def test_by_default_no_proxy_is_trusted(default_chart: Rendered) -> None:
    assert TRUSTED_PROXIES_ENV not in web_env(default_chart)
    for name in (f"{RELEASE}-alerter", f"{RELEASE}-operator"):
        container = default_chart.get("Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        assert TRUSTED_PROXIES_ENV not in {env["name"] for env in container["env"]}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ("{10.244.0.0/16}", ("10.244.0.0/16",)),
        ("{10.244.0.0/16,fd00:10:244::/56,192.168.1.7}", ("10.244.0.0/16", "fd00:10:244::/56", "192.168.1.7/32")),
    ],
)
def test_the_named_proxies_reach_the_web_as_spectra_reads_them(
    render: Callable[..., Rendered], values: str, expected: tuple[str, ...]
) -> None:
    env = web_env(render("--set", f"web.trustedProxies={values}"))
    assert trusted_proxies(env[TRUSTED_PROXIES_ENV]["value"], setting=TRUSTED_PROXIES_ENV) == expected


@pytest.mark.parametrize("values", ["{ingress-nginx}", "{*}", "{10.0.0.0/8 #all}", "10.0.0.0/8"])
def test_anything_but_addresses_and_networks_is_refused(helm: Path, values: str) -> None:
    result = run_helm(helm, "template", RELEASE, str(CHART), "--set", f"web.trustedProxies={values}")
    assert result.returncode != 0
    assert "/web/trustedProxies" in result.stderr
