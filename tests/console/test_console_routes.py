"""The console's frame (spectra.console.routes, viewer, rendering, assets): who may see a page, renewing
an expired session, CSRF on every form, navigation by role, the impersonation and global maintenance
banners, the headers, and /login's way back to the page asked for; on SQLite and MariaDB."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path

import pytest
from anyio.from_thread import BlockingPortal
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import spectra.console as console_package
from spectra.auth import impersonation
from spectra.auth import sessions as auth_sessions
from spectra.auth.global_maintenance import turn_on
from spectra.auth.identity import Actor, Principal
from spectra.console import assets
from spectra.console.rendering import CONSOLE_CSP
from spectra.store import Role
from spectra.store.accounts import AuditLog, Impersonation, User, UserSession
from spectra.web.auth_routes import CSRF_REFUSED, Granted, after_sign_in
from spectra.web.credentials import cookie_names
from tests.factories.accounts import member, organization_resource
from tests.support.console import ConsoleSite
from tests.support.web import GOOD, good_hash

ADA, UMA, ROOT = "ada@acme.example", "uma@acme.example", "root@example.com"
VENDORED = Path(assets.__file__).parent / "static" / "vendor"


@pytest.fixture
def site(sessions: sessionmaker[Session], portal: BlockingPortal) -> ConsoleSite:
    with sessions.begin() as session:
        organization_resource(session, "acme", ["acme"])
        member(session, ADA, "acme", Role.ADMIN)
        member(session, UMA, "acme", Role.USER)
        member(session, ROOT, None, None, platform_admin=True)
        for user in session.scalars(select(User)):
            user.password_hash = good_hash()
    return ConsoleSite.make(sessions, portal)


def nav(page: str) -> list[str]:
    return re.findall(r'<a href="(/console[^"]*)" data-key', page)


def test_nobody_is_sent_to_sign_in_and_back(site: ConsoleSite) -> None:
    browser = site.anonymous()
    answer = browser.get("/console/")
    assert (answer.status_code, answer.headers["location"]) == (303, "/login?next=/console/")
    form = browser.get("/login?next=/console/").text
    assert '<input type="hidden" name="next" value="/console/">' in form
    signed = browser.post("/login", {"email": UMA, "password": GOOD, "next": "/console/"}, csrf=False)
    assert (signed.status_code, signed.headers["location"]) == (303, "/console/")
    assert browser.get("/console/").status_code == 200


@pytest.mark.parametrize(
    "target",
    ["//evil.example/console", "https://evil.example/console", "/consoleevil", "/console\\\\evil",
     "/login", "/api/v1/auth/me", "", "/accounts", "/console//evil.example"],
)  # fmt: skip
def test_sign_in_never_leads_elsewhere(target: str) -> None:
    assert after_sign_in(target) is None


@pytest.mark.parametrize("target", ["/console", "/console/", "/console/incidents?state=open", "/account"])
def test_sign_in_leads_to_our_own_pages(target: str) -> None:
    assert after_sign_in(target) == target


def test_each_role_sees_its_sections_and_the_headers(site: ConsoleSite) -> None:
    pages = {email: site.browser(email).get("/console") for email in (UMA, ADA, ROOT)}
    for answer in pages.values():
        assert answer.status_code == 200
        assert answer.headers["content-security-policy"] == CONSOLE_CSP
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-frame-options"] == "DENY"
        assert "<script>" not in answer.text
        assert "style=" not in answer.text  # the CSP allows no inline style
    assert nav(pages[UMA].text) == ["/console", "/console/incidents", "/console/oncall", "/console/status-pages"]
    assert "/console/organization" in nav(pages[ADA].text)
    assert "/console/platform" not in nav(pages[ADA].text)
    assert nav(pages[ROOT].text) == ["/console/platform"]  # a member of no organization


def test_an_expired_access_cookie_is_renewed_by_a_post_and_get_changes_nothing(site: ConsoleSite) -> None:
    browser = site.browser(UMA)
    old_refresh = browser.http.cookies.get(cookie_names().refresh)
    site.clock.now += timedelta(minutes=11)  # the access token's 10 minutes are over
    shown = browser.get("/console/")
    assert shown.status_code == 200
    assert '<form id="renew" method="post" action="/console/renew">' in shown.text
    assert '<input type="hidden" name="next" value="/console/">' in shown.text
    assert browser.http.cookies.get(cookie_names().refresh) == old_refresh  # nothing rotated on GET
    refused = browser.post("/console/renew", {"next": "/console/"}, csrf=False)
    assert (refused.status_code, refused.text) == (403, CSRF_REFUSED)
    renewed = browser.post("/console/renew", {"next": "/console/"})
    assert (renewed.status_code, renewed.headers["location"]) == (303, "/console/")
    assert browser.http.cookies.get(cookie_names().refresh) != old_refresh
    assert browser.get("/console").status_code == 200


def test_a_renewal_never_leads_elsewhere_and_a_dead_session_goes_to_sign_in(site: ConsoleSite) -> None:
    browser = site.browser(UMA)
    site.clock.now += timedelta(minutes=11)
    renewed = browser.post("/console/renew", {"next": "https://evil.example/"})
    assert renewed.headers["location"] == "/console"
    site.clock.now += timedelta(hours=13)  # past the session's absolute end
    gone = browser.post("/console/renew", {"next": "/console/incidents"})
    assert (gone.status_code, gone.headers["location"]) == (303, "/login?next=/console/incidents")


def test_a_session_ended_elsewhere_closes_the_console_at_once(site: ConsoleSite) -> None:
    browser = site.browser(UMA)
    assert browser.get("/console").status_code == 200
    with site.sessions.begin() as session:
        user_id = session.scalars(select(User.id).where(User.email == UMA)).one()
        auth_sessions.revoke_all(session, user_id, now=site.clock(), actor=Actor(name="test"))
    answer = browser.get("/console")  # the access cookie is still good for minutes
    assert (answer.status_code, answer.headers["location"]) == (303, "/login?next=/console")


def test_forms_need_the_csrf_token_of_the_session(site: ConsoleSite) -> None:
    browser = site.browser(UMA)
    other = site.browser(ADA)
    for data in ({"csrf": ""}, {"csrf": other.csrf}, {"csrf": "forged.token"}):
        answer = browser.post("/console/impersonation/end", data, csrf=False)
        assert answer.status_code == 403
        assert CSRF_REFUSED in answer.text


def test_the_impersonation_banner_and_its_end(site: ConsoleSite) -> None:
    with site.sessions.begin() as session:
        root = session.scalars(select(User).where(User.email == ROOT)).one()
        staff = auth_sessions.start(
            session, root, organization=None, now=site.clock(), mfa_verified=True, ip=None, user_agent=None
        )
        issued = impersonation.start(
            session, staff.principal, ADA, "acme", reason="Ticket 4711: a status page looks wrong",
            now=site.clock(), ip="127.0.0.1", user_agent="test",
        )  # fmt: skip
        granted = Granted.of(issued)
    support = site.signed_in(granted, ADA)
    page = support.get("/console").text
    assert f"You ({ROOT}) are impersonating {ADA} in acme" in page
    assert 'action="/console/impersonation/end"' in page
    assert "/console/platform" not in nav(page)  # no platform power while impersonating
    ended = support.post("/console/impersonation/end")
    assert (ended.status_code, ended.headers["location"]) == (303, "/login")
    with site.sessions() as session:
        assert session.scalars(select(Impersonation.ended_at)).one() is not None
        assert session.scalars(select(UserSession.revoked_at).where(UserSession.sid == granted.sid)).one() is not None
        rows = session.execute(select(AuditLog.action, AuditLog.actor, AuditLog.impersonator)).all()
    assert ("impersonation.ended", ADA, ROOT) in [tuple(row) for row in rows]
    assert support.get("/console").status_code == 303
    plain = site.browser(UMA).post("/console/impersonation/end")
    assert plain.status_code == 403
    assert "this session is not an impersonation" in plain.text


def test_the_global_maintenance_banner(site: ConsoleSite) -> None:
    with site.sessions.begin() as session:
        turn_on(
            session, message="Moving <b>racks</b>", until=site.clock() + timedelta(hours=2),
            show_on_status_pages=False, actor=Actor(name="cli"), now=site.clock(),
        )  # fmt: skip
    page = site.browser(UMA).get("/console").text
    assert "Global maintenance: nobody is paged until" in page
    assert "Moving &lt;b&gt;racks&lt;/b&gt;" in page


def test_assets_are_served_by_name_only_with_a_content_version(site: ConsoleSite) -> None:
    browser = site.anonymous()
    for name, media in assets.FILES.items():
        url = assets.asset_url(name)
        assert url.startswith(f"/console/static/{name}?v=")
        answer = browser.get(url)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == media
        assert "immutable" in answer.headers["cache-control"]
    for path in ("/console/static/../routes.py", "/console/static/vendor/VENDORED.md", "/console/static/x.js"):
        assert browser.get(path).status_code == 404


def test_vendored_scripts_are_the_ones_recorded() -> None:
    table = (VENDORED / "VENDORED.md").read_text()
    recorded = dict(re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", table, re.MULTILINE))
    assert set(recorded) == {"htmx.min.js", "htmx-ext-sse.js"}
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDORED / name).read_bytes()).hexdigest() == digest, name


def test_principal_of_a_page_is_never_from_an_authorization_header(site: ConsoleSite) -> None:
    """The console takes the browser's cookies only: a bearer token alone is nobody here."""
    browser = site.browser(UMA)
    granted = browser.granted
    assert granted is not None
    anonymous = site.anonymous()
    answer = anonymous.get("/console", headers={"Authorization": f"Bearer {granted.access_token}"})
    assert answer.status_code == 303
    assert isinstance(granted.principal, Principal)


STACKED_TABLE = re.compile(r'<table class="stack[^"]*"[^>]*>(.*?)</table>', re.S)
CELL = re.compile(r'<th scope="row"|<td[^>]*>')


def _labels_match(path: Path, heads: list[str], row: str) -> int:
    """Every data cell of `row` has a data-label naming its column (a column whose header is made by the
    template, or a cell made in a loop, only needs one); how many cells were checked."""
    cells = [cell for cell in CELL.findall(row) if "colspan" not in cell]
    labels: list[str | None] = []
    for cell in cells:
        found = re.search(r'data-label="([^"]*)"', cell)
        assert cell.startswith("<th") or found is not None, (path.name, row[:160])
        labels.append(None if cell.startswith("<th") else found.group(1) if found else None)
    if any("{" in label for label in labels if label):  # a cell made in a loop stands for several columns
        assert {label for label in labels if label and "{" not in label} <= set(heads), (path.name, row[:160])
    else:
        for head, label in zip(heads, labels, strict=False):
            assert label is None or label == head, (path.name, row[:160])  # None: the row header
    return len(cells)


def test_every_cell_of_a_stacked_table_says_its_column() -> None:
    """On a phone a `stack` table hides its header and shows each cell's `data-label` before it (console.css):
    every data cell of every such table in the console's templates carries one, matching its column; the
    overview's rows come from the `_row.html` macro, checked against the overview's header."""
    templates = Path(console_package.__file__).parent / "templates"
    checked = 0
    for path in sorted(templates.rglob("*.html")):
        for table in STACKED_TABLE.findall(path.read_text(encoding="utf-8")):
            heads = [re.sub(r"<[^>]+>", "", head).strip() for head in re.findall(r'<th scope="col">(.*?)</th>', table)]
            body = table.split("</thead>", 1)[-1]
            if "row(m)" in body:
                body = (templates / "monitors" / "_row.html").read_text(encoding="utf-8")
            for row in re.split(r"<tr[ >]", body)[1:]:
                checked += _labels_match(path, heads, row)
    assert checked > 80
