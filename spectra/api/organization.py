"""Organization (cluster-scoped): a tenant: its namespaces, plan limits, trial and suspension."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import EmailStr, Field, field_validator

from spectra.api.base import (
    AGE_COLUMN,
    DNS_LABEL,
    READY_COLUMN,
    ApiModel,
    AwareDateTime,
    KindInfo,
    PrinterColumn,
    Resource,
    StatusBase,
)
from spectra.api.durations import Duration


class Plan(ApiModel):
    max_monitors: int | None = Field(default=None, ge=0, description="Most Monitors. Default: no limit.")
    min_interval: Duration | None = Field(
        default=None, description="Shortest Monitor interval allowed. Default: no limit."
    )
    max_status_pages: int | None = Field(default=None, ge=0, description="Most StatusPages. Default: no limit.")


class OrganizationSpec(ApiModel):
    display_name: str = Field(description="Tenant name.", min_length=1, max_length=200)
    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces that belong to this tenant.", max_length=500
    )
    plan: Plan = Field(default_factory=Plan, description="Limits; objects over them are not scheduled and say why.")
    trial_ends: AwareDateTime | None = Field(
        default=None, description="After this time the tenant is treated as suspended."
    )
    suspended: bool = Field(default=False, description="Stop all checks and paging of this tenant.")
    admins: list[EmailStr] = Field(
        default_factory=list,
        description="Email addresses invited as the tenant's first admins (once each; roles then change in the app).",
        max_length=50,
    )

    @field_validator("namespaces")
    @classmethod
    def _namespaces(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(DNS_LABEL, name):
                raise ValueError(f"{name!r} is not a namespace name")
        if len(set(value)) != len(value):
            raise ValueError("a namespace is listed twice")
        return value

    @field_validator("admins")
    @classmethod
    def _admins(cls, value: list[str]) -> list[str]:
        if len({address.lower() for address in value}) != len(value):
            raise ValueError("an address is listed twice")
        return value


class Usage(ApiModel):
    monitors: int = Field(default=0, description="Monitors in the tenant's namespaces.")
    status_pages: int = Field(default=0, description="StatusPages in the tenant's namespaces.")


class OrganizationStatus(StatusBase):
    usage: Usage | None = Field(default=None, description="Use against the plan.")


class Organization(Resource):
    """A tenant (cluster-scoped)."""

    info: ClassVar[KindInfo] = KindInfo(
        plural="organizations",
        short_names=("org",),
        namespaced=False,
        columns=(
            PrinterColumn("Display Name", ".spec.displayName"),
            PrinterColumn("Suspended", ".spec.suspended", type="boolean"),
            PrinterColumn("Monitors", ".status.usage.monitors", type="integer"),
            READY_COLUMN,
            AGE_COLUMN,
        ),
    )
    kind: Literal["Organization"] = Field(description="Organization.")
    spec: OrganizationSpec = Field(description="Tenant record.")
    status: OrganizationStatus | None = Field(default=None, description="Written by the operator.")
