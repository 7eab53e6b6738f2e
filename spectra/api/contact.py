"""Contact: a person who can be paged."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import EmailStr, Field, field_validator, model_validator

from spectra.api.base import (
    AGE_COLUMN,
    READY_COLUMN,
    ApiModel,
    FieldError,
    KindInfo,
    PrinterColumn,
    Resource,
    StatusBase,
    TimeZoneName,
    ValueSource,
)

E164 = r"^\+[1-9][0-9]{6,14}$"


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    VOICE = "voice"


class ContactSpec(ApiModel):
    display_name: str = Field(description="Name shown in pages and incident timelines.", min_length=1, max_length=200)
    email: EmailStr | None = Field(default=None, description="Email address.")
    email_from: ValueSource | None = Field(default=None, description="Email address from a Secret key.")
    phone: str | None = Field(default=None, description="Phone number in E.164 form, e.g. +4915112345678.")
    phone_from: ValueSource | None = Field(default=None, description="Phone number from a Secret key.")
    channels: list[Channel] = Field(
        default_factory=lambda: [Channel.EMAIL],
        description="Preferred channels, used when an escalation step names none.",
        min_length=1,
        max_length=3,
    )
    time_zone: TimeZoneName = Field(default="UTC", description="The person's time zone, for times in messages.")

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(E164, value):
            raise ValueError(f"{value!r} is not an E.164 phone number such as +4915112345678")
        return value

    @model_validator(mode="after")
    def _reachable(self) -> ContactSpec:
        if self.email is not None and self.email_from is not None:
            raise FieldError("emailFrom", "give email or emailFrom, not both")
        if self.phone is not None and self.phone_from is not None:
            raise FieldError("phoneFrom", "give phone or phoneFrom, not both")
        has_email = self.email is not None or self.email_from is not None
        has_phone = self.phone is not None or self.phone_from is not None
        for channel in self.channels:
            if channel == Channel.EMAIL and not has_email:
                raise FieldError("channels", "channel email needs email or emailFrom")
            if channel in (Channel.SMS, Channel.VOICE) and not has_phone:
                raise FieldError("channels", f"channel {channel} needs phone or phoneFrom")
        if len(set(self.channels)) != len(self.channels):
            raise FieldError("channels", "a channel is listed twice")
        return self


class ContactStatus(StatusBase):
    pass


class Contact(Resource):
    """A person who can be paged by email, SMS or voice."""

    info: ClassVar[KindInfo] = KindInfo(
        plural="contacts",
        short_names=("ct",),
        columns=(
            PrinterColumn("Display Name", ".spec.displayName"),  # "Name" would repeat kubectl's NAME header
            PrinterColumn("Channels", ".spec.channels", description="Channels the person is paged on"),
            READY_COLUMN,
            AGE_COLUMN,
        ),
    )
    kind: Literal["Contact"] = Field(description="Contact.")
    spec: ContactSpec = Field(description="How to reach the person.")
    status: ContactStatus | None = Field(default=None, description="Written by the operator.")
