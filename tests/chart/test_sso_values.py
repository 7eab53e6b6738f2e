"""The chart's single sign-on values (`sso.providers`, `sso.existingSecret`, `sso.secretKeys`): the web
Deployment gets SPECTRA_SSO_PROVIDERS as a plain value (no secret in it) and each client secret from the
Secret, and the list it renders is one the server accepts (spectra.auth.sso.load_providers)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from spectra.auth import sso
from tests.chart.rendering import RELEASE, Rendered, run_helm
from tests.support.paths import CHART

PROVIDER: dict[str, Any] = {
    "name": "acme",
    "title": "Acme SSO",
    "issuer": "https://login.acme.example/realms/staff",
    "client_id": "spectra",
    "client_secret_env": "SPECTRA_SSO_ACME_SECRET",
    "groups_claim": "groups",
    "mappings": [{"group": "acme-ops", "organization": "acme", "role": "admin"}],
}


def _web_env(chart: Rendered) -> dict[str, dict[str, Any]]:
    web = chart.get("Deployment", f"{RELEASE}-web")
    return {e["name"]: e for e in web["spec"]["template"]["spec"]["containers"][0]["env"]}


def _values(tmp_path: Path, sso_values: dict[str, Any]) -> str:
    path = tmp_path / "sso-values.yaml"
    path.write_text(yaml.safe_dump({"sso": sso_values}))
    return str(path)


def test_no_providers_no_setting(default_chart: Rendered) -> None:
    assert "SPECTRA_SSO_PROVIDERS" not in _web_env(default_chart)


def test_providers_and_their_secrets(
    render: Callable[..., Rendered], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {
        "providers": [PROVIDER],
        "existingSecret": "spectra-sso",
        "secretKeys": {"SPECTRA_SSO_ACME_SECRET": "acme-client-secret"},
    }
    env = _web_env(render("-f", _values(tmp_path, values)))
    secret = env["SPECTRA_SSO_ACME_SECRET"]
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "spectra-sso", "key": "acme-client-secret"}
    assert "value" not in secret
    monkeypatch.setenv("SPECTRA_SSO_ACME_SECRET", "from-the-secret")
    (provider,) = sso.load_providers(env["SPECTRA_SSO_PROVIDERS"]["value"])
    assert provider.model_dump(mode="json", exclude_defaults=True) == {
        k: v for k, v in PROVIDER.items() if k != "groups_claim"
    }


@pytest.mark.parametrize(
    ("sso_values", "message"),
    [
        (
            {"providers": [PROVIDER], "existingSecret": "spectra-sso"},
            "sso.secretKeys has no key for SPECTRA_SSO_ACME_SECRET, the client_secret_env of provider acme",
        ),
        (
            {"providers": [PROVIDER], "secretKeys": {"SPECTRA_SSO_ACME_SECRET": "k"}},
            "sso.existingSecret: the Secret with the client secrets of sso.providers",
        ),
        ({"providers": [{**PROVIDER, "client_secret": "inline"}]}, "client_secret"),
        ({"providers": [{**PROVIDER, "mappings": []}]}, "/sso/providers/0/mappings"),
        ({"providers": [{**PROVIDER, "client_secret_env": "not a name"}]}, "/sso/providers/0/client_secret_env"),
    ],
    ids=["a secret without its key", "no Secret", "a secret inline", "no mappings", "a bad variable name"],
)
def test_bad_sso_values_are_refused(helm: Path, tmp_path: Path, sso_values: dict[str, Any], message: str) -> None:
    result = run_helm(helm, "template", RELEASE, str(CHART), "-f", _values(tmp_path, sso_values))
    assert result.returncode != 0
    assert message in result.stderr
