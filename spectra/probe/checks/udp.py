"""UDP check: send one datagram to the checked address and judge the first answer.

UDP has no connection to fail, so "no answer" is only known when the monitor's timeout (applied by
run_check) ends the wait. A closed port usually says so sooner: the ICMP port-unreachable reply
surfaces as ConnectionRefusedError on the connected socket.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from spectra.domain.egress import first_address
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.result import CheckResult
from spectra.probe.sockets import elapsed_ms, format_address, preview


class _FirstAnswer(asyncio.DatagramProtocol):
    def __init__(self, answer: asyncio.Future[bytes]) -> None:
        self.answer = answer

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if not self.answer.done():
            self.answer.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc or ConnectionError("socket closed before an answer came"))


async def check(request: CheckRequest, ctx: CheckContext) -> CheckResult:
    spec = request.spec.udp
    assert spec is not None
    family, sockaddr = first_address(await ctx.egress.resolve(spec.host, spec.port, type_=socket.SOCK_DGRAM))
    facts: dict[str, Any] = {"address": format_address(sockaddr)}
    loop = asyncio.get_running_loop()
    # A connected socket: the kernel drops datagrams from other peers and reports ICMP errors to us.
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.connect(sockaddr)
    except OSError as exc:
        sock.close()
        return CheckResult.down(None, f"cannot send: {exc.strerror or exc}", **facts)
    answer: asyncio.Future[bytes] = loop.create_future()
    started = time.perf_counter()
    transport, _ = await loop.create_datagram_endpoint(lambda: _FirstAnswer(answer), sock=sock)
    try:
        transport.sendto(spec.send.encode())
        data = await answer
    except ConnectionRefusedError:
        return CheckResult.down(elapsed_ms(started), "port unreachable", **facts)
    except OSError as exc:
        return CheckResult.down(elapsed_ms(started), f"no answer: {exc.strerror or exc}", **facts)
    finally:
        transport.close()
    latency = elapsed_ms(started)
    facts.update(received_bytes=len(data), answer=preview(data))
    contains = spec.expect.contains
    if contains is None:
        return CheckResult.up(latency, "answered", **facts)
    if contains.encode() in data:
        return CheckResult.up(latency, f"answer contains {contains!r}", **facts)
    return CheckResult.down(latency, f"expected {contains!r} in the answer, got {preview(data, 60)!r}", **facts)
