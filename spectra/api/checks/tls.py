"""tls checks: handshake with verification and the certificate's days left.

The block of the same name in a Monitor's spec; the checker is `spectra.probe.checks.tls`.
"""

from __future__ import annotations

from pydantic import Field

from spectra.api.addresses import TargetHost
from spectra.api.base import ApiModel


class TlsExpect(ApiModel):
    certificate_min_days: int = Field(default=14, ge=0, le=3650, description="Fewer days of validity left is down.")


class TlsCheck(ApiModel):
    host: TargetHost = Field(description="Host name or IP address.")
    port: int = Field(default=443, ge=1, le=65535, description="TCP port.")
    server_name: str | None = Field(
        default=None,
        description="SNI and the name the certificate must match. Default: host.",
        max_length=253,
    )
    expect: TlsExpect = Field(default_factory=TlsExpect, description="Certificate limits.")

    @property
    def target(self) -> str:
        """What is checked, for tables and `.status` (never secrets: URLs cannot carry credentials)."""
        return f"{self.host}:{self.port}"
