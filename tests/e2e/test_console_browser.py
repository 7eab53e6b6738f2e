"""The console (issue 16's acceptance) in Debian's Chromium against the real `spectra run`.

`spectra run` holds two organizations (acme, globex). acme's monitor of a local target pages Alice: by email
at once, then by a voice call (VOICE_DELAY_S later) through the Twilio stand-in; acme has a schedule and a
status page that takes subscriptions. The first admin (the link in the log, declared acme's admin) walks:

1. sets a password, enrols TOTP on /account, signs out and in with a code;
2. sees the target up on the overview; the target stops, and the same page (no reload: htmx and
   Server-Sent Events) shows it down;
3. reaches the incident from the overview with the keyboard alone (Tab, Enter) and acknowledges it with
   `a`, the incident page's primary action: the voice step never reaches the Twilio stand-in;
4. adds a note (on the timeline); posts a status-page incident and an update from the console: the public
   page and the confirmed subscriber's mail at the SendGrid stand-in show the update;
5. makes an API token on the console's tokens page, takes the on-call shift, and `spectra oncall SCHEDULE
   --server --token` reports the override;
6. as a platform admin, impersonates globex's admin from /console/platform (the banner), and ends it: the
   audit rows carry both names.

Every console page is checked by axe-core (the npm package, installed by scripts/test under .tools/node)
in light, dark and at 375 pixels: no violation of impact serious or critical. The script is served to the
pages by Playwright's router under the console's own origin, so the pages keep their Content-Security-Policy
(which the walk also checks: no refusal is logged). Screenshots of each page go to
test-artifacts/screenshots/console/ (CI artefacts); with SPECTRA_UPDATE_SCREENSHOTS=1 the ones
docs/console.md shows are written to docs/images/console/ as well.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from sqlalchemy import select

from spectra.store import AuditLog, EscalationState, Incident, make_engine
from tests.factories.manifests import components, local_monitor, organization, resource, status_page, to_yaml
from tests.support.cluster import child_env
from tests.support.paths import REPO
from tests.support.processes import Target, run_spectra
from tests.support.providers import Providers, text_of
from tests.support.services import in_ci, missing_service
from tests.support.standalone import Run
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

try:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Route, expect

    from tests.support.browser import chromium, link_in_mail, next_step_code, sign_in
except ImportError:  # Playwright is the optional `browser` extra
    if in_ci():
        raise
    pytest.skip("pip install 'spectramonitor[browser]' (Playwright)", allow_module_level=True)

AXE = REPO / ".tools" / "node" / "node_modules" / "axe-core" / "axe.min.js"
AXE_PATH = "/console/static/axe-core-under-test.js"  # answered by Playwright's router, never by spectra
SCREENSHOTS = REPO / "test-artifacts" / "screenshots" / "console"
DOC_IMAGES = REPO / "docs" / "images" / "console"
DOC_SHOTS = {("overview", "light"), ("overview", "mobile"), ("incident", "light"), ("incident", "mobile")}
SETUP_LINE = re.compile(r"set up the first one at (\S+/setup/\S+) \(once")

ROOT, GINA, ALICE, READER = "root@example.com", "gina@globex.example", "alice@acme.example", "reader@example.com"
PASSWORDS = {ROOT: "plum-orbit-saddle-91", GINA: "cobalt-harbor-violin-58"}
VOICE_DELAY_S = 75  # the escalation's second step: a voice call to Alice, this long after the first
NOTE = "Checkout answers 502 since the deploy at 10:40; rolling back."
SP_TITLE = "Checkout is failing"
SP_UPDATE = "We found the faulty deploy and are rolling it back."
OVERRIDE_REASON = "Alice is at the dentist"
IMPERSONATION_REASON = "Gina asked why her intranet monitor looks paused (ticket 5120)"
BAD_IMPACTS = ("serious", "critical")

DESKTOP = {"width": 1280, "height": 900}
VARIANTS: dict[str, dict[str, Any]] = {
    "light": {"color_scheme": "light", "viewport": DESKTOP},
    "dark": {"color_scheme": "dark", "viewport": DESKTOP},
    "mobile": {
        "color_scheme": "light",
        "viewport": {"width": 375, "height": 667},
        "is_mobile": True,
        "has_touch": True,
    },
}


def manifests(port: int) -> str:
    alice = {"displayName": "Alice", "email": ALICE, "phone": "+15550001111", "channels": ["email", "voice"]}
    root = {"displayName": "Root", "email": ROOT, "channels": ["email"]}
    steps = [
        {"delay": "0s", "targets": [{"contact": "alice"}], "channels": ["email"]},
        {"delay": f"{VOICE_DELAY_S}s", "targets": [{"contact": "alice"}], "channels": ["voice"]},
    ]
    layer = {"name": "week", "participants": ["alice"], "start": "2026-01-05", "rotation": "1w", "handoffTime": "09:00"}
    page = status_page(
        "public", namespace="acme", slug="acme", title="Acme status", autoIncidents=False,
        subscriptions={"enabled": True}, groups=components("shop", group="Store", component="Checkout"),
    )  # fmt: skip
    return to_yaml(
        organization("acme", ["acme"], admins=[ROOT]),
        organization("globex", ["globex"], admins=[GINA]),
        resource("Contact", "alice", alice, namespace="acme"),
        resource("Contact", "root", root, namespace="acme"),
        resource("EscalationPolicy", "primary", {"steps": steps}, namespace="acme"),
        resource("Schedule", "primary", {"timeZone": "UTC", "layers": [layer]}, namespace="acme"),
        local_monitor(
            "shop", port, namespace="acme", labels={"team": "store"}, failureThreshold=2, successThreshold=1,
            escalationPolicyRef={"name": "primary"},
        ),
        local_monitor("intranet", port, namespace="globex", path="/index.html"),
        page,
    )  # fmt: skip


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not AXE.exists():
        missing_service(f"{AXE} is missing (scripts/test installs it: npm install --prefix .tools/node axe-core@4)")
    with chromium() as launched:
        yield launched


class Audited:
    """Browser contexts whose pages can be checked by axe-core and whose CSP refusals are collected."""

    def __init__(self, browser: Browser, base: str) -> None:
        self.browser = browser
        self.base = base
        self.refusals: list[str] = []  # console messages of the Content-Security-Policy refusing something
        self.checked: dict[str, int] = {}  # page name -> how many axe runs found nothing serious

    def context(self, storage: Any = None, **options: Any) -> BrowserContext:
        context = self.browser.new_context(storage_state=storage, **options)
        context.route(self.base + AXE_PATH, self._axe)
        context.on("console", self._console)
        return context

    @staticmethod
    def _axe(route: Route) -> None:
        route.fulfill(status=200, content_type="text/javascript; charset=utf-8", path=AXE)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.refusals.append(message.text)

    def check(self, page: Page, name: str) -> None:
        """axe-core on `page` as it is now: no serious or critical violation (listed with ids and nodes)."""
        page.add_script_tag(url=self.base + AXE_PATH)
        results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        bad = [v for v in results["violations"] if v["impact"] in BAD_IMPACTS]
        described = [
            f"{v['id']} ({v['impact']}): {v['help']}\n"
            + "\n".join(f"    {n['target']}: {n.get('failureSummary', '')}".replace("\n", " ") for n in v["nodes"])
            for v in bad
        ]
        assert not bad, f"axe-core on {name} ({page.url}):\n" + "\n".join(described)
        passed = {rule["id"] for rule in results["passes"]}
        assert {"color-contrast", "landmark-one-main", "page-has-heading-one"} <= passed, (
            f"axe-core on {name}: {passed}"
        )
        self.checked[name] = self.checked.get(name, 0) + 1

    def finds_a_planted_fault(self, page: Page) -> None:
        """The check can fail: a button without a name planted in the page is reported as critical."""
        page.add_script_tag(url=self.base + AXE_PATH)
        page.evaluate(
            "() => { const b = document.createElement('button'); b.id = 'planted'; document.querySelector('main').append(b); }"
        )
        results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        page.evaluate("() => document.getElementById('planted').remove()")
        found = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]]) for v in results["violations"]]
        assert ("button-name", "critical", [["#planted"]]) in found, found


def test_the_console_in_chromium(tmp_path: Path, target: Target, providers: Providers, browser: Browser) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "tenants.yaml").write_text(manifests(target.port))
    database = f"sqlite:///{tmp_path / 'spectra.db'}"
    env = child_env(SPECTRA_SECRET_KEY="e2e-console-browser-key-0123456789abcdef", **providers.env())
    run = Run(tmp_path, folder, database=database, env=env, public_url=True)
    engine = make_engine(database)
    try:
        run.wait_ready()
        _walk(run, engine, target, providers, browser, env)
        run.stop(timeout=30)
    finally:
        run.close()
        engine.dispose()
    assert "Traceback" not in run.log_text()


def _walk(run: Run, engine: sa.Engine, target: Target, providers: Providers, browser: Browser, env: Any) -> None:
    base = run.base
    found = wait_for(lambda: SETUP_LINE.search(run.log_text()), "the first admin's link in the log", timeout=30)
    assert found is not None
    audited = Audited(browser, base)
    context = audited.context(viewport=DESKTOP)
    page = context.new_page()

    # 1. The first admin: a password from the logged link, TOTP on /account.
    page.goto(found.group(1))
    page.fill("#email", ROOT)
    page.fill("#name", "Root")
    page.fill("#password", PASSWORDS[ROOT])
    page.fill("#password_again", PASSWORDS[ROOT])
    page.click("button[type=submit]")
    assert "Your password is set" in page.inner_text("main")
    sign_in(page, base, ROOT, PASSWORDS[ROOT])
    page.goto(f"{base}/account")
    page.click("text=Set up two-factor authentication")
    secret = page.inner_text("#secret").replace(" ", "")
    enrolled_at = time.time()
    page.fill("#code", pyotp.TOTP(secret).now())
    page.click("button[type=submit]")
    assert page.locator("#recovery-codes code").count() == 10
    page.click("text=Sign out")
    # Until the next TOTP step: globex's declared admin sets her password, a reader subscribes to acme's page.
    _accept_invitation(browser, providers, GINA)
    _subscribe(browser, providers, base)
    sign_in(page, base, ROOT, PASSWORDS[ROOT], code=next_step_code(secret, enrolled_at))

    # 2. The overview: up, then down on the same page (the row swapped in by the live updates).
    wait_for(lambda: run.state("shop") == "up", "acme's monitor up", timeout=60)
    page.goto(f"{base}/console")
    row = page.locator("table.monitors tr", has=page.get_by_role("link", name="shop", exact=True))
    expect(row.locator(".state")).to_have_text("up", timeout=30_000)
    assert page.get_by_role("link", name="intranet").count() == 0  # globex's monitor is not acme's
    page.evaluate("() => { window.spectraWalkMark = 'still the same page'; }")
    only_up = context.new_page()  # the overview filtered to up: the row stays, saying it no longer matches
    only_up.goto(f"{base}/console?state=up")
    up_row = only_up.locator("table.monitors tr", has=only_up.get_by_role("link", name="shop", exact=True))
    expect(up_row.locator(".state")).to_have_text("up", timeout=30_000)
    expect(only_up.locator("#live[data-state-filter='up']")).to_have_count(1)
    target.stop()
    expect(row.locator(".state")).to_have_text("down", timeout=60_000)
    expect(page.locator("#count-down")).to_have_text("1", timeout=30_000)
    assert page.evaluate("() => window.spectraWalkMark") == "still the same page", "the overview was reloaded"
    expect(up_row.locator(".state")).to_have_text("down", timeout=30_000)
    expect(up_row).to_have_attribute("data-left-filter", "", timeout=30_000)
    expect(up_row.locator(".filter-note")).to_have_text(" (no longer up)")
    expect(row).not_to_have_attribute("data-left-filter", "")  # unfiltered, every state is as it is
    only_up.close()

    # 3. The incident, from the overview with the keyboard; its screenshots while acknowledge is there.
    incident_id = wait_for(lambda: _incident_id(engine), "the incident of acme/shop", timeout=60)
    voice_due = wait_for(lambda: _voice_due(engine, incident_id), "the escalation at its voice step", timeout=60)
    assert voice_due is not None
    wait_for(lambda: providers.emails(ALICE), "the first step's email to Alice", timeout=60)
    incident_path = f"/console/incidents/{incident_id}"
    _shots(audited, context, "incident", incident_path, acknowledge_in_view=True)
    page.goto(f"{base}/console")
    expect(page.locator(f"a[href='{incident_path}']")).to_be_visible()
    _tab_to(page, incident_path)
    page.keyboard.press("Enter")
    page.wait_for_url(base + incident_path)
    assert datetime.now(UTC) < voice_due, "the walk reached the acknowledgement after the voice step was due"
    page.keyboard.press("a")  # the console's shortcut: the primary action, Acknowledge
    page.wait_for_url(f"{base}{incident_path}?done=acknowledge")
    expect(page.locator("h1 .state")).to_have_text("acknowledged")
    assert _escalation_status(engine, incident_id) == "stopped"

    # 4. A note on the timeline; a status-page incident and its update, public and mailed.
    page.fill("#note-text", NOTE)
    page.get_by_role("button", name="Add note").click()
    page.wait_for_url(f"{base}{incident_path}?done=note")  # loaded, its script too: the keys below need it
    expect(page.locator("ol.timeline")).to_contain_text(NOTE)
    page.keyboard.press("g")  # g then o: back to the overview, where the incident reads acknowledged
    page.keyboard.press("o")
    page.wait_for_url(f"{base}/console")
    expect(page.locator("section.incidents-first")).to_contain_text("acknowledged")
    audited.finds_a_planted_fault(page)
    page.goto(f"{base}/console/status-pages/acme/public")
    page.fill("#n-title", SP_TITLE)
    page.select_option("#n-impact-1", "major_outage")
    page.fill("#n-message", "Some customers cannot pay.")
    page.get_by_role("button", name="Post incident").click()
    incident = page.locator("article.sp-incident", has_text=SP_TITLE)
    incident.locator("select[name=status]").select_option("identified")
    incident.locator("textarea[name=message]").first.fill(SP_UPDATE)
    incident.get_by_role("button", name="Post update").click()
    expect(page.locator("article.sp-incident", has_text=SP_TITLE)).to_contain_text(SP_UPDATE)
    public = context.new_page()
    public.goto(f"{base}/s/acme")
    expect(public.locator("main")).to_contain_text(SP_UPDATE)
    public.close()
    wait_for(
        lambda: any(SP_UPDATE in text_of(mail) for mail in providers.emails(READER)),
        "the update in the subscriber's email",
        timeout=60,
    )

    # 5. An API token from the tokens page; the on-call shift taken; `spectra oncall --server` reports it.
    page.goto(f"{base}/console/organization/tokens")
    page.fill("#token-name", "oncall-cli")
    page.get_by_role("button", name="Create token").click()
    token = page.input_value("#secret")
    assert token.startswith("spt_")
    audited.check(page, "token created")
    page.goto(f"{base}/console/oncall/acme/primary")
    page.fill("#until", "3h")
    page.select_option("#contact", "root")
    page.fill("#reason", OVERRIDE_REASON)
    page.get_by_role("button", name="Take it from now").click()
    expect(page.locator("section[aria-labelledby=overrides]")).to_contain_text(OVERRIDE_REASON)
    asked = run_spectra("oncall", "primary", "--server", base, "--token", token, env=dict(env))
    assert asked.returncode == 0, asked.stderr
    lines = asked.stdout.splitlines()
    assert lines[0].startswith("Schedule acme/primary (UTC) at "), asked.stdout
    assert lines[1] == "On call: root (Root)", asked.stdout
    assert lines[3].endswith(f"taken by {ROOT}: {OVERRIDE_REASON}"), asked.stdout

    # Every console page: screenshots, and axe-core in each variant.
    for name, path in (
        ("overview", "/console"),
        ("monitor", "/console/monitors/acme/shop"),
        ("incidents", "/console/incidents"),
        ("incident", incident_path),
        ("on-call", "/console/oncall"),
        ("schedule", "/console/oncall/acme/primary"),
        ("status-pages", "/console/status-pages"),
        ("status-page", "/console/status-pages/acme/public"),
        ("organization", "/console/organization"),
        ("tokens", "/console/organization/tokens"),
        ("organization-audit", "/console/organization/audit"),
        ("platform", "/console/platform"),
        ("platform-audit", "/console/platform/audit"),
        ("system", "/console/platform/system"),
        ("not-found", "/console/incidents/999999"),
    ):
        _shots(audited, context, name, path, docs_stage="acknowledged" if name == "incident" else "")

    # The voice step: past its time, nothing reached the Twilio stand-in.
    wait_for(lambda: datetime.now(UTC) > voice_due + timedelta(seconds=10), "the voice step's time", timeout=120)
    assert providers.twilio is not None
    assert providers.twilio.sent("Calls") == [], "the voice step called after the acknowledgement"

    # 6. Impersonate globex's admin from /console/platform; the banner; end it.
    page.goto(f"{base}/console/platform")
    page.fill("#imp-email", GINA)
    page.select_option("#imp-organization", "globex")
    page.fill("#imp-reason", IMPERSONATION_REASON)
    page.get_by_role("button", name="Start impersonating").click()
    banner = page.locator(".banner.impersonating")
    expect(banner).to_contain_text(f"You ({ROOT}) are impersonating {GINA} in globex")
    expect(page.get_by_role("link", name="intranet", exact=True)).to_be_visible()  # globex's overview now
    audited.check(page, "impersonating")
    banner.get_by_role("button", name="End impersonation").click()
    page.wait_for_url(f"{base}/login")
    with engine.connect() as connection:
        rows = connection.execute(
            select(AuditLog.action, AuditLog.actor, AuditLog.impersonator, AuditLog.organization).where(
                AuditLog.action.in_(["impersonation.started", "impersonation.ended"])
            )
        ).all()
    assert ("impersonation.started", GINA, ROOT, "globex") in [tuple(r) for r in rows], rows
    assert ("impersonation.ended", GINA, ROOT, "globex") in [tuple(r) for r in rows], rows
    assert audited.refusals == [], audited.refusals
    context.close()


def _accept_invitation(browser: Browser, providers: Providers, email: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(link_in_mail(providers, email, "invite"))
    page.fill("#password", PASSWORDS[email])
    page.fill("#password_again", PASSWORDS[email])
    page.click("button[type=submit]")
    assert "Your password is set" in page.inner_text("main")
    context.close()


def _subscribe(browser: Browser, providers: Providers, base: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/s/acme")
    page.fill("#sub-email", READER)
    page.click("form[action='/s/acme/subscribe'] button[type=submit]")
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    page.goto(link_in_mail(providers, READER, "s/acme/confirm"))
    page.get_by_role("button", name="Confirm subscription").click()
    expect(page.get_by_role("heading", name="Subscription confirmed")).to_be_visible()
    context.close()


def _tab_to(page: Page, href: str, most: int = 80) -> None:
    """Tab until the link to `href` has the focus (the keyboard alone; the page is only read)."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.getAttribute('href')") == href:
            return
    raise AssertionError(f"{most} presses of Tab never reached the link to {href}")


def _shots(
    audited: Audited,
    main: BrowserContext,
    name: str,
    path: str,
    *,
    acknowledge_in_view: bool = False,
    docs_stage: str = "",
) -> None:
    """`path` signed in as `main` is, at desktop light, dark and 375-pixel mobile: a screenshot, axe-core,
    nothing wider than the phone; with `acknowledge_in_view`, the Acknowledge button within the phone's
    first screen (one tap, no scrolling)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    storage = main.storage_state()
    stage = f"-{docs_stage}" if docs_stage else ""
    for variant, options in VARIANTS.items():
        context = audited.context(storage, **options)
        try:
            page = context.new_page()
            page.goto(audited.base + path)
            assert page.url.startswith(audited.base + path.split("?", maxsplit=1)[0]), page.url  # not sent to /login
            shot = SCREENSHOTS / f"{name}{stage}-{variant}.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 1000, f"{shot} is (nearly) empty"
            if (name, variant) in DOC_SHOTS and os.environ.get("SPECTRA_UPDATE_SCREENSHOTS") == "1" and not stage:
                DOC_IMAGES.mkdir(parents=True, exist_ok=True)
                doc = DOC_IMAGES / f"{name}-{variant}.png"
                page.screenshot(path=str(doc), full_page=False)
            if variant == "mobile":
                width = page.evaluate("() => document.documentElement.scrollWidth")
                assert width <= 375, f"{name} is {width}px wide on a 375-pixel phone"
                if acknowledge_in_view:
                    button = page.get_by_role("button", name="Acknowledge", exact=True)
                    box = button.bounding_box()
                    assert box is not None, "no Acknowledge button"
                    top, left, bottom, right = box["y"], box["x"], box["y"] + box["height"], box["x"] + box["width"]
                    assert (top, left) >= (0, 0), f"Acknowledge is at {box}"
                    assert bottom <= 667, f"Acknowledge is below the first screen: {box}"
                    assert right <= 375, f"Acknowledge is beyond the screen's width: {box}"
                    assert min(box["height"], box["width"]) >= 24, f"Acknowledge is too small to tap: {box}"
            audited.check(page, f"{name} ({variant})")
        finally:
            context.close()


def _incident_id(engine: sa.Engine) -> int:
    """The id of acme/shop's incident, 0 while there is none."""
    with engine.connect() as connection:
        found = connection.execute(
            select(Incident.id).where(Incident.namespace == "acme", Incident.monitor_name == "shop")
        ).scalar()
    return found or 0


def _voice_due(engine: sa.Engine, incident_id: int) -> datetime | None:
    """When the escalation's voice step (its second) falls due, once the first step is done."""
    with engine.connect() as connection:
        row = connection.execute(
            select(EscalationState.step_index, EscalationState.next_step_at).where(
                EscalationState.incident_id == incident_id
            )
        ).one_or_none()
    if row is None or row.step_index != 1 or row.next_step_at is None:
        return None
    due: datetime = row.next_step_at
    return due if due.tzinfo else due.replace(tzinfo=UTC)


def _escalation_status(engine: sa.Engine, incident_id: int) -> str | None:
    with engine.connect() as connection:
        return connection.execute(
            select(EscalationState.status).where(EscalationState.incident_id == incident_id)
        ).scalar()
