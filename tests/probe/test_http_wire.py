"""The checks' HTTP/1.1 client (spectra.probe.http_wire) against raw servers on 127.0.0.1.

A raw server answers with exactly the bytes a case gives, so framing (chunked, EOF-delimited), content
codings and hostile answers (endless headers, bodies past the cap, hanging up early, never answering)
are what the client really receives. TLS cases use the session's trustme CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httptools
import pytest
import trustme

from spectra.domain.egress import EgressGuard, EgressPolicy, EgressRefused
from spectra.probe.checks import run_check
from spectra.probe.checks.http import check
from spectra.probe.context import CheckContext
from spectra.probe.http_wire import MAX_HEAD_BYTES, MAX_HEADER_LINE, MAX_HEADERS, USER_AGENT, _AnswerReader
from spectra.probe.result import Status

from .servers import LOCALHOST, check_context, client_context, leaf, request, server_context

Answer = bytes | Callable[[asyncio.StreamWriter], Awaitable[None]]


def answer(status: str, headers: list[str], body: bytes = b"") -> bytes:
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{line}\r\n" for line in headers) + "\r\n"
    return head.encode("latin-1") + body


def sized(body: bytes, *headers: str) -> bytes:
    return answer("200 OK", [f"Content-Length: {len(body)}", *headers], body)


@dataclass
class RawServer:
    """Answers each request for a path with that path's bytes (or handler); remembers the request heads."""

    answers: dict[str, Answer]
    tls: Any = None
    heads: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOCALHOST}:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.split("\r\n")
            headers = {"": request_line}
            for line in filter(None, lines):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.heads.append(headers)
            path = request_line.split(" ")[1].split("?")[0]
            reply = self.answers[path]
            if isinstance(reply, bytes):
                writer.write(reply)
                await writer.drain()
            else:
                await reply(writer)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client hangs up as soon as it has what it needs
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def raw_server(answers: dict[str, Answer], tls: Any = None) -> AsyncIterator[RawServer]:
    server = RawServer(answers, tls)
    listening = await asyncio.start_server(server.handle, LOCALHOST, 0, ssl=tls)
    server.port = listening.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listening.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(listening.wait_closed(), 2)


async def never_answers(writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


async def half_a_body(writer: asyncio.StreamWriter) -> None:
    writer.write(answer("200 OK", ["Content-Length: 100"], b"only ten b"))
    await writer.drain()


async def endless_chunks(writer: asyncio.StreamWriter) -> None:
    writer.write(answer("200 OK", ["Transfer-Encoding: chunked"]))
    for _ in range(1000):  # 4 MB unless the client stops reading
        writer.write(b"1000\r\n" + b"x" * 4096 + b"\r\n")
        await writer.drain()


GZIP_BOMB = gzip.compress(b"\0" * 20_000_000)  # 20 MB of zeros in about 20 KB

ANSWERS: dict[str, Answer] = {
    "/ok": sized(b"status: ok\n"),
    "/chunked": answer("200 OK", ["Transfer-Encoding: chunked"], b"6\r\nstatus\r\n4\r\n: ok\r\n0\r\n\r\n"),
    "/until-close": answer("200 OK", [], b"status: ok until the end"),
    "/gzip": sized(gzip.compress(b"status: ok, gzipped"), "Content-Encoding: gzip"),
    "/gzip-chunked": answer(
        "200 OK",
        ["Content-Encoding: gzip", "Transfer-Encoding: chunked"],
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(gzip.compress(b"status: ok")), gzip.compress(b"status: ok")),
    ),
    "/deflate": sized(zlib.compress(b"status: ok, deflated"), "Content-Encoding: deflate"),
    "/raw-deflate": sized(zlib.compress(b"status: ok, raw")[2:-4], "Content-Encoding: deflate"),
    "/brotli": sized(b"\x8b\x03\x80status: ok\x03", "Content-Encoding: br"),
    "/bad-gzip": sized(b"not gzip at all", "Content-Encoding: gzip"),
    "/long-line": sized(b"", "X-Long: " + "a" * MAX_HEADER_LINE),
    "/many-headers": sized(b"", *(f"X-Header-{i}: v" for i in range(MAX_HEADERS + 1))),
    "/huge-head": sized(b"", *(f"X-Part-{i}: {'b' * 4000}" for i in range(MAX_HEAD_BYTES // 4000 + 1))),
    "/big": sized(b"a" * 300_000),
    "/endless": endless_chunks,
    "/gzip-bomb": sized(GZIP_BOMB, "Content-Encoding: gzip"),
    "/hang-up": b"",
    "/half-head": b"HTTP/1.1 200 OK\r\nContent-Le",
    "/half-body": half_a_body,
    "/not-http": b"SSH-2.0-OpenSSH_9.2\r\n",
    "/never": never_answers,
    "/early-hints": b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n" + sized(b"status: ok"),
    "/repeated": sized(b"", "X-Tag: one", "X-Tag: two"),
}


@dataclass(frozen=True)
class Case:
    path: str
    status: Status
    reason: str
    body_bytes: int | None = None
    truncated: bool = False
    settings: dict[str, Any] = field(default_factory=dict)


CASES = {
    "content-length": Case("/ok", Status.UP, "HTTP 200", 11),
    "chunked": Case("/chunked", Status.UP, "HTTP 200", 10, settings={"expect": {"bodyContains": "status: ok"}}),
    "until the connection closes": Case("/until-close", Status.UP, "HTTP 200", 24),
    "gzip": Case("/gzip", Status.UP, "HTTP 200", 19, settings={"expect": {"bodyContains": "ok, gzipped"}}),
    "gzip, chunked": Case("/gzip-chunked", Status.UP, "HTTP 200", 10, settings={"expect": {"bodyContains": "ok"}}),
    "deflate (zlib)": Case("/deflate", Status.UP, "HTTP 200", 20, settings={"expect": {"bodyContains": "deflated"}}),
    "deflate (raw)": Case("/raw-deflate", Status.UP, "HTTP 200", 15, settings={"expect": {"bodyContains": "raw"}}),
    "an encoding not asked for": Case(
        "/brotli",
        Status.DOWN,
        "reading the body failed: cannot decode a body in Content-Encoding 'br' (only gzip and deflate)",
    ),
    "gzip that is not": Case(
        "/bad-gzip",
        Status.DOWN,
        "reading the body failed: cannot decode the gzip body: Error -3 while decompressing data: incorrect header check",
    ),
    "a header line too long": Case(
        "/long-line", Status.DOWN, f"protocol error: a response header line is longer than {MAX_HEADER_LINE} bytes"
    ),
    "too many headers": Case("/many-headers", Status.DOWN, f"protocol error: more than {MAX_HEADERS} response headers"),
    "headers too long in all": Case(
        "/huge-head", Status.DOWN, f"protocol error: the response headers are longer than {MAX_HEAD_BYTES} bytes"
    ),
    "a body past the cap": Case("/big", Status.UP, "HTTP 200", 1024, truncated=True),
    "a chunked body past the cap": Case("/endless", Status.UP, "HTTP 200", 1024, truncated=True),
    "gzip inflating past the cap": Case("/gzip-bomb", Status.UP, "HTTP 200", 1024, truncated=True),
    "hangs up without answering": Case("/hang-up", Status.DOWN, "server closed the connection without answering"),
    "hangs up inside the headers": Case(
        "/half-head", Status.DOWN, "protocol error: the connection closed before the end of the response headers"
    ),
    "hangs up inside the body": Case(
        "/half-body", Status.DOWN, "reading the body failed: server closed the connection before the end of the body"
    ),
    "not HTTP": Case("/not-http", Status.DOWN, "protocol error: Expected HTTP/, RTSP/ or ICE/"),
    "an interim answer first": Case("/early-hints", Status.UP, "HTTP 200", 10),
    "a repeated header": Case(
        "/repeated", Status.UP, "HTTP 200", 0, settings={"expect": {"headers": {"x-tag": "one, two"}}}
    ),
}


@pytest.fixture
async def server() -> AsyncIterator[RawServer]:
    async with raw_server(ANSWERS) as running:
        yield running


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_answers(server: RawServer, case: Case) -> None:
    async with check_context(max_body_bytes=1024) as ctx:
        result = await run_check(request("http", {"url": server.base + case.path, **case.settings}), ctx)
    assert (result.status, result.reason) == (case.status, case.reason)
    if case.body_bytes is not None:
        assert (result.facts["body_bytes"], result.facts["body_truncated"]) == (case.body_bytes, case.truncated)


async def test_a_target_that_never_answers_times_out(server: RawServer, ctx: CheckContext) -> None:
    # check() itself, not run_check: the client's own deadline must end the exchange.
    result = await check(request("http", {"url": server.base + "/never"}, timeout="300ms"), ctx)
    assert (result.status, result.reason) == (Status.DOWN, "timed out after 0.3s")


async def test_what_is_sent(server: RawServer, ctx: CheckContext) -> None:
    settings = {"method": "POST", "body": "ping", "headers": [{"name": "X-Trace", "value": "abc"}]}
    result = await check(request("http", {"url": server.base + "/ok?probe=1", **settings}), ctx)
    assert result.status is Status.UP, result.reason
    (head,) = server.heads
    assert head[""] == "POST /ok?probe=1 HTTP/1.1"
    assert head["host"] == f"{LOCALHOST}:{server.port}"
    assert head["user-agent"] == USER_AGENT
    assert head["connection"] == "close"
    assert head["accept-encoding"] == "gzip, deflate"
    assert (head["content-length"], head["x-trace"]) == ("4", "abc")


async def test_a_head_request_does_not_wait_for_the_announced_body(ctx: CheckContext) -> None:
    async with raw_server({"/": answer("200 OK", ["Content-Length: 1000"])}) as target:
        result = await check(request("http", {"url": target.base + "/", "method": "HEAD"}), ctx)
    assert (result.status, result.reason) == (Status.UP, "HTTP 200")
    assert result.facts["body_bytes"] == 0


async def test_a_name_is_resolved_and_timed(server: RawServer, ctx: CheckContext) -> None:
    result = await check(request("http", {"url": f"http://localhost:{server.port}/ok"}), ctx)
    assert result.status is Status.UP, result.reason
    assert {"dns_ms", "connect_ms", "ttfb_ms", "total_ms"} <= result.facts["timings"].keys()


# --- redirects -------------------------------------------------------------------------------------


def secret_header() -> dict[str, Any]:
    return {"name": "X-Api-Key", "valueFrom": {"secretKeyRef": {"name": "api", "key": "key"}}}


class Secrets:
    def get(self, namespace: str, name: str, key: str) -> str | None:
        return "s3cr3t-value" if (name, key) == ("api", "key") else None


async def test_a_redirect_chain_keeps_secrets_with_the_monitored_origin() -> None:
    async with raw_server({"/end": sized(b"arrived")}) as elsewhere:
        hops: dict[str, Answer] = {
            "/start": answer("302 Found", ["Location: /same-origin", "Content-Length: 0"]),
            "/same-origin": answer("307 Temporary Redirect", [f"Location: {elsewhere.base}/end", "Content-Length: 0"]),
        }
        async with raw_server(hops) as monitored, check_context(secrets=Secrets()) as ctx:
            headers = [
                secret_header(),
                {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "api", "key": "key"}}},
                {"name": "X-Plain", "value": "kept"},
            ]
            result = await run_check(request("http", {"url": monitored.base + "/start", "headers": headers}), ctx)
    assert (result.status, result.reason) == (Status.UP, "HTTP 200")
    assert (result.facts["redirects"], result.facts["final_url"]) == (2, f"{elsewhere.base}/end")
    assert [head["x-api-key"] for head in monitored.heads] == ["s3cr3t-value", "s3cr3t-value"]
    (far,) = elsewhere.heads
    assert "x-api-key" not in far
    assert "authorization" not in far
    assert far["x-plain"] == "kept"
    assert far["host"] == f"{LOCALHOST}:{elsewhere.port}"


async def test_final_url_has_no_userinfo(ctx: CheckContext) -> None:
    async with raw_server({"/end": sized(b"ok")}) as target:
        target.answers["/start"] = answer(
            "302 Found", [f"Location: http://user:pw@{LOCALHOST}:{target.port}/end", "Content-Length: 0"]
        )
        result = await check(request("http", {"url": target.base + "/start"}), ctx)
    assert result.status is Status.UP, result.reason
    assert result.facts["final_url"] == f"{target.base}/end"


# --- TLS -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ok", "/never"], ids=["answered", "timed out"])
async def test_an_exchange_leaves_no_reference_cycle(server: RawServer, ctx: CheckContext, path: str) -> None:
    # A probe runs thousands of checks a second: what one leaves in cycles only the garbage collector's
    # passes free, and those passes cost it a quarter of its CPU. The reader and its parser go by refcount.
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(3):
            result = await check(request("http", {"url": server.base + path}, timeout="200ms"), ctx)
        await asyncio.sleep(0)  # the transports' connection_lost callbacks
        gc.collect()
        left = [
            type(thing).__name__
            for thing in gc.garbage
            if isinstance(thing, _AnswerReader | httptools.HttpResponseParser)
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if collecting:
            gc.enable()
    assert result.status is (Status.UP if path == "/ok" else Status.DOWN), result.reason
    assert left == []


@pytest.mark.parametrize(
    ("names", "expired", "status", "reason"),
    [
        ((LOCALHOST,), False, Status.UP, "HTTP 200"),
        (("other.example",), False, Status.DOWN, "TLS: certificate verify failed: IP address mismatch"),
        ((LOCALHOST,), True, Status.DOWN, "TLS: certificate verify failed: certificate has expired"),
    ],
    ids=["valid", "another name", "expired"],
)
async def test_https(tls_ca: trustme.CA, names: tuple[str, ...], expired: bool, status: Status, reason: str) -> None:
    certificate = leaf(tls_ca, *names, expired_days_ago=1 if expired else None)
    sni: list[str | None] = []
    async with (
        raw_server({"/ok": sized(b"status: ok")}, tls=server_context(certificate, sni)) as target,
        check_context(ssl_context=client_context(tls_ca)) as ctx,
    ):
        result = await run_check(request("http", {"url": target.base + "/ok"}), ctx)
    assert result.status is status
    assert result.reason.startswith(reason), result.reason
    if status is Status.UP:
        assert result.facts["certificate_days_left"] == 90
        assert "connect_ms" in result.facts["timings"]


async def test_https_sends_the_name_as_sni(tls_ca: trustme.CA) -> None:
    sni: list[str | None] = []
    async with (
        raw_server({"/ok": sized(b"ok")}, tls=server_context(leaf(tls_ca, "localhost"), sni)) as target,
        check_context(ssl_context=client_context(tls_ca)) as ctx,
    ):
        result = await check(request("http", {"url": f"https://localhost:{target.port}/ok"}), ctx)
    assert (result.status, result.reason) == (Status.UP, "HTTP 200")
    assert sni == ["localhost"]


# --- egress ----------------------------------------------------------------------------------------


@pytest.fixture
async def loopback_only() -> AsyncIterator[CheckContext]:
    """Loopback allowed (the test's servers), private ranges not."""
    ctx = CheckContext(egress=EgressGuard(EgressPolicy(allow_loopback=True, allow_private=False)))
    try:
        yield ctx
    finally:
        await ctx.aclose()


async def test_a_private_address_is_refused(loopback_only: CheckContext) -> None:
    result = await run_check(request("http", {"url": "http://10.1.2.3/"}), loopback_only)
    assert result.status is Status.DOWN
    assert result.reason == (
        "refused by the egress policy: 10.1.2.3 -> 10.1.2.3: private addresses are not allowed by the egress policy"
    )
    with pytest.raises(EgressRefused):  # the checker raises; run_check words it
        await check(request("http", {"url": "http://10.1.2.3/"}), loopback_only)


async def test_a_redirect_to_a_private_address_is_refused(loopback_only: CheckContext) -> None:
    async with raw_server(
        {"/": answer("302 Found", ["Location: http://192.168.1.1/admin", "Content-Length: 0"])}
    ) as target:
        result = await run_check(request("http", {"url": target.base + "/"}), loopback_only)
    assert result.status is Status.DOWN
    assert result.reason.startswith("refused by the egress policy: 192.168.1.1 -> 192.168.1.1: private addresses")


async def test_a_redirect_to_another_scheme_is_refused(server: RawServer, ctx: CheckContext) -> None:
    server.answers["/ftp"] = answer("302 Found", ["Location: ftp://example.com/file", "Content-Length: 0"])
    result = await run_check(request("http", {"url": server.base + "/ftp"}), ctx)
    assert (result.status, result.reason) == (
        Status.DOWN,
        "refused by the egress policy: ftp: only http and https targets are requested",
    )


# --- request headers that cannot be sent -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("a\r\nX-Injected: 1", "request header X-Note: its value holds a line break"),
        ("café", "a request header holds a character that is not ASCII"),
    ],
)
async def test_a_header_that_cannot_be_sent(server: RawServer, ctx: CheckContext, value: str, reason: str) -> None:
    headers = [{"name": "X-Note", "value": value}]
    result = await run_check(request("http", {"url": server.base + "/ok", "headers": headers}), ctx)
    assert (result.status, result.reason) == (Status.DOWN, reason)
    assert server.heads == []
