"""tls checks against real TLS servers on 127.0.0.1 with certificates made for each case."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trustme

from spectra.api.monitor import TlsCheck
from spectra.probe.checks import run_check
from spectra.probe.result import Status
from tests.support.processes import free_port

from .servers import (
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

NAME = "spectra.test"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="Spectra Test CA")


CertFactory = Callable[[trustme.CA], trustme.LeafCert]


@pytest.mark.parametrize(
    ("make_cert", "trust_ours", "expect", "status", "reason", "days", "chain_valid", "hostname_match"),
    [
        pytest.param(
            lambda ca: leaf(ca, NAME, days=90),
            True,
            {},
            Status.UP,
            "certificate valid for 90 more days",
            90,
            True,
            True,
            id="valid",
        ),
        pytest.param(
            lambda ca: leaf(ca, NAME, days=5),
            True,
            {},
            Status.DOWN,
            "certificate expires in 5 days (minimum 14)",
            5,
            True,
            True,
            id="expires-in-5-days",
        ),
        pytest.param(
            lambda ca: leaf(ca, NAME, days=5),
            True,
            {"certificateMinDays": 3},
            Status.UP,
            "certificate valid for 5 more days",
            5,
            True,
            True,
            id="5-days-with-minimum-3",
        ),
        pytest.param(
            lambda ca: leaf(ca, NAME, days=30),
            True,
            {"certificateMinDays": 31},
            Status.DOWN,
            "certificate expires in 30 days (minimum 31)",
            30,
            True,
            True,
            id="below-custom-minimum",
        ),
        pytest.param(
            lambda ca: leaf(ca, NAME, expired_days_ago=2),
            True,
            {},
            Status.DOWN,
            "certificate expired on ",
            -2,
            False,
            True,
            id="expired",
        ),
        pytest.param(
            lambda ca: leaf(ca, "other.test", "*.apps.test", days=60),
            True,
            {},
            Status.DOWN,
            f"certificate is for other.test, *.apps.test, not {NAME}",
            60,
            True,
            False,
            id="wrong-hostname",
        ),
        pytest.param(
            lambda ca: leaf(ca, NAME, days=60),
            False,
            {},
            Status.DOWN,
            "certificate not trusted: unable to get local issuer certificate",
            60,
            False,
            True,
            id="untrusted-ca",
        ),
    ],
)
async def test_certificate_verdicts(
    ca: trustme.CA,
    make_cert: CertFactory,
    trust_ours: bool,
    expect: dict[str, Any],
    status: Status,
    reason: str,
    days: int,
    chain_valid: bool,
    hostname_match: bool,
) -> None:
    seen_names: list[str | None] = []
    trust = client_context(ca if trust_ours else trustme.CA())
    async with (
        tcp_server(banner_handler(), server_context(make_cert(ca), seen_names)) as port,
        check_context(ssl_context=trust) as ctx,
    ):
        block = {"host": LOCALHOST, "port": port, "serverName": NAME, "expect": expect}
        result = await run_check(request("tls", block), ctx)
    assert result.status is status, result
    assert result.reason.startswith(reason), result.reason
    # Days left are reported whatever the verdict: failed verification fetches the certificate anyway.
    assert result.facts["certificate_days_left"] == days
    assert result.facts["chain_valid"] is chain_valid
    assert result.facts["hostname_match"] is hostname_match
    assert result.facts["server_name"] == NAME
    assert result.facts["address"] == f"{LOCALHOST}:{port}"
    assert seen_names
    assert set(seen_names) == {NAME}
    assert result.latency_ms is not None
    assert result.latency_ms > 0


async def test_valid_certificate_facts(ca: trustme.CA) -> None:
    cert = leaf(ca, NAME, days=90)
    async with (
        tcp_server(banner_handler(), server_context(cert)) as port,
        check_context(ssl_context=client_context(ca)) as ctx,
    ):
        result = await run_check(request("tls", {"host": LOCALHOST, "port": port, "serverName": NAME}), ctx)
    facts = result.facts
    assert "Spectra Test CA" in facts["certificate_issuer"]
    assert facts["certificate_sans"] == [NAME]
    assert facts["certificate_expires_at"].startswith(result.reason[-10:])
    assert facts["tls_version"] in {"TLSv1.2", "TLSv1.3"}
    assert facts["cipher"]


async def test_ip_address_host_without_server_name(ca: trustme.CA) -> None:
    cert = leaf(ca, LOCALHOST, days=40)
    async with (
        tcp_server(banner_handler(), server_context(cert)) as port,
        check_context(ssl_context=client_context(ca)) as ctx,
    ):
        result = await run_check(request("tls", {"host": LOCALHOST, "port": port}), ctx)
    assert result.status is Status.UP, result
    assert result.facts["server_name"] == LOCALHOST


async def test_closed_port() -> None:
    async with check_context() as ctx:
        result = await run_check(request("tls", {"host": LOCALHOST, "port": free_port()}), ctx)
    assert result.status is Status.DOWN
    assert result.reason == "connection refused"


async def test_server_without_tls() -> None:
    async with tcp_server(banner_handler(b"SSH-2.0-OpenSSH_9.6\r\n", close=True)) as port, check_context() as ctx:
        result = await run_check(request("tls", {"host": LOCALHOST, "port": port}), ctx)
    assert result.status is Status.DOWN
    assert result.reason == "TLS handshake failed: the server does not speak TLS here (WRONG_VERSION_NUMBER)"


async def test_guard_refuses_metadata_address() -> None:
    async with check_context() as ctx:
        result = await run_check(unvalidated_request("tls", TlsCheck.model_construct(host=METADATA, port=443)), ctx)
    assert result.status is Status.DOWN
    assert result.reason.startswith("refused by the egress policy"), result.reason
    assert "metadata" in result.reason


async def test_default_policy_refuses_loopback_that_standalone_allows(ca: trustme.CA) -> None:
    async with tcp_server(banner_handler(), server_context(leaf(ca, NAME))) as port:
        block = {"host": LOCALHOST, "port": port, "serverName": NAME}
        async with check_context(standalone=False, ssl_context=client_context(ca)) as ctx:
            refused = await run_check(request("tls", block), ctx)
        async with check_context(ssl_context=client_context(ca)) as ctx:
            allowed = await run_check(request("tls", block), ctx)
    assert refused.status is Status.DOWN
    assert "loopback targets are not allowed" in refused.reason
    assert allowed.status is Status.UP
