"""The socket toolkit of the stream and datagram checkers (tcp, tls, udp, dns, icmp).

Connecting goes to the addresses the egress guard resolved and approved (never to the name again); a
certificate that fails verification is fetched once more without verifying, so its expiry is still
reported; reads stop at a needle, a size cap or a deadline inside the monitor's timeout.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from spectra.probe.certificates import CertificateInfo, peer_certificate
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.result import CheckResult

_PREVIEW_CHARS = 200  # of the answer, in facts; reasons show less
_CLOSE_WAIT_S = 0.5  # a peer that never finishes the close must not turn a result into a timeout
_DEADLINE_SHARE = 0.9  # of the monitor's timeout: stop reading early enough to say what did arrive


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def format_address(sockaddr: Any) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def read_deadline(request: CheckRequest) -> float:
    """Event-loop time by which reading should stop, inside the timeout run_check enforces."""
    return asyncio.get_running_loop().time() + request.spec.effective_timeout.total_seconds() * _DEADLINE_SHARE


async def connect_socket(addresses: Iterable[tuple[int, Any]]) -> tuple[socket.socket, int, Any]:
    """A connected non-blocking socket to the first address that accepts, in the guard's order."""
    loop = asyncio.get_running_loop()
    last: OSError | None = None
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, sockaddr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock, family, sockaddr
    raise last or OSError("no addresses to connect to")


async def open_stream(
    sock: socket.socket, ssl_context: ssl.SSLContext | None = None, server_hostname: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams over a connected socket, after a TLS handshake when `ssl_context` is given.

    On a failed handshake asyncio closes the socket itself.
    """
    if ssl_context is None:
        return await asyncio.open_connection(sock=sock)
    return await asyncio.open_connection(sock=sock, ssl=ssl_context, server_hostname=server_hostname)


async def close_stream(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        async with asyncio.timeout(_CLOSE_WAIT_S):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        writer.transport.abort()


def handshake_failure_reason(error: ssl.SSLError) -> str:
    reason = error.reason or str(error)
    if reason == "WRONG_VERSION_NUMBER":  # the usual sign of plain text where TLS was expected
        return f"TLS handshake failed: the server does not speak TLS here ({reason})"
    return f"TLS handshake failed: {reason}"


def unverified_ssl_context(ctx: CheckContext) -> ssl.SSLContext:
    """A context that accepts any certificate: only for reading facts off one that failed verification."""

    def make() -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    context: ssl.SSLContext = ctx.shared("tls.unverified", make)
    return context


async def fetch_certificate(
    ctx: CheckContext, family: int, sockaddr: Any, server_hostname: str
) -> CertificateInfo | None:
    """The certificate served at `sockaddr`, without verifying it; None when that fails too."""
    try:
        sock, _, _ = await connect_socket([(family, sockaddr)])
        _, writer = await open_stream(sock, unverified_ssl_context(ctx), server_hostname)
    except OSError:  # ssl.SSLError is an OSError
        return None
    try:
        return peer_certificate(writer.get_extra_info("ssl_object"))
    finally:
        await close_stream(writer)


async def read_until(
    reader: asyncio.StreamReader, needle: bytes, limit: int, received: bytearray, deadline: float
) -> bool:
    """Read into `received` until `needle` shows up, EOF, `limit` bytes or the deadline; True if found.

    `received` is filled in place, so the caller still has what arrived when the deadline hits.
    """
    try:
        async with asyncio.timeout_at(deadline):
            while len(received) < limit:
                chunk = await reader.read(min(65536, limit - len(received)))
                if not chunk:
                    break
                received += chunk
                if needle in received:
                    return True
    except TimeoutError:
        pass
    return needle in received


def preview(data: bytes, chars: int = _PREVIEW_CHARS) -> str:
    text = data.decode("utf-8", "replace")
    return text if len(text) <= chars else text[:chars] + "..."


@dataclass(frozen=True)
class Connected:
    """A connected stream socket and when connecting started (for latencies)."""

    sock: socket.socket
    family: int
    sockaddr: Any
    started: float
    connect_ms: float

    @property
    def address(self) -> str:
        return format_address(self.sockaddr)


async def connect(ctx: CheckContext, host: str, port: int) -> Connected | CheckResult:
    """Resolve through the egress guard and connect to the first address that accepts; a DOWN result
    (naming the first address) when none does."""
    addresses = await ctx.egress.resolve(host, port, type_=socket.SOCK_STREAM)
    started = time.perf_counter()
    try:
        sock, family, sockaddr = await connect_socket(addresses)
    except ConnectionRefusedError:
        return CheckResult.down(elapsed_ms(started), "connection refused", address=format_address(addresses[0][1]))
    except OSError as exc:
        reason = f"cannot connect: {exc.strerror or exc}"
        return CheckResult.down(elapsed_ms(started), reason, address=format_address(addresses[0][1]))
    return Connected(sock, family, sockaddr, started, elapsed_ms(started))
