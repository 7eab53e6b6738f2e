"""Browser checks: declarative steps (goto, click, fill, ...) in headless Chromium driven by Playwright.

No user code ever runs: every step maps to one fixed Playwright call; nothing the user writes is
evaluated in the page.

Egress: Chromium resolves host names itself and connects wherever its own lookup points, so a check
of the URL when a request is made (request time) is not a check of the address it connects to
(connect time); and Playwright's routes never see redirect hops at all. So the guard works in two
places here:
- at request time, a context route (`_Guard.on_route`) aborts non-http(s) schemes (data:, blob: and
  about: pass) and hosts the policy refuses by their literal or name alone;
- at connect time, each check's context uses its own `EgressProxy` on 127.0.0.1, which resolves
  through `EgressGuard.resolve` and connects only to the addresses it returns. Every connection goes
  there (redirect hops, WebSockets, preconnects, loopback too: Playwright adds `<-loopback>` to the
  bypass list), so DNS rebinding cannot pick the address behind the guard's back.
A refused main-frame navigation fails the check with the policy's reason; other refused requests
(images, frames, sockets) are blocked and listed in facts["blocked_hosts"]. Service workers are
blocked, since their requests would bypass the route.

One Chromium per worker (`ctx.shared("browser")`), launched on first use and again if it died; each
check gets its own browser context, so no cookies or storage pass between checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    Route,
    async_playwright,
    expect,
)
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from spectra.api.checks.browser import BrowserStep
from spectra.domain.egress import EgressRefused
from spectra.probe.context import CheckContext, CheckRequest, MissingSecret
from spectra.probe.egress_proxy import EgressProxy
from spectra.probe.result import CheckResult

DEFAULT_CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium phones home at start (sync, updates, field
# trials); on a closed network those connections fail by the dozen. The WebRTC policy keeps
# STUN/TURN UDP, which no route sees, from leaving the machine.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--force-webrtc-ip-handling-policy",
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
)
# Share of the check's timeout kept back from the steps for wording the failure and its screenshot.
RESERVE_SHARE = 0.25
MAX_RESERVE_S = 2.0
CLOSE_TIMEOUT_S = 5.0
SETTLE_S = 1.0  # most time a step waits, after it passed, for a navigation it started to get an answer
KEEP_FAILURE_SCREENSHOTS = 20  # per monitor; older ones are deleted so a flapping monitor cannot fill the disk
_PASSTHROUGH_SCHEMES = frozenset({"data", "blob", "about"})


def chromium_path() -> str:
    return os.environ.get("SPECTRA_CHROMIUM") or DEFAULT_CHROMIUM


class SharedBrowser:
    """One Chromium for a worker; `ctx.aclose()` closes it through `aclose`."""

    def __init__(self, executable: str | None = None) -> None:
        self.executable = executable or chromium_path()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._lock = asyncio.Lock()
        self._disposing: set[asyncio.Task[None]] = set()

    async def get(self) -> Browser:
        """The running browser, launched now if there is none or it crashed."""
        async with self._lock:
            if self._browser is None or not self._browser.is_connected():
                await self._shutdown()
                try:
                    self._playwright = await async_playwright().start()
                    self._browser = await self._playwright.chromium.launch(
                        executable_path=self.executable, headless=True, args=list(CHROMIUM_ARGS)
                    )
                except BaseException:
                    await self._shutdown()
                    raise
            return self._browser

    def dispose(self, context: BrowserContext | None, proxy: EgressProxy) -> None:
        """Close a check's context and proxy in the background: the result must not wait, nor be lost
        to the check's timeout while closing."""
        task = asyncio.ensure_future(_dispose(context, proxy))
        self._disposing.add(task)
        task.add_done_callback(self._disposing.discard)

    async def aclose(self) -> None:
        await asyncio.gather(*self._disposing, return_exceptions=True)
        async with self._lock:
            await self._shutdown()

    async def _shutdown(self) -> None:
        browser, playwright = self._browser, self._playwright
        self._browser = self._playwright = None
        if browser is not None:
            with contextlib.suppress(PlaywrightError):
                await browser.close()
        if playwright is not None:
            with contextlib.suppress(PlaywrightError):
                await playwright.stop()


async def _dispose(context: BrowserContext | None, proxy: EgressProxy) -> None:
    if context is not None:
        with contextlib.suppress(PlaywrightError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await context.close()
    await proxy.aclose()


class StepFailed(Exception):
    """A step did not pass; the message is the reason after "step N (kind ...): "."""


@dataclass
class _Secrets:
    """Fill values taken from Secrets, to keep them out of reasons and facts (also URL-encoded)."""

    values: set[str] = field(default_factory=set)

    def add(self, value: str) -> None:
        if value:
            self.values.update({value, quote(value, safe=""), quote_plus(value)})

    def scrub(self, text: str) -> str:
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, "***")
        return text


class _Guard:
    """The egress checks of one browser context: request-time in the route, connect-time in the proxy."""

    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.proxy = EgressProxy(ctx.egress)
        self.page: Page | None = None
        self.refused_navigation: str | None = None  # why the route refused the page's own navigation
        self.navigated_hosts: list[str] = []  # hosts of the main frame's navigations, redirect hops included
        self.blocked: list[str] = []  # hosts of other requests the route refused
        self._navigating: set[Request] = set()
        self._settled = asyncio.Event()
        self._settled.set()

    def on_request(self, request: Request) -> None:
        if request.is_navigation_request() and self._is_main_frame(request):
            host = urlsplit(request.url).hostname
            if host and host not in self.navigated_hosts:
                self.navigated_hosts.append(host)
            self._navigating.add(request)
            self._settled.clear()

    def on_request_done(self, request: Request) -> None:
        self._navigating.discard(request)
        if not self._navigating:
            self._settled.set()

    async def settle(self, timeout_s: float) -> None:
        """Wait (a little) for main-frame navigations in flight, so a refused one is known before the verdict."""
        await asyncio.sleep(0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._settled.wait()

    def navigation_refusal(self) -> str | None:
        if self.refused_navigation is not None:
            return self.refused_navigation
        for host in reversed(self.navigated_hosts):
            if host in self.proxy.refused:
                return self.proxy.refused[host]
        return None

    def navigation_failure(self) -> str | None:
        for host in reversed(self.navigated_hosts):
            if host in self.proxy.failed:
                return self.proxy.failed[host]
        return None

    def blocked_hosts(self) -> list[str]:
        hosts = list(self.blocked)
        hosts += [host for host in self.proxy.refused if host not in hosts and host not in self.navigated_hosts]
        return hosts

    def _refusal(self, url: str) -> tuple[str, str] | None:
        """(host, reason) when `url` may not be requested at all; addresses are the proxy's business."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            return scheme, f"{scheme}: URLs are not fetched by browser checks (only http and https)"
        host = parts.hostname or ""
        try:
            self.ctx.egress.check_url_host(host)
        except EgressRefused as exc:
            return host, str(exc)
        except Exception as exc:  # a bug in the guard fails closed
            return host, f"egress check failed: {type(exc).__name__}"
        return None

    async def on_route(self, route: Route, request: Request) -> None:
        # Playwright errors (page already closed) must not escape: they would surface as unhandled.
        with contextlib.suppress(PlaywrightError):
            if urlsplit(request.url).scheme.lower() in _PASSTHROUGH_SCHEMES:
                await route.continue_()
                return
            refusal = self._refusal(request.url)
            if refusal is None:
                await route.continue_()
                return
            host, reason = refusal
            if request.is_navigation_request() and self._is_main_frame(request):
                self.refused_navigation = self.refused_navigation or reason
            elif host not in self.blocked:
                self.blocked.append(host)
            await route.abort("blockedbyclient")

    def _is_main_frame(self, request: Request) -> bool:
        try:
            return self.page is not None and request.frame == self.page.main_frame
        except PlaywrightError:  # service-worker requests have no frame
            return False


@dataclass
class _Run:
    """State of one check: its deadline and what the steps produced."""

    request: CheckRequest
    ctx: CheckContext
    deadline: float  # loop.time() by which the steps must be done
    hard_deadline: float  # loop.time() when run_check gives up on the whole check
    guard: _Guard
    secrets: _Secrets = field(default_factory=_Secrets)
    screenshots: dict[str, str] = field(default_factory=dict)

    @property
    def artifacts(self) -> Path:
        return self.ctx.artifacts_dir / _safe_part(self.request.namespace) / _safe_part(self.request.name)

    def remaining_ms(self) -> float:
        remaining = (self.deadline - asyncio.get_running_loop().time()) * 1000
        if remaining < 1:
            raise StepFailed("no time left within the check's timeout")
        return remaining  # never 0: Playwright reads 0 as "no timeout"


async def check(request: CheckRequest, ctx: CheckContext) -> CheckResult:
    spec = request.spec.browser
    if spec is None:
        raise ValueError("browser check without a browser block")
    timeout = request.spec.effective_timeout.total_seconds()
    hard_deadline = asyncio.get_running_loop().time() + timeout
    deadline = hard_deadline - min(MAX_RESERVE_S, timeout * RESERVE_SHARE)
    shared: SharedBrowser = ctx.shared("browser", SharedBrowser)
    run = _Run(request, ctx, deadline, hard_deadline, _Guard(ctx))

    context: BrowserContext | None = None
    try:
        proxy_url = await run.guard.proxy.start()
        try:
            context = await _new_context(shared, proxy_url)
        except PlaywrightError as exc:
            return CheckResult.down(None, f"the browser could not start: {_first_line(exc)}")
        await context.route("**/*", run.guard.on_route)
        page = await context.new_page()
        run.guard.page = page
        page.on("request", run.guard.on_request)
        page.on("requestfinished", run.guard.on_request_done)
        page.on("requestfailed", run.guard.on_request_done)
        return await _run_steps(run, page, spec.steps)
    finally:
        shared.dispose(context, run.guard.proxy)


async def _new_context(shared: SharedBrowser, proxy_url: str) -> BrowserContext:
    for attempt in range(2):
        browser = await shared.get()
        try:
            # Playwright adds <-loopback> to the bypass list, so loopback targets go through the proxy too.
            return await browser.new_context(
                proxy={"server": proxy_url}, service_workers="block", accept_downloads=False
            )
        except PlaywrightError:
            if attempt or browser.is_connected():
                raise  # a live browser refusing a context is not a crash we can fix by relaunching
    raise AssertionError("unreachable")


async def _run_steps(run: _Run, page: Page, steps: list[BrowserStep]) -> CheckResult:
    durations: list[float] = []
    started = time.perf_counter()
    for number, step in enumerate(steps, start=1):
        step_started = time.perf_counter()
        try:
            await _run_step(run, page, step)
            # A click or key press can start a navigation that is refused only after the action returned.
            await run.guard.settle(min(SETTLE_S, max(0.0, run.deadline - asyncio.get_running_loop().time())))
            refusal = run.guard.navigation_refusal()
            if refusal is not None:
                raise StepFailed(f"refused by the egress policy: {refusal}")
        except (StepFailed, PlaywrightError, AssertionError) as exc:
            durations.append(_ms_since(step_started))
            refusal = run.guard.navigation_refusal()
            failure = run.guard.navigation_failure()
            if refusal is not None:
                why = f"refused by the egress policy: {refusal}"
            elif isinstance(exc, StepFailed):
                why = str(exc)
            elif failure is not None and "ERR_TUNNEL_CONNECTION_FAILED" in str(exc):
                why = failure  # the proxy knows better than Chromium's generic tunnel error
            else:
                why = _first_line(exc)
            reason = f"step {number} ({_describe(step)}): {why}"
            facts = _facts(run, page, durations, number - 1, len(steps))
            shot = await _failure_screenshot(run, page)
            if shot is not None:
                facts["screenshot"] = shot
            return CheckResult.down(_ms_since(started), run.secrets.scrub(reason), **facts)
        durations.append(_ms_since(step_started))
    return CheckResult.up(_ms_since(started), "ok", **_facts(run, page, durations, len(steps), len(steps)))


async def _run_step(run: _Run, page: Page, step: BrowserStep) -> None:
    timeout = run.remaining_ms()
    within = f"within {_seconds(timeout)}"
    try:
        if step.goto is not None:
            response = await page.goto(step.goto, timeout=timeout)
            if response is not None and response.status >= 400:
                failure = run.guard.navigation_failure()  # a 502 from the proxy, not from the site
                raise StepFailed(
                    failure if response.status == 502 and failure else f"HTTP {response.status} from {response.url}"
                )
        elif step.click is not None:
            await page.locator(step.click).first.click(timeout=timeout)
        elif step.fill is not None:
            fill = step.fill
            if fill.value_from is not None:
                try:
                    value = run.ctx.secret(run.request.namespace, fill.value_from)
                except MissingSecret as exc:
                    raise StepFailed(str(exc)) from None
                run.secrets.add(value)
            else:
                value = fill.value or ""
            await page.locator(fill.selector).first.fill(value, timeout=timeout)
        elif step.press is not None:
            await page.locator(step.press.selector).first.press(step.press.key, timeout=timeout)
        elif step.wait_for is not None:
            await page.locator(step.wait_for).first.wait_for(state="visible", timeout=timeout)
        elif step.expect_text is not None:
            await _expect_text(page, step.expect_text.selector, step.expect_text.text, timeout)
        elif step.expect_url is not None:
            await page.wait_for_url(step.expect_url, wait_until="commit", timeout=timeout)
        elif step.screenshot is not None:
            path = run.artifacts / f"{step.screenshot}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=path, timeout=timeout)
            run.screenshots[step.screenshot] = str(path)
    except PlaywrightTimeout:
        raise StepFailed(await _timeout_reason(page, step, within)) from None


async def _expect_text(page: Page, selector: str, text: str, timeout: float) -> None:
    locator = page.locator(selector).first
    try:
        await expect(locator).to_contain_text(text, timeout=timeout)
    except AssertionError:
        within = f"within {_seconds(timeout)}"
        found = await _quick(locator.text_content(timeout=150))
        if found is None:
            raise StepFailed(f"no element matches {selector!r} {within}") from None
        shown = " ".join(str(found).split())
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise StepFailed(f"text {text!r} not found {within} (found {shown!r})") from None


async def _timeout_reason(page: Page, step: BrowserStep, within: str) -> str:
    if step.goto is not None:
        return f"page did not load {within}"
    if step.expect_url is not None:
        return f"URL {page.url} does not match {step.expect_url!r} {within}"
    selector = _selector(step)
    if selector is None:
        return f"timed out {within}"
    count = await _quick(page.locator(selector).count())
    if count == 0:
        return f"no element matches {selector!r} {within}"
    if step.wait_for is not None:
        return f"{selector!r} did not become visible {within}"
    return f"{selector!r} was not visible and enabled {within}"


async def _quick(awaitable: Any) -> Any:
    """The value of a probe used only to word a reason, or None if it fails or takes long."""
    try:
        async with asyncio.timeout(0.2):
            return await awaitable
    except (PlaywrightError, TimeoutError):
        return None


async def _failure_screenshot(run: _Run, page: Page) -> str | None:
    # Only in the time left before run_check's timeout, with slack: the reason matters more than the picture.
    budget_ms = min(MAX_RESERVE_S, (run.hard_deadline - asyncio.get_running_loop().time()) * 0.7) * 1000
    if budget_ms < 50:
        return None
    folder = run.artifacts
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S-%fZ")
    path = folder / f"failure-{stamp}.png"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=path, timeout=budget_ms)
    except (PlaywrightError, OSError):
        return None
    for old in sorted(folder.glob("failure-*.png"))[:-KEEP_FAILURE_SCREENSHOTS]:
        with contextlib.suppress(OSError):
            old.unlink()
    return str(path)


def _facts(run: _Run, page: Page, durations: list[float], completed: int, total: int) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "steps_completed": completed,
        "steps_total": total,
        "step_durations_ms": durations,
        "final_url": run.secrets.scrub(page.url),
    }
    if run.screenshots:
        facts["screenshots"] = dict(run.screenshots)
    blocked = run.guard.blocked_hosts()
    if blocked:
        facts["blocked_hosts"] = blocked
    return facts


def _describe(step: BrowserStep) -> str:
    """Step kind and its target, for reasons: "goto https://...", "expectText h1"."""
    if step.goto is not None:
        return f"goto {step.goto}"
    if step.fill is not None:
        return f"fill {step.fill.selector}"
    if step.press is not None:
        return f"press {step.press.key} in {step.press.selector}"
    if step.expect_text is not None:
        return f"expectText {step.expect_text.selector}"
    if step.expect_url is not None:
        return f"expectURL {step.expect_url}"
    if step.screenshot is not None:
        return f"screenshot {step.screenshot}"
    if step.click is not None:
        return f"click {step.click}"
    return f"waitFor {step.wait_for}"


def _selector(step: BrowserStep) -> str | None:
    if step.fill is not None:
        return step.fill.selector
    if step.press is not None:
        return step.press.selector
    return step.click or step.wait_for


def _first_line(exc: BaseException) -> str:
    # Playwright errors carry a multi-line call log; the first line says what went wrong.
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    line = re.sub(r"^\w+\.\w+: ", "", line)
    return line if len(line) <= 200 else line[:197] + "..."


def _safe_part(name: str) -> str:
    """A path component from a resource name; names are DNS labels, this only guards against surprises."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return "_" if cleaned in {"", ".", ".."} else cleaned


def _seconds(ms: float) -> str:
    return f"{ms:.0f}ms" if ms < 1000 else f"{round(ms / 1000, 1):g}s"


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
