"""icmp (ping) checks: echo requests, packet loss and round-trip time.

The block of the same name in a Monitor's spec; the checker is `spectra.probe.checks.icmp`.
"""

from __future__ import annotations

from pydantic import Field

from spectra.api.addresses import TargetHost
from spectra.api.base import ApiModel
from spectra.api.durations import Duration


class IcmpExpect(ApiModel):
    max_packet_loss: float = Field(default=50.0, ge=0, le=100, description="Packet loss above this percentage is down.")
    max_rtt: Duration | None = Field(default=None, description="A slower average round trip counts as degraded.")


class IcmpCheck(ApiModel):
    host: TargetHost = Field(description="Host name or IP address to ping.")
    count: int = Field(default=3, ge=1, le=20, description="Echo requests per check.")
    expect: IcmpExpect = Field(default_factory=IcmpExpect, description="Loss and round-trip limits.")

    @property
    def target(self) -> str:
        """What is checked, for tables and `.status` (never secrets: URLs cannot carry credentials)."""
        return self.host
