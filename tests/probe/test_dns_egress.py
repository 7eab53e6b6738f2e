"""dns checks under the egress policy: what a check may ask and tell, against a real dnsmasq on 127.0.0.1.

dnsmasq stands in for the system resolver (a cluster's DNS service knows the cluster's names and answers
with its internal addresses); the guard does not judge the system resolver, only what a check says.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from spectra.probe.checks import run_check
from spectra.probe.context import CheckContext
from spectra.probe.result import CheckResult, Status

from .servers import LOCALHOST, check_context, dnsmasq, request

HIDDEN = "resolves to an address the egress policy does not allow"

RECORDS = [
    "--local=/test/",
    "--local=/cluster.local/",
    "--address=/public.test/93.184.216.34",
    "--address=/internal.test/10.0.0.5",
    "--address=/loopback.test/127.0.0.1",
    "--address=/metadata.test/169.254.169.254",
    "--address=/alibaba.test/100.100.100.200",
    "--host-record=mixed.test,93.184.216.34",
    "--host-record=mixed.test,10.0.0.6",
    "--host-record=dual.test,93.184.216.34,fd12::6",  # public IPv4, private (ULA) IPv6
    "--host-record=mapped.test,::ffff:127.0.0.1",
    "--host-record=sixtofour.test,2002:a9fe:a9fe::",  # 6to4 carrying the metadata address
    "--address=/sinkhole.test/0.0.0.0",  # what a blocking resolver answers: reveals nothing inside
    "--txt-record=internal.test,v=spf1 ip4:10.0.0.0/8 -all",  # text is the zone's public data
    "--address=/db.prod.svc.cluster.local/10.96.7.7",
]


@pytest.fixture(scope="module")
def resolver_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with dnsmasq(RECORDS, tmp_path_factory.mktemp("dnsmasq-egress")) as port:
        yield port


async def ask_system_resolver(port: int, *, standalone: bool, **block: Any) -> CheckResult:
    async with check_context(standalone=standalone) as ctx:
        _use_as_system_resolver(ctx, port)
        return await run_check(request("dns", block), ctx)


def _use_as_system_resolver(ctx: CheckContext, port: int) -> None:
    # /etc/resolv.conf's server is not on 127.0.0.1: stand in for it through the context's cache.
    ctx.shared("dns.system_nameservers", lambda: [(LOCALHOST, port)])


def _told(result: CheckResult) -> str:
    return f"{result.reason} {result.facts!r}"


@pytest.mark.parametrize(
    ("name", "record_type", "inside"),
    [
        ("internal.test", "A", "10.0.0.5"),
        ("loopback.test", "A", "127.0.0.1"),
        ("metadata.test", "A", "169.254.169.254"),
        ("alibaba.test", "A", "100.100.100.200"),
        ("mixed.test", "A", "10.0.0.6"),
        ("dual.test", "AAAA", "fd12::6"),
        ("mapped.test", "AAAA", "127.0.0.1"),
        ("sixtofour.test", "AAAA", "2002:a9fe:a9fe::"),
    ],
)
@pytest.mark.parametrize("expected", [None, "guess"], ids=["no-expectation", "expecting-the-address"])
async def test_strict_policy_hides_internal_answers(
    resolver_port: int, name: str, record_type: str, inside: str, expected: str | None
) -> None:
    expect = {"values": [inside]} if expected else {}
    result = await ask_system_resolver(
        resolver_port, standalone=False, name=name, recordType=record_type, expect=expect
    )
    # DOWN even when the guess was right: an UP would confirm the internal address as well as showing it.
    assert result.status is Status.DOWN, result
    assert result.reason == f"{name} {record_type}: {HIDDEN}"
    assert "answers" not in result.facts
    assert inside not in _told(result)
    assert "127.0.0.1" not in _told(result)  # nor the resolver's own (loopback) address
    assert result.facts["server"] == "the system resolver"


@pytest.mark.parametrize(
    ("name", "record_type", "answer"),
    [
        ("public.test", "A", "93.184.216.34"),
        ("dual.test", "A", "93.184.216.34"),  # its AAAA is private, but this question did not ask for it
        ("sinkhole.test", "A", "0.0.0.0"),
        ("internal.test", "TXT", "v=spf1 ip4:10.0.0.0/8 -all"),
    ],
)
async def test_strict_policy_tells_public_answers(resolver_port: int, name: str, record_type: str, answer: str) -> None:
    result = await ask_system_resolver(
        resolver_port, standalone=False, name=name, recordType=record_type, expect={"values": [answer]}
    )
    assert result.status is Status.UP, result
    assert result.facts["answers"] == [answer]


@pytest.mark.parametrize(
    "name", ["db.prod.svc.cluster.local", "kubernetes.default.svc", "redis", "metadata.google.internal"]
)
async def test_strict_policy_does_not_ask_about_cluster_names(resolver_port: int, name: str) -> None:
    result = await ask_system_resolver(resolver_port, standalone=False, name=name, recordType="A")
    assert result.status is Status.DOWN
    assert result.reason.startswith("refused by the egress policy"), result.reason
    assert "10.96.7.7" not in _told(result)
    assert "rcode" not in result.facts  # not asked: existence is not told either


@pytest.mark.parametrize(
    ("name", "record_type", "answer"),
    [
        ("internal.test", "A", "10.0.0.5"),
        ("loopback.test", "A", "127.0.0.1"),
        ("db.prod.svc.cluster.local", "A", "10.96.7.7"),
        ("dual.test", "AAAA", "fd12::6"),
    ],
)
async def test_standalone_policy_tells_private_answers(
    resolver_port: int, name: str, record_type: str, answer: str
) -> None:
    result = await ask_system_resolver(
        resolver_port, standalone=True, name=name, recordType=record_type, expect={"values": [answer]}
    )
    assert result.status is Status.UP, result
    assert result.facts["answers"] == [answer]
    assert result.facts["server"] == f"{LOCALHOST}:{resolver_port}"


@pytest.mark.parametrize(("name", "record_type"), [("metadata.test", "A"), ("sixtofour.test", "AAAA")])
async def test_standalone_policy_still_hides_metadata_answers(resolver_port: int, name: str, record_type: str) -> None:
    result = await ask_system_resolver(resolver_port, standalone=True, name=name, recordType=record_type)
    assert result.status is Status.DOWN
    assert result.reason == f"{name} {record_type}: {HIDDEN}"
    assert "answers" not in result.facts
