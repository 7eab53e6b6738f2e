"""dns checks against a real dnsmasq on 127.0.0.1 that knows only the records below."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from spectra.api.monitor import DnsCheck
from spectra.probe.checks import run_check
from spectra.probe.checks.dns import normalize, split_server
from spectra.probe.result import Status
from tests.support.processes import free_port

from .servers import LOCALHOST, METADATA, check_context, dnsmasq, request, unvalidated_request

BIG_TXT = ["a" * 200, "b" * 200, "c" * 200]  # > 512 bytes: truncated over UDP, so it comes over TCP

RECORDS = [
    "--local=/test/",  # everything else under .test is NXDOMAIN (there are no upstream servers)
    "--address=/a.test/192.0.2.10",
    "--host-record=host.test,192.0.2.20,2001:db8::20",
    "--cname=www.test,host.test",
    "--mx-host=mail.test,mx1.test,10",
    "--mx-host=mail.test,mx2.test,20",
    "--txt-record=txt.test,v=spf1 -all",
    "--txt-record=big.test," + ",".join(BIG_TXT),
    "--srv-host=_sip._udp.test,sip.test,5060,0,5",
    "--caa-record=caa.test,0,issue,letsencrypt.org",
]


@pytest.fixture(scope="module")
def dns_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with dnsmasq(RECORDS, tmp_path_factory.mktemp("dnsmasq")) as port:
        yield port


def ask(port: int, name: str, record_type: str, **expect: Any) -> dict[str, Any]:
    return {"name": name, "recordType": record_type, "server": f"{LOCALHOST}:{port}", "expect": expect}


@pytest.mark.parametrize(
    ("name", "record_type", "expect", "status", "reason"),
    [
        pytest.param("a.test", "A", {"values": ["192.0.2.10"]}, Status.UP, "a.test A: 1 answer", id="A"),
        pytest.param("a.test", "A", {}, Status.UP, "a.test A: 1 answer", id="A-any"),
        pytest.param(
            "a.test",
            "A",
            {"values": ["192.0.2.99"]},
            Status.DOWN,
            "a.test A: expected '192.0.2.99', got 192.0.2.10",
            id="A-wrong",
        ),
        pytest.param("www.test", "A", {"values": ["192.0.2.20"]}, Status.UP, "www.test A: 1 answer", id="A-via-cname"),
        pytest.param(
            "host.test",
            "AAAA",
            {"values": ["2001:DB8:0:0::20"]},
            Status.UP,
            "host.test AAAA: 1 answer",
            id="AAAA-any-spelling",
        ),
        pytest.param(
            "host.test",
            "AAAA",
            {"values": ["2001:db8::21"]},
            Status.DOWN,
            "host.test AAAA: expected '2001:db8::21', got 2001:db8::20",
            id="AAAA-wrong",
        ),
        pytest.param(
            "mail.test", "MX", {"values": ["mx1.test", "20 MX2.test."]}, Status.UP, "mail.test MX: 2 answers", id="MX"
        ),
        pytest.param(
            "mail.test", "MX", {"values": ["mx3.test"]}, Status.DOWN, "mail.test MX: expected 'mx3.test'", id="MX-wrong"
        ),
        pytest.param("txt.test", "TXT", {"values": ["v=spf1 -all"]}, Status.UP, "txt.test TXT: 1 answer", id="TXT"),
        pytest.param(
            "txt.test", "TXT", {"values": ['"v=spf1 -all"']}, Status.UP, "txt.test TXT: 1 answer", id="TXT-quoted"
        ),
        pytest.param(
            "txt.test",
            "TXT",
            {"values": ["V=SPF1 -ALL"]},
            Status.DOWN,
            "txt.test TXT: expected 'V=SPF1 -ALL', got v=spf1 -all",
            id="TXT-is-case-sensitive",
        ),
        pytest.param(
            "www.test", "CNAME", {"values": ["host.test."]}, Status.UP, "www.test CNAME: 1 answer", id="CNAME"
        ),
        pytest.param(
            "www.test",
            "CNAME",
            {"values": ["a.test"]},
            Status.DOWN,
            "www.test CNAME: expected 'a.test', got host.test.",
            id="CNAME-wrong",
        ),
        pytest.param(
            "_sip._udp.test",
            "SRV",
            {"values": ["sip.test", "0 5 5060 sip.test."]},
            Status.UP,
            "_sip._udp.test SRV: 1 answer",
            id="SRV",
        ),
        pytest.param(
            "caa.test",
            "CAA",
            {"values": ["letsencrypt.org", '0 issue "letsencrypt.org"']},
            Status.UP,
            "caa.test CAA: 1 answer",
            id="CAA",
        ),
        pytest.param(
            "nope.test",
            "A",
            {"rcode": "NXDOMAIN"},
            Status.UP,
            "nope.test A: NXDOMAIN as expected",
            id="NXDOMAIN-expected",
        ),
        pytest.param(
            "nope.test", "A", {}, Status.DOWN, "nope.test A: NXDOMAIN, expected NOERROR", id="NXDOMAIN-unexpected"
        ),
        pytest.param(
            "a.test",
            "A",
            {"rcode": "NXDOMAIN"},
            Status.DOWN,
            "a.test A: NOERROR, expected NXDOMAIN",
            id="NOERROR-unexpected",
        ),
        pytest.param(
            "elsewhere.example", "A", {}, Status.DOWN, "elsewhere.example A: REFUSED, expected NOERROR", id="REFUSED"
        ),
    ],
)
async def test_dns_answers(
    dns_port: int, name: str, record_type: str, expect: dict[str, Any], status: Status, reason: str
) -> None:
    async with check_context() as ctx:
        result = await run_check(request("dns", ask(dns_port, name, record_type, **expect)), ctx)
    assert result.status is status, result
    assert result.reason.startswith(reason), result.reason
    assert result.facts["server"] == f"{LOCALHOST}:{dns_port}"
    assert result.facts["rcode"] in {"NOERROR", "NXDOMAIN", "REFUSED"}


async def test_answers_in_facts(dns_port: int) -> None:
    async with check_context() as ctx:
        result = await run_check(request("dns", ask(dns_port, "mail.test", "MX")), ctx)
    assert sorted(result.facts["answers"]) == ["10 mx1.test.", "20 mx2.test."]
    assert result.facts["rcode"] == "NOERROR"
    assert result.facts["tcp"] is False


async def test_truncated_answer_is_retried_over_tcp(dns_port: int) -> None:
    async with check_context() as ctx:
        result = await run_check(request("dns", ask(dns_port, "big.test", "TXT", values=["".join(BIG_TXT)])), ctx)
    assert result.status is Status.UP, result
    assert result.facts["tcp"] is True


async def test_system_resolver_is_used_without_server(dns_port: int) -> None:
    # Stand in for /etc/resolv.conf (whose server is not on 127.0.0.1) through the context's cache.
    async with check_context() as ctx:
        ctx.shared("dns.system_nameservers", lambda: [(LOCALHOST, dns_port)])
        result = await run_check(request("dns", {"name": "a.test", "expect": {"values": ["192.0.2.10"]}}), ctx)
    assert result.status is Status.UP, result
    assert result.facts["server"] == f"{LOCALHOST}:{dns_port}"


async def test_server_port_unreachable() -> None:
    port = free_port(socket.SOCK_DGRAM)
    async with check_context() as ctx:
        result = await run_check(request("dns", ask(port, "a.test", "A")), ctx)
    assert result.status is Status.DOWN
    assert result.reason == f"{LOCALHOST}:{port}: port unreachable"


@pytest.mark.parametrize("server", [METADATA, f"{METADATA}:53", f"[::ffff:{METADATA}]:53"])
async def test_guard_refuses_metadata_server(server: str) -> None:
    async with check_context() as ctx:
        result = await run_check(
            unvalidated_request("dns", DnsCheck.model_construct(name="a.test", server=server)), ctx
        )
    assert result.status is Status.DOWN
    assert result.reason.startswith("refused by the egress policy"), result.reason
    assert "metadata" in result.reason


async def test_default_policy_refuses_loopback_server_that_standalone_allows(dns_port: int) -> None:
    block = ask(dns_port, "a.test", "A")
    async with check_context(standalone=False) as ctx:
        refused = await run_check(request("dns", block), ctx)
    async with check_context() as ctx:
        allowed = await run_check(request("dns", block), ctx)
    assert refused.status is Status.DOWN
    assert "loopback targets are not allowed" in refused.reason
    assert allowed.status is Status.UP


@pytest.mark.parametrize(
    ("server", "parts"),
    [
        ("10.0.0.53", ("10.0.0.53", 53)),
        ("10.0.0.53:5353", ("10.0.0.53", 5353)),
        ("dns.example.com:53", ("dns.example.com", 53)),
        ("[2001:db8::53]:5353", ("2001:db8::53", 5353)),
        ("2001:db8::53", ("2001:db8::53", 53)),
    ],
)
def test_split_server(server: str, parts: tuple[str, int]) -> None:
    assert split_server(server) == parts


@pytest.mark.parametrize(
    ("record_type", "text", "normal"),
    [
        ("A", " 192.0.2.1 ", "192.0.2.1"),
        ("AAAA", "2001:DB8:0::1", "2001:db8::1"),
        ("CNAME", "Host.Example.COM.", "host.example.com"),
        ("MX", "10 Mail.Example.com.", "10 mail.example.com"),
        ("TXT", '"Hello World"', "Hello World"),
        ("TXT", "Hello World", "Hello World"),
        ("CAA", '0 ISSUE "letsencrypt.org"', "0 issue letsencrypt.org"),
    ],
)
def test_normalize(record_type: str, text: str, normal: str) -> None:
    assert normalize(record_type, text) == normal
