"""Accounts, sessions, impersonation and global maintenance in real Chromium against the real `spectra run`.

One walk through issue 15's acceptance, as people do it, with the SendGrid stand-in as everyone's mailbox:

1. the first admin opens the link `spectra run` logged, sets a password, signs in, sets up TOTP on the
   account page (codes computed with pyotp from the secret shown as text), signs out and in with a code;
2. the refresh token rotates; presenting the old one again ends the session (its family is revoked);
3. the admin invites Bob to organization acme; Bob sets his password from the emailed link, signs in and
   sees only acme's monitors;
4. the admin impersonates Bob for a written reason: the account page says so, Bob's MFA cannot be
   changed, Bob's audit log shows both identities, Bob is emailed; ending it ends that session;
5. global maintenance on: acme's target goes down, the incident opens but Alice's page is held; off: the
   page reaches the SendGrid stand-in.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy import select

from spectra.alerting.escalation import HELD
from spectra.store import AuditLog, EscalationState, UserSession, make_engine
from tests.factories.manifests import local_monitor, organization, resource, to_yaml
from tests.support.cluster import child_env
from tests.support.processes import Target
from tests.support.providers import Providers, text_of
from tests.support.services import in_ci
from tests.support.standalone import Run
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

try:
    from playwright.sync_api import Browser, BrowserContext, Page

    from tests.support.browser import chromium, link_in_mail, next_step_code, sign_in
except ImportError:  # Playwright is the optional `browser` extra
    if in_ci():
        raise
    pytest.skip("pip install 'spectramonitor[browser]' (Playwright)", allow_module_level=True)

SETUP_LINE = re.compile(r"set up the first one at (\S+/setup/\S+) \(once")
ROOT, BOB, ALICE = "root@example.com", "bob@acme.example", "alice@acme.example"
PASSWORDS = {ROOT: "plum-orbit-saddle-91", BOB: "quartz-meadow-lantern-27"}
REASON = "Bob asked why his monitors look paused (ticket 4711)"
MESSAGE = "Moving the platform to new hardware"


def manifests(port: int) -> str:
    """Two tenants; acme's monitor of the test's target pages Alice by email as soon as it is down."""
    alice = {"displayName": "Alice", "email": ALICE, "channels": ["email"]}
    steps = [{"delay": "0s", "targets": [{"contact": "alice"}], "channels": ["email"]}]
    return to_yaml(
        organization("acme", ["acme"]),
        organization("globex", ["globex"]),
        resource("Contact", "alice", alice, namespace="acme"),
        resource("EscalationPolicy", "primary", {"steps": steps}, namespace="acme"),
        local_monitor(
            "shop", port, namespace="acme", failureThreshold=2, successThreshold=1,
            escalationPolicyRef={"name": "primary"},
        ),
        local_monitor("intranet", port, namespace="globex", path="/index.html"),
    )  # fmt: skip


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def api(page: Page, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A request with the browser's own cookies, as the console's script sends one: the CSRF token read
    from its cookie into the X-CSRF-Token header. (Sent by Playwright's request context, which shares
    the browser context's cookie store: the pages' CSP allows no script to fetch.)"""
    context = page.context
    csrf = next((c["value"] for c in context.cookies() if c["name"] == "spectra-csrf"), "")
    origin = page.url.split("/", 3)[:3]
    response = context.request.fetch(
        "/".join(origin) + path,
        method=method,
        headers={"X-CSRF-Token": csrf},
        data=None if body is None else json.dumps(body),
    )
    try:
        return response.status, response.json()
    except ValueError:
        return response.status, response.text()


def cookie(context: BrowserContext, name: str) -> dict[str, Any]:
    found = [c for c in context.cookies() if c["name"] == name]
    assert len(found) == 1, context.cookies()
    return dict(found[0])


def test_accounts_sessions_impersonation_and_global_maintenance_in_chromium(
    tmp_path: Path, target: Target, providers: Providers, browser: Browser
) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "tenants.yaml").write_text(manifests(target.port))
    database = f"sqlite:///{tmp_path / 'spectra.db'}"
    env = child_env(SPECTRA_SECRET_KEY="e2e-access-browser-key-0123456789abcdef", **providers.env())
    run = Run(tmp_path, folder, database=database, env=env, public_url=True)
    engine = make_engine(database)
    try:
        run.wait_ready()
        _walk(run, engine, target, providers, browser)
        run.stop(timeout=30)
    finally:
        run.close()
        engine.dispose()
    assert "Traceback" not in run.log_text()


def _walk(run: Run, engine: sa.Engine, target: Target, providers: Providers, browser: Browser) -> None:
    base = run.base
    found = wait_for(lambda: SETUP_LINE.search(run.log_text()), "the first admin's link in the log", timeout=30)
    assert found is not None
    admin = browser.new_context()
    page = admin.new_page()

    # 1. The first admin: password from the logged link, TOTP on the account page, out and in with a code.
    page.goto(found.group(1))
    page.fill("#email", ROOT)
    page.fill("#name", "Root")
    page.fill("#password", PASSWORDS[ROOT])
    page.fill("#password_again", PASSWORDS[ROOT])
    page.click("button[type=submit]")
    assert "Your password is set" in page.inner_text("main")
    sign_in(page, base, ROOT, PASSWORDS[ROOT])
    page.goto(f"{base}/account")
    assert page.inner_text("#mfa-state") == "Off."
    page.click("text=Set up two-factor authentication")
    assert page.locator("#qr svg").count() == 1
    secret = page.inner_text("#secret").replace(" ", "")
    page.fill("#code", "000000")
    page.click("button[type=submit]")
    assert "that code is not valid" in page.inner_text("main")  # the form again, for the same secret
    enrolled_at = time.time()
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("button[type=submit]")
    recovery = page.locator("#recovery-codes code").all_inner_texts()
    assert len(recovery) == 10
    page.click("text=Sign out")
    assert page.url == f"{base}/login"
    assert api(page, "GET", "/api/v1/auth/me", None)[0] == 401
    sign_in(page, base, ROOT, PASSWORDS[ROOT], code=next_step_code(secret, enrolled_at))
    status, me = api(page, "GET", "/api/v1/auth/me", None)
    assert (status, me["email"], me["platform_admin"]) == (200, ROOT, True)

    # 2. Refresh rotates; the old refresh token presented again ends the session.
    old = cookie(admin, "spectra-refresh")
    status, _ = api(page, "POST", "/api/v1/auth/refresh", None)
    assert status == 200
    new = cookie(admin, "spectra-refresh")
    assert new["value"] != old["value"]
    assert (new["httpOnly"], new["sameSite"]) == (True, "Strict")
    admin.add_cookies([cast(Any, old)])
    reused = api(page, "POST", "/api/v1/auth/refresh", None)
    assert reused[0] == 401
    admin.add_cookies([cast(Any, new)])
    assert api(page, "POST", "/api/v1/auth/refresh", None)[0] == 401  # the whole family is revoked
    with engine.connect() as connection:
        reasons = connection.execute(select(UserSession.revoked_reason).order_by(UserSession.id)).scalars().all()
    assert reasons[-1] is not None
    assert "reuse" in reasons[-1]

    # 3. Invite Bob to acme; he sees acme's monitors only. (A recovery code signs the admin in again.)
    sign_in(page, base, ROOT, PASSWORDS[ROOT], code=recovery[0])
    assert sorted(run.monitors()) == ["intranet", "shop"]  # the open loopback API, without credentials
    status, invited = api(page, "POST", "/api/v1/members?organization=acme", {"email": BOB, "role": "admin"})
    assert status == 201, invited
    bob = browser.new_context()
    bob_page = bob.new_page()
    bob_page.goto(link_in_mail(providers, BOB, "invite"))
    bob_page.fill("#password", PASSWORDS[BOB])
    bob_page.fill("#password_again", PASSWORDS[BOB])
    bob_page.click("button[type=submit]")
    assert "Your password is set" in bob_page.inner_text("main")
    sign_in(bob_page, base, BOB, PASSWORDS[BOB])
    monitors = api(bob_page, "GET", "/api/v1/monitors", None)[1]
    assert [(m["namespace"], m["name"]) for m in monitors] == [("acme", "shop")]
    assert api(bob_page, "GET", "/api/v1/platform/tenants", None)[0] == 403

    # 4. Impersonate Bob: the page says so, his MFA is out of reach, the audit log has both names.
    support = browser.new_context()
    support_page = support.new_page()
    sign_in(support_page, base, ROOT, PASSWORDS[ROOT], code=recovery[1])
    body = {"email": BOB, "organization": "acme", "reason": REASON, "minutes": 15, "useCookies": True}
    status, started = api(support_page, "POST", "/api/v1/platform/impersonations", body)
    assert status == 201, started
    support_page.goto(f"{base}/account")
    shown = support_page.inner_text("main")
    assert f"Signed in as {BOB}" in shown
    assert f"Impersonated by support ({ROOT})" in shown
    assert "Sign out everywhere" not in shown
    support_page.click("text=Set up two-factor authentication")
    assert "impersonat" in support_page.inner_text("main").lower()
    status, audit = api(bob_page, "GET", "/api/v1/audit?action=impersonation.started", None)
    assert status == 200, audit
    started_rows = audit["items"]
    assert [(row["actor"], row["impersonator"]) for row in started_rows] == [(BOB, ROOT)]
    wait_for(
        lambda: any(REASON in text_of(mail) for mail in providers.emails(BOB)),
        "Bob's email saying support started impersonating him, with the reason",
        timeout=60,
    )
    impersonation_id = started["impersonation"]["id"]
    assert api(support_page, "DELETE", f"/api/v1/platform/impersonations/{impersonation_id}", None)[0] == 200
    assert api(support_page, "POST", "/api/v1/auth/refresh", None)[0] == 401
    with engine.connect() as connection:
        ended = connection.execute(
            select(AuditLog.actor, AuditLog.impersonator).where(AuditLog.action == "impersonation.ended")
        ).all()
    assert (BOB, ROOT) in [tuple(row) for row in ended]

    # 5. Global maintenance holds Alice's page while acme's target is down; off, she is paged.
    wait_for(lambda: run.state("shop") == "up", "acme's monitor up", timeout=60)
    status, on = api(page, "PUT", "/api/v1/platform/global-maintenance", {"message": MESSAGE})
    assert status == 200, on
    target.stop()
    wait_for(lambda: _held(engine), "the escalation step held by global maintenance", timeout=60)
    assert providers.emails(ALICE) == []
    status, off = api(page, "DELETE", "/api/v1/platform/global-maintenance", None)
    assert status == 200, off
    wait_for(lambda: providers.emails(ALICE), "Alice's page at the SendGrid stand-in", timeout=60)
    with engine.connect() as connection:
        actions = connection.execute(select(AuditLog.action, AuditLog.actor).order_by(AuditLog.id)).all()
    assert ("maintenance.global_on", ROOT) in [tuple(row) for row in actions]
    assert ("maintenance.global_off", ROOT) in [tuple(row) for row in actions]


def _held(engine: sa.Engine) -> bool:
    with engine.connect() as connection:
        return connection.execute(select(EscalationState.next_step_at)).scalar() == HELD
