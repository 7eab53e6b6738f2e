"""Static checks of probe targets: URL schemes, credentials, metadata addresses.

These run when a manifest is validated. The probe's egress guard repeats the address checks at
connect time (DNS can answer differently later); both read the same rules from here.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata endpoints: never a legitimate probe target, whatever the settings.
METADATA_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),  # link-local, AWS/GCP/Azure/OpenStack metadata
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS IMDS over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
    ipaddress.ip_network("168.63.129.16/32"),  # Azure WireServer (and its DNS and health probes)
    ipaddress.ip_network("192.0.0.192/32"),  # Oracle Cloud metadata
)
METADATA_HOSTNAMES = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal"}
)
# IPv6 prefixes that embed an IPv4 address in their last 32 bits (NAT64 and the deprecated compat form).
_EMBEDDING_V4 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("::/96"))
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$"
)


class TargetError(ValueError):
    """A target that may not be probed, with a reason fit for the user."""


def parse_ip(host: str) -> IPAddress | None:
    """The address a host literal denotes, in any spelling a resolver accepts.

    Besides canonical forms this reads what `inet_aton` (and so `connect()` through
    getaddrinfo) reads: decimal `2852039166`, hex `0xA9FEA9FE`, octal `0251.0376.0251.0376`
    and short forms `169.254.43518`. IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64,
    IPv4-compatible, 6to4, Teredo) yield the IPv4 address, so it is judged like the IPv4 spelling.
    """
    text = host.strip().strip("[]").rstrip(".")
    if not text or any(ch.isspace() for ch in text):
        return None
    address: IPAddress
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:  # 2002:AABB:CCDD::/48 carries AA.BB.CC.DD (6to4)
            return address.sixtofour
        if address.teredo is not None:  # 2001:0::/32 carries the client's IPv4 (Teredo)
            return address.teredo[1]
        # `::` and `::1` sit inside ::/96 but are not IPv4-compatible spellings.
        if any(address in net for net in _EMBEDDING_V4) and int(address) > 1:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def is_metadata_address(address: IPAddress) -> bool:
    return any(address in net for net in METADATA_NETWORKS if net.version == address.version)


def check_host(host: str) -> str:
    """Return the normalised host or raise TargetError; refuses metadata addresses in any spelling."""
    if not host or host != host.strip() or any(ch.isspace() or ord(ch) < 32 for ch in host):
        raise TargetError("host must not be empty or contain spaces or control characters")
    address = parse_ip(host)
    if address is not None:
        if is_metadata_address(address):
            raise TargetError(f"{host} is a link-local / cloud metadata address ({address}); it is never probed")
        return host.strip("[]")
    name = host.lower().rstrip(".")
    if not _HOSTNAME.match(name):
        raise TargetError(f"{host!r} is not a valid host name or IP address")
    if name in METADATA_HOSTNAMES:
        raise TargetError(f"{host} is a cloud metadata host; it is never probed")
    return host


def check_url(url: str) -> str:
    """Refuse anything but http(s) URLs without credentials whose host passes `check_host`."""
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise TargetError("URL must not contain spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise TargetError(f"only http and https URLs can be probed, not {parts.scheme or 'a relative URL'!r}")
    if "@" in parts.netloc:
        raise TargetError(
            "credentials inside the URL are not allowed: put them in a header with valueFrom.secretKeyRef"
        )
    if not parts.hostname:
        raise TargetError("URL has no host")
    try:
        parts.port  # noqa: B018 - urllib validates the port lazily
    except ValueError as exc:
        raise TargetError(f"URL has an invalid port: {exc}") from None
    check_host(parts.hostname)
    return url


def valid_host(value: str) -> str:
    """`check_host` for pydantic validators: a refused host is a ValueError naming why."""
    try:
        return check_host(value)
    except TargetError as exc:
        raise ValueError(str(exc)) from None


def valid_url(value: str) -> str:
    """`check_url` for pydantic validators: a refused URL is a ValueError naming why."""
    try:
        return check_url(value)
    except TargetError as exc:
        raise ValueError(str(exc)) from None


# Field types of check settings: a host or URL a monitor targets, refused when it can never be probed.
TargetHost = Annotated[str, AfterValidator(valid_host), Field(max_length=253)]
TargetUrl = Annotated[str, AfterValidator(valid_url)]
