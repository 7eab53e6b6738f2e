"""A status page in Debian's Chromium, served by `spectra run`: live state, the subscription flow, screenshots.

`spectra run` checks two http monitors (every LOCAL_INTERVAL) against a real local target; a StatusPage shows
them as two components and takes subscriptions. Mail goes through the real sendgrid library to the
SendGrid stand-in of tests/support/providers.py. The browser:
1. sees both components operational; when the target stops, it sees the outage shortly after the
   monitor API reports both monitors down (the page-events loop refreshes the snapshots every 2 s);
2. subscribes through the form, opens the emailed confirmation link and presses Confirm: the
   subscriber is confirmed in the database, and the outage's incident mail reaches the address;
3. saves light, dark and mobile screenshots under test-artifacts/screenshots/.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories.manifests import local_monitor, status_page, to_yaml
from tests.factories.monitors import LOCAL_INTERVAL_S
from tests.support.paths import REPO
from tests.support.processes import SPECTRA, Target, free_port, get
from tests.support.providers import Providers, text_of
from tests.support.services import in_ci, missing_service
from tests.support.waiting import wait_for

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
SUBSCRIBER = "reader@example.com"
# The page-events loop rebuilds the snapshots every 2 s (the cache's ttl is 5 s); one check interval on top.
PAGE_DELAY_S = LOCAL_INTERVAL_S + 5.0 + 2.0


def manifests(port: int) -> str:
    """Two monitors of the target as two components of a page that takes subscriptions."""
    page = status_page(
        "public",
        slug="e2e",
        title="E2E Inc. status",
        description="Live status of **E2E Inc.**",
        historyDays=30,
        autoIncidents=True,
        subscriptions={"enabled": True},
        branding={"accentColor": "#3558d4"},
        groups=[
            {
                "name": "Customer facing",
                "components": [
                    {"name": "Website", "monitors": ["web-a"]},
                    {"name": "Downloads", "description": "Installers and archives.", "monitors": ["web-b"]},
                ],
            }
        ],
    )
    return to_yaml(
        local_monitor("web-a", port, failureThreshold=2),
        local_monitor("web-b", port, path="/index.html", failureThreshold=2),
        page,
    )


try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:  # Playwright is the optional `browser` extra
    if in_ci():
        raise
    pytest.skip("pip install 'spectramonitor[browser]' (Playwright)", allow_module_level=True)


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        missing_service(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Spectra:
    """`spectra run` as a user runs it, with the provider stand-ins in its environment."""

    def __init__(self, tmp: Path, target: Target, providers: Providers) -> None:
        folder = tmp / "manifests"
        folder.mkdir()
        (folder / "page.yaml").write_text(manifests(target.port))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.database = tmp / "spectra.db"
        self.log = tmp / "spectra.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPECTRA_", "SENDGRID_", "TWILIO_"))}
        env |= providers.env() | {"PYTHONUNBUFFERED": "1", "SPECTRA_SECRET_KEY": "e2e-statuspage-secret-0123456789"}
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            [
                SPECTRA,
                "run",
                str(folder),
                "--database",
                f"sqlite:///{self.database}",
                "--listen",
                f"127.0.0.1:{self.port}",
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=tmp,
            env=env,
        )

    def monitor_states(self) -> dict[str, str]:
        status, body = get(f"{self.base}/api/v1/monitors")
        if status != 200:
            return {}
        import json

        return {item["name"]: item["state"] for item in json.loads(body)}

    def subscriber(self, email: str) -> tuple[Any, ...] | None:
        with sqlite3.connect(self.database) as connection:
            row = connection.execute(
                "SELECT page_name, component, confirmed_at, unsubscribed_at FROM subscribers WHERE email = ?", (email,)
            ).fetchone()
        return tuple(row) if row is not None else None

    def confirmed_at(self, email: str) -> Any:
        subscriber = self.subscriber(email)
        assert subscriber is not None, f"no subscriber {email}"
        return subscriber[2]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=15)
        finally:
            self._log_file.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


def component_states(page: Page) -> dict[str, str]:
    names = page.locator(".comp .comp-name").all_inner_texts()
    states = page.locator(".comp .state").all_inner_texts()
    return dict(zip(names, states, strict=True))


def reload_until(page: Page, url: str, condition: Any, what: str, timeout: float) -> float:
    """Reload `url` until `condition(page)` holds; returns when (monotonic)."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(url)
        if condition(page):
            return time.monotonic()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the page shows {component_states(page)}")
        time.sleep(0.2)


def test_status_page_in_chromium(tmp_path: Path, target: Target, providers: Providers, browser: Browser) -> None:
    spectra = Spectra(tmp_path, target, providers)
    try:
        _scenario(spectra, target, providers, browser)
        assert spectra.stop() == 0, spectra.log.read_text()
    finally:
        spectra.kill()
    log = spectra.log.read_text()
    assert "Traceback" not in log, log
    assert providers.env()["SENDGRID_API_KEY"] not in log


def _scenario(spectra: Spectra, target: Target, providers: Providers, browser: Browser) -> None:
    url = f"{spectra.base}/s/e2e"
    wait_for(lambda: spectra.monitor_states() == {"web-a": "up", "web-b": "up"}, "both monitors up")
    context = browser.new_context()
    page = context.new_page()

    # 1a. Operational.
    reload_until(
        page,
        url,
        lambda p: component_states(p) == {"Website": "Operational", "Downloads": "Operational"},
        "both components operational",
        timeout=PAGE_DELAY_S + 5,
    )
    assert page.title().startswith("E2E Inc. status")
    assert "web-a" not in page.content()  # monitor names are internal
    _screenshots(browser, url, "operational")

    # 2. Subscribe in the form, confirm through the emailed link.
    page.fill("#sub-email", SUBSCRIBER)
    page.click("form[action='/s/e2e/subscribe'] button[type=submit]")
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Check your inbox").is_visible()
    # The row is written just after the answer (so the answer's timing tells nothing).
    wait_for(lambda: spectra.subscriber(SUBSCRIBER), "the subscription row")
    assert spectra.confirmed_at(SUBSCRIBER) is None  # not confirmed before the click
    mail = wait_for(lambda: providers.emails(SUBSCRIBER), "the confirmation email")[0]
    match = re.search(r"(http://\S+/s/e2e/confirm/\S+)", text_of(mail))
    assert match is not None, text_of(mail)
    confirm_url = match.group(1)
    assert confirm_url.startswith(spectra.base)
    page.goto(confirm_url)
    assert spectra.confirmed_at(SUBSCRIBER) is None  # GET never changes state
    page.get_by_role("button", name="Confirm subscription").click()
    page.wait_for_load_state()
    assert page.get_by_role("heading", name="Subscription confirmed").is_visible()
    subscriber = spectra.subscriber(SUBSCRIBER)
    assert subscriber is not None
    assert subscriber[0] == "public"
    assert subscriber[1] == ""  # the whole page
    assert subscriber[2] is not None  # confirmed
    assert subscriber[3] is None

    # 1b. The target goes away: the page shows the outage soon after the monitors are confirmed down.
    target.stop()
    down_at = wait_for(
        lambda: time.monotonic() if spectra.monitor_states() == {"web-a": "down", "web-b": "down"} else 0.0,
        "both monitors down",
    )
    shown_at = reload_until(
        page,
        url,
        lambda p: component_states(p) == {"Website": "Major outage", "Downloads": "Major outage"},
        "the outage on the page",
        timeout=PAGE_DELAY_S + 10,
    )
    assert shown_at - down_at <= PAGE_DELAY_S, f"the page showed the outage {shown_at - down_at:.1f}s late"
    assert page.locator(".banner.state-major_outage").count() == 1
    _screenshots(browser, url, "outage")

    # The confirmed subscriber hears about the automatic incident.
    notices = wait_for(lambda: providers.emails(SUBSCRIBER)[1:], "the incident email to the subscriber", timeout=30)
    body = text_of(notices[0])
    assert "Website" in body or "Downloads" in body, body
    assert "/s/e2e/unsubscribe/" in body
    context.close()


def _screenshots(browser: Browser, url: str, stage: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    variants: dict[str, dict[str, Any]] = {
        "light": {"color_scheme": "light", "viewport": {"width": 1280, "height": 900}},
        "dark": {"color_scheme": "dark", "viewport": {"width": 1280, "height": 900}},
        "mobile": {"color_scheme": "light", "viewport": {"width": 390, "height": 844}, "is_mobile": True},
    }
    for variant, options in variants.items():
        context = browser.new_context(**options)
        try:
            page = context.new_page()
            page.goto(url)
            path = SCREENSHOTS / f"statuspage-{stage}-{variant}.png"
            path.unlink(missing_ok=True)
            page.screenshot(path=str(path), full_page=True)
            assert path.exists()
            assert path.stat().st_size > 1000, f"{path} is (nearly) empty"
            if variant == "mobile":
                # Nothing wider than the phone: no horizontal scrolling.
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 390, f"the mobile page is {width}px wide"
        finally:
            context.close()
