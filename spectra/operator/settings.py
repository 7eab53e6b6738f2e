"""Operator settings: what the chart writes into the operator's config file (YAML, camelCase).

Every field has a safe default so `spectra operator` starts with none; the chart renders the file
from values.yaml (`operator.config`) and mounts it at /etc/spectra/operator.yaml.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

DEFAULT_IMAGE = "ghcr.io/spectramonitor/spectra:0.4.0"


class _Settings(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, validate_by_alias=True, validate_by_name=True, frozen=True
    )


class ProbeSettings(_Settings):
    """The probe worker Deployment the operator keeps, one per location in use."""

    image: str = Field(default=DEFAULT_IMAGE, description="Probe image (the browser variant for browser checks).")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    monitors_per_replica: int = Field(default=1000, ge=1, description="Replicas = ceil(monitors / this).")
    min_replicas: int = Field(default=1, ge=0)
    max_replicas: int = Field(default=10, ge=1)
    resources: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}
    )
    service_account_name: str = Field(default="spectra-probe", description="ServiceAccount of probe pods.")
    allow_private_targets: bool = Field(
        default=False, description="Let probes reach private and cluster addresses (metadata stays refused)."
    )
    env: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Extra container env, verbatim (e.g. SPECTRA_DATABASE_URL from a Secret).",
    )
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    image_pull_secrets: list[str] = Field(default_factory=list)


class IngressSettings(_Settings):
    """Ingresses for StatusPage hostnames, made in the web's namespace and backed by the web Service."""

    enabled: bool = True
    class_name: str | None = Field(default=None, description="ingressClassName; the cluster default when unset.")
    annotations: dict[str, str] = Field(default_factory=dict, description="e.g. cert-manager.io/cluster-issuer.")
    tls: bool = Field(default=False, description="Add a TLS section; the certificate Secret is `<ingress name>-tls`.")


class WebSettings(_Settings):
    service_name: str = Field(default="spectra-web", description="The web Service that Ingresses route to.")
    service_port: int = Field(default=8080, ge=1, le=65535)
    public_url: str | None = Field(default=None, description="Base URL of the web, for StatusPage status.url.")


class StatusSettings(_Settings):
    """How `.status` is kept current without flooding the API server."""

    interval_seconds: float = Field(default=10, gt=0, description="How often the store is read for status.")
    refresh_seconds: float = Field(
        default=300, gt=0, description="Minor facts (last check, latency) are refreshed at most this often."
    )
    max_patches_per_second: float = Field(default=20, gt=0, description="Patch rate cap across all objects.")


class OperatorSettings(_Settings):
    namespace: str = Field(
        default_factory=lambda: os.environ.get("POD_NAMESPACE", "spectra"),
        description="Where probe Deployments and Ingresses are made (the operator's own namespace).",
    )
    owner_deployment: str | None = Field(
        default=None, description="The operator's Deployment; children are owned by it (removed with the release)."
    )
    instance: str = Field(default="spectra", description="app.kubernetes.io/instance label on children.")
    peering_name: str = Field(
        default="spectra", description="The ClusterKopfPeering the operator replicas coordinate through."
    )
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    ingress: IngressSettings = Field(default_factory=IngressSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    status: StatusSettings = Field(default_factory=StatusSettings)
    secret_refresh_seconds: float = Field(
        default=60, gt=0, description="How often referenced Secrets are re-read to catch changes."
    )


class SettingsError(ValueError):
    """The operator settings file is unreadable or invalid; the message names the file and field."""


def load_settings(path: Path | None) -> OperatorSettings:
    """Settings from a YAML file (None: all defaults). Errors name the file and field."""
    if path is None:
        return OperatorSettings()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a mapping at the top level")
    try:
        return OperatorSettings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SettingsError(f"{path}: {where}: {first['msg']}") from None
