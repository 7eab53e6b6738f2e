"""icmp (ping) checks: echo requests, packet loss and round-trip time.

The block of the same name in a Monitor's spec; the checker is `spectra.probe.checks.icmp`.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from spectra.api.addresses import valid_host
from spectra.api.base import ApiModel
from spectra.api.durations import Duration


class IcmpExpect(ApiModel):
    max_packet_loss: float = Field(default=50.0, ge=0, le=100, description="Packet loss above this percentage is down.")
    max_rtt: Duration | None = Field(default=None, description="A slower average round trip counts as degraded.")


class IcmpCheck(ApiModel):
    host: str = Field(description="Host name or IP address to ping.", max_length=253)
    count: int = Field(default=3, ge=1, le=20, description="Echo requests per check.")
    expect: IcmpExpect = Field(default_factory=IcmpExpect, description="Loss and round-trip limits.")

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        return valid_host(value)

    @property
    def target(self) -> str:
        """What is checked, for tables and `.status` (never secrets: URLs cannot carry credentials)."""
        return self.host
