"""A target that echoes what it was sent cannot turn a Secret into a check reason or fact.

The echo server reflects the request's secret headers back: into response headers, a JSON body, a redirect
URL, a malformed status line, decoded (Basic credentials) and URL-encoded. Each case has an expectation that
quotes what came back, so without ``run_check``'s scrubbing the value would be in the result (the first
test shows it is, calling the checker directly). Through ``run_check`` no form of any secret is left in the
reason, the facts or the log, and the marker shows where it was.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from spectra.probe.checks import run_check
from spectra.probe.checks.http import check
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.result import CheckResult
from spectra.probe.scrubbing import ResolvedSecrets, collecting, note_resolved
from spectra.runtime.redaction import REDACTED

from .servers import ServeApp, check_context, request

API_KEY = "k3y-0b9d1c7e5a3f41d2a8c6e4b2f0d9c7a5"
PASSWORD = "Sup3r-S3cret!pw"
BASIC = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
LONG_BEARER = "Bearer " + "eyJhbGciOiJIUzI1NiJ9." + "x7Qp" * 30 + ".sig"  # longer than a quoted value may be
SECRETS = {"api-key": API_KEY, "basic": BASIC, "bearer": LONG_BEARER}


def leaked_forms(value: str) -> list[str]:
    """What must not be found: the value, its URL-encoding and, for credentials, its decoded parts."""
    forms = [value, quote(value, safe="")]
    scheme, _, credential = value.partition(" ")
    if credential:
        forms.append(credential)
        if scheme == "Basic":
            decoded = base64.b64decode(credential).decode()
            forms += [decoded, decoded.split(":", 1)[1], quote(decoded.split(":", 1)[1], safe="")]
    return forms


class Secrets:
    def get(self, namespace: str, name: str, key: str) -> str | None:
        return SECRETS.get(key) if (namespace, name) == ("default", "creds") else None


def echo_app() -> web.Application:
    """Reflects the request's X-Api-Key and Authorization headers wherever a check might quote them."""
    routes = web.RouteTableDef()

    def sent(request: web.Request) -> str:
        return request.headers.get("Authorization") or request.headers.get("X-Api-Key") or ""

    @routes.get("/header-echo")
    async def header_echo(request: web.Request) -> web.Response:
        return web.Response(text="ok", headers={"X-Echo": sent(request)})

    @routes.get("/json-echo")
    async def json_echo(request: web.Request) -> web.Response:
        value = sent(request)
        _, _, credential = value.partition(" ")
        decoded = base64.b64decode(credential).decode() if value.startswith("Basic ") else ""
        return web.json_response(
            {"seen": value, "decoded": decoded, "password": decoded.partition(":")[2], "encoded": quote(value, safe="")}
        )

    @routes.get("/redirect-echo")
    async def redirect_echo(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/landing?seen={quote(sent(request), safe='')}")

    @routes.get("/landing")
    async def landing(request: web.Request) -> web.Response:
        return web.Response(status=500, text="broken")

    app = web.Application()
    app.add_routes(routes)
    return app


@contextlib.asynccontextmanager
async def status_line_echo() -> AsyncIterator[int]:
    """A raw server whose broken status line repeats the request's headers (parsers quote bad lines)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        echoed = b" ".join(line.split(b": ", 1)[-1] for line in head.split(b"\r\n")[1:] if line)
        writer.write(b"HTTP/1.1 2OO " + echoed + b"\r\n" + echoed + b"\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def header(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": "creds", "key": key}}}


@dataclass(frozen=True)
class Case:
    path: str
    secret: str  # the key in SECRETS
    header: str
    expect: dict[str, Any]


CASES = {
    "api-key in a response header": Case("/header-echo", "api-key", "X-Api-Key", {"headers": {"X-Echo": "nope"}}),
    "basic auth in a response header": Case("/header-echo", "basic", "Authorization", {"headers": {"X-Echo": "no"}}),
    "long bearer, shortened in a quote": Case("/header-echo", "bearer", "Authorization", {"headers": {"X-Echo": "no"}}),
    "api-key in a JSON body": Case(
        "/json-echo", "api-key", "X-Api-Key", {"jsonPath": [{"path": "$.seen", "equals": "x"}]}
    ),
    "basic auth decoded in a JSON body": Case(
        "/json-echo", "basic", "Authorization", {"jsonPath": [{"path": "$.decoded", "equals": "x"}]}
    ),
    "basic auth password alone": Case(
        "/json-echo", "basic", "Authorization", {"jsonPath": [{"path": "$.password", "equals": "x"}]}
    ),
    "url-encoded in a JSON body": Case(
        "/json-echo", "basic", "Authorization", {"jsonPath": [{"path": "$.encoded", "equals": "x"}]}
    ),
    "url-encoded in the redirect URL (final_url)": Case("/redirect-echo", "api-key", "X-Api-Key", {}),
}


def http_request(base: str, case: Case) -> CheckRequest:
    return request(
        "http", {"url": base + case.path, "headers": [header(case.header, case.secret)], "expect": case.expect}
    )


def shown(result: CheckResult) -> str:
    return result.reason + "\n" + json.dumps(result.facts, ensure_ascii=False)


def assert_scrubbed(result: CheckResult, secret: str) -> None:
    text = shown(result)
    for form in leaked_forms(secret):
        assert form not in text, f"{form!r} leaked into {text!r}"
    assert REDACTED in text, f"nothing was echoed: the case proves nothing ({text!r})"


@pytest.fixture
async def ctx() -> AsyncIterator[CheckContext]:
    async with check_context(secrets=Secrets()) as context:
        yield context


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_an_echoed_secret_is_in_no_reason_fact_or_log(
    serve_app: ServeApp, ctx: CheckContext, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    base = await serve_app(echo_app())
    result = await run_check(http_request(base, case), ctx)
    assert_scrubbed(result, SECRETS[case.secret])
    for form in leaked_forms(SECRETS[case.secret]):
        assert form not in caplog.text


@pytest.mark.parametrize("case", [CASES["basic auth in a response header"], CASES["api-key in a JSON body"]])
async def test_without_run_check_the_echo_would_leak(serve_app: ServeApp, ctx: CheckContext, case: Case) -> None:
    """The checker alone quotes what the target sent: the attack is real, run_check is what stops it."""
    base = await serve_app(echo_app())
    result = await check(http_request(base, case), ctx)
    assert SECRETS[case.secret] in shown(result)


@pytest.mark.parametrize("key", ["api-key", "basic"])
async def test_a_secret_echoed_into_a_broken_status_line(ctx: CheckContext, key: str) -> None:
    async with status_line_echo() as port:
        name = "X-Api-Key" if key == "api-key" else "Authorization"
        result = await run_check(
            request("http", {"url": f"http://127.0.0.1:{port}/", "headers": [header(name, key)]}), ctx
        )
    text = shown(result)
    for form in leaked_forms(SECRETS[key]):
        assert form not in text, f"{form!r} leaked into {text!r}"


async def test_concurrent_checks_scrub_their_own_secrets_only(serve_app: ServeApp, ctx: CheckContext) -> None:
    base = await serve_app(echo_app())
    cases = [CASES["api-key in a response header"], CASES["basic auth in a response header"]] * 4
    results = await asyncio.gather(*(run_check(http_request(base, case), ctx) for case in cases))
    for case, result in zip(cases, results, strict=True):
        assert_scrubbed(result, SECRETS[case.secret])


@pytest.mark.parametrize(
    ("secrets", "text", "expected"),
    [
        ([API_KEY], f"x {API_KEY} y", f"x {REDACTED} y"),
        ([API_KEY], f"x {API_KEY[:20]}... y", f"x {REDACTED}... y"),  # a shortened quote
        ([API_KEY], "HTTP 500 from http://127.0.0.1/", "HTTP 500 from http://127.0.0.1/"),
        ([BASIC], f"user alice:{PASSWORD}", f"user {REDACTED}"),
        ([BASIC], f"pw={quote(PASSWORD, safe='')}", f"pw={REDACTED}"),
        (["long/value=x"], "v=long%2fvalue%3dx", f"v={REDACTED}"),  # hex in lower case
        (['p"w\\long-value'], 'got "p\\"w\\\\long-value"', f'got "{REDACTED}"'),  # JSON-escaped
        (["<a&b>long-value"], "got &lt;a&amp;b&gt;long-value", f"got {REDACTED}"),  # HTML-escaped
        ([API_KEY], base64.b64encode(API_KEY.encode()).decode(), REDACTED),
        (["abc"], "abc is too short to tell from words", "abc is too short to tell from words"),
        ([], f"x {API_KEY}", f"x {API_KEY}"),
    ],
    ids=[
        "plain",
        "shortened",
        "untouched",
        "basic-decoded",
        "url-encoded",
        "url-encoded-lower",
        "json",
        "html",
        "base64",
        "too-short",
        "none",
    ],
)
def test_scrub_forms(secrets: list[str], text: str, expected: str) -> None:
    with collecting() as resolved:
        for value in secrets:
            note_resolved(value)
    assert resolved.scrub(text) == expected


def test_facts_are_scrubbed_deeply_and_nothing_is_noted_outside_a_check() -> None:
    note_resolved(API_KEY)  # outside collecting(): remembered nowhere
    resolved = ResolvedSecrets()
    resolved.add(API_KEY)
    result = CheckResult.down(1.0, f"saw {API_KEY}", echo={API_KEY: [API_KEY, 3, None]}, final_url=f"/x?k={API_KEY}")
    scrubbed = resolved.scrub_result(result)
    assert API_KEY not in shown(scrubbed)
    assert scrubbed.facts == {"echo": {REDACTED: [REDACTED, 3, None]}, "final_url": f"/x?k={REDACTED}"}
    assert ResolvedSecrets().scrub_result(result) is result
