"""tcp checks: connect (optionally with TLS), send, expect text in the answer.

The block of the same name in a Monitor's spec; the checker is `spectra.probe.checks.tcp`.
"""

from __future__ import annotations

from pydantic import Field

from spectra.api.addresses import TargetHost
from spectra.api.base import ApiModel


class StreamExpect(ApiModel):
    contains: str | None = Field(default=None, description="The answer must contain this text.", max_length=4096)


class TcpCheck(ApiModel):
    host: TargetHost = Field(description="Host name or IP address.")
    port: int = Field(ge=1, le=65535, description="TCP port.")
    tls: bool = Field(default=False, description="Speak TLS after connecting (verifies the certificate).")
    send: str | None = Field(default=None, description="Text to send once connected.", max_length=4096)
    expect: StreamExpect = Field(default_factory=StreamExpect, description="What the answer must hold.")

    @property
    def target(self) -> str:
        """What is checked, for tables and `.status` (never secrets: URLs cannot carry credentials)."""
        return f"{self.host}:{self.port}"
