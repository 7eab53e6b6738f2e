"""Browser checks in Debian's Chromium against a small login site served on 127.0.0.1.

One site, one check context (so one Chromium) and one event loop for the whole module: launching
Chromium costs about a second.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from spectra.api.monitor import MonitorSpec
from spectra.domain.egress import EgressGuard, EgressPolicy
from spectra.probe.checks import run_check
from spectra.probe.context import CheckContext, CheckRequest
from spectra.probe.result import CheckResult, Status

try:
    from spectra.probe.checks.browser import SharedBrowser, chromium_path
except ImportError:  # Playwright is the optional `browser` extra
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        raise
    pytest.skip("pip install 'spectramonitor[browser]' (Playwright)", allow_module_level=True)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

NAMESPACE = "shop"
PASSWORD = "s3cr3t-Pa55&word"  # has characters URL encoding changes, to catch encoded leaks
SECRETS = {(NAMESPACE, "login", "password"): PASSWORD}
METADATA = "169.254.169.254"

LOGIN_FORM = """<!doctype html><title>Login</title>
<form method="{method}" action="{action}">
  <input id="user" name="user"><input id="password" name="password" type="password">
  <button id="submit" type="submit">Sign in</button>
</form>"""


def _page(body: str, title: str = "Test") -> web.Response:
    return web.Response(text=f"<!doctype html><title>{title}</title>{body}", content_type="text/html")


async def home(request: web.Request) -> web.Response:
    return _page('<h1>Shop</h1><a id="login" href="/login">Log in</a>')


async def login_form(request: web.Request) -> web.Response:
    return web.Response(text=LOGIN_FORM.format(method="post", action="/login"), content_type="text/html")


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    if form.get("password") != PASSWORD:
        return _page("<h1>Wrong password</h1>")
    user = form.get("user")
    if not isinstance(user, str):
        return _page("<h1>Who are you?</h1>")
    response = web.HTTPSeeOther("/account")
    response.set_cookie("session", f"user={user}", httponly=True)
    raise response


async def account(request: web.Request) -> web.Response:
    session = request.cookies.get("session")
    if session is None:
        raise web.HTTPFound("/login")
    return _page(f'<h1 id="greeting">Welcome back, {session.removeprefix("user=")}</h1>', title="Account")


async def get_login_form(request: web.Request) -> web.Response:
    # A careless site: the password lands in the URL.
    return web.Response(text=LOGIN_FORM.format(method="get", action="/echo"), content_type="text/html")


async def echo(request: web.Request) -> web.Response:
    return _page(f"<h1>Hello</h1><p id='echo'>{request.query.get('password', '')}</p>")


async def to_metadata(request: web.Request) -> web.Response:
    raise web.HTTPFound(f"http://{METADATA}/latest/meta-data/")


async def metadata_link(request: web.Request) -> web.Response:
    return _page(f'<a id="away" href="http://{METADATA}/latest/meta-data/">metadata</a>')


async def blocked_resources(request: web.Request) -> web.Response:
    # An image from a private address and a WebSocket to the metadata address: both refused, page still up.
    script = f"""<script>
      const ws = new WebSocket("ws://{METADATA}/socket");
      ws.onclose = () => {{ document.getElementById("ws").textContent = "ws closed"; }};
    </script>"""
    return _page(f'<h1>Resources</h1><img src="http://10.1.2.3/logo.png"><p id="ws">ws open</p>{script}')


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if not Path(path).exists():
        message = f"Chromium not found at {path}: apt-get install chromium"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip("apt-get install chromium")
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def site() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_get("/account", account)
    app.router.add_get("/get-login", get_login_form)
    app.router.add_get("/echo", echo)
    app.router.add_get("/to-metadata", to_metadata)
    app.router.add_get("/metadata-link", metadata_link)
    app.router.add_get("/resources", blocked_resources)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


class AnswerTableGuard(EgressGuard):
    """The real guard, with fixed DNS answers for a few .test names (no DNS server needed).

    Chromium cannot resolve these names at all, so a page that loads from one proves the browser
    reached it through the guard's proxy, at the address the guard checked.
    """

    ANSWERS = {"shop.test": "127.0.0.1", "rebound.test": METADATA, "intranet.test": "10.0.0.7"}

    async def resolve(
        self, host: str, port: int, *, family: int = socket.AF_UNSPEC, type_: int = socket.SOCK_STREAM
    ) -> list[tuple[int, Any]]:
        if host not in self.ANSWERS:
            return await super().resolve(host, port, family=family, type_=type_)
        address = ipaddress.ip_address(self.ANSWERS[host])
        self.policy.check_address(address, host)
        return [(socket.AF_INET, (str(address), port))]


class DictSecrets:
    def get(self, namespace: str, name: str, key: str) -> str | None:
        return SECRETS.get((namespace, name, key))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def ctx(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CheckContext]:
    # Loopback allowed (the site), private and metadata addresses refused: cluster mode with loopback on.
    context = CheckContext(
        egress=AnswerTableGuard(EgressPolicy(allow_loopback=True)),
        secrets=DictSecrets(),
        artifacts_dir=tmp_path_factory.mktemp("artifacts"),
    )
    yield context
    await context.aclose()


# Checks whose steps should all pass get seconds and seconds (the interval is 60 s): a busy 2-core machine
# once took so long over the first steps of the login flow that '#submit' had 172 ms left. Checks about a
# step timing out pass their own short timeout.
GENEROUS = "30s"


def browser_request(name: str, steps: list[dict[str, Any]], timeout: str = GENEROUS) -> CheckRequest:
    spec = MonitorSpec.model_validate({"type": "browser", "timeout": timeout, "browser": {"steps": steps}})
    return CheckRequest(namespace=NAMESPACE, name=name, spec=spec)


PASSWORD_FROM = {"secretKeyRef": {"name": "login", "key": "password"}}


def login_steps(site: str) -> list[dict[str, Any]]:
    return [
        {"goto": f"{site}/"},
        {"click": "#login"},
        {"fill": {"selector": "#user", "value": "ada"}},
        {"fill": {"selector": "#password", "valueFrom": PASSWORD_FROM}},
        {"click": "#submit"},
        {"waitFor": "#greeting"},
        {"expectText": {"selector": "h1", "text": "Welcome back"}},
        {"expectURL": "**/account"},
        {"screenshot": "account"},
    ]


def assert_no_secret(result: CheckResult) -> None:
    dumped = json.dumps({"reason": result.reason, "facts": result.facts}, default=str)
    for spelling in (PASSWORD, "s3cr3t-Pa55%26word"):
        assert spelling not in dumped


async def test_login_flow_passes(site: str, ctx: CheckContext) -> None:
    result = await run_check(browser_request("login", login_steps(site)), ctx)

    assert result.status is Status.UP, result.reason
    assert result.facts["steps_completed"] == 9
    assert len(result.facts["step_durations_ms"]) == 9
    assert result.facts["final_url"] == f"{site}/account"
    shot = Path(result.facts["screenshots"]["account"])
    assert shot == ctx.artifacts_dir / NAMESPACE / "login" / "account.png"
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert result.latency_ms is not None
    assert result.latency_ms >= sum(result.facts["step_durations_ms"]) * 0.99
    assert_no_secret(result)


async def test_each_check_gets_fresh_cookies(site: str, ctx: CheckContext) -> None:
    # The previous test logged in; a new check must not carry its session cookie.
    await run_check(browser_request("login", login_steps(site)), ctx)
    result = await run_check(browser_request("fresh", [{"goto": f"{site}/account"}, {"expectURL": "**/login"}]), ctx)
    assert result.status is Status.UP, result.reason
    assert result.facts["final_url"] == f"{site}/login"


async def test_concurrent_checks_share_the_browser_but_not_cookies(site: str, ctx: CheckContext) -> None:
    logged_in = browser_request("login", login_steps(site))
    anonymous = browser_request("fresh", [{"goto": f"{site}/account"}, {"expectURL": "**/login"}])
    results = await asyncio.gather(*(run_check(r, ctx) for r in (logged_in, anonymous, logged_in, anonymous)))
    assert [r.status for r in results] == [Status.UP] * 4, [r.reason for r in results]


async def test_text_that_never_appears_is_down_with_a_failure_screenshot(site: str, ctx: CheckContext) -> None:
    steps: list[dict[str, Any]] = [{"goto": f"{site}/"}, {"expectText": {"selector": "h1", "text": "Welcome"}}]
    result = await run_check(browser_request("no-text", steps, timeout="6s"), ctx)

    assert result.status is Status.DOWN
    assert result.reason.startswith("step 2 (expectText h1): text 'Welcome' not found within ")
    assert "found 'Shop'" in result.reason
    assert result.facts["steps_completed"] == 1
    shot = Path(result.facts["screenshot"])
    assert shot.parent == ctx.artifacts_dir / NAMESPACE / "no-text"
    assert shot.name.startswith("failure-")
    assert shot.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("step", "reason"),
    [
        ({"click": "#missing"}, "step 2 (click #missing): no element matches '#missing' within "),
        ({"waitFor": ".spinner"}, "step 2 (waitFor .spinner): no element matches '.spinner' within "),
        (
            {"press": {"selector": "#nothing", "key": "Enter"}},
            "step 2 (press Enter in #nothing): no element matches '#nothing' within ",
        ),
        ({"expectURL": "**/account"}, "step 2 (expectURL **/account): URL "),
    ],
)
async def test_missing_element_is_down_naming_the_step(
    site: str, ctx: CheckContext, step: dict[str, Any], reason: str
) -> None:
    result = await run_check(browser_request("missing", [{"goto": f"{site}/"}, step], timeout="5s"), ctx)
    assert result.status is Status.DOWN
    assert result.reason.startswith(reason), result.reason
    assert result.facts["steps_completed"] == 1
    assert "screenshot" in result.facts


async def test_http_error_on_goto_is_down(site: str, ctx: CheckContext) -> None:
    result = await run_check(browser_request("not-found", [{"goto": f"{site}/nowhere"}]), ctx)
    assert result.status is Status.DOWN
    assert result.reason == f"step 1 (goto {site}/nowhere): HTTP 404 from {site}/nowhere"


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("/to-metadata", []),  # a redirect hop to the metadata address
        ("/metadata-link", [{"click": "#away"}]),  # a link the last step follows
        ("/metadata-link", [{"click": "#away"}, {"waitFor": "h1"}]),  # ... or a step before another
    ],
)
async def test_navigation_to_refused_host_is_down(
    site: str, ctx: CheckContext, path: str, steps: list[dict[str, Any]]
) -> None:
    result = await run_check(browser_request("metadata", [{"goto": f"{site}{path}"}, *steps]), ctx)
    assert result.status is Status.DOWN
    assert result.reason.startswith("step 1 (goto" if path == "/to-metadata" else "step 2 (click #away)")
    assert f"refused by the egress policy: {METADATA}" in result.reason, result.reason


async def test_refused_subresources_are_blocked_and_listed(site: str, ctx: CheckContext) -> None:
    steps: list[dict[str, Any]] = [
        {"goto": f"{site}/resources"},
        {"expectText": {"selector": "#ws", "text": "ws closed"}},
    ]
    result = await run_check(browser_request("resources", steps), ctx)
    assert result.status is Status.UP, result.reason
    assert set(result.facts["blocked_hosts"]) == {"10.1.2.3", METADATA}


async def test_secret_fill_value_never_appears(site: str, ctx: CheckContext) -> None:
    # The form sends the password in the query string and the page shows it: a failing step must
    # still keep it out of the reason and the facts.
    steps: list[dict[str, Any]] = [
        {"goto": f"{site}/get-login"},
        {"fill": {"selector": "#password", "valueFrom": PASSWORD_FROM}},
        {"click": "#submit"},
        {"waitFor": "#echo"},
        {"expectText": {"selector": "#echo", "text": "not the password"}},
    ]
    result = await run_check(browser_request("leaky", steps, timeout="6s"), ctx)
    assert result.status is Status.DOWN
    assert result.reason.startswith("step 5 (expectText #echo): text 'not the password' not found")
    assert "***" in result.reason
    assert "***" in result.facts["final_url"]
    assert_no_secret(result)


async def test_missing_secret_names_the_reference(site: str, ctx: CheckContext) -> None:
    steps: list[dict[str, Any]] = [
        {"goto": f"{site}/login"},
        {"fill": {"selector": "#password", "valueFrom": {"secretKeyRef": {"name": "login", "key": "nope"}}}},
    ]
    result = await run_check(browser_request("no-secret", steps), ctx)
    assert result.status is Status.DOWN
    assert result.reason == "step 2 (fill #password): Secret shop/login has no key 'nope'"


async def test_crashed_browser_is_relaunched(site: str, ctx: CheckContext) -> None:
    shared = ctx.shared("browser", SharedBrowser)
    assert isinstance(shared, SharedBrowser)
    browser = await shared.get()
    await browser.close()  # what a crash looks like from here: the browser is gone
    result = await run_check(browser_request("relaunch", [{"goto": f"{site}/"}]), ctx)
    assert result.status is Status.UP, result.reason
    assert (await shared.get()) is not browser


async def test_names_are_resolved_and_checked_by_the_guard_at_connect_time(site: str, ctx: CheckContext) -> None:
    port = site.rsplit(":", 1)[1]
    steps: list[dict[str, Any]] = [
        {"goto": f"http://shop.test:{port}/"},
        {"expectText": {"selector": "h1", "text": "Shop"}},
    ]
    result = await run_check(browser_request("by-name", steps), ctx)
    assert result.status is Status.UP, result.reason
    assert result.facts["final_url"] == f"http://shop.test:{port}/"


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("rebound.test", f"rebound.test -> {METADATA}: link-local / cloud metadata addresses are never probed"),
        ("intranet.test", "intranet.test -> 10.0.0.7: private addresses are not allowed by the egress policy"),
    ],
)
async def test_name_resolving_to_a_refused_address_is_down(site: str, ctx: CheckContext, host: str, why: str) -> None:
    port = site.rsplit(":", 1)[1]
    for scheme in ("http", "https"):  # plain requests and CONNECT tunnels
        url = f"{scheme}://{host}:{port}/"
        result = await run_check(browser_request("rebound", [{"goto": url}]), ctx)
        assert result.status is Status.DOWN
        assert result.reason == f"step 1 (goto {url}): refused by the egress policy: {why}"


async def test_browser_that_cannot_start_is_down(tmp_path: Path) -> None:
    context = CheckContext(artifacts_dir=tmp_path)
    context.shared("browser", lambda: SharedBrowser(str(tmp_path / "no-chromium")))
    try:
        result = await run_check(browser_request("no-browser", [{"goto": "http://127.0.0.1:9/"}]), context)
    finally:
        await context.aclose()
    assert result.status is Status.DOWN
    assert result.reason.startswith("the browser could not start: ")
