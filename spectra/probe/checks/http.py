"""http(s) checks: one request (plus redirects), a size-capped body, and the spec's expectations.

The request goes through the worker's one client (:mod:`spectra.probe.http_client`): a fresh,
egress-guarded connection per check, with the final hop's timings and certificate recorded.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import AsyncGenerator, Iterator
from functools import lru_cache
from typing import Any, cast

import aiohttp
import httpx

from spectra.api.checks.http import HttpCheck, HttpExpect
from spectra.domain.egress import EgressRefused
from spectra.probe import assertions
from spectra.probe.certificates import CertificateInfo, expiry_reason, parse_der
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.evaluator import BodyExpectations, EvaluatorUnavailable
from spectra.probe.http_client import timings, traced
from spectra.probe.result import CheckResult

log = logging.getLogger(__name__)


class TooManyRedirects(Exception):
    pass


# --- the check -------------------------------------------------------------------------------------


async def check(request: CheckRequest, ctx: CheckContext) -> CheckResult:
    spec = request.spec.http
    if spec is None:
        raise ValueError(f"{request.ref} has no http block")
    headers, secret_names = _request_headers(request, ctx)
    timeout = request.spec.effective_timeout.total_seconds()
    client = ctx.http_client()
    started = time.perf_counter()
    with traced() as record:
        try:
            response, redirects = await _send(client, spec, headers, secret_names, timeout)
        except TooManyRedirects as exc:
            return CheckResult.down(_ms(started), str(exc))
        except httpx.HTTPError as exc:
            return CheckResult.down(_ms(started), _describe(exc, timeout))
        try:
            body, truncated = await _read_body(response, ctx.max_body_bytes)
        except httpx.HTTPError as exc:
            return CheckResult.down(_ms(started), f"reading the body failed: {_describe(exc, timeout)}")
        finally:
            await response.aclose()
        finished = time.perf_counter()

    hop = timings(record, finished)
    latency = hop.get("total_ms", round((finished - started) * 1000, 3))
    facts: dict[str, Any] = {
        "status_code": response.status_code,
        "final_url": _public_url(response.url),
        "redirects": redirects,
        "timings": hop,
        "body_bytes": len(body),
        "body_truncated": truncated,
    }
    if response.url.scheme == "https" and "peer_cert" in record:
        certificate = _certificate(record["peer_cert"])
        facts["certificate_expires_at"] = certificate.not_after.isoformat()
        facts["certificate_days_left"] = certificate.days_left()
    text = _decode(body, response.charset_encoding)
    return await _evaluate(spec.expect, response, text=text, truncated=truncated, latency=latency, facts=facts, ctx=ctx)


def _request_headers(request: CheckRequest, ctx: CheckContext) -> tuple[list[tuple[str, str]], set[str]]:
    """The spec's headers, secrets resolved (MissingSecret propagates: run_check names the Secret)."""
    assert request.spec.http is not None
    headers: list[tuple[str, str]] = []
    secret_names: set[str] = set()
    for header in request.spec.http.headers:
        if header.value_from is not None:
            headers.append((header.name, ctx.secret(request.namespace, header.value_from)))
            secret_names.add(header.name.lower())
        else:
            headers.append((header.name, header.value or ""))
    return headers, secret_names


async def _send(
    client: httpx.AsyncClient,
    spec: HttpCheck,
    headers: list[tuple[str, str]],
    secret_names: set[str],
    timeout: float,
) -> tuple[httpx.Response, int]:
    """Send and follow redirects up to the limit. Redirect bodies are never read; each hop passes the
    request hook and the guarded resolver."""
    content = spec.body.encode() if spec.body is not None else None
    request = client.build_request(spec.method, spec.url, headers=headers, content=content, timeout=timeout)
    origin = _origin(request.url)
    redirects = 0
    while True:
        response = await client.send(request, stream=True, follow_redirects=False)
        following = response.next_request
        if following is None or not spec.follow_redirects:
            return response, redirects
        await response.aclose()
        if redirects >= spec.max_redirects:
            raise TooManyRedirects(
                f"too many redirects (more than {spec.max_redirects}), next: {_public_url(following.url)}"
            )
        if secret_names and _origin(following.url) != origin:
            # Header values from Secrets go to the monitored origin only, never to where it redirects.
            for name in secret_names:
                following.headers.pop(name, None)
        request = following
        redirects += 1


async def _read_body(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes of the (decoded) body; reading stops in the chunk that crosses the limit."""
    chunks: list[bytes] = []
    size = 0
    stream = cast(AsyncGenerator[bytes, None], response.aiter_bytes())  # it is one; closed promptly below
    async with contextlib.aclosing(stream):
        async for chunk in stream:
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                break
    body = b"".join(chunks)
    return body[:limit], size > limit


async def _evaluate(
    expect: HttpExpect,
    response: httpx.Response,
    *,
    text: str,
    truncated: bool,
    latency: float,
    facts: dict[str, Any],
    ctx: CheckContext,
) -> CheckResult:
    code = response.status_code
    if expect.status is None:
        if not 200 <= code < 300:
            return CheckResult.down(latency, f"HTTP {code} (expected 2xx)", **facts)
    elif code not in expect.status:
        wanted = ", ".join(str(status) for status in expect.status)
        return CheckResult.down(latency, f"HTTP {code} (expected {wanted})", **facts)

    try:
        failure = await _body_failure(expect, text, ctx)
    except EvaluatorUnavailable as exc:  # ours, not the target's: no verdict (see spectra.probe.lag)
        log.warning("expectations not evaluated: %s", exc)
        return CheckResult.stalled(latency, f"probe could not evaluate the expectations: {exc}; no verdict", **facts)
    if failure is not None:
        if truncated:
            failure += f" (only the first {facts['body_bytes']} bytes are read)"
        return CheckResult.down(latency, failure, **facts)
    for name, value in expect.headers.items():
        failure = assertions.header_contains(response.headers, name, value)
        if failure is not None:
            return CheckResult.down(latency, failure, **facts)

    slow: list[str] = []
    days_left = facts.get("certificate_days_left")
    if expect.certificate_min_days is not None and days_left is not None and days_left < expect.certificate_min_days:
        slow.append(f"{expiry_reason(days_left)} (min {expect.certificate_min_days})")
    if expect.max_response_time is not None:
        limit_ms = expect.max_response_time.total_seconds() * 1000
        if latency > limit_ms:
            slow.append(f"took {latency:.0f} ms (max {limit_ms:.0f} ms)")
    if slow:
        return CheckResult.degraded(latency, "; ".join(slow), **facts)
    return CheckResult.up(latency, f"HTTP {code}", **facts)


async def _body_failure(expect: HttpExpect, text: str, ctx: CheckContext) -> str | None:
    if expect.body_contains is not None:
        failure = assertions.body_contains(text, expect.body_contains)
        if failure is not None:
            return failure
    if expect.body_regex is None and not expect.json_path:
        return None
    # Their cost is the tenant's to choose: an evaluator process under ctx.evaluation_budget_s, never this loop.
    expectations = BodyExpectations(expect.body_regex, tuple((item.path, item.equals) for item in expect.json_path))
    return await ctx.evaluators().evaluate(text, expectations)


# --- helpers ---------------------------------------------------------------------------------------


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def _public_url(url: httpx.URL) -> str:
    """A URL fit for facts and reasons: redirects may carry credentials in the userinfo part."""
    return str(url.copy_with(username=None, password=None)) if url.userinfo else str(url)


def _decode(body: bytes, charset: str | None) -> str:
    """The body as text in the charset the target names; UTF-8 when Python has no such text codec, or the
    codec refuses `errors="replace"` (a target can name zlib or idna)."""
    try:
        return body.decode(codecs.lookup(charset or "utf-8").name, errors="replace")
    except (LookupError, UnicodeError):
        return body.decode("utf-8", errors="replace")


@lru_cache(maxsize=1024)  # the same few certificates are seen over and over
def _certificate(der: bytes) -> CertificateInfo:
    return parse_der(der)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (httpx wraps aiohttp, which wraps the OSError)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [
            current.__cause__,
            current.__context__,
            getattr(current, "os_error", None),
            getattr(current, "certificate_error", None),
        ]


def _describe(exc: httpx.HTTPError, timeout: float) -> str:
    """One line for people; an egress refusal deeper in the chain is re-raised for run_check.

    The underlying error decides, not the httpx class: httpx-aiohttp maps some connect errors (a refused
    connection among them) to httpx.ConnectTimeout.
    """
    chain = list(_causes(exc))
    # aiohttp's own TLS errors subclass the ssl ones; the ssl error they wrap has the details.
    causes = [cause for cause in chain if not isinstance(cause, aiohttp.ClientError)]
    for cause in causes:
        if isinstance(cause, EgressRefused):
            raise cause from None
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS: certificate verify failed: {cause.verify_message or cause.reason}"
    for cause in causes:
        if isinstance(cause, ssl.SSLError):
            return f"TLS: {cause.reason or cause}"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by peer"
        if isinstance(cause, socket.gaierror):
            return f"DNS lookup failed: {cause.strerror}"
    if any(isinstance(cause, TimeoutError) for cause in chain):  # aiohttp's connect and read timeouts
        return f"timed out after {timeout:g}s"
    if any(isinstance(cause, aiohttp.ServerDisconnectedError) for cause in chain):
        return "server closed the connection without answering"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"protocol error: {_first_line(exc)}"
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
