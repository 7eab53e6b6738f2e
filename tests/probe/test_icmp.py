"""icmp checks: real pings to 127.0.0.1 (tests run as root), and the verdict on loss and round trips.

No traffic may leave 127.0.0.1 and loopback always answers, so loss is tested on icmplib Host
objects, the very type a real ping returns.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from icmplib import Host  # type: ignore[import-untyped]  # no stubs, as in spectra/probe/checks/icmp.py

from spectra.api.monitor import IcmpCheck, IcmpExpect
from spectra.probe.checks import run_check
from spectra.probe.checks.icmp import evaluate, timings
from spectra.probe.result import Status

from .servers import LOCALHOST, METADATA, check_context, missing_tool, request, unvalidated_request


def _may_ping() -> bool:
    if os.geteuid() == 0:
        return True
    low, high = (int(part) for part in Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    return any(low <= group <= high for group in os.getgroups())


@pytest.fixture
def may_ping() -> None:
    if not _may_ping():
        missing_tool("ICMP needs root here, or a group of ours in net.ipv4.ping_group_range (sysctl)")


needs_ping = pytest.mark.usefixtures("may_ping")


@needs_ping
async def test_ping_loopback() -> None:
    async with check_context() as ctx:
        result = await run_check(request("icmp", {"host": LOCALHOST, "count": 3}), ctx)
    assert result.status is Status.UP, result
    assert result.reason == "3/3 replies, 0% loss"
    assert result.facts["packets_sent"] == 3
    assert result.facts["packets_received"] == 3
    assert result.facts["packet_loss"] == 0
    assert 0 < result.facts["rtt_min_ms"] <= result.facts["rtt_avg_ms"] <= result.facts["rtt_max_ms"]
    assert result.latency_ms == result.facts["rtt_avg_ms"]


@needs_ping
async def test_round_trip_above_limit_is_degraded() -> None:
    async with check_context() as ctx:
        block = {"host": LOCALHOST, "count": 2, "expect": {"maxRtt": "0ms"}}
        result = await run_check(request("icmp", block), ctx)
    assert result.status is Status.DEGRADED, result
    assert result.reason.startswith("average round trip ")
    assert result.reason.endswith("above 0 ms")


@pytest.mark.parametrize(
    ("host", "expect", "status", "reason"),
    [
        (Host("192.0.2.1", 4, []), IcmpExpect(), Status.DOWN, "no reply from 192.0.2.1 (4 sent)"),
        (
            Host("192.0.2.1", 4, [1.0, 1.2]),
            IcmpExpect.model_validate({"maxPacketLoss": 25}),
            Status.DOWN,
            "50% packet loss (limit 25%)",
        ),
        (Host("192.0.2.1", 4, [1.0, 1.2]), IcmpExpect(), Status.UP, "2/4 replies, 50% loss"),  # at the limit is fine
        (
            Host("192.0.2.1", 3, [1.0, 2.0]),
            IcmpExpect.model_validate({"maxPacketLoss": 0}),
            Status.DOWN,
            "33.33% packet loss (limit 0%)",
        ),
        (
            Host("192.0.2.1", 3, [10.0, 20.0, 30.0]),
            IcmpExpect.model_validate({"maxRtt": "15ms"}),
            Status.DEGRADED,
            "average round trip 20.000 ms, above 15 ms",
        ),
        (
            Host("192.0.2.1", 3, [10.0, 20.0, 30.0]),
            IcmpExpect.model_validate({"maxRtt": "25ms"}),
            Status.UP,
            "3/3 replies, 0% loss",
        ),
    ],
)
def test_evaluate(host: Host, expect: IcmpExpect, status: Status, reason: str) -> None:
    result = evaluate(host, expect)
    assert result.status is status
    assert result.reason == reason
    assert result.facts["packets_sent"] == host.packets_sent
    assert result.facts["packets_received"] == host.packets_received


def test_evaluate_facts_of_partial_loss() -> None:
    result = evaluate(Host("192.0.2.1", 4, [1.0, 3.0, 2.0]), IcmpExpect())
    assert result.facts == {
        "address": "192.0.2.1",
        "packets_sent": 4,
        "packets_received": 3,
        "packet_loss": 25.0,
        "rtt_min_ms": 1.0,
        "rtt_avg_ms": 2.0,
        "rtt_max_ms": 3.0,
    }
    assert result.latency_ms == 2.0


@pytest.mark.parametrize(("count", "timeout"), [(1, 10.0), (3, 1.0), (20, 10.0), (20, 0.5)])
def test_pings_fit_in_the_timeout(count: int, timeout: float) -> None:
    interval, wait = timings(count, timeout)
    assert 0 < interval <= 0.2
    assert interval * (count - 1) + wait <= timeout * 0.8 + 1e-9


@pytest.mark.parametrize("host", [METADATA, "169.254.0.1"])
async def test_guard_refuses_metadata_address(host: str) -> None:
    async with check_context() as ctx:
        result = await run_check(unvalidated_request("icmp", IcmpCheck.model_construct(host=host)), ctx)
    assert result.status is Status.DOWN
    assert result.reason.startswith("refused by the egress policy"), result.reason
    assert "metadata" in result.reason


@needs_ping
async def test_default_policy_refuses_loopback_that_standalone_allows() -> None:
    block = {"host": LOCALHOST, "count": 1}
    async with check_context(standalone=False) as ctx:
        refused = await run_check(request("icmp", block), ctx)
    async with check_context() as ctx:
        allowed = await run_check(request("icmp", block), ctx)
    assert refused.status is Status.DOWN
    assert "loopback targets are not allowed" in refused.reason
    assert allowed.status is Status.UP
