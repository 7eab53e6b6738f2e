"""Chromium for the end-to-end tests (Playwright, Debian's chromium) and what people do in it that several
walks share: signing in through /login with a TOTP code, waiting for the next time step, following a link
from an email at the SendGrid stand-in.

Imported only by modules that drive a browser (they skip without Playwright locally, fail under CI=true).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import pyotp
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.providers import Providers, text_of
from tests.support.services import missing_service
from tests.support.waiting import wait_for

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-sync",
    "--no-first-run",
]
TOTP_STEP_S: Final = 30


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless; a missing one fails under CI=true, skips locally saying how to get it."""
    if not CHROMIUM.exists():
        missing_service(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def sign_in(page: Page, base: str, email: str, password: str, *, code: str | None = None) -> None:
    """The /login form, then the code step when `code` is given; fails unless the page says signed in."""
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    if code is not None:
        page.fill("#code", code)
        page.click("button[type=submit]")
    assert f"You are signed in as {email}" in page.inner_text("main"), page.inner_text("main")


def next_step_code(secret: str, after: float) -> str:
    """A TOTP code of the time step after the one of `after` (time.time()): each code is accepted once per step."""
    wait = TOTP_STEP_S - after % TOTP_STEP_S + 1
    if time.time() < after + wait:
        time.sleep(after + wait - time.time())
    return pyotp.TOTP(secret).now()


def link_in_mail(providers: Providers, to: str, path: str) -> str:
    """The first `http://.../<path>/...` link in an email to `to` at the SendGrid stand-in (waits for it)."""

    def found() -> str:
        for mail in providers.emails(to):
            match = re.search(rf"(http://\S+/{path}/\S+)", text_of(mail))
            if match:
                return match.group(1)
        return ""

    return wait_for(found, f"a /{path}/ link in an email to {to}", timeout=60)
