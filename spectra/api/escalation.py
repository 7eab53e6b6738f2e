"""EscalationPolicy: who is paged, through which channels, in which order, until someone acks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator

from spectra.api.base import (
    AGE_COLUMN,
    DNS_SUBDOMAIN,
    READY_COLUMN,
    ApiModel,
    FieldError,
    KindInfo,
    PrinterColumn,
    Resource,
    StatusBase,
    ValueSource,
)
from spectra.api.contact import Channel
from spectra.api.durations import LongDuration

_TARGET_KEYS = ("schedule", "contact", "webhook", "slack")


class WebhookTarget(ApiModel):
    url_from: ValueSource = Field(description="The webhook URL (it often embeds a token), from a Secret key.")

    @model_validator(mode="before")
    @classmethod
    def _no_inline_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and "url" in data:
            raise FieldError("url", "webhook URLs carry credentials: use urlFrom.secretKeyRef, not an inline url")
        return data


class SlackTarget(ApiModel):
    webhook_from: ValueSource = Field(description="The Slack incoming-webhook URL, from a Secret key.")

    @model_validator(mode="before")
    @classmethod
    def _no_inline_url(cls, data: Any) -> Any:
        if isinstance(data, dict) and ({"webhook", "url", "webhookUrl"} & set(data)):
            raise FieldError(
                "webhook", "Slack webhook URLs are secrets: use webhookFrom.secretKeyRef, not an inline URL"
            )
        return data


class Target(ApiModel):
    """Exactly one of schedule, contact, webhook or slack."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[" + ", ".join(f"has(self.{k})" for k in _TARGET_KEYS) + "].filter(x, x).size() == 1",
                    "message": "each target has exactly one of schedule, contact, webhook, slack",
                }
            ]
        }
    )

    schedule: str | None = Field(
        default=None, description="Page whoever is on call in this Schedule.", pattern=DNS_SUBDOMAIN
    )
    contact: str | None = Field(default=None, description="Page this Contact.", pattern=DNS_SUBDOMAIN)
    webhook: WebhookTarget | None = Field(default=None, description="POST the incident as signed JSON.")
    slack: SlackTarget | None = Field(default=None, description="Post to a Slack incoming webhook.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Target:
        given = [key for key in _TARGET_KEYS if getattr(self, key) is not None]
        if len(given) != 1:
            found = ", ".join(given) or "none"
            raise ValueError(f"each target has exactly one of schedule, contact, webhook, slack (found: {found})")
        return self


class Step(ApiModel):
    delay: LongDuration = Field(
        default=timedelta(0),
        description="Wait after the previous step (or the incident opening) before this step.",
    )
    targets: list[Target] = Field(description="Who is paged in this step.", min_length=1, max_length=20)
    channels: list[Channel] | None = Field(
        default=None,
        description="Channels for people in this step. Default: each contact's own channels.",
        min_length=1,
    )


class EscalationPolicySpec(ApiModel):
    description: str | None = Field(default=None, description="When this policy is used.", max_length=1024)
    steps: list[Step] = Field(
        description="Steps in order; an acknowledgement stops the rest.", min_length=1, max_length=20
    )
    repeat: int = Field(
        default=0, ge=0, le=10, description="Times the whole policy is repeated when nobody acknowledges."
    )

    @model_validator(mode="after")
    def _steps(self) -> EscalationPolicySpec:
        for index, step in enumerate(self.steps):
            if index > 0 and step.delay <= timedelta(0):
                raise FieldError(f"steps[{index}].delay", "steps after the first need a delay, or they page at once")
        return self


class EscalationPolicyStatus(StatusBase):
    steps: int | None = Field(default=None, description="How many steps the policy has.")
    open_incidents: int | None = Field(default=None, description="Open incidents escalating under this policy.")


class EscalationPolicy(Resource):
    """Steps of paging, applied to a Monitor's incidents."""

    info: ClassVar[KindInfo] = KindInfo(
        plural="escalationpolicies",
        short_names=("ep", "escalation"),
        columns=(
            # A count needs the status: a JSONPath column shows one value (`.spec.steps[*]` the first step).
            PrinterColumn("Steps", ".status.steps", type="integer", description="How many steps the policy has"),
            PrinterColumn("Open Incidents", ".status.openIncidents", type="integer"),
            READY_COLUMN,
            AGE_COLUMN,
        ),
    )
    kind: Literal["EscalationPolicy"] = Field(description="EscalationPolicy.")
    spec: EscalationPolicySpec = Field(description="The steps.")
    status: EscalationPolicyStatus | None = Field(default=None, description="Written by the operator.")
