"""The http(s) checker against real aiohttp servers on 127.0.0.1 (plain and TLS with a test CA)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
import trustme
from aiohttp import web

from spectra.probe.checks import run_check
from spectra.probe.checks.http import check
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.result import Status
from tests.support.processes import free_port

from .servers import LOCAL_TIMEOUT, ServeApp, check_context, client_context, leaf, request, server_context

SECRET = "s3cr3t-T0ken-value"
JSON_DOC = {"status": "ok", "version": 3, "healthy": True, "checks": {"db": "up"}}


class Secrets:
    def __init__(self, values: dict[tuple[str, str, str], str]) -> None:
        self.values = values

    def get(self, namespace: str, name: str, key: str) -> str | None:
        return self.values.get((namespace, name, key))


def target_app() -> web.Application:
    """Everything the checker is pointed at."""
    routes = web.RouteTableDef()

    @routes.get("/ok")
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="status: ok\n", headers={"X-Service": "spectra-test"})

    @routes.get("/status/{code}")
    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"status {code}")

    @routes.get("/json")
    async def json_doc(request: web.Request) -> web.Response:
        return web.json_response(JSON_DOC)

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(int(request.query["ms"]) / 1000)
        return web.Response(text="finally")

    @routes.get("/redirect/{n}")
    async def redirect(request: web.Request) -> web.Response:
        left = int(request.match_info["n"])
        if left == 0:
            return web.Response(text="arrived")
        raise web.HTTPFound(f"/redirect/{left - 1}")

    @routes.get("/goto")
    async def goto(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    @routes.get("/secret")
    async def secret(request: web.Request) -> web.Response:
        if request.headers.get("X-Api-Key") != SECRET:
            return web.Response(status=401, text="who are you?")
        return web.Response(text="welcome")

    @routes.get("/big")
    async def big(request: web.Request) -> web.Response:
        size = int(request.query["size"])
        return web.Response(body=b"a" * (size - 3) + b"END")

    @routes.get("/repeat")
    async def repeat(request: web.Request) -> web.Response:
        return web.Response(text=request.query["char"] * int(request.query["n"]))

    @routes.get("/cookie")
    async def cookie(request: web.Request) -> web.Response:
        response = web.Response(text=f"had cookie: {'session' in request.cookies}")
        response.set_cookie("session", "tenant-a")
        return response

    @routes.post("/echo")
    async def echo(request: web.Request) -> web.Response:
        return web.Response(text=f"{request.method} {await request.text()}")

    app = web.Application()
    app.add_routes(routes)
    return app


@pytest.fixture
async def base(serve_app: ServeApp) -> str:
    return await serve_app(target_app())


@pytest.fixture
async def ctx(tls_ca: trustme.CA) -> AsyncIterator[CheckContext]:
    secrets = Secrets({("default", "api", "key"): SECRET})
    async with check_context(ssl_context=client_context(tls_ca), secrets=secrets) as context:
        yield context


def http(url: str, *, timeout: str = LOCAL_TIMEOUT, **settings: Any) -> CheckRequest:
    return request("http", {"url": url, **settings}, timeout=timeout)


# --- expectations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "settings", "status", "reason"),
    [
        ("/ok", {}, Status.UP, "HTTP 200"),
        ("/status/500", {}, Status.DOWN, "HTTP 500 (expected 2xx)"),
        ("/status/500", {"expect": {"status": [200]}}, Status.DOWN, "HTTP 500 (expected 200)"),
        ("/status/404", {"expect": {"status": [200, 204]}}, Status.DOWN, "HTTP 404 (expected 200, 204)"),
        ("/status/503", {"expect": {"status": [503]}}, Status.UP, "HTTP 503"),
        ("/ok", {"expect": {"bodyContains": "status: ok"}}, Status.UP, "HTTP 200"),
        ("/ok", {"expect": {"bodyContains": "healthy"}}, Status.DOWN, "body does not contain 'healthy'"),
        ("/ok", {"expect": {"bodyRegex": r"status: (ok|fine)"}}, Status.UP, "HTTP 200"),
        ("/ok", {"expect": {"bodyRegex": r"^status: down$"}}, Status.DOWN, "body does not match '^status: down$'"),
        (
            "/repeat?char=x&n=5000",
            {"expect": {"bodyRegex": r"(x+x+)+y"}},
            Status.DOWN,
            "regex search exceeded its 1s budget",
        ),
        ("/json", {"expect": {"jsonPath": [{"path": "$.status", "equals": "ok"}]}}, Status.UP, "HTTP 200"),
        (
            "/json",
            {"expect": {"jsonPath": [{"path": "$.version", "equals": 3}, {"path": "$.checks.db", "equals": "up"}]}},
            Status.UP,
            "HTTP 200",
        ),
        (
            "/json",
            {"expect": {"jsonPath": [{"path": "$.status", "equals": "down"}]}},
            Status.DOWN,
            "$.status is 'ok', expected 'down'",
        ),
        (
            "/json",
            {"expect": {"jsonPath": [{"path": "$.uptime", "equals": 1}]}},
            Status.DOWN,
            "$.uptime not found in the body",
        ),
        ("/json", {"expect": {"headers": {"content-type": "application/json"}}}, Status.UP, "HTTP 200"),
        ("/ok", {"expect": {"headers": {"x-SERVICE": "spectra"}}}, Status.UP, "HTTP 200"),
        (
            "/ok",
            {"expect": {"headers": {"X-Service": "billing"}}},
            Status.DOWN,
            "header X-Service is 'spectra-test', expected it to contain 'billing'",
        ),
        ("/ok", {"expect": {"headers": {"X-Version": "2"}}}, Status.DOWN, "header X-Version is missing"),
        ("/ok", {"method": "POST", "expect": {"status": [405]}}, Status.UP, "HTTP 405"),
        ("/ok", {"method": "HEAD", "expect": {"headers": {"X-Service": "spectra"}}}, Status.UP, "HTTP 200"),
    ],
)
async def test_expectations(
    base: str, ctx: CheckContext, path: str, settings: dict[str, Any], status: Status, reason: str
) -> None:
    result = await run_check(http(base + path, **settings), ctx)
    assert (result.status, result.reason) == (status, reason)
    if reason.startswith("HTTP"):
        assert result.facts["status_code"] == int(reason.split()[1])


async def test_facts_of_a_plain_http_check(base: str, ctx: CheckContext) -> None:
    result = await check(http(base + "/ok"), ctx)
    assert result.status is Status.UP
    facts = result.facts
    assert facts["status_code"] == 200
    assert facts["final_url"] == base + "/ok"
    assert facts["redirects"] == 0
    assert facts["body_bytes"] == len("status: ok\n")
    assert facts["body_truncated"] is False
    assert {"connect_ms", "ttfb_ms", "total_ms"} <= facts["timings"].keys()
    assert result.latency_ms == facts["timings"]["total_ms"]
    assert "certificate_days_left" not in facts
    json.dumps(facts)  # JSON-ready


async def test_method_and_body_are_sent(base: str, ctx: CheckContext) -> None:
    result = await check(http(base + "/echo", method="POST", body="ping", expect={"bodyContains": "POST ping"}), ctx)
    assert result.status is Status.UP, result.reason


async def test_body_that_is_not_json(base: str, ctx: CheckContext) -> None:
    result = await check(http(base + "/ok", expect={"jsonPath": [{"path": "$.status", "equals": "ok"}]}), ctx)
    assert result.status is Status.DOWN
    assert result.reason.startswith("body is not JSON: ")


async def test_cookies_are_never_kept(base: str, ctx: CheckContext) -> None:
    """One client serves every monitor of every tenant: a cookie one target sets must not reach the next."""
    for _ in range(2):
        result = await check(http(base + "/cookie", expect={"bodyContains": "had cookie: False"}), ctx)
        assert result.status is Status.UP, result.reason


async def test_one_context_serves_concurrent_checks(base: str, ctx: CheckContext) -> None:
    results = await asyncio.gather(*(check(http(base + "/ok"), ctx) for _ in range(20)))
    assert {result.status for result in results} == {Status.UP}


# --- time ------------------------------------------------------------------------------------------


async def test_slower_than_max_response_time_is_degraded(base: str, ctx: CheckContext) -> None:
    result = await run_check(http(base + "/slow?ms=150", expect={"maxResponseTime": "50ms"}), ctx)
    assert result.status is Status.DEGRADED
    assert result.reason.startswith("took ")
    assert result.reason.endswith(" ms (max 50 ms)")
    assert result.latency_ms is not None
    assert result.latency_ms >= 150


async def test_slower_than_the_timeout_is_down(base: str, ctx: CheckContext) -> None:
    result = await run_check(http(base + "/slow?ms=5000", timeout="300ms"), ctx)
    assert result.status is Status.DOWN
    assert result.reason == "timed out after 0.3s"


async def test_closed_port_is_connection_refused(ctx: CheckContext) -> None:
    result = await run_check(http(f"http://127.0.0.1:{free_port()}/"), ctx)
    assert (result.status, result.reason) == (Status.DOWN, "connection refused")


# --- TLS -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])  # HEAD: no body, the connection is gone at once
async def test_https_reports_certificate_expiry(
    serve_app: ServeApp, tls_ca: trustme.CA, ctx: CheckContext, method: str
) -> None:
    base = await serve_app(target_app(), ssl_context=server_context(leaf(tls_ca, "127.0.0.1", days=90)))
    result = await check(http(base + "/ok", method=method), ctx)
    assert result.status is Status.UP, result.reason
    assert result.facts["certificate_days_left"] == 90
    assert datetime.fromisoformat(result.facts["certificate_expires_at"]).tzinfo is not None


@pytest.mark.parametrize(
    ("min_days", "status", "reason"),
    [
        (14, Status.DEGRADED, "certificate expires in 5 days (min 14)"),
        (5, Status.UP, "HTTP 200"),
        (None, Status.UP, "HTTP 200"),
    ],
)
async def test_certificate_min_days(
    serve_app: ServeApp,
    tls_ca: trustme.CA,
    ctx: CheckContext,
    min_days: int | None,
    status: Status,
    reason: str,
) -> None:
    base = await serve_app(target_app(), ssl_context=server_context(leaf(tls_ca, "127.0.0.1", days=5)))
    expect = {} if min_days is None else {"certificateMinDays": min_days}
    result = await run_check(http(base + "/ok", expect=expect), ctx)
    assert (result.status, result.reason) == (status, reason)
    assert result.facts["certificate_days_left"] == 5


async def test_untrusted_certificate_is_down(serve_app: ServeApp, ctx: CheckContext) -> None:
    stranger = trustme.CA()
    base = await serve_app(target_app(), ssl_context=server_context(leaf(stranger, "127.0.0.1")))
    result = await run_check(http(base + "/ok"), ctx)
    assert result.status is Status.DOWN
    assert result.reason.startswith("TLS: certificate verify failed: "), result.reason


async def test_certificate_for_another_name_is_down(serve_app: ServeApp, tls_ca: trustme.CA, ctx: CheckContext) -> None:
    base = await serve_app(target_app(), ssl_context=server_context(leaf(tls_ca, "other.example")))
    result = await run_check(http(base + "/ok"), ctx)
    assert result.status is Status.DOWN
    assert result.reason.startswith("TLS: certificate verify failed: "), result.reason
    assert "127.0.0.1" in result.reason


# --- redirects -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hops", "settings", "status", "reason", "redirects"),
    [
        (2, {"maxRedirects": 2}, Status.UP, "HTTP 200", 2),
        (5, {}, Status.UP, "HTTP 200", 5),  # the default limit is 5
        (3, {"maxRedirects": 2}, Status.DOWN, "too many redirects (more than 2)", None),
        (1, {"maxRedirects": 0}, Status.DOWN, "too many redirects (more than 0)", None),
        (1, {"followRedirects": False}, Status.DOWN, "HTTP 302 (expected 2xx)", 0),
        (1, {"followRedirects": False, "expect": {"status": [302]}}, Status.UP, "HTTP 302", 0),
    ],
)
async def test_redirects(
    base: str,
    ctx: CheckContext,
    hops: int,
    settings: dict[str, Any],
    status: Status,
    reason: str,
    redirects: int | None,
) -> None:
    result = await run_check(http(f"{base}/redirect/{hops}", **settings), ctx)
    assert result.status is status
    assert result.reason.startswith(reason), result.reason
    if redirects is not None:
        assert result.facts["redirects"] == redirects
    if status is Status.UP and redirects:
        assert result.facts["final_url"] == f"{base}/redirect/0"


# --- secrets ---------------------------------------------------------------------------------------


def secret_header(name: str = "api") -> list[dict[str, Any]]:
    return [{"name": "X-Api-Key", "valueFrom": {"secretKeyRef": {"name": name, "key": "key"}}}]


async def test_secret_header_is_sent(base: str, ctx: CheckContext) -> None:
    result = await run_check(http(base + "/secret", headers=secret_header()), ctx)
    assert (result.status, result.reason) == (Status.UP, "HTTP 200")
    assert SECRET not in json.dumps(result.facts)


async def test_missing_secret_names_the_secret_not_a_value(base: str, ctx: CheckContext) -> None:
    result = await run_check(http(base + "/secret", headers=secret_header("absent")), ctx)
    assert result.status is Status.DOWN
    assert "default/absent" in result.reason
    assert SECRET not in result.reason


async def test_secret_header_stays_with_the_monitored_origin(serve_app: ServeApp, ctx: CheckContext) -> None:
    monitored = await serve_app(target_app())
    elsewhere = await serve_app(target_app())
    # Same origin: the header goes along. Another origin (another port): it does not.
    same = await run_check(http(f"{monitored}/goto?to=/secret", headers=secret_header()), ctx)
    assert (same.status, same.reason) == (Status.UP, "HTTP 200")
    other = await run_check(http(f"{monitored}/goto?to={elsewhere}/secret", headers=secret_header()), ctx)
    assert (other.status, other.reason) == (Status.DOWN, "HTTP 401 (expected 2xx)")
    assert other.facts["final_url"] == f"{elsewhere}/secret"


# --- body size -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("needle", "status", "reason"),
    [
        ("aaaa", Status.UP, "HTTP 200"),
        ("END", Status.DOWN, "body does not contain 'END' (only the first 1024 bytes are read)"),
    ],
)
async def test_body_is_capped(base: str, tls_ca: trustme.CA, needle: str, status: Status, reason: str) -> None:
    async with check_context(ssl_context=client_context(tls_ca), max_body_bytes=1024) as ctx:
        result = await run_check(http(base + "/big?size=300000", expect={"bodyContains": needle}), ctx)
    assert (result.status, result.reason) == (status, reason)
    assert result.facts["body_bytes"] == 1024
    assert result.facts["body_truncated"] is True


async def test_body_up_to_the_cap_is_whole(base: str, tls_ca: trustme.CA) -> None:
    async with check_context(ssl_context=client_context(tls_ca), max_body_bytes=1024) as ctx:
        result = await run_check(http(base + "/big?size=1024", expect={"bodyContains": "END"}), ctx)
    assert (result.status, result.reason) == (Status.UP, "HTTP 200")
    assert (result.facts["body_bytes"], result.facts["body_truncated"]) == (1024, False)
