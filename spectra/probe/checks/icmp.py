"""ICMP check: ping the checked address `count` times; loss decides down, round trips degraded.

Root uses raw sockets; everyone else uses unprivileged ICMP sockets, which Linux allows for the
groups in net.ipv4.ping_group_range.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from icmplib import Host, async_ping  # type: ignore[import-untyped]
from icmplib.exceptions import ICMPLibError, SocketPermissionError  # type: ignore[import-untyped]

from spectra.api.checks.icmp import IcmpExpect
from spectra.domain.egress import first_address
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.result import CheckResult
from spectra.probe.sockets import elapsed_ms

_MAX_INTERVAL_S = 0.2  # between echo requests; short so a check of 20 pings still ends in seconds
_SHARE_OF_TIMEOUT = 0.8  # of the monitor's timeout for sending and waiting; run_check needs the rest


def timings(count: int, timeout_s: float) -> tuple[float, float]:
    """(interval between requests, wait for the last reply) that fit in the monitor's timeout."""
    budget = timeout_s * _SHARE_OF_TIMEOUT
    interval = min(_MAX_INTERVAL_S, budget / (2 * count))
    return interval, max(0.05, budget - interval * (count - 1))


def evaluate(host: Host, expect: IcmpExpect) -> CheckResult:
    """Judge an icmplib Host: loss above the limit is down, a slow average round trip degraded."""
    # icmplib rounds its ratio to 2 places (1 of 3 lost reads 33%); a percentage to 2 places is finer.
    sent, received = host.packets_sent, host.packets_received
    loss = round((sent - received) / sent * 100, 2) if sent else 100.0
    facts: dict[str, Any] = {
        "address": host.address,
        "packets_sent": host.packets_sent,
        "packets_received": host.packets_received,
        "packet_loss": loss,
    }
    if host.packets_received:
        facts.update(rtt_min_ms=host.min_rtt, rtt_avg_ms=host.avg_rtt, rtt_max_ms=host.max_rtt)
    latency = host.avg_rtt if host.packets_received else None
    if host.packets_received == 0:
        return CheckResult.down(None, f"no reply from {host.address} ({host.packets_sent} sent)", **facts)
    if loss > expect.max_packet_loss:
        return CheckResult.down(latency, f"{loss:g}% packet loss (limit {expect.max_packet_loss:g}%)", **facts)
    if expect.max_rtt is not None:
        limit_ms = expect.max_rtt.total_seconds() * 1000
        if host.avg_rtt > limit_ms:
            return CheckResult.degraded(
                latency, f"average round trip {host.avg_rtt:.3f} ms, above {limit_ms:g} ms", **facts
            )
    return CheckResult.up(latency, f"{host.packets_received}/{host.packets_sent} replies, {loss:g}% loss", **facts)


async def check(request: CheckRequest, ctx: CheckContext) -> CheckResult:
    spec = request.spec.icmp
    assert spec is not None
    # The port means nothing to ICMP; getaddrinfo only needs a socket type to answer once per address.
    _, sockaddr = first_address(await ctx.egress.resolve(spec.host, 0, type_=socket.SOCK_DGRAM))
    interval, wait = timings(spec.count, request.spec.effective_timeout.total_seconds())
    started = time.perf_counter()
    try:
        host = await async_ping(
            sockaddr[0],
            count=spec.count,
            interval=interval,
            timeout=wait,
            privileged=os.geteuid() == 0,
        )
    except SocketPermissionError:
        return CheckResult.down(
            None, "not allowed to send ICMP: run as root or allow the group in net.ipv4.ping_group_range"
        )
    except ICMPLibError as exc:
        return CheckResult.down(elapsed_ms(started), f"ping failed: {exc}")
    except OSError as exc:
        return CheckResult.down(elapsed_ms(started), f"ping failed: {exc.strerror or exc}")
    return evaluate(host, spec.expect)
