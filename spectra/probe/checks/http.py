"""http(s) checks: one request (plus redirects), a size-capped body, and the spec's expectations.

The request goes over :mod:`spectra.probe.http_wire`: a fresh, egress-guarded HTTP/1.1 connection per
hop, the body decoded and capped at ``ctx.max_body_bytes``, the final hop's timings and certificate kept.
"""

from __future__ import annotations

import codecs
import logging
import socket
import ssl
import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from spectra.api.checks.http import HttpExpect
from spectra.domain.egress import EgressRefused
from spectra.probe import assertions
from spectra.probe.certificates import CertificateInfo, expiry_reason, parse_der
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.evaluator import BodyExpectations, EvaluatorUnavailable
from spectra.probe.http_wire import (
    BodyFailed,
    ProtocolFailure,
    Response,
    TooManyRedirects,
    WireError,
    fetch,
    public_url,
)
from spectra.probe.result import CheckResult

log = logging.getLogger(__name__)


# --- the check -------------------------------------------------------------------------------------


async def check(request: CheckRequest, ctx: CheckContext) -> CheckResult:
    spec = request.spec.http
    if spec is None:
        raise ValueError(f"{request.ref} has no http block")
    headers, secret_names = _request_headers(request, ctx)
    timeout = request.spec.effective_timeout.total_seconds()
    started = time.perf_counter()
    try:
        response = await fetch(
            spec.method,
            spec.url,
            headers,
            spec.body.encode() if spec.body is not None else None,
            guard=ctx.egress,
            ssl_context=ctx.ssl_context,
            timeout=timeout,
            max_body=ctx.max_body_bytes,
            follow_redirects=spec.follow_redirects,
            max_redirects=spec.max_redirects,
            secret_names=frozenset(secret_names),
        )
    except TooManyRedirects as exc:
        return CheckResult.down(_ms(started), str(exc))
    except BodyFailed as exc:
        cause = exc.__cause__ or exc
        return CheckResult.down(_ms(started), f"reading the body failed: {_describe(cause, timeout)}")
    except (WireError, OSError) as exc:  # TimeoutError, ssl.SSLError and socket.gaierror are OSErrors
        return CheckResult.down(_ms(started), _describe(exc, timeout))

    hop = response.timings
    latency = hop["total_ms"]
    facts: dict[str, Any] = {
        "status_code": response.status_code,
        "final_url": public_url(response.url),
        "redirects": response.redirects,
        "timings": hop,
        "body_bytes": len(response.body),
        "body_truncated": response.body_truncated,
    }
    if response.url.scheme == "https" and response.peer_cert is not None:
        certificate = _certificate(response.peer_cert)
        facts["certificate_expires_at"] = certificate.not_after.isoformat()
        facts["certificate_days_left"] = certificate.days_left()
    text = _decode(response.body, response.charset)
    return await _evaluate(
        spec.expect,
        response,
        text=text,
        truncated=response.body_truncated,
        latency=latency,
        facts=facts,
        ctx=ctx,
        tenant=request.namespace,
    )


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


async def _evaluate(
    expect: HttpExpect,
    response: Response,
    *,
    text: str,
    truncated: bool,
    latency: float,
    facts: dict[str, Any],
    ctx: CheckContext,
    tenant: str,
) -> CheckResult:
    code = response.status_code
    if expect.status is None:
        if not 200 <= code < 300:
            return CheckResult.down(latency, f"HTTP {code} (expected 2xx)", **facts)
    elif code not in expect.status:
        wanted = ", ".join(str(status) for status in expect.status)
        return CheckResult.down(latency, f"HTTP {code} (expected {wanted})", **facts)

    try:
        failure = await _body_failure(expect, text, ctx, tenant)
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


async def _body_failure(expect: HttpExpect, text: str, ctx: CheckContext, tenant: str) -> str | None:
    if expect.body_contains is not None:
        failure = assertions.body_contains(text, expect.body_contains)
        if failure is not None:
            return failure
    if expect.body_regex is None and not expect.json_path:
        return None
    # Their cost is the tenant's to choose: an evaluator process under ctx.evaluation_budget_s, never this loop.
    expectations = BodyExpectations(expect.body_regex, tuple((item.path, item.equals) for item in expect.json_path))
    return await ctx.evaluators().evaluate(text, expectations, tenant=tenant)


# --- helpers ---------------------------------------------------------------------------------------


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


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
    """The exception and what it was raised from."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _describe(exc: BaseException, timeout: float) -> str:
    """One line for people; an egress refusal is re-raised for run_check."""
    for cause in _causes(exc):
        if isinstance(cause, EgressRefused):
            raise cause from None
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS: certificate verify failed: {cause.verify_message or cause.reason}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS: {cause.reason or cause}"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, ConnectionResetError):
            return "connection reset by peer"
        if isinstance(cause, socket.gaierror):
            return f"DNS lookup failed: {cause.strerror}"
        if isinstance(cause, TimeoutError):
            return f"timed out after {timeout:g}s"
        if isinstance(cause, ProtocolFailure):
            return f"protocol error: {_first_line(cause)}"
        if isinstance(cause, WireError):
            return _first_line(cause)
    return f"{type(exc).__name__}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
