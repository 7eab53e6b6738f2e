"""TLS check: handshake with verification, then judge the certificate's remaining validity.

An untrusted chain or a name mismatch is DOWN; the certificate is then fetched again without
verification so its expiry is still reported. Fewer days left than `certificateMinDays` is DOWN too.
"""

from __future__ import annotations

import ssl
from typing import Any

from spectra.probe import sockets
from spectra.probe.certificates import NAME_MISMATCH_CODES, expiry_reason, peer_certificate, verify_failure_reason
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.result import CheckResult


async def check(request: CheckRequest, ctx: CheckContext) -> CheckResult:
    spec = request.spec.tls
    assert spec is not None
    server_name = spec.server_name or spec.host
    minimum = spec.expect.certificate_min_days
    connected = await sockets.connect(ctx, spec.host, spec.port)
    if isinstance(connected, CheckResult):
        return connected
    sock, family, sockaddr, started = connected.sock, connected.family, connected.sockaddr, connected.started
    connect_ms = connected.connect_ms
    facts: dict[str, Any] = {"address": connected.address, "server_name": server_name, "connect_ms": connect_ms}

    try:
        _, writer = await sockets.open_stream(sock, ctx.ssl_context, server_name)
    except ssl.SSLCertVerificationError as exc:
        latency = sockets.elapsed_ms(started)
        cert = await sockets.fetch_certificate(ctx, family, sockaddr, server_name)
        code = getattr(exc, "verify_code", None)
        facts["verify_error"] = str(getattr(exc, "verify_message", "") or exc)
        # OpenSSL checks the name after trusting the chain (but before the dates, which we read ourselves).
        name_wrong = code in NAME_MISMATCH_CODES
        facts["chain_valid"] = name_wrong and not (cert is not None and cert.expired())
        facts["hostname_match"] = cert.matches(server_name) if cert is not None else not name_wrong
        if cert is not None:
            facts.update(cert.facts())
        return CheckResult.down(latency, verify_failure_reason(exc, cert, server_name), **facts)
    except ssl.SSLError as exc:
        return CheckResult.down(sockets.elapsed_ms(started), sockets.handshake_failure_reason(exc), **facts)
    except OSError as exc:
        return CheckResult.down(sockets.elapsed_ms(started), f"connection failed: {exc.strerror or exc}", **facts)

    latency = sockets.elapsed_ms(started)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        cert = peer_certificate(ssl_object)
        cipher = ssl_object.cipher() if ssl_object is not None else None
        facts.update(
            handshake_ms=round(latency - connect_ms, 3),
            chain_valid=True,
            hostname_match=True,
            tls_version=ssl_object.version() if ssl_object is not None else None,
            cipher=cipher[0] if cipher else None,
        )
    finally:
        await sockets.close_stream(writer)
    if cert is None:  # cannot happen after a verified handshake, but say so rather than crash
        return CheckResult.down(latency, "the server sent no certificate", **facts)
    facts.update(cert.facts())
    days = cert.days_left()
    if days < minimum:
        return CheckResult.down(latency, f"{expiry_reason(days)} (minimum {minimum})", **facts)
    return CheckResult.up(latency, f"certificate valid for {days} more days, until {cert.not_after:%Y-%m-%d}", **facts)
