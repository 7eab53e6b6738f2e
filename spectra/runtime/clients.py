"""Who a request comes from, for rate limits: one key per client, whatever the endpoint.

The address is the one uvicorn reports (the trusted proxies' word for it when
SPECTRA_TRUSTED_PROXIES names them, the peer's otherwise). An IPv6 client usually holds a whole /64:
counting its addresses one by one would be no limit, so the /64 is the client.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from starlette.requests import Request

IPV6_CLIENT_PREFIX: Final = 64


def client_key(request: Request) -> str:
    """The client's address; an IPv6 one's /64; the peer's name when it is not an address (test clients)."""
    return client_of_host(request.client.host if request.client is not None else "")


def client_of_host(host: str) -> str:
    """`client_key` of an address given as text (a key it made comes back unchanged)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)  # an IPv4 client of a dual-stack listener: not a /64 (that is ::/64, everyone)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(address)
