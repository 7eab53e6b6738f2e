"""HTTP/1.1 for checks on the event loop's own transports: one request per fresh connection, parsed by httptools.

A check needs one request and one answer, not a general client: no pool (a pooled keep-alive connection
would hide DNS, TCP and TLS failures), no cookies (monitors of different tenants share the worker), no
proxy from the environment (a proxy would connect for us, past the egress guard). So each hop resolves its
host through the egress guard (IP literals are judged there too), connects to an address the guard allowed
(TLS with the worker's context, SNI and hostname verification), sends ``Connection: close`` and reads the
answer with httptools (llhttp, the parser uvicorn uses) in a Protocol's callbacks: no stream objects, no
tasks, no copies of the body beyond the cap.

What a hostile target can make us hold is bounded: response headers at :data:`MAX_HEAD_BYTES` in all,
:data:`MAX_HEADER_LINE` bytes a line and :data:`MAX_HEADERS` lines (refused beyond, as a protocol error),
and the body (decoded) at the caller's cap: reading stops in the chunk that crosses it, and gzip/deflate
are inflated no further than the cap either. Only ``gzip, deflate`` is asked for; a body in another
encoding is refused (:class:`UndecodableBody`) rather than judged as bytes nobody can read.

Redirects are followed as httpx followed them for the checker before: 301/302 turn a POST (302 and 303:
anything but HEAD) into a GET without a body, a relative Location is joined, ``Authorization`` and the
Host override stay with the origin, cookies are never carried, and headers whose values came from Secrets
go to the monitored origin only.
"""

from __future__ import annotations

import asyncio
import base64
import email.message
import socket
import ssl
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httptools
import httpx

from spectra.api.addresses import parse_ip
from spectra.domain.egress import EgressGuard, EgressRefused

USER_AGENT = "SpectraMonitor/0.1 (+https://spectra.dev)"
MAX_HEAD_BYTES = 32 * 1024  # status line and headers of one answer, interim (1xx) answers included
MAX_HEADER_LINE = 8190  # like aiohttp's max_line_size / max_field_size
MAX_HEADERS = 128  # like aiohttp's max_headers

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})  # sent with Content-Length: 0 when they carry nothing
_FRAMING = frozenset({"content-length", "transfer-encoding"})  # computed here, never taken from the spec
_LINE_BREAKS = ("\r", "\n", "\0")


# --- what can go wrong ---------------------------------------------------------------------------


class WireError(Exception):
    """A failure of the exchange that is the target's doing (or its network's); the message is for people."""


class ProtocolFailure(WireError):
    """The answer is not HTTP/1.1 we can read, or breaks the limits on headers."""


class NoAnswer(WireError):
    def __init__(self) -> None:
        super().__init__("server closed the connection without answering")


class ClosedMidBody(WireError):
    def __init__(self) -> None:
        super().__init__("server closed the connection before the end of the body")


class UndecodableBody(WireError):
    """A Content-Encoding that was not asked for, or a gzip/deflate body that does not inflate."""


class InvalidRequestHeader(WireError):
    """A request header value that cannot be sent (a line break or a non-ASCII character); never quoted."""


class TooManyRedirects(WireError):
    """The answers redirected more times than the check allows (httpx's message and limit)."""


class BodyFailed(WireError):
    """The answer's head arrived but its body did not; ``__cause__`` says why."""


# --- the request -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    """What a URL means for a connection, worked out once per URL (spec URLs repeat every interval)."""

    url: httpx.URL
    scheme: str
    host: str  # ASCII (IDNA) name or IP literal: what is resolved, checked and verified
    port: int
    netloc: str  # the Host header
    path: str  # the request target: path and query
    literal: bool  # an IP address: no DNS lookup, so no dns_ms

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.url.host, self.port


def _target_of(url: httpx.URL) -> _Target:
    host = sys.intern(url.raw_host.decode("ascii"))  # thousands of monitors' URLs share a few hosts
    return _Target(
        url=url,
        scheme=url.scheme,
        host=host,
        port=url.port or _DEFAULT_PORTS.get(url.scheme, 0),
        netloc=sys.intern(url.netloc.decode("ascii")),
        path=url.raw_path.decode("ascii"),
        literal=parse_ip(host) is not None,
    )


@lru_cache(maxsize=4096)  # each monitor's URL, every interval; parsing one costs ~40 µs
def _target(url: str) -> _Target:
    return _target_of(httpx.URL(url))


@dataclass(slots=True)
class _Hop:
    method: str
    target: _Target
    headers: list[tuple[str, str]]  # without framing headers and Host
    host_header: str | None  # a Host the spec set; None: the target's
    body: bytes | None

    def encode(self) -> bytes:
        target = self.target
        lines = [f"{self.method} {target.path} HTTP/1.1", f"Host: {self.host_header or target.netloc}"]
        for name, value in self.headers:
            lines.append(f"{name}: {value}")
        userinfo = target.url.userinfo
        if userinfo:  # as httpx did: credentials in a redirect's URL become Basic auth for that hop
            credentials = f"{target.url.username}:{target.url.password}".encode()
            lines.append("Authorization: Basic " + base64.b64encode(credentials).decode())
        if self.body is not None:
            lines.append(f"Content-Length: {len(self.body)}")
        elif self.method in _BODY_METHODS:
            lines.append("Content-Length: 0")
        head = "\r\n".join(lines) + "\r\n\r\n"
        try:
            data = head.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidRequestHeader("a request header holds a character that is not ASCII") from None
        return data + self.body if self.body else data


def _first_hop(method: str, url: str, headers: Sequence[tuple[str, str]], body: bytes | None) -> _Hop:
    """The spec's headers over the defaults (names case-insensitive); framing is ours to set."""
    given = {name.lower() for name, _ in headers}
    merged = [
        (name, value)
        for name, value in (
            ("Accept", "*/*"),
            ("Accept-Encoding", "gzip, deflate"),
            ("User-Agent", USER_AGENT),
            ("Connection", "close"),
        )
        if name.lower() not in given
    ]
    host_header = None
    for name, value in headers:
        lower = name.lower()
        if any(mark in value for mark in _LINE_BREAKS):
            raise InvalidRequestHeader(f"request header {name}: its value holds a line break")
        if lower == "host":
            host_header = value
        elif lower not in _FRAMING:
            merged.append((name, value))
    if body is not None and "content-type" not in given:
        merged.append(("Content-Type", "application/octet-stream"))  # what aiohttp sent for a bytes body
    return _Hop(method, _target(url), merged, host_header, body)


def _next_hop(
    hop: _Hop, status: int, location: str, origin: tuple[str, str, int], secret_names: frozenset[str]
) -> _Hop:
    """The request a redirect asks for, by httpx's rules (which the checker followed before)."""
    try:
        url = httpx.URL(location)
    except httpx.InvalidURL as exc:
        raise ProtocolFailure(f"Invalid URL in location header: {exc}.") from None
    previous = hop.target.url
    if url.scheme and not url.host:  # "http:/path": absolute in form, no host
        url = url.copy_with(host=previous.host)
    if url.is_relative_url:
        url = previous.join(url)
    if previous.fragment and not url.fragment:
        url = url.copy_with(fragment=previous.fragment)
    target = _target_of(url)

    method = hop.method
    if (status in (302, 303) and method != "HEAD") or (status == 301 and method == "POST"):
        method = "GET"  # 303 by the RFC; 302 and a POST's 301 as browsers do
    body = None if method != hop.method and method == "GET" else hop.body
    headers = [(name, value) for name, value in hop.headers if name.lower() != "cookie"]
    host_header = hop.host_header
    if (target.scheme, target.url.host, target.port) != hop.target.origin:
        host_header = None
        if not _is_https_upgrade(hop.target, target):
            headers = [(name, value) for name, value in headers if name.lower() != "authorization"]
    if secret_names and target.origin != origin:
        # Header values from Secrets go to the monitored origin only, never to where it redirects.
        headers = [(name, value) for name, value in headers if name.lower() not in secret_names]
    return _Hop(method, target, headers, host_header, body)


def _is_https_upgrade(source: _Target, target: _Target) -> bool:
    return (
        source.url.host == target.url.host
        and (source.scheme, source.port) == ("http", 80)
        and (target.scheme, target.port) == ("https", 443)
    )


def public_url(url: httpx.URL) -> str:
    """A URL fit for facts and reasons: redirects may carry credentials in the userinfo part."""
    return str(url.copy_with(username=None, password=None)) if url.userinfo else str(url)


# --- the answer ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Response:
    """The final hop's answer: its body decoded and capped, its timings and (https) peer certificate."""

    url: httpx.URL
    status_code: int
    headers: dict[str, str]  # names in lower case; a repeated header's values joined with ", "
    body: bytes
    body_truncated: bool
    redirects: int
    timings: dict[str, float]  # dns_ms (names only), connect_ms (TLS included), ttfb_ms, total_ms
    peer_cert: bytes | None = None  # DER

    @property
    def charset(self) -> str | None:
        content_type = self.headers.get("content-type")
        return _charset(content_type) if content_type else None


@lru_cache(maxsize=256)
def _charset(content_type: str) -> str | None:
    message = email.message.Message()  # parameter quoting and escapes, as httpx read them
    message["content-type"] = content_type
    return message.get_content_charset(failobj=None)


class _Inflater:
    """gzip or deflate, inflated no further than asked; deflate with a zlib header or raw (servers do both)."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.raw_fallback = encoding == "deflate"
        self.inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if encoding != "deflate" else zlib.MAX_WBITS)

    def inflate(self, data: bytes, limit: int) -> bytes:
        try:
            out = self.inflater.decompress(data, limit)
        except zlib.error as exc:
            if not self.raw_fallback:
                raise UndecodableBody(f"cannot decode the {self.encoding} body: {exc}") from None
            self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            self.raw_fallback = False
            return self.inflate(data, limit)
        self.raw_fallback = False
        return out

    def flush(self) -> bytes:
        try:
            return self.inflater.flush()
        except zlib.error as exc:
            raise UndecodableBody(f"cannot decode the {self.encoding} body: {exc}") from None


@dataclass(slots=True)
class _Progress:
    """How far the current hop got, for a timeout's reason (inside the body or before the head)."""

    head_done: bool = False
    marks: dict[str, float] = field(default_factory=dict)


class _AnswerReader(asyncio.Protocol):
    """Feeds what arrives to httptools and collects one answer; ``done`` resolves when it is whole (or
    capped, or needed no body) and fails with why it cannot be."""

    def __init__(self, done: asyncio.Future[None], *, head_only: bool, follow: bool, max_body: int) -> None:
        self.done = done
        self.head_only = head_only  # a HEAD request: the answer has no body, whatever it announces
        self.follow = follow  # a redirect we will follow: its body is never read
        self.max_body = max_body
        # The parser holds callbacks bound to this reader: a cycle until release() breaks it.
        self.parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.head_bytes = 0
        self.head_done = False
        self.headers_at = 0.0
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False
        self.inflater: _Inflater | None = None
        self.encoding_checked = False
        self.complete = False  # the answer ended as HTTP says (not capped, cut or cancelled)

    # transport events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport, plain or TLS

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        if not self.head_done:
            room = MAX_HEAD_BYTES - self.head_bytes
            if len(data) > room:
                self.head_bytes = MAX_HEAD_BYTES
                self._feed(data[:room])
                if self.done.done():
                    return
                if not self.head_done:
                    self._fail(ProtocolFailure(f"the response headers are longer than {MAX_HEAD_BYTES} bytes"))
                    return
                data = data[room:]
            else:
                self.head_bytes += len(data)
        self._feed(data)

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost decides what the end means

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done.done():
            return
        if not self.head_done:
            if exc is not None:
                self._fail(exc)
            elif self.head_bytes:
                self._fail(ProtocolFailure("the connection closed before the end of the response headers"))
            else:
                self._fail(NoAnswer())
        elif exc is not None:
            self._fail(exc)
        elif "content-length" in self.headers or "transfer-encoding" in self.headers:
            self._fail(ClosedMidBody())
        else:  # no length given: the body is what came before the end of the connection
            self.on_message_complete()

    # httptools callbacks (they run inside feed_data)

    def on_status(self, status: bytes) -> None:
        if len(status) > MAX_HEADER_LINE:
            raise ProtocolFailure(f"the status line is longer than {MAX_HEADER_LINE} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) + 2 > MAX_HEADER_LINE:
            raise ProtocolFailure(f"a response header line is longer than {MAX_HEADER_LINE} bytes")
        if len(self.raw_headers) >= MAX_HEADERS:
            raise ProtocolFailure(f"more than {MAX_HEADERS} response headers")
        self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.parser is not None  # called back from inside _feed
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # interim (103 Early Hints): the answer follows
            self.raw_headers.clear()
            return
        self.headers_at = time.perf_counter()
        self.status = status
        headers: dict[str, str] = {}
        for raw_name, raw_value in self.raw_headers:
            name = raw_name.decode("latin-1").lower()
            try:
                value = raw_value.decode("utf-8")
            except UnicodeDecodeError:
                value = raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.headers = headers
        self.head_done = True
        if self.head_only or (self.follow and status in _REDIRECTS and "location" in headers):
            self._finish()

    def on_body(self, data: bytes) -> None:
        if self.done.done():
            return
        if not self.encoding_checked:
            self.encoding_checked = True
            encoding = self.headers.get("content-encoding", "identity").strip().lower()
            if encoding in ("gzip", "x-gzip", "deflate"):
                self.inflater = _Inflater(encoding)
            elif encoding not in ("identity", ""):
                raise UndecodableBody(f"cannot decode a body in Content-Encoding {encoding!r} (only gzip and deflate)")
        if self.inflater is not None:
            data = self.inflater.inflate(data, self.max_body + 1 - self.size)
        self._take(data)

    def on_message_complete(self) -> None:
        if self.done.done() or not self.head_done:
            return  # the end of an interim answer
        if self.inflater is not None:
            try:
                self._take(self.inflater.flush())
            except UndecodableBody as exc:
                self._fail(exc)
                return
        self.complete = True
        self._finish()

    # helpers

    def _take(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > self.max_body:
            self.truncated = True
            self._finish()

    def _feed(self, data: bytes) -> None:
        if self.parser is None:
            return  # released: the exchange is over
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self.head_done:  # 101 Switching Protocols: the answer is its head
                self._finish()
            else:
                self._fail(ProtocolFailure("an upgrade before the response headers ended"))
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause if isinstance(cause, WireError) else ProtocolFailure(str(exc)))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolFailure(str(exc) or type(exc).__name__))

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.done.done():
            return
        if self.head_done:
            failed = BodyFailed()
            failed.__cause__ = exc
            exc = failed
        self.done.set_exception(exc)

    def release(self) -> None:
        """Drop the parser and the transport once the exchange is over. Without the reader <-> parser and
        reader <-> transport cycles, a check's connection objects are freed as soon as it ends, not by the
        garbage collector's passes (which cost `spectra run` about a quarter of its CPU at 10,000 monitors)."""
        self.parser = None
        self.transport = None

    def body(self) -> bytes:
        body = b"".join(self.chunks)
        return body[: self.max_body] if self.truncated else body


# --- one hop ---------------------------------------------------------------------------------------


async def _connect(
    loop: asyncio.AbstractEventLoop,
    addresses: list[tuple[int, Any]],
    reader: _AnswerReader,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
) -> asyncio.Transport:
    """A connection to the first allowed address that takes one (TLS handshake included)."""
    error: BaseException | None = None
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, sockaddr)
            transport, _ = await loop.create_connection(
                lambda: reader, sock=sock, ssl=ssl_context, server_hostname=server_hostname
            )
            return transport
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    assert error is not None  # the guard returns at least one address or raises
    raise error


async def _send_hop(
    hop: _Hop,
    *,
    guard: EgressGuard,
    ssl_context: ssl.SSLContext,
    max_body: int,
    follow: bool,
    progress: _Progress,
) -> Response:
    target = hop.target
    marks = progress.marks = {"start": time.perf_counter()}
    progress.head_done = False
    if target.scheme not in _DEFAULT_PORTS:
        raise EgressRefused(f"{target.scheme}: only http and https targets are requested")
    request = hop.encode()
    if target.literal:
        addresses = await guard.resolve(target.host, target.port)
        marks["connect_start"] = time.perf_counter()
    else:
        marks["dns_start"] = marks["start"]
        addresses = await guard.resolve(target.host, target.port)
        marks["dns_end"] = time.perf_counter()
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    reader = _AnswerReader(done, head_only=hop.method == "HEAD", follow=follow, max_body=max_body)
    tls = target.scheme == "https"
    try:
        transport = await _connect(
            loop, addresses, reader, ssl_context if tls else None, target.host.rstrip(".") if tls else None
        )
    except BaseException:
        reader.release()
        raise
    try:
        marks["connect_end"] = time.perf_counter()
        peer_cert = None
        if tls:
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                peer_cert = ssl_object.getpeercert(binary_form=True)
        transport.write(request)
        try:
            await done
        finally:
            progress.head_done = reader.head_done
        finished = time.perf_counter()
    finally:
        if reader.complete:
            transport.close()
        else:
            transport.abort()  # capped, cut short or cancelled: nothing more to hear, no TLS goodbye to wait for
        reader.release()
    marks["headers"] = reader.headers_at
    return Response(
        url=target.url,
        status_code=reader.status,
        headers=reader.headers,
        body=reader.body(),
        body_truncated=reader.truncated,
        redirects=0,
        timings=timings(marks, finished),
        peer_cert=peer_cert,
    )


def timings(marks: dict[str, float], finished: float) -> dict[str, float]:
    """Phases of a hop in ms. The TLS handshake is part of the connection, so `connect_ms` includes it."""

    def span(start: str, end: str) -> float | None:
        if start in marks and end in marks:
            return round((marks[end] - marks[start]) * 1000, 3)
        return None

    phases = {
        "dns_ms": span("dns_start", "dns_end"),
        "connect_ms": span("dns_end" if "dns_end" in marks else "connect_start", "connect_end"),
        "ttfb_ms": span("start", "headers"),
    }
    result = {name: value for name, value in phases.items() if value is not None}
    result["total_ms"] = round((finished - marks["start"]) * 1000, 3)
    return result


# --- the exchange ----------------------------------------------------------------------------------


async def fetch(
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes | None,
    *,
    guard: EgressGuard,
    ssl_context: ssl.SSLContext,
    timeout: float,
    max_body: int,
    follow_redirects: bool,
    max_redirects: int,
    secret_names: frozenset[str] = frozenset(),
) -> Response:
    """One request and the redirects it leads to, within `timeout` seconds in all.

    Raises TooManyRedirects, WireError (BodyFailed when the head arrived, with the reason as its cause),
    TimeoutError (BodyFailed from it inside a body), OSError (refused, reset, TLS, DNS) and EgressRefused
    for a hop the egress policy does not allow. `secret_names` (lower case) are dropped on a hop to
    another origin.
    """
    hop = _first_hop(method, url, headers, body)
    origin = hop.target.origin
    progress = _Progress()
    redirects = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                response = await _send_hop(
                    hop,
                    guard=guard,
                    ssl_context=ssl_context,
                    max_body=max_body,
                    follow=follow_redirects,
                    progress=progress,
                )
                location = response.headers.get("location")
                if not follow_redirects or location is None or response.status_code not in _REDIRECTS:
                    response.redirects = redirects
                    return response
                following = _next_hop(hop, response.status_code, location, origin, secret_names)
                if redirects >= max_redirects:
                    raise TooManyRedirects(
                        f"too many redirects (more than {max_redirects}), next: {public_url(following.target.url)}"
                    )
                hop = following
                redirects += 1
    except TimeoutError as exc:
        if progress.head_done:
            raise BodyFailed() from exc
        raise
