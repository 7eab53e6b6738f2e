"""browser checks: declarative steps run in headless Chromium (never user code).

The block of the same name in a Monitor's spec; the checker is `spectra.probe.checks.browser`.
"""

from __future__ import annotations

import re

from pydantic import ConfigDict, Field, field_validator, model_validator

from spectra.api.addresses import TargetUrl
from spectra.api.base import ApiModel, FieldError, ValueSource


class FillStep(ApiModel):
    selector: str = Field(description="CSS or Playwright selector of the input.", min_length=1, max_length=1024)
    value: str | None = Field(default=None, description="Text to type (not for secrets).", max_length=4096)
    value_from: ValueSource | None = Field(default=None, description="Text to type, from a Secret key.")

    @model_validator(mode="after")
    def _one_source(self) -> FillStep:
        if (self.value is None) == (self.value_from is None):
            raise FieldError("value", "give exactly one of value or valueFrom")
        if self.value is not None and re.search(r"pass(word)?|secret|token|otp", self.selector, re.I):
            raise FieldError("value", "this field looks like a secret: use valueFrom.secretKeyRef")
        return self


class PressStep(ApiModel):
    selector: str = Field(description="Element to focus.", min_length=1, max_length=1024)
    key: str = Field(description="Key to press, e.g. Enter.", min_length=1, max_length=64)


class ExpectTextStep(ApiModel):
    selector: str = Field(description="Element whose text is read.", min_length=1, max_length=1024)
    text: str = Field(description="Text the element must contain.", min_length=1, max_length=4096)


_STEP_KEYS = ("goto", "click", "fill", "press", "waitFor", "expectText", "expectURL", "screenshot")


class BrowserStep(ApiModel):
    """One declarative step; exactly one key per step. No user code ever runs."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "[" + ", ".join(f"has(self.{k})" for k in _STEP_KEYS) + "].filter(x, x).size() == 1",
                    "message": "each step has exactly one of " + ", ".join(_STEP_KEYS),
                }
            ]
        }
    )

    goto: TargetUrl | None = Field(default=None, description="Open this http(s) URL.", max_length=2048)
    click: str | None = Field(default=None, description="Click the element matching this selector.", max_length=1024)
    fill: FillStep | None = Field(default=None, description="Type text into an input.")
    press: PressStep | None = Field(default=None, description="Press a key in an element.")
    wait_for: str | None = Field(default=None, description="Wait until this selector is visible.", max_length=1024)
    expect_text: ExpectTextStep | None = Field(default=None, description="An element must contain a text.")
    expect_url: str | None = Field(
        default=None,
        alias="expectURL",
        description="The page URL must match this glob pattern.",
        max_length=2048,
    )
    screenshot: str | None = Field(
        default=None, description="Save a screenshot under this name.", pattern=r"^[A-Za-z0-9._-]{1,64}$"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> BrowserStep:
        given = [key for key in _STEP_KEYS if getattr(self, _attr(key)) is not None]
        if len(given) != 1:
            found = ", ".join(given) or "none"
            raise ValueError(f"each step has exactly one of {', '.join(_STEP_KEYS)} (found: {found})")
        return self


def _attr(key: str) -> str:
    return {"waitFor": "wait_for", "expectText": "expect_text", "expectURL": "expect_url"}.get(key, key)


class BrowserCheck(ApiModel):
    steps: list[BrowserStep] = Field(
        description="Steps run in order in headless Chromium.", min_length=1, max_length=50
    )

    @field_validator("steps")
    @classmethod
    def _starts_with_goto(cls, steps: list[BrowserStep]) -> list[BrowserStep]:
        if steps and steps[0].goto is None:
            raise ValueError("the first step must be goto: URL")
        return steps

    @property
    def target(self) -> str:
        """What is checked, for tables and `.status` (never secrets: URLs cannot carry credentials)."""
        return self.steps[0].goto or ""
