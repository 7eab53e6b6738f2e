"""dns checks: a record type of a name, from the system resolver or a given server; expected answers and rcode.

The block of the same name in a Monitor's spec; the checker is `spectra.probe.checks.dns`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from spectra.api.addresses import valid_host
from spectra.api.base import ApiModel


class DnsExpect(ApiModel):
    values: list[str] = Field(
        default_factory=list, description="Every one of these must be among the answers.", max_length=64
    )
    rcode: Literal["NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED", "NOTIMP", "FORMERR"] = Field(
        default="NOERROR", description="Expected response code."
    )


class DnsCheck(ApiModel):
    name: str = Field(description="Name to resolve.", min_length=1, max_length=253)
    record_type: Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA"] = Field(
        default="A", description="Record type to ask for."
    )
    server: str | None = Field(
        default=None,
        description="Resolver as host or host:port. Default: the system resolver.",
        max_length=260,
    )
    expect: DnsExpect = Field(default_factory=DnsExpect, description="What the answer must hold.")

    @field_validator("server")
    @classmethod
    def _server(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, port = value, "53"
        match = re.fullmatch(r"\[(.+)\]:(\d+)|([^:\[\]]+):(\d+)", value)
        if match:
            host = match.group(1) or match.group(3)
            port = match.group(2) or match.group(4)
        if not 1 <= int(port) <= 65535:
            raise ValueError(f"port {port} is out of range (1-65535)")
        valid_host(host)
        return value

    # --- icmp / tls ------------------------------------------------------------------------------------

    @property
    def target(self) -> str:
        """What is checked, for tables and `.status` (never secrets: URLs cannot carry credentials)."""
        return f"{self.name} {self.record_type}"
