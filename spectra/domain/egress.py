"""The egress guard: which addresses probes and notification deliveries may connect to, checked at connect time.

Every checker resolves its target through `EgressGuard.resolve` and connects to the addresses it
returns, never to the name again, so a DNS answer that changes between check and connect (DNS
rebinding) cannot slip past. http(s) checks resolve every redirect hop through `EgressGuard.resolve`
(`spectra.probe.http_wire`); `GuardedResolver` is the same check inside aiohttp's connector, for
`guarded_session` (webhook and Slack deliveries), which checks IP-literal hosts too.

Always refused: link-local and cloud metadata addresses in any spelling, multicast, reserved and
unspecified addresses. Refused unless the policy allows them: loopback, private ranges (RFC 1918,
CGNAT, IPv6 ULA) and cluster-internal names. Standalone mode allows private targets (it is the
user's own machine); cluster mode does not by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from spectra.api.addresses import METADATA_HOSTNAMES, IPAddress, is_metadata_address, parse_ip

_PRIVATE = tuple(
    ipaddress.ip_network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7", "198.18.0.0/15")
)
_CLUSTER_SUFFIXES = (".svc", ".cluster.local", ".local", ".internal")


def _is_private(address: IPAddress) -> bool:
    return any(address in net for net in _PRIVATE if net.version == address.version) or address.is_private


class EgressRefused(OSError):
    """A target the egress policy does not allow; the message says why (and never holds secrets)."""


@dataclass(frozen=True)
class EgressPolicy:
    allow_loopback: bool = False
    allow_private: bool = False

    @classmethod
    def standalone(cls) -> EgressPolicy:
        return cls(allow_loopback=True, allow_private=True)

    def check_address(self, address: IPAddress, host: str) -> None:
        """Raise EgressRefused if `address` (what `host` resolved to) may not be probed."""
        # IPv4-mapped, NAT64 and IPv4-compatible answers are judged by the IPv4 address they carry.
        address = parse_ip(str(address)) or address
        if is_metadata_address(address):
            raise EgressRefused(f"{host} -> {address}: link-local / cloud metadata addresses are never probed")
        if address.is_multicast or address.is_unspecified:
            raise EgressRefused(f"{host} -> {address}: multicast, unspecified and reserved addresses are refused")
        if address.is_loopback:  # before is_reserved: ::1 lies in the reserved ::/8
            if not self.allow_loopback:
                raise EgressRefused(f"{host} -> {address}: loopback targets are not allowed by the egress policy")
            return
        if address.is_reserved:
            raise EgressRefused(f"{host} -> {address}: multicast, unspecified and reserved addresses are refused")
        if _is_private(address) and not self.allow_private:
            raise EgressRefused(f"{host} -> {address}: private addresses are not allowed by the egress policy")

    @staticmethod
    def is_internal(address: IPAddress) -> bool:
        """Loopback, private or link-local (metadata): an address inside the network this process runs in."""
        return not EgressPolicy().may_disclose(address)

    def may_disclose(self, address: IPAddress) -> bool:
        """Whether a DNS answer may be shown: internal addresses only where the policy lets us connect to them.
        Multicast, reserved and unspecified answers (0.0.0.0 from a sinkhole resolver) reveal nothing inside."""
        address = parse_ip(str(address)) or address
        if is_metadata_address(address):
            return False
        if address.is_loopback:
            return self.allow_loopback
        if address.is_unspecified or address.is_multicast or address.is_reserved:
            return True  # before the private ranges: Python counts 0.0.0.0/8 and 240.0.0.0/4 among them
        return self.allow_private or not _is_private(address)

    def check_name(self, host: str) -> None:
        """Refuse names that are always internal, before asking DNS."""
        name = host.lower().rstrip(".")
        if name in METADATA_HOSTNAMES:
            raise EgressRefused(f"{host}: cloud metadata hosts are never probed")
        internal = parse_ip(name) is None and (name.endswith(_CLUSTER_SUFFIXES) or "." not in name)
        if internal and not self.allow_private:
            raise EgressRefused(f"{host}: cluster-internal names are not allowed by the egress policy")


class EgressGuard:
    """Resolves targets and returns only addresses the policy allows (all of them, or an error)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int, *, family: int = socket.AF_UNSPEC, type_: int = socket.SOCK_STREAM
    ) -> list[tuple[int, Any]]:
        """(family, sockaddr) pairs to connect to; raises EgressRefused or OSError (no such host)."""
        literal = parse_ip(host)
        if literal is not None:
            self.policy.check_address(literal, host)
            family_of = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            sockaddr: Any = (str(literal), port, 0, 0) if family_of == socket.AF_INET6 else (str(literal), port)
            return [(family_of, sockaddr)]
        self.policy.check_name(host)
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, family=family, type=type_)
        if not infos:
            raise OSError(f"{host}: no addresses")
        # One refused answer refuses the whole name: mixing public and private answers is a rebinding trick.
        for info in infos:
            self.policy.check_address(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]), host)
        seen: set[Any] = set()
        unique: list[tuple[int, Any]] = []
        for fam, _, _, _, addr in infos:
            if addr not in seen:
                seen.add(addr)
                unique.append((fam, addr))
        return unique

    def check_url_host(self, host: str) -> None:
        """For IP literals aiohttp never calls the resolver: check them before the request."""
        literal = parse_ip(host)
        if literal is not None:
            self.policy.check_address(literal, host)
        else:
            self.policy.check_name(host)


# The addresses the guard let connections of the current task reach, while `reached_addresses` collects them.
_REACHED: ContextVar[list[IPAddress] | None] = ContextVar("spectra_egress_reached", default=None)


@contextlib.contextmanager
def reached_addresses() -> Iterator[list[IPAddress]]:
    """Every address a guarded session connects to inside the block (in this task): what an error was about."""
    reached: list[IPAddress] = []
    token = _REACHED.set(reached)
    try:
        yield reached
    finally:
        _REACHED.reset(token)


def _note_reached(address: IPAddress) -> None:
    reached = _REACHED.get()
    if reached is not None:
        reached.append(address)


def refusal_in(error: BaseException) -> EgressRefused | None:
    """The EgressRefused behind `error`, however aiohttp wrapped it (ClientConnectorDNSError and the like)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, EgressRefused):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that applies the egress policy to every address it hands to the connector."""

    def __init__(self, guard: EgressGuard) -> None:
        self.guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results: list[ResolveResult] = []
        reached = _REACHED.get()  # None on the probes' path: nothing to note
        for fam, addr in await self.guard.resolve(host, port, family=family):
            if reached is not None:
                reached.append(ipaddress.ip_address(str(addr[0]).split("%", 1)[0]))
            results.append(
                ResolveResult(
                    hostname=host,
                    host=addr[0],
                    port=addr[1],
                    family=fam,
                    proto=0,
                    flags=socket.AI_NUMERICHOST,
                )
            )
        return results

    async def close(self) -> None:
        return None


def guarded_session(guard: EgressGuard, *, timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
    """An aiohttp session whose every connection passes `guard`: names through `GuardedResolver` (checked at
    connect time, never cached), IP-literal hosts (which aiohttp does not resolve) by a middleware on every
    request. A fresh connection per request: a pooled one would skip the check. No proxy or netrc from the
    environment (a proxy would connect for us, past the guard), no cookies."""
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(guard), use_dns_cache=False, force_close=True)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        middlewares=(_literal_host_check(guard),),
    )


def _literal_host_check(guard: EgressGuard) -> aiohttp.ClientMiddlewareType:
    async def check(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
        host = request.url.host or ""
        if request.url.scheme not in ("http", "https"):
            raise EgressRefused(f"{request.url.scheme}: only http and https URLs are requested")
        guard.check_url_host(host)
        literal = parse_ip(host)
        if literal is not None:
            _note_reached(literal)
        return await handler(request)

    return check


def first_address(addresses: Iterable[tuple[int, Any]]) -> tuple[int, Any]:
    for item in addresses:
        return item
    raise OSError("no addresses")
