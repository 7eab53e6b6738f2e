"""DNS check: ask one server for one record type; judge the response code and the answers.

Answers are compared in a normalised text form so users can write values the way they read them:
names without trailing dots and in any case, TXT without quotes, IPv6 in any spelling, and MX / SRV /
CAA by their target alone (`mail.example.com`) or in full (`10 mail.example.com`).

A `server` the user names passes the egress guard. The system resolver (from /etc/resolv.conf) does
not: it is the machine's own infrastructure, the one the guard itself asks for every name, and it is
often at an address the guard refuses to probe (127.0.0.53, a cluster DNS service, 169.254.169.253).

The same policy decides what a check may tell (docs/probe.md, "DNS checks under the egress policy"):
names it calls cluster-internal are not asked at all, an A/AAAA answer at an address it refuses makes
the check DOWN without showing any answer (whatever was expected, so the check cannot be used to
confirm a guess), and the system resolver's own address is shown only where the policy would allow it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import time
from typing import Any

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.inet
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.resolver

from spectra.domain.egress import EgressPolicy, first_address
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.result import CheckResult
from spectra.probe.sockets import elapsed_ms, format_address

_SERVER = re.compile(r"\[(?P<v6>.+)\]:(?P<v6port>\d+)|(?P<host>[^:\[\]]+):(?P<port>\d+)")
_SHOWN_ANSWERS = 5  # in the reason; facts hold them all
_SYSTEM_RESOLVER = "the system resolver"  # shown instead of its address where the policy hides it


def split_server(server: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address -> (host, port)."""
    match = _SERVER.fullmatch(server)
    if match is None:
        return server.strip("[]"), 53
    if match["v6"] is not None:
        return match["v6"], int(match["v6port"])
    return match["host"], int(match["port"])


def system_nameservers(ctx: CheckContext) -> list[tuple[str, int]]:
    """Nameservers from /etc/resolv.conf, read once per context."""

    def read() -> list[tuple[str, int]]:
        resolver = dns.resolver.Resolver(configure=True)
        found = []
        for entry in resolver.nameservers:
            with contextlib.suppress(ValueError):
                found.append((str(ipaddress.ip_address(str(entry))), resolver.port))
        return found

    servers: list[tuple[str, int]] = ctx.shared("dns.system_nameservers", read)
    return servers


def normalize(record_type: str, text: str) -> str:
    """The comparable form of an answer or expected value of `record_type`."""
    text = text.strip()
    if record_type == "TXT":
        return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text
    if record_type in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            return text
    if record_type == "CAA":
        parts = text.split(None, 2)
        if len(parts) == 3:
            return f"{parts[0]} {parts[1].lower()} {parts[2].strip(chr(34))}"
        return text.strip('"')
    # Every other type is made of names and numbers: names compare without case and trailing dot.
    return " ".join(token.rstrip(".").lower() for token in text.split())


def display(record_type: str, rdata: dns.rdata.Rdata) -> str:
    if record_type == "TXT":
        return b"".join(rdata.strings).decode("utf-8", "replace")  # type: ignore[attr-defined]
    return str(rdata.to_text())


def answer_forms(record_type: str, rdata: dns.rdata.Rdata) -> set[str]:
    """Every normalised spelling an expected value may use for this answer."""
    forms = {normalize(record_type, display(record_type, rdata))}
    if record_type == "MX":
        forms.add(normalize(record_type, rdata.exchange.to_text()))  # type: ignore[attr-defined]
    elif record_type == "SRV":
        forms.add(normalize(record_type, rdata.target.to_text()))  # type: ignore[attr-defined]
    elif record_type == "CAA":
        forms.add(rdata.value.decode("utf-8", "replace"))  # type: ignore[attr-defined]
    return forms


def _system_server_text(server: tuple[str, int], policy: EgressPolicy) -> str:
    """The system resolver's address where the policy lets checks reach it, else just what it is (a
    cluster DNS service's address is the cluster's own)."""
    address = ipaddress.ip_address(server[0])
    return format_address(server) if policy.may_disclose(address) else _SYSTEM_RESOLVER


def _addresses(rdatas: list[dns.rdata.Rdata]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses among A / AAAA answers (other types hold names and text: public data of the zone)."""
    found = []
    for rdata in rdatas:
        if rdata.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            found.append(ipaddress.ip_address(rdata.address))  # type: ignore[attr-defined]
    return found


async def _ask(
    query: dns.message.Message, servers: list[tuple[str, int]], timeout: float
) -> tuple[dns.message.Message, bool, tuple[str, int]]:
    """The first server that answers wins; errors of all but the last are passed over."""
    last: Exception | None = None
    backend = dns.asyncbackend.get_backend("asyncio")
    for where, port in servers:
        try:
            # dnspython's own UDP socket is unconnected, so a closed port would only show as a timeout;
            # a connected one hears the ICMP port-unreachable answer as ConnectionRefusedError.
            family = dns.inet.af_for_address(where)
            sock = await backend.make_socket(family, socket.SOCK_DGRAM, 0, None, (where, port))  # type: ignore[no-untyped-call]
            try:
                response, used_tcp = await dns.asyncquery.udp_with_fallback(
                    query, where, timeout=timeout, port=port, udp_sock=sock
                )
            finally:
                await sock.close()
        except (OSError, dns.exception.DNSException) as exc:
            last = exc
            continue
        return response, used_tcp, (where, port)
    assert last is not None
    raise last


async def check(request: CheckRequest, ctx: CheckContext) -> CheckResult:
    spec = request.spec.dns
    assert spec is not None
    record_type = spec.record_type
    total = request.spec.effective_timeout.total_seconds()
    policy = ctx.egress.policy
    # Asking the cluster's resolver about its own names would map the cluster (which services exist).
    policy.check_name(spec.name)
    if spec.server is not None:
        host, port = split_server(spec.server)
        _, sockaddr = first_address(await ctx.egress.resolve(host, port, type_=socket.SOCK_DGRAM))
        servers = [(sockaddr[0], sockaddr[1])]
        server_names = {server: format_address(server) for server in servers}  # the guard allowed it
    else:
        servers = system_nameservers(ctx)
        if not servers:
            return CheckResult.down(None, "no DNS server configured: /etc/resolv.conf lists none; set dns.server")
        server_names = {server: _system_server_text(server, policy) for server in servers}
    server_text = ", ".join(dict.fromkeys(server_names.values()))
    facts: dict[str, Any] = {"server": server_text, "record_type": record_type}
    try:
        query = dns.message.make_query(spec.name, dns.rdatatype.from_text(record_type))
    except dns.exception.DNSException as exc:
        return CheckResult.down(None, f"{spec.name!r} is not a valid DNS name: {exc}", **facts)

    started = time.perf_counter()
    try:
        # Leave run_check's timeout room to report a slow server in our own words.
        response, used_tcp, answered_by = await _ask(query, servers, total * 0.9 / len(servers))
    except dns.exception.Timeout:
        return CheckResult.down(elapsed_ms(started), f"no answer from {server_text}", **facts)
    except ConnectionRefusedError:
        return CheckResult.down(elapsed_ms(started), f"{server_text}: port unreachable", **facts)
    except OSError as exc:
        return CheckResult.down(elapsed_ms(started), f"cannot ask {server_text}: {exc.strerror or exc}", **facts)
    except dns.exception.DNSException as exc:
        return CheckResult.down(elapsed_ms(started), f"bad answer from {server_text}: {exc}", **facts)
    latency = elapsed_ms(started)

    rcode = dns.rcode.to_text(response.rcode())
    rdtype = dns.rdatatype.from_text(record_type)
    rdatas = [rdata for rrset in response.answer if rrset.rdtype == rdtype for rdata in rrset]
    label = f"{spec.name} {record_type}"
    facts.update(server=server_names[answered_by], rcode=rcode, tcp=used_tcp)
    if any(not policy.may_disclose(address) for address in _addresses(rdatas)):
        # One hidden answer hides them all (and the count), and no expectation can pass: an UP or a
        # "got ..." would confirm a guessed internal address.
        return CheckResult.down(latency, f"{label}: resolves to an address the egress policy does not allow", **facts)
    answers = [display(record_type, rdata) for rdata in rdatas]
    facts["answers"] = answers
    if rcode != spec.expect.rcode:
        return CheckResult.down(latency, f"{label}: {rcode}, expected {spec.expect.rcode}", **facts)
    if rcode != "NOERROR":
        return CheckResult.up(latency, f"{label}: {rcode} as expected", **facts)
    if not answers:
        return CheckResult.down(latency, f"{label}: no records", **facts)
    found: set[str] = set().union(*(answer_forms(record_type, rdata) for rdata in rdatas))
    missing = [value for value in spec.expect.values if normalize(record_type, value) not in found]
    if missing:
        facts["missing"] = missing
        shown = ", ".join(answers[:_SHOWN_ANSWERS]) + (", ..." if len(answers) > _SHOWN_ANSWERS else "")
        return CheckResult.down(latency, f"{label}: expected {missing[0]!r}, got {shown}", **facts)
    count = len(answers)
    return CheckResult.up(latency, f"{label}: {count} answer{'s' if count != 1 else ''}", **facts)
