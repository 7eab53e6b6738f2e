"""Real local targets for checker tests, all on 127.0.0.1: TCP banner/echo, UDP echo, TLS, dnsmasq.

Also small builders for requests and contexts the checker tests share.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, cast

import pytest
import trustme

from spectra.api.monitor import MonitorSpec, MonitorType
from spectra.domain.egress import EgressGuard, EgressPolicy
from spectra.probe.context import CheckContext, CheckRequest
from tests.support.processes import free_port

LOCALHOST = "127.0.0.1"
METADATA = "169.254.169.254"
DNSMASQ = "/usr/sbin/dnsmasq"

ServeApp = Callable[..., Awaitable[str]]
"""The `serve_app` fixture (conftest.py): `await serve_app(app, ssl_context=None, host=LOCALHOST)` -> base URL."""


def missing_tool(message: str) -> NoReturn:
    """A missing binary fails under CI and skips locally, with how to install it."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


# --- requests and contexts ---------------------------------------------------------------------


LOCAL_TIMEOUT = "10s"
"""Checks of targets on 127.0.0.1 that answer: generous, so a busy machine never fails them. A test
about a timeout firing passes its own short one."""


def request(type_: str, block: dict[str, Any], *, timeout: str = LOCAL_TIMEOUT) -> CheckRequest:
    """A validated monitor of `type_` with `block` as its settings (camelCase, as in manifests)."""
    spec = MonitorSpec.model_validate({"type": type_, "interval": "30s", "timeout": timeout, type_: block})
    return CheckRequest("default", f"{type_}-test", spec)


def unvalidated_request(type_: str, block: Any) -> CheckRequest:
    """A monitor that skipped manifest validation, as if DNS or a bug let a bad target through.

    The static checks refuse metadata addresses already; this shows the connect-time guard does too.
    """
    spec = MonitorSpec.model_construct(type=MonitorType(type_), timeout=timedelta(seconds=10), **{type_: block})
    return CheckRequest("default", f"{type_}-unvalidated", spec)


@asynccontextmanager
async def check_context(
    *, standalone: bool = True, ssl_context: ssl.SSLContext | None = None, **kwargs: Any
) -> AsyncIterator[CheckContext]:
    policy = EgressPolicy.standalone() if standalone else EgressPolicy()
    if ssl_context is not None:
        kwargs["ssl_context"] = ssl_context
    ctx = CheckContext(egress=EgressGuard(policy), **kwargs)
    try:
        yield ctx
    finally:
        await ctx.aclose()


# --- TCP ---------------------------------------------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]


def banner_handler(banner: bytes = b"", *, echo: bool = True, close: bool = False) -> Handler:
    """Send `banner` on connect, then echo what arrives (or stay silent); `close` hangs up after the banner."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if banner:
                writer.write(banner)
                await writer.drain()
            if close:
                return
            while data := await reader.read(4096):
                if echo:
                    writer.write(data)
                    await writer.drain()
        except OSError:  # the checker hangs up as soon as it has what it needs
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return handle


@asynccontextmanager
async def tcp_server(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """Serve `handler` on a free loopback port (TLS when `ssl_context` is given); yields the port."""
    server = await asyncio.start_server(handler, LOCALHOST, 0, ssl=ssl_context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def tcp_target() -> contextlib.AbstractAsyncContextManager[int]:
    """A loopback TCP server that accepts and hangs up (a port that is up); yields its port."""
    return tcp_server(banner_handler(close=True))


# --- UDP ---------------------------------------------------------------------------------------


class _Reply(asyncio.DatagramProtocol):
    def __init__(self, reply: Callable[[bytes], bytes | None]) -> None:
        self.reply = reply
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # not a subclass on Python 3.11

    def datagram_received(self, data: bytes, addr: Any) -> None:
        answer = self.reply(data)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


@asynccontextmanager
async def udp_server(reply: Callable[[bytes], bytes | None] = lambda data: data) -> AsyncIterator[int]:
    """Answer each datagram with `reply(data)` (echo by default; None stays silent); yields the port."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Reply(reply), local_addr=(LOCALHOST, 0))
    try:
        yield transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


# --- TLS ---------------------------------------------------------------------------------------


def leaf(ca: trustme.CA, *names: str, days: float = 90, expired_days_ago: float | None = None) -> trustme.LeafCert:
    """A certificate for `names` valid for `days` more days (or one that expired some days ago)."""
    now = datetime.now(UTC)
    if expired_days_ago is not None:
        return ca.issue_cert(
            *names, not_before=now - timedelta(days=30), not_after=now - timedelta(days=expired_days_ago)
        )
    return ca.issue_cert(*names, not_before=now - timedelta(hours=1), not_after=now + timedelta(days=days))


def server_context(cert: trustme.LeafCert, seen_names: list[str | None] | None = None) -> ssl.SSLContext:
    """A server-side context presenting `cert`; the SNI names clients send are appended to `seen_names`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    if seen_names is not None:

        def remember(_sock: Any, name: str | None, _context: Any) -> None:
            seen_names.append(name)

        context.sni_callback = remember
    return context


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """What a worker's context looks like when the test CA is its trust store."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


# --- DNS ---------------------------------------------------------------------------------------


@contextmanager
def dnsmasq(records: list[str], workdir: Path) -> Iterator[int]:
    """dnsmasq on 127.0.0.1 with only `records` (dnsmasq options); yields its port (UDP and TCP)."""
    binary = shutil.which("dnsmasq") or (DNSMASQ if os.path.exists(DNSMASQ) else None)
    if binary is None:
        missing_tool("dnsmasq is not installed: apt-get install dnsmasq-base")
    log = workdir / "dnsmasq.log"
    for _ in range(5):  # the free port can be taken before dnsmasq binds it: try another
        port = free_port(socket.SOCK_DGRAM, socket.SOCK_STREAM)
        args = [
            binary,
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            f"--port={port}",
            f"--listen-address={LOCALHOST}",
            "--bind-interfaces",
            f"--pid-file={workdir / 'dnsmasq.pid'}",
            "--log-facility=-",
            *records,
        ]
        with log.open("wb") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            if _wait_listening(port, process):
                yield port
                return
        finally:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    raise RuntimeError(f"dnsmasq did not start: {log.read_text(errors='replace')}")


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        with socket.socket() as probe:
            if probe.connect_ex((LOCALHOST, port)) == 0:
                return True
        time.sleep(0.02)
    return False
