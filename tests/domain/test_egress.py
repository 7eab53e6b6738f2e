"""The egress guard: what probes may connect to, checked on the address actually used.

Name lookups go to a stub of the event loop's getaddrinfo (a table per test), so nothing leaves the
machine and answers can change between lookups the way a rebinding DNS server's would.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from spectra.api.addresses import IPAddress
from spectra.domain.egress import EgressGuard, EgressPolicy, EgressRefused
from spectra.probe.checks import run_check
from spectra.probe.context import CheckContext
from spectra.probe.result import Status
from tests.probe.servers import ServeApp, request
from tests.support.fake_dns import FakeDns

# --- refused everywhere, refused by default --------------------------------------------------------

METADATA_SPELLINGS = [
    "169.254.169.254",
    "2852039166",  # decimal
    "0xA9FEA9FE",  # hex
    "0xa9.0xfe.0xa9.0xfe",
    "0251.0376.0251.0376",  # octal
    "169.254.43518",  # short forms
    "169.16689662",
    "::ffff:169.254.169.254",  # IPv4-mapped IPv6
    "::ffff:a9fe:a9fe",
    "[::ffff:169.254.169.254]",
    "64:ff9b::a9fe:a9fe",  # NAT64
    "64:ff9b::169.254.169.254",
    "fd00:ec2::254",  # AWS IMDS over IPv6
    "2002:a9fe:a9fe::",  # 6to4 carrying metadata
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo carrying metadata
    "100.100.100.200",  # Alibaba
    "168.63.129.16",  # Azure WireServer
    "192.0.0.192",  # Oracle
    "169.254.0.1",  # the rest of link-local
    "fe80::1",
    "metadata.google.internal",
    "METADATA.GOOGLE.INTERNAL.",
    "metadata",
]
NEVER = [
    "0.0.0.0",
    "::",
    "224.0.0.1",
    "239.255.255.250",
    "ff02::1",
    "240.0.0.1",  # reserved
    "255.255.255.255",
]
LOOPBACK = ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "0x7f000001", "localhost", "2002:7f00:1::"]
PRIVATE = [
    *("10.0.0.1", "10.255.0.7", "172.16.0.1", "172.31.255.254", "192.168.1.1", "100.64.0.1", "fc00::1", "fd12::1"),
    "2002:a00:1::",  # 6to4 carrying 10.0.0.1
]
CLUSTER_NAMES = [
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "redis",
    "db.internal",
    "printer.local",
]

# Standalone lookups of the names above answer from this table (loopback and private addresses).
STANDALONE_DNS = {
    "localhost": ["127.0.0.1"],
    "kubernetes.default.svc": ["10.96.0.1"],
    "kubernetes.default.svc.cluster.local": ["10.96.0.1"],
    "redis": ["10.0.0.7"],
    "db.internal": ["172.20.0.5"],
    "printer.local": ["192.168.1.20"],
}


def guard(policy: EgressPolicy | None = None) -> EgressGuard:
    return EgressGuard(policy or EgressPolicy())


@pytest.mark.parametrize("host", METADATA_SPELLINGS + NEVER + LOOPBACK + PRIVATE + CLUSTER_NAMES)
async def test_default_policy_refuses(host: str, dns: FakeDns) -> None:
    for name, answer in STANDALONE_DNS.items():
        dns.set(name, answer)
    with pytest.raises(EgressRefused):
        guard().check_url_host(host)
    with pytest.raises(EgressRefused):
        await guard().resolve(host, 80)
    assert dns.lookups == []  # names are refused before DNS is asked


@pytest.mark.parametrize("host", METADATA_SPELLINGS + NEVER)
async def test_standalone_still_refuses_metadata_and_non_unicast(host: str, dns: FakeDns) -> None:
    with pytest.raises(EgressRefused):
        guard(EgressPolicy.standalone()).check_url_host(host)
    with pytest.raises(EgressRefused):
        await guard(EgressPolicy.standalone()).resolve(host, 80)


@pytest.mark.parametrize("host", LOOPBACK + PRIVATE + CLUSTER_NAMES)
async def test_standalone_allows_loopback_private_and_cluster_names(host: str, dns: FakeDns) -> None:
    for name, answer in STANDALONE_DNS.items():
        dns.set(name, answer)
    standalone = guard(EgressPolicy.standalone())
    standalone.check_url_host(host)
    addresses = await standalone.resolve(host, 8080)
    assert addresses
    for family, sockaddr in addresses:
        assert family in (socket.AF_INET, socket.AF_INET6)
        assert sockaddr[1] == 8080
        ipaddress.ip_address(sockaddr[0])  # numeric: the connection needs no second lookup


@pytest.mark.parametrize(
    ("host", "answer"),
    [
        ("metadata-alias.example.com", ["169.254.169.254"]),  # a CNAME to metadata looks like this
        ("imds6.example.com", ["fd00:ec2::254"]),
        ("mapped.example.com", ["::ffff:169.254.169.254"]),
        ("nat64.example.com", ["64:ff9b::a9fe:a9fe"]),  # a DNS64 resolver's answer for 169.254.169.254
        ("zero.example.com", ["0.0.0.0"]),
    ],
)
async def test_names_answering_metadata_are_refused_by_every_policy(dns: FakeDns, host: str, answer: list[str]) -> None:
    dns.set(host, answer)
    for policy in (EgressPolicy(), EgressPolicy.standalone()):
        guard(policy).check_url_host(host)  # the name itself looks harmless...
        with pytest.raises(EgressRefused, match=r"never probed|refused"):
            await guard(policy).resolve(host, 80)  # ...its answer is not


async def test_public_answers_pass_the_default_policy(dns: FakeDns) -> None:
    dns.set("example.com", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
    addresses = await guard().resolve("example.com", 443)
    assert addresses == [
        (socket.AF_INET, ("93.184.216.34", 443)),
        (socket.AF_INET6, ("2606:2800:220:1:248:1893:25c8:1946", 443, 0, 0)),
    ]


@pytest.mark.parametrize(
    "answer",
    [
        ["93.184.216.34", "10.0.0.5"],
        ["93.184.216.34", "127.0.0.1"],
        ["93.184.216.34", "169.254.169.254"],
        ["2606:2800:220:1:248:1893:25c8:1946", "fc00::5"],
    ],
)
async def test_a_name_with_public_and_private_answers_is_refused(dns: FakeDns, answer: list[str]) -> None:
    dns.set("mixed.example.com", answer)
    with pytest.raises(EgressRefused, match=re.escape(answer[1])):
        await guard().resolve("mixed.example.com", 80)


async def test_dns_answer_that_changes_is_checked_each_time(dns: FakeDns) -> None:
    dns.set("rebind.example.com", ["93.184.216.34"], ["169.254.169.254"])
    first = await guard().resolve("rebind.example.com", 80)
    assert first == [(socket.AF_INET, ("93.184.216.34", 80))]
    with pytest.raises(EgressRefused, match=re.escape("169.254.169.254")):
        await guard().resolve("rebind.example.com", 80)


# --- through the http checker ----------------------------------------------------------------------


@dataclass(frozen=True)
class AllowOnly(EgressPolicy):
    """The default (cluster) policy plus exactly the addresses in `allowed` (the test servers)."""

    allowed: frozenset[str] = field(default_factory=frozenset)

    def check_address(self, address: IPAddress, host: str) -> None:
        if str(address) in self.allowed:
            return
        super().check_address(address, host)


SEEN = web.AppKey("seen", list[str])


def redirector() -> web.Application:
    """/goto?to=URL redirects anywhere; /ok answers; `app[SEEN]` records every path requested."""

    async def goto(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    @web.middleware
    async def remember(request: web.Request, handler: Any) -> web.StreamResponse:
        request.app[SEEN].append(request.path)
        response: web.StreamResponse = await handler(request)
        return response

    app = web.Application(middlewares=[remember])
    app[SEEN] = []
    app.router.add_get("/goto", goto)
    app.router.add_get("/ok", ok)
    return app


@pytest.fixture
async def ctx() -> AsyncIterator[CheckContext]:
    context = CheckContext(egress=EgressGuard(AllowOnly(allowed=frozenset({"127.0.0.1"}))))
    try:
        yield context
    finally:
        await context.aclose()


def http(url: str) -> Any:
    return request("http", {"url": url})


async def test_the_allowed_server_itself_passes(serve_app: ServeApp, ctx: CheckContext) -> None:
    base = await serve_app(redirector())
    result = await run_check(http(f"{base}/goto?to={base}/ok"), ctx)
    assert (result.status, result.reason) == (Status.UP, "HTTP 200")
    assert result.facts["redirects"] == 1


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://2852039166/", "metadata"),
        ("http://0xA9FEA9FE/", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://10.0.0.1/", "private"),
        ("http://192.168.0.1:8080/", "private"),
        ("http://[fc00::1]/", "private"),
        ("http://127.0.0.2:{port}/ok", "loopback"),
        ("http://[::1]:{port}/ok", "loopback"),
        ("http://localhost:{port}/ok", "cluster-internal"),
        ("http://kubernetes.default.svc/", "cluster-internal"),
        ("http://internal.example.com:{port}/ok", "private"),  # a name whose answer is private
        ("http://loop.example.com:{port}/ok", "loopback"),  # a name answering another loopback address
        ("ftp://127.0.0.1/", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
    ],
)
async def test_redirects_to_refused_targets_are_refused(
    serve_app: ServeApp, ctx: CheckContext, dns: FakeDns, target: str, why: str
) -> None:
    dns.set("internal.example.com", ["10.1.2.3"])
    dns.set("loop.example.com", ["127.0.0.2"])
    decoy_app = redirector()
    decoy = await serve_app(decoy_app, host="127.0.0.2")  # must never be reached
    port = decoy.rsplit(":", 1)[1]
    app = redirector()
    base = await serve_app(app)
    result = await run_check(http(f"{base}/goto?to={target.format(port=port)}"), ctx)
    assert result.status is Status.DOWN
    assert result.reason.startswith("refused by the egress policy: "), result.reason
    assert why in result.reason
    assert app[SEEN] == ["/goto"]  # the first hop was made...
    assert decoy_app[SEEN] == []  # ...the refused one was not


async def test_dns_rebinding_is_caught_at_connect_time(serve_app: ServeApp, ctx: CheckContext, dns: FakeDns) -> None:
    """First answer: the allowed server. Every later answer: the metadata address.

    The first check passes with exactly one lookup: the connection went to the checked answer, not to
    a second lookup of the name (which would have said 169.254.169.254). The next check is refused.
    """
    base = await serve_app(redirector())
    port = base.rsplit(":", 1)[1]
    dns.set("rebind.example.com", ["127.0.0.1"], ["169.254.169.254"])
    first = await run_check(http(f"http://rebind.example.com:{port}/ok"), ctx)
    assert (first.status, first.reason) == (Status.UP, "HTTP 200")
    assert dns.lookups == ["rebind.example.com"]
    assert "dns_ms" in first.facts["timings"]

    second = await run_check(http(f"http://rebind.example.com:{port}/ok"), ctx)
    assert second.status is Status.DOWN
    assert second.reason.startswith("refused by the egress policy: ")
    assert "169.254.169.254" in second.reason
    assert dns.lookups == ["rebind.example.com"] * 2


async def test_a_name_answering_the_allowed_server_and_metadata_is_refused(
    serve_app: ServeApp, ctx: CheckContext, dns: FakeDns
) -> None:
    app = redirector()
    base = await serve_app(app)
    port = base.rsplit(":", 1)[1]
    dns.set("both.example.com", ["127.0.0.1", "169.254.169.254"])
    result = await run_check(http(f"http://both.example.com:{port}/ok"), ctx)
    assert result.status is Status.DOWN
    assert "169.254.169.254" in result.reason
    assert app[SEEN] == []  # refused before any connection


async def test_a_name_without_answers_is_down(ctx: CheckContext, dns: FakeDns) -> None:
    result = await run_check(http("http://nowhere.example.com/"), ctx)
    assert (result.status, result.reason) == (Status.DOWN, "DNS lookup failed: Name or service not known")
    assert dns.lookups == ["nowhere.example.com"]


# --- what may be told, and what counts as inside (DNS answers, delivery errors) ------------------------


@pytest.mark.parametrize(
    ("address", "strict", "standalone", "internal"),
    [
        ("93.184.216.34", True, True, False),
        ("2606:2800:220:1::1", True, True, False),
        ("10.0.0.5", False, True, True),
        ("100.64.0.1", False, True, True),  # CGNAT
        ("fd12::6", False, True, True),  # ULA
        ("127.0.0.1", False, True, True),
        ("::1", False, True, True),
        ("::ffff:127.0.0.1", False, True, True),  # judged by the IPv4 address it carries
        ("2002:7f00:1::", False, True, True),  # 6to4 of loopback
        ("169.254.169.254", False, False, True),  # metadata: never told
        ("100.100.100.200", False, False, True),
        ("2002:a9fe:a9fe::", False, False, True),
        ("0.0.0.0", True, True, False),  # sinkhole answers reveal nothing inside
        ("224.0.0.1", True, True, False),
        ("240.0.0.1", True, True, False),
    ],
)
def test_what_a_policy_discloses_and_calls_internal(
    address: str, strict: bool, standalone: bool, internal: bool
) -> None:
    ip = ipaddress.ip_address(address)
    assert EgressPolicy().may_disclose(ip) is strict
    assert EgressPolicy.standalone().may_disclose(ip) is standalone
    assert EgressPolicy().is_internal(ip) is internal
