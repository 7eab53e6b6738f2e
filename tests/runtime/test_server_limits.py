"""The web server's limits on a real uvicorn server on 127.0.0.1: a request that does not arrive whole
within the read timeout is closed, connections over the cap are closed at once, the open-files limit is
raised, and X-Forwarded-For is believed only from the proxies named."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from spectra.processes.bootstrap import MAX_CONNECTIONS_ENV, READ_TIMEOUT_ENV, TRUSTED_PROXIES_ENV, server_limits
from spectra.runtime.lifecycle import web_server
from spectra.runtime.server_limits import (
    CONNECTIONS_SHARE_OF_FILES,
    ServerLimits,
    connection_cap,
    raise_open_files_limit,
    trusted_proxies,
)
from tests.support.processes import free_port

# Generous: each only has to be well below what a stuck connection would take (for ever).
CLOSED_WITHIN_S = 30.0


async def who(request: Request) -> Response:
    return PlainTextResponse(request.client.host if request.client is not None else "none")


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params["s"]))
    return PlainTextResponse("done")


async def upload(request: Request) -> Response:
    return PlainTextResponse(f"{len(await request.body())} bytes")


APP = Starlette(routes=[Route("/who", who), Route("/slow", slow), Route("/upload", upload, methods=["POST"])])


@dataclass
class Server:
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def connect(self, first_bytes: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        if first_bytes:
            writer.write(first_bytes)
            await writer.drain()
        return reader, writer


@contextlib.asynccontextmanager
async def serving(limits: ServerLimits) -> AsyncIterator[Server]:
    port = free_port()
    server = web_server(APP, "127.0.0.1", port, limits)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started
        yield Server(port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = CLOSED_WITHIN_S) -> bytes:
    """What the server sent before it closed the connection (raises TimeoutError if it keeps it open)."""
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except ConnectionResetError:
        return b""


# A client that starts a request and stops: nothing at all, half a request line, headers without the
# blank line, a body announced and never sent, a body one byte at a time.
HEAD = b"GET /who HTTP/1.1\r\nHost: 127.0.0.1\r\n"
STALLED_REQUESTS = {
    "nothing": b"",
    "half a request line": b"GET /wh",
    "headers never end": HEAD + b"X-Slow: 1\r\n",
    "body never sent": b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n",
    "body trickles": b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nab",
}


@pytest.mark.parametrize("first_bytes", STALLED_REQUESTS.values(), ids=STALLED_REQUESTS.keys())
async def test_a_request_that_does_not_arrive_whole_is_closed_after_the_read_timeout(first_bytes: bytes) -> None:
    async with serving(ServerLimits(read_timeout_s=1)) as server:
        reader, writer = await server.connect(first_bytes)
        try:
            if first_bytes.endswith(b"ab"):
                for _ in range(3):  # still sending, never finishing
                    await asyncio.sleep(0.4)
                    writer.write(b"c")
            answer = await closed_by_server(reader)
        finally:
            writer.close()
        assert b"200 OK" not in answer
        async with httpx.AsyncClient(base_url=server.base) as http:
            assert (await http.get("/who")).status_code == 200  # the server itself is fine


async def test_the_next_request_on_a_kept_alive_connection_has_its_own_deadline() -> None:
    async with serving(ServerLimits(read_timeout_s=1)) as server:
        reader, writer = await server.connect(HEAD + b"\r\n")
        try:
            first = await asyncio.wait_for(reader.readuntil(b"127.0.0.1"), CLOSED_WITHIN_S)
            writer.write(b"GET /who HT")  # the second request stalls after its first bytes
            rest = await closed_by_server(reader)
        finally:
            writer.close()
    assert first.startswith(b"HTTP/1.1 200 OK")
    assert rest == b""


async def test_a_request_that_arrived_whole_is_answered_however_long_the_app_takes() -> None:
    async with serving(ServerLimits(read_timeout_s=1)) as server, httpx.AsyncClient(base_url=server.base) as http:
        response = await http.get("/slow", params={"s": "2.5"}, timeout=CLOSED_WITHIN_S)
        posted = await http.post("/upload", content=b"x" * 50_000, timeout=CLOSED_WITHIN_S)
    assert (response.status_code, response.text) == (200, "done")
    assert (posted.status_code, posted.text) == (200, "50000 bytes")


async def test_connections_over_the_cap_are_closed_at_once_and_the_others_served() -> None:
    # The read timeout is long: what closes the extra connections here is the cap, not the deadline.
    async with serving(ServerLimits(read_timeout_s=120, max_connections=3)) as server:
        held = [await server.connect() for _ in range(3)]
        await asyncio.sleep(0.5)  # the server has accepted them (no budget: only an ordering aid)
        extra = [await server.connect(HEAD + b"\r\n") for _ in range(4)]
        try:
            answers = await asyncio.gather(*(closed_by_server(reader, timeout=20) for reader, _ in extra))
            held[0][1].write(HEAD + b"\r\n")
            served = await asyncio.wait_for(held[0][0].readuntil(b"127.0.0.1"), CLOSED_WITHIN_S)
        finally:
            for _, writer in held + extra:
                writer.close()
    assert answers == [b""] * 4
    assert served.startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize(
    ("wanted", "open_files", "cap"),
    [(1000, 20_000, 1000), (1000, 1024, 1024 // CONNECTIONS_SHARE_OF_FILES), (50, 1024, 50), (10, 2, 1)],
)
def test_the_connection_cap_leaves_most_descriptors_to_the_rest(wanted: int, open_files: int, cap: int) -> None:
    assert connection_cap(wanted, open_files) == cap


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(soft, 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard))
    try:
        assert raise_open_files_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
        assert raise_open_files_limit() == hard  # already there: nothing to do
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("", ()),
        ("10.0.0.0/8", ("10.0.0.0/8",)),
        ("127.0.0.1, ::1", ("127.0.0.1/32", "::1/128")),
        ("10.1.2.3/8 192.168.0.0/16", ("10.0.0.0/8", "192.168.0.0/16")),
    ],
)
def test_trusted_proxies_are_addresses_and_networks(raw: str, parsed: tuple[str, ...]) -> None:
    assert trusted_proxies(raw, setting="SPECTRA_TRUSTED_PROXIES") == parsed


@pytest.mark.parametrize("raw", ["*", "ingress-nginx", "10.0.0.0/33", "127.0.0.1:80", "unix:/run/proxy.sock"])
def test_anything_else_is_refused_naming_the_setting(raw: str) -> None:
    with pytest.raises(ValueError, match=r"SPECTRA_TRUSTED_PROXIES: .* is not an IP address or CIDR network"):
        trusted_proxies(f"10.0.0.1, {raw}", setting="SPECTRA_TRUSTED_PROXIES")


@pytest.mark.parametrize(
    ("proxies", "client"),
    [
        ((), "127.0.0.1"),  # the default: nobody is a proxy, not even loopback
        (("10.0.0.0/8",), "127.0.0.1"),  # a proxy elsewhere: this connection is not it
        (("127.0.0.1/32",), "203.0.113.9"),
        (("127.0.0.0/8", "::1/128"), "203.0.113.9"),
    ],
)
async def test_x_forwarded_for_is_believed_only_from_a_named_proxy(proxies: tuple[str, ...], client: str) -> None:
    async with (
        serving(ServerLimits(trusted_proxies=proxies)) as server,
        httpx.AsyncClient(base_url=server.base) as http,
    ):
        response = await http.get("/who", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.text == client


def test_the_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (READ_TIMEOUT_ENV, MAX_CONNECTIONS_ENV, TRUSTED_PROXIES_ENV):
        monkeypatch.delenv(name, raising=False)
    assert server_limits() == ServerLimits(read_timeout_s=10, max_connections=1000, trusted_proxies=())
    monkeypatch.setenv(READ_TIMEOUT_ENV, "2")
    monkeypatch.setenv(MAX_CONNECTIONS_ENV, "300")
    monkeypatch.setenv(TRUSTED_PROXIES_ENV, "10.0.0.0/8,fd00::/8")
    assert server_limits() == ServerLimits(
        read_timeout_s=2, max_connections=300, trusted_proxies=("10.0.0.0/8", "fd00::/8")
    )


@pytest.mark.parametrize(
    ("name", "raw"),
    [(READ_TIMEOUT_ENV, "0"), (READ_TIMEOUT_ENV, "forever"), (MAX_CONNECTIONS_ENV, "0"), (TRUSTED_PROXIES_ENV, "*")],
)
def test_a_bad_limit_is_refused_naming_it(monkeypatch: pytest.MonkeyPatch, name: str, raw: str) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(ValueError, match=name):
        server_limits()
