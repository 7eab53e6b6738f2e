"""udp checks: send a datagram, expect an answer containing text.

The block of the same name in a Monitor's spec; the checker is `spectra.probe.checks.udp`.
"""

from __future__ import annotations

from pydantic import Field

from spectra.api.addresses import TargetHost
from spectra.api.base import ApiModel
from spectra.api.checks.tcp import StreamExpect


class UdpCheck(ApiModel):
    host: TargetHost = Field(description="Host name or IP address.")
    port: int = Field(ge=1, le=65535, description="UDP port.")
    send: str = Field(description="Datagram to send.", min_length=1, max_length=4096)
    expect: StreamExpect = Field(default_factory=StreamExpect, description="What the answer must hold.")

    @property
    def target(self) -> str:
        """What is checked, for tables and `.status` (never secrets: URLs cannot carry credentials)."""
        return f"udp://{self.host}:{self.port}"
