"""udp checks against real datagram servers on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest

from spectra.api.monitor import UdpCheck
from spectra.probe.checks import run_check
from spectra.probe.result import Status
from tests.support.processes import free_port

from .servers import (
    LOCAL_TIMEOUT,
    LOCALHOST,
    METADATA,
    check_context,
    request,
    udp_server,
    unvalidated_request,
)


def echo(data: bytes) -> bytes:
    return data


def pong(data: bytes) -> bytes:
    return b"PONG " + data[:16] if data.startswith(b"PING") else b"ERR unknown command"


def silent(data: bytes) -> None:
    return None


@pytest.mark.parametrize(
    ("reply", "settings", "status", "reason", "timeout"),
    [
        pytest.param(echo, {"send": "hello"}, Status.UP, "answered", LOCAL_TIMEOUT, id="any-answer"),
        pytest.param(
            echo,
            {"send": "hello", "expect": {"contains": "hello"}},
            Status.UP,
            "answer contains 'hello'",
            LOCAL_TIMEOUT,
            id="echo",
        ),
        pytest.param(
            pong,
            {"send": "PING 1", "expect": {"contains": "PONG"}},
            Status.UP,
            "answer contains 'PONG'",
            LOCAL_TIMEOUT,
            id="expected-answer",
        ),
        pytest.param(
            pong,
            {"send": "STATUS", "expect": {"contains": "PONG"}},
            Status.DOWN,
            "expected 'PONG' in the answer, got 'ERR unknown command'",
            LOCAL_TIMEOUT,
            id="wrong-answer",
        ),
        pytest.param(silent, {"send": "hello"}, Status.DOWN, "timed out after 0.5s", "500ms", id="no-answer"),
    ],
)
async def test_udp_exchange(
    reply: Callable[[bytes], bytes | None], settings: dict[str, Any], status: Status, reason: str, timeout: str
) -> None:
    async with udp_server(reply) as port, check_context() as ctx:
        result = await run_check(request("udp", {"host": LOCALHOST, "port": port, **settings}, timeout=timeout), ctx)
    assert result.status is status, result
    assert result.reason == reason
    if status is Status.UP:
        assert result.facts["address"] == f"{LOCALHOST}:{port}"
        assert result.facts["received_bytes"] > 0


async def test_closed_port_is_port_unreachable() -> None:
    port = free_port(socket.SOCK_DGRAM)
    async with check_context() as ctx:
        result = await run_check(request("udp", {"host": LOCALHOST, "port": port, "send": "hello"}), ctx)
    assert result.status is Status.DOWN
    assert result.reason == "port unreachable"


async def test_guard_refuses_metadata_address() -> None:
    block = UdpCheck.model_construct(host=METADATA, port=53, send="x")
    async with check_context() as ctx:
        result = await run_check(unvalidated_request("udp", block), ctx)
    assert result.status is Status.DOWN
    assert result.reason.startswith("refused by the egress policy"), result.reason
    assert "metadata" in result.reason


async def test_default_policy_refuses_loopback_that_standalone_allows() -> None:
    async with udp_server(echo) as port:
        block = {"host": LOCALHOST, "port": port, "send": "hi"}
        async with check_context(standalone=False) as ctx:
            refused = await run_check(request("udp", block), ctx)
        async with check_context() as ctx:
            allowed = await run_check(request("udp", block), ctx)
    assert refused.status is Status.DOWN
    assert "loopback targets are not allowed" in refused.reason
    assert allowed.status is Status.UP
