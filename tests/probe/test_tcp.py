"""tcp checks against real servers on 127.0.0.1: open and closed ports, banners, echo, TLS."""

from __future__ import annotations

from typing import Any

import pytest
import trustme

from spectra.api.monitor import TcpCheck
from spectra.probe.checks import run_check
from spectra.probe.result import Status
from tests.support.processes import free_port

from .servers import (
    LOCAL_TIMEOUT,
    LOCALHOST,
    METADATA,
    banner_handler,
    check_context,
    client_context,
    leaf,
    request,
    server_context,
    tcp_server,
    unvalidated_request,
)

SSH_BANNER = b"SSH-2.0-OpenSSH_9.6 spectra-test\r\n"
# Cases that read until the checker's own deadline (90% of the timeout) and then say what arrived: the
# remaining 10% is all a busy machine has to word the result before run_check's timeout ends the check.
READ_UNTIL_DEADLINE = "5s"


@pytest.mark.parametrize(
    ("handler", "settings", "status", "reason", "timeout"),
    [
        pytest.param(banner_handler(), {}, Status.UP, "connected", LOCAL_TIMEOUT, id="open-port"),
        pytest.param(
            banner_handler(SSH_BANNER),
            {"expect": {"contains": "SSH-2.0"}},
            Status.UP,
            "answer contains 'SSH-2.0'",
            LOCAL_TIMEOUT,
            id="banner-expected",
        ),
        pytest.param(  # the server stays connected: the checker reads until the deadline
            banner_handler(SSH_BANNER),
            {"expect": {"contains": "220 smtp"}},
            Status.DOWN,
            "expected '220 smtp' in the answer, got 'SSH-2.0-OpenSSH",
            READ_UNTIL_DEADLINE,
            id="banner-wrong",
        ),
        pytest.param(
            banner_handler(),
            {"send": "PING spectra\n", "expect": {"contains": "PING spectra"}},
            Status.UP,
            "answer contains 'PING spectra'",
            LOCAL_TIMEOUT,
            id="echo",
        ),
        pytest.param(
            banner_handler(b"+OK ready\r\n", close=True),
            {"expect": {"contains": "PONG"}},
            Status.DOWN,
            "expected 'PONG' in the answer, got '+OK ready",
            LOCAL_TIMEOUT,
            id="eof-before-match",
        ),
        pytest.param(
            banner_handler(echo=False),
            {"send": "hello\n", "expect": {"contains": "hello"}},
            Status.DOWN,
            "expected 'hello' in the answer, got nothing",
            READ_UNTIL_DEADLINE,
            id="silent-until-deadline",
        ),
    ],
)
async def test_tcp_exchange(handler: Any, settings: dict[str, Any], status: Status, reason: str, timeout: str) -> None:
    async with tcp_server(handler) as port, check_context() as ctx:
        result = await run_check(request("tcp", {"host": LOCALHOST, "port": port, **settings}, timeout=timeout), ctx)
    assert result.status is status, result
    assert result.reason.startswith(reason), result.reason
    assert result.facts["address"] == f"{LOCALHOST}:{port}"
    assert result.latency_ms is not None
    assert result.latency_ms >= 0


async def test_closed_port_is_connection_refused() -> None:
    port = free_port()
    async with check_context() as ctx:
        result = await run_check(request("tcp", {"host": LOCALHOST, "port": port}), ctx)
    assert result.status is Status.DOWN
    assert result.reason == "connection refused"


async def test_answer_is_read_up_to_the_size_cap() -> None:
    # 64 bytes of noise, then the text: with a 32-byte cap the checker must stop reading first.
    handler = banner_handler(b"x" * 64 + b"READY\r\n")
    async with tcp_server(handler) as port, check_context(max_body_bytes=32) as ctx:
        capped = await run_check(
            request("tcp", {"host": LOCALHOST, "port": port, "expect": {"contains": "READY"}}), ctx
        )
    async with tcp_server(handler) as port, check_context() as ctx:
        full = await run_check(request("tcp", {"host": LOCALHOST, "port": port, "expect": {"contains": "READY"}}), ctx)
    assert capped.status is Status.DOWN
    assert capped.facts["received_bytes"] == 32
    assert full.status is Status.UP


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def test_tls_wrapped_banner(ca: trustme.CA) -> None:
    cert = leaf(ca, "127.0.0.1", days=60)
    async with (
        tcp_server(banner_handler(b"* OK IMAP4rev1 ready\r\n"), server_context(cert)) as port,
        check_context(ssl_context=client_context(ca)) as ctx,
    ):
        block = {"host": LOCALHOST, "port": port, "tls": True, "expect": {"contains": "IMAP4rev1"}}
        result = await run_check(request("tcp", block), ctx)
    assert result.status is Status.UP, result
    assert result.facts["certificate_days_left"] == 60
    assert "tls_ms" in result.facts


@pytest.mark.parametrize(
    ("names", "trusted", "reason"),
    [
        (("127.0.0.1",), False, "certificate not trusted: "),
        (("other.test",), True, "certificate is for other.test, not 127.0.0.1"),
    ],
)
async def test_tls_wrapped_bad_certificate(ca: trustme.CA, names: tuple[str, ...], trusted: bool, reason: str) -> None:
    cert = leaf(ca, *names, days=20)
    trust = client_context(ca if trusted else trustme.CA())
    async with (
        tcp_server(banner_handler(b"hello\r\n"), server_context(cert)) as port,
        check_context(ssl_context=trust) as ctx,
    ):
        result = await run_check(request("tcp", {"host": LOCALHOST, "port": port, "tls": True}), ctx)
    assert result.status is Status.DOWN
    assert result.reason.startswith(reason), result.reason
    # The certificate is fetched again without verification, so its expiry is known anyway.
    assert result.facts["certificate_days_left"] == 20


async def test_plain_server_spoken_to_with_tls() -> None:
    async with tcp_server(banner_handler(b"220 plain smtp\r\n")) as port, check_context() as ctx:
        result = await run_check(request("tcp", {"host": LOCALHOST, "port": port, "tls": True}), ctx)
    assert result.status is Status.DOWN
    assert result.reason == "TLS handshake failed: the server does not speak TLS here (WRONG_VERSION_NUMBER)"


async def test_guard_refuses_metadata_address() -> None:
    async with check_context() as ctx:
        result = await run_check(unvalidated_request("tcp", TcpCheck.model_construct(host=METADATA, port=80)), ctx)
    assert result.status is Status.DOWN
    assert result.reason.startswith("refused by the egress policy"), result.reason
    assert "metadata" in result.reason


async def test_default_policy_refuses_loopback_that_standalone_allows() -> None:
    async with tcp_server(banner_handler()) as port:
        block = {"host": LOCALHOST, "port": port}
        async with check_context(standalone=False) as ctx:
            refused = await run_check(request("tcp", block), ctx)
        async with check_context() as ctx:
            allowed = await run_check(request("tcp", block), ctx)
    assert refused.status is Status.DOWN
    assert "loopback targets are not allowed" in refused.reason
    assert allowed.status is Status.UP
