"""http(s) checks: the request (method, headers from Secrets, body, redirects) and its expectations.

The block of the same name in a Monitor's spec; the checker is `spectra.probe.checks.http`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from spectra.api.addresses import TargetUrl
from spectra.api.base import ApiModel, FieldError, ValueSource
from spectra.api.durations import Duration

# Header names whose values are credentials: these must come from a Secret.
_SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|password|passwd|api[-_]?key|signature", re.I)
_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"


class HttpHeader(ApiModel):
    """A request header; credentials come from a Secret through `valueFrom`."""

    name: str = Field(description="Header name.", pattern=_HEADER_NAME, max_length=256)
    value: str | None = Field(default=None, description="Literal value, for headers that are not secret.")
    value_from: ValueSource | None = Field(default=None, description="Value from a Secret key.")

    @model_validator(mode="after")
    def _one_source(self) -> HttpHeader:
        if (self.value is None) == (self.value_from is None):
            raise FieldError("value", "give exactly one of value or valueFrom")
        if self.value is not None and _SECRET_HEADER.search(self.name):
            raise FieldError(
                "value",
                f"header {self.name} carries a credential: use valueFrom.secretKeyRef, not an inline value",
            )
        return self


class JsonPathExpectation(ApiModel):
    path: str = Field(description="JSONPath into the response body, e.g. `$.status`.", pattern=r"^\$", max_length=512)
    equals: str | int | float | bool | None = Field(description="The value found there must equal this.")


class HttpExpect(ApiModel):
    status: list[int] | None = Field(
        default=None,
        description="Accepted status codes. Default: any 2xx.",
        min_length=1,
        max_length=64,
    )
    body_contains: str | None = Field(default=None, description="The body must contain this text.", max_length=4096)
    body_regex: str | None = Field(
        default=None,
        description="The body must match this regular expression (searched, time-capped).",
        max_length=4096,
    )
    json_path: list[JsonPathExpectation] = Field(
        default_factory=list, description="Values the JSON body must hold.", max_length=32
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Response headers that must contain these values (names case-insensitive).",
    )
    max_response_time: Duration | None = Field(default=None, description="Slower answers count as degraded.")
    certificate_min_days: int | None = Field(
        default=None,
        ge=0,
        le=3650,
        description="On https, fewer days of certificate validity left counts as degraded "
        "(expiry is reported either way).",
    )

    @field_validator("status")
    @classmethod
    def _codes(cls, value: list[int] | None) -> list[int] | None:
        for code in value or []:
            if not 100 <= code <= 599:
                raise ValueError(f"{code} is not an HTTP status code (100-599)")
        return value

    @field_validator("body_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class HttpCheck(ApiModel):
    url: TargetUrl = Field(description="http:// or https:// URL to request; no credentials inside.", max_length=2048)
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = Field(
        default="GET", description="HTTP method."
    )
    headers: list[HttpHeader] = Field(default_factory=list, description="Request headers.", max_length=64)
    body: str | None = Field(default=None, description="Request body.", max_length=65536)
    follow_redirects: bool = Field(default=True, description="Follow redirects (each hop passes the egress guard).")
    max_redirects: int = Field(default=5, ge=0, le=20, description="Most redirects followed.")
    expect: HttpExpect = Field(default_factory=HttpExpect, description="What makes the check pass.")

    @property
    def target(self) -> str:
        """What is checked, for tables and `.status` (never secrets: URLs cannot carry credentials)."""
        return self.url
