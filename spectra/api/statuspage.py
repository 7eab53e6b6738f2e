"""StatusPage: what customers see: components, uptime, incidents, maintenance, subscriptions."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from spectra.api.addresses import TargetError, check_url
from spectra.api.base import (
    AGE_COLUMN,
    DNS_SUBDOMAIN,
    READY_COLUMN,
    SLUG,
    ApiModel,
    FieldError,
    KindInfo,
    LabelSelector,
    PrinterColumn,
    Resource,
    StatusBase,
)

_HOSTNAME = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"


class Component(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.monitors) != has(self.monitorSelector)",
                    "message": "give exactly one of monitors or monitorSelector",
                }
            ]
        }
    )

    name: str = Field(description="Component name shown on the page.", min_length=1, max_length=100)
    description: str | None = Field(
        default=None, description="Short explanation (markdown, sanitized).", max_length=1024
    )
    monitors: list[str] | None = Field(
        default=None,
        description="Monitors (same namespace) whose states make this component's state.",
        min_length=1,
    )
    monitor_selector: LabelSelector | None = Field(default=None, description="Or: monitors with these labels.")

    @field_validator("monitors")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if not re.fullmatch(DNS_SUBDOMAIN, name):
                raise ValueError(f"{name!r} is not a Monitor name")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Component:
        if (self.monitors is None) == (self.monitor_selector is None):
            raise FieldError("monitors", "give exactly one of monitors or monitorSelector")
        return self


class ComponentGroup(ApiModel):
    name: str = Field(description="Group heading.", min_length=1, max_length=100)
    components: list[Component] = Field(description="Components in display order.", min_length=1, max_length=200)


class Branding(ApiModel):
    logo_url: str | None = Field(default=None, description="https URL of the logo image.", max_length=2048)
    accent_color: str | None = Field(
        default=None, description="Accent colour as #RRGGBB.", pattern=r"^#[0-9a-fA-F]{6}$"
    )

    @field_validator("logo_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("https://"):
            raise ValueError("the logo must be an https:// URL")
        try:
            return check_url(value)
        except TargetError as exc:
            raise ValueError(str(exc)) from None


class Subscriptions(ApiModel):
    enabled: bool = Field(default=True, description="Let readers subscribe by email (double opt-in).")


class StatusPageSpec(ApiModel):
    slug: str = Field(description="Path of the page: /s/{slug}. Unique across the installation.", pattern=SLUG)
    title: str = Field(description="Page title.", min_length=1, max_length=200)
    description: str | None = Field(default=None, description="Intro text (markdown, sanitized).", max_length=8192)
    public: bool = Field(default=True, description="Serve the page, its feeds, JSON and badges without login.")
    hostnames: list[str] = Field(
        default_factory=list,
        description="Own host names; each gets the page at / (the operator makes an Ingress).",
        max_length=20,
    )
    history_days: int = Field(default=90, ge=1, le=365, description="Days of uptime history shown.")
    auto_incidents: bool = Field(
        default=True, description="Open a page incident when a component's monitors are confirmed down."
    )
    subscriptions: Subscriptions = Field(default_factory=Subscriptions, description="Email subscriptions.")
    branding: Branding = Field(default_factory=Branding, description="Logo and accent colour.")
    groups: list[ComponentGroup] = Field(description="Component groups in display order.", min_length=1, max_length=50)

    @field_validator("hostnames")
    @classmethod
    def _hostnames(cls, value: list[str]) -> list[str]:
        for host in value:
            if not re.fullmatch(_HOSTNAME, host):
                raise ValueError(f"{host!r} is not a fully qualified lower-case host name")
        if len(set(value)) != len(value):
            raise ValueError("a host name is listed twice")
        return value


class ComponentState(ApiModel):
    model_config = ConfigDict(frozen=False)

    name: str = Field(description="Component name.")
    state: str = Field(description="operational, degraded, partial_outage, major_outage or maintenance.")


class StatusPageStatus(StatusBase):
    url: str | None = Field(default=None, description="Where the page is served.")
    overall: str | None = Field(default=None, description="The page's overall state.")
    components: list[ComponentState] = Field(default_factory=list, description="Each component's current state.")


class StatusPage(Resource):
    """A public status page."""

    info: ClassVar[KindInfo] = KindInfo(
        plural="statuspages",
        short_names=("sp", "page"),
        columns=(
            PrinterColumn("Slug", ".spec.slug"),
            PrinterColumn("URL", ".status.url"),
            PrinterColumn("Overall", ".status.overall"),
            READY_COLUMN,
            AGE_COLUMN,
        ),
    )
    kind: Literal["StatusPage"] = Field(description="StatusPage.")
    spec: StatusPageSpec = Field(description="Page content and settings.")
    status: StatusPageStatus | None = Field(default=None, description="Written by the operator.")
