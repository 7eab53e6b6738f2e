"""A small HTTP proxy that applies the egress guard at connect time, for clients that resolve names
themselves (Chromium in browser checks).

The client is configured to send every connection here: plain http as absolute-form requests, https
and WebSockets as CONNECT tunnels. The proxy resolves the host through `EgressGuard.resolve` and
connects to the addresses it returns, so the client never picks the address itself: redirect hops,
preconnects and a DNS answer that changes between check and connect (rebinding) all pass the same
check as everything else. One proxy per browser check keeps its refusals attributable to that check.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from spectra.domain.egress import EgressGuard, EgressRefused

_HOP_HEADERS = ("proxy-connection:", "proxy-authorization:", "connection:", "keep-alive:")
HEAD_TIMEOUT_S = 30.0  # a client that opens a connection and says nothing
CONNECT_TIMEOUT_S = 10.0


class EgressProxy:
    """A proxy on 127.0.0.1 (port chosen by the OS) that records what it refused and what failed, by host."""

    def __init__(self, guard: EgressGuard) -> None:
        self.guard = guard
        self.refused: dict[str, str] = {}  # host -> why the policy refused it
        self.failed: dict[str, str] = {}  # host -> why connecting failed (no such host, refused, ...)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(HEAD_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            tunnel = method.upper() == "CONNECT"
            parts = urlsplit(f"//{target}" if tunnel else target)
            if not tunnel and parts.scheme.lower() != "http":
                writer.write(_proxy_answer(400, "only http and CONNECT are proxied"))
                return
            host = parts.hostname or ""
            port = parts.port or 80
            connected = await self._connect(host, port)
            if isinstance(connected, str):
                writer.write(_proxy_answer(403 if host in self.refused else 502, connected))
                return
            up_reader, upstream = connected
            if tunnel:
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                # One request per upstream connection: the proxy reads no responses, it only relays bytes.
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                kept = [line for line in lines[1:] if line and not line.lower().startswith(_HOP_HEADERS)]
                upstream.write(
                    "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""]).encode("latin-1")
                )
            await _relay(reader, writer, up_reader, upstream)
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            for stream in (upstream, writer):
                if stream is not None:
                    stream.close()
            if task is not None:
                self._tasks.discard(task)

    async def _connect(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | str:
        """An open connection to a checked address of host, or why there is none."""
        try:
            addresses = await self.guard.resolve(host, port)
        except EgressRefused as exc:
            self.refused[host] = str(exc)
            return str(exc)
        except OSError:
            self.failed[host] = f"{host}: no such host"
            return self.failed[host]
        error = "no addresses"
        for _, sockaddr in addresses:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    return await asyncio.open_connection(sockaddr[0], sockaddr[1])
            except TimeoutError:
                error = "timed out"
            except OSError as exc:
                error = exc.strerror or type(exc).__name__
        self.failed[host] = f"could not connect to {host}:{port}: {error}"
        return self.failed[host]


async def _relay(
    client_reader: asyncio.StreamReader,
    client: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until either side closes."""

    async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()

    tasks = [asyncio.ensure_future(copy(client_reader, upstream)), asyncio.ensure_future(copy(upstream_reader, client))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _proxy_answer(status: int, text: str) -> bytes:
    body = f"refused by the egress policy: {text}\n" if status == 403 else f"{text}\n"
    data = body.encode()
    head = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
    head += f"Content-Type: text/plain\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    return head.encode() + data
