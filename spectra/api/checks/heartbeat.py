"""heartbeat monitors: pushed to, not probed; down when no push arrives within interval + grace.

The block of the same name in a Monitor's spec; the checker is `spectra.probe.checks.heartbeat`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field, model_validator

from spectra.api.base import ApiModel, FieldError, ValueSource
from spectra.api.durations import Duration


class HeartbeatCheck(ApiModel):
    grace: Duration = Field(
        default=timedelta(seconds=60),
        description="Extra time after the interval before a missing push is down.",
    )
    token_from: ValueSource = Field(
        description="The secret token of the push URL `/api/v1/heartbeat/{token}`, from a Secret key."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline_token(cls, data: Any) -> Any:
        if isinstance(data, dict) and "token" in data:
            raise FieldError("token", "the push token is a secret: use tokenFrom.secretKeyRef, not an inline value")
        return data

    @property
    def target(self) -> str:
        """What is checked, for tables and `.status` (never secrets: URLs cannot carry credentials)."""
        return "heartbeat"
