"""Building blocks every kind shares: model config, metadata, secret references, conditions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "spectra.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SLUG = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


class FieldError(ValueError):
    """A cross-field error raised from a model validator that names the field at fault.

    Pydantic reports model-level errors at the model's location; the error formatter appends
    `field` so users read `spec.timeout: ...` rather than `spec: ...`.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ApiModel(BaseModel):
    """Spec models: camelCase on the wire, unknown fields are errors (they are usually typos)."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        use_enum_values=True,
        frozen=True,
    )


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        hint = _nearest_zone(name)
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin{hint}") from None
    return name


def _nearest_zone(name: str) -> str:
    lowered = name.lower().replace(" ", "_")
    for zone in sorted(available_timezones()):
        if zone.lower() == lowered or zone.lower().endswith("/" + lowered):
            return f" (did you mean {zone}?)"
    return ""


TimeZoneName = Annotated[
    str,
    AfterValidator(_zone),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 64}),
]
"""An IANA time zone name (`Europe/Berlin`, `UTC`)."""


def _clock(value: str) -> str:
    match = re.fullmatch(r"([01][0-9]|2[0-3]):([0-5][0-9])|24:00", value)
    if not match:
        raise ValueError(f"{value!r} is not a time of day; write HH:MM in 24-hour form, e.g. 09:00")
    return value


ClockTime = Annotated[
    str,
    AfterValidator(_clock),
    WithJsonSchema({"type": "string", "pattern": r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"}),
]
"""A wall-clock time `HH:MM` (24-hour; `24:00` ends a day)."""


def parse_clock(value: str) -> time:
    if value == "24:00":
        return time.max
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("give a time zone offset, e.g. 2026-03-01T02:00:00Z or +01:00")
    return value


AwareDateTime = Annotated[datetime, AfterValidator(_aware)]
"""An RFC 3339 timestamp with an offset."""


class SecretKeySelector(ApiModel):
    """Selects a key of a Secret in the object's own namespace."""

    name: str = Field(description="Name of the Secret, in the same namespace as this object.", pattern=DNS_SUBDOMAIN)
    key: str = Field(description="Key inside the Secret's data.", min_length=1, max_length=253)


class ValueSource(ApiModel):
    """Where a secret value comes from: only Secrets, never inline."""

    secret_key_ref: SecretKeySelector = Field(description="The Secret key holding the value.")


class LocalObjectReference(ApiModel):
    name: str = Field(description="Name of the object in the same namespace.", pattern=DNS_SUBDOMAIN)


class LabelSelector(ApiModel):
    match_labels: dict[str, str] = Field(
        description="Objects whose labels contain all of these key/value pairs are selected.", min_length=1
    )


class ObjectMeta(BaseModel):
    """The parts of Kubernetes metadata SpectraMonitor reads; everything else is kept as is."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(description="Object name.", max_length=253, pattern=DNS_SUBDOMAIN)
    namespace: str | None = Field(
        default=None, description="Namespace; `default` when omitted.", max_length=63, pattern=DNS_LABEL
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Labels, used by selectors.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Annotations.")
    generation: int | None = Field(default=None, description="Set by the API server.")
    uid: str | None = Field(default=None, description="Set by the API server.")


class Condition(ApiModel):
    """A Kubernetes-style condition, as in `status.conditions`."""

    model_config = ConfigDict(frozen=False)

    type: str = Field(description="Condition type, e.g. `Ready`.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="One CamelCase word for machines.")
    message: str = Field(default="", description="What is wrong, for people (names the field).")
    last_transition_time: datetime | None = Field(default=None, description="When status last changed.")
    observed_generation: int | None = Field(default=None, description="The generation this condition is about.")


class StatusBase(ApiModel):
    """Fields every kind's `.status` has."""

    model_config = ConfigDict(frozen=False, extra="ignore")

    conditions: list[Condition] = Field(default_factory=list, description="`Ready` with reason and message.")
    observed_generation: int | None = Field(default=None, description="The generation last reconciled.")


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class KindInfo:
    """How a kind appears in Kubernetes: names, scope and `kubectl get` columns."""

    plural: str
    short_names: tuple[str, ...]
    columns: tuple[PrinterColumn, ...] = ()
    namespaced: bool = True
    categories: tuple[str, ...] = field(default=("spectra",))


READY_COLUMN = PrinterColumn(
    "Ready", '.status.conditions[?(@.type=="Ready")].status', description="The Ready condition: True or False"
)
AGE_COLUMN = PrinterColumn("Age", ".metadata.creationTimestamp", type="date")


class Resource(BaseModel):
    """A SpectraMonitor custom resource: apiVersion, kind, metadata, spec (and status from the cluster)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True)

    info: ClassVar[KindInfo]
    api_version: Literal["spectra.dev/v1alpha1"] = Field(alias="apiVersion", description="Always spectra.dev/v1alpha1.")
    metadata: ObjectMeta = Field(description="Standard object metadata.")

    @property
    def namespace(self) -> str:
        """The namespace, `default` when omitted; empty for cluster-scoped kinds."""
        if not self.info.namespaced:
            return ""
        return self.metadata.namespace or "default"

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def kind_name(self) -> str:
        return type(self).__name__

    @property
    def ref(self) -> str:
        """`Kind/namespace/name`, the way errors and logs name an object."""
        if not self.info.namespaced:
            return f"{self.kind_name}/{self.name}"
        return f"{self.kind_name}/{self.namespace}/{self.name}"

    def spec_dict(self) -> dict[str, Any]:
        """The spec as users wrote it (camelCase, defaults left out)."""
        spec: BaseModel = getattr(self, "spec")  # noqa: B009 - every kind has one, typed per kind
        return spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
