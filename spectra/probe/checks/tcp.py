"""TCP check: connect (optionally speak TLS), optionally send text, optionally look for text in the answer."""

from __future__ import annotations

import ssl
from typing import Any

from spectra.probe import sockets
from spectra.probe.certificates import peer_certificate, verify_failure_reason
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.result import CheckResult


async def check(request: CheckRequest, ctx: CheckContext) -> CheckResult:
    spec = request.spec.tcp
    assert spec is not None
    deadline = sockets.read_deadline(request)
    connected = await sockets.connect(ctx, spec.host, spec.port)
    if isinstance(connected, CheckResult):
        return connected
    sock, family, sockaddr, started = connected.sock, connected.family, connected.sockaddr, connected.started
    facts: dict[str, Any] = {"address": connected.address, "connect_ms": connected.connect_ms}

    try:
        reader, writer = await sockets.open_stream(sock, ctx.ssl_context if spec.tls else None, spec.host)
    except ssl.SSLCertVerificationError as exc:
        cert = await sockets.fetch_certificate(ctx, family, sockaddr, spec.host)
        if cert is not None:
            facts.update(cert.facts())
        return CheckResult.down(sockets.elapsed_ms(started), verify_failure_reason(exc, cert, spec.host), **facts)
    except ssl.SSLError as exc:
        return CheckResult.down(sockets.elapsed_ms(started), sockets.handshake_failure_reason(exc), **facts)
    except OSError as exc:
        return CheckResult.down(sockets.elapsed_ms(started), f"connection failed: {exc.strerror or exc}", **facts)

    try:
        if spec.tls:
            facts["tls_ms"] = round(sockets.elapsed_ms(started) - facts["connect_ms"], 3)
            cert = peer_certificate(writer.get_extra_info("ssl_object"))
            if cert is not None:
                facts.update(cert.facts())
        if spec.send is not None:
            writer.write(spec.send.encode())
            await writer.drain()
        contains = spec.expect.contains
        if contains is None:
            return CheckResult.up(sockets.elapsed_ms(started), "connected", **facts)
        received = bytearray()
        found = await sockets.read_until(reader, contains.encode(), ctx.max_body_bytes, received, deadline)
        facts["received_bytes"] = len(received)
        facts["answer"] = sockets.preview(bytes(received))
        if found:
            return CheckResult.up(sockets.elapsed_ms(started), f"answer contains {contains!r}", **facts)
        got = f"got {sockets.preview(bytes(received), 60)!r}" if received else "got nothing"
        return CheckResult.down(sockets.elapsed_ms(started), f"expected {contains!r} in the answer, {got}", **facts)
    except OSError as exc:
        return CheckResult.down(sockets.elapsed_ms(started), f"connection failed: {exc.strerror or exc}", **facts)
    finally:
        await sockets.close_stream(writer)
