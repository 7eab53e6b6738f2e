"""What the HTML page says and how safely: escaping, sanitized HTML, uptime bars, sections, colours, assets."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from datetime import date, timedelta
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest

from spectra.statuspage.formatting import STATE_COLOURS, accent_colours, contrast
from spectra.statuspage.model import DayBar, GroupView, MaintenanceView, PlatformNotice
from spectra.statuspage.render import render_html, render_json
from tests.factories.pages import ACCENTS, NOW, TODAY, component, days, incident, maintenance, quiet_days, snapshot

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

XSS = "<script>alert(1)</script>"


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def html_of(**kw: object) -> str:
    return render_html(snapshot(**kw))[0].decode()


def parse(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    return parser


def test_user_text_is_escaped_everywhere() -> None:
    html = html_of(
        title=f"Acme {XSS}",
        groups=(GroupView(f"Group {XSS}", (component(XSS), component(f'x" onmouseover="{XSS}'))),),
        active_incidents=(incident(title=f"Title {XSS}", components=(XSS,)),),
        maintenance=(replace_maintenance_name(XSS),),
    )
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'onmouseover="' not in html
    # Only the local-time script tag exists, and it has a src.
    scripts = [attrs for tag, attrs in parse(html).tags if tag == "script"]
    assert scripts == [{"src": "/s/static/localtime.js", "defer": None}]


def replace_maintenance_name(name: str) -> MaintenanceView:
    return dataclasses.replace(maintenance(), name=name)


def test_sanitized_html_from_the_model_passes_through() -> None:
    html = html_of(active_incidents=(incident(),), maintenance=(maintenance(),))
    assert "<p>We are <strong>looking</strong>.</p>" in html
    assert "<p>Short <em>pause</em>.</p>" in html
    assert "<p>Status of <em>Acme</em> services.</p>" in html


def test_internal_names_never_rendered() -> None:
    html = html_of()
    for secret in ("api-check", "web-check", "prod/", "acme-status"):
        assert secret not in html


def test_uptime_bar_one_accessible_cell_per_day() -> None:
    bars = (*days(88), DayBar(TODAY - timedelta(days=1), 99.95, 3, False), DayBar(TODAY, None, 0, True))
    bars = tuple(replace_day(b, TODAY - timedelta(days=89 - i)) for i, b in enumerate(bars))
    html = html_of(groups=(GroupView("Core", (component(days=bars, uptime_percent=99.953),)),))
    cells = [attrs for tag, attrs in parse(html).tags if tag == "li" and (attrs.get("class") or "").startswith("d-")]
    assert len(cells) == 90
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    expected = f"{yesterday}: 99.95% uptime, 3 min down"
    assert cells[-2] == {"class": "d-ok", "title": expected}
    assert f'<span class="sr">{expected}</span>' in html  # readable without hover
    assert cells[-1]["class"] == "d-maint"
    assert cells[-1]["title"] == f"{TODAY.isoformat()}: no data, maintenance"
    assert "99.95% uptime" in html  # the window's uptime


def replace_day(bar: DayBar, day: date) -> DayBar:
    return dataclasses.replace(bar, day=day)


@pytest.mark.parametrize(
    ("overall", "text"),
    [
        ("operational", "All systems operational"),
        ("degraded", "Some systems have degraded performance"),
        ("partial_outage", "Partial system outage"),
        ("major_outage", "Major system outage"),
        ("maintenance", "Maintenance in progress"),
        ("unknown", "Current status unknown"),
    ],
)
def test_overall_banner(overall: str, text: str) -> None:
    html = html_of(overall=overall)
    assert f'class="banner state-{overall}"' in html
    assert f"<h2>{text}</h2>" in html


def test_component_states_are_words_not_only_colours() -> None:
    html = html_of(groups=(GroupView("Core", (component("DB", state="partial_outage"),)),))
    assert '<span class="state state-partial_outage">Partial outage</span>' in html


def test_past_incidents_by_day_with_quiet_days() -> None:
    html = html_of()
    assert html.count("No incidents reported.") == 14
    past = list(quiet_days())
    past[2] = (
        past[2][0],
        (incident(id_=3, title="Slow checkout", state="resolved", resolved_at=NOW - timedelta(days=2)),),
    )
    html = html_of(past_incidents=tuple(past))
    assert html.count("No incidents reported.") == 13
    assert "Slow checkout" in html
    assert 'id="incident-3"' in html


def test_active_incidents_and_maintenance_sections() -> None:
    quiet = html_of()
    assert "Active incidents" not in quiet
    assert "Maintenance</h2>" not in quiet
    html = html_of(active_incidents=(incident(),), maintenance=(maintenance(), maintenance("Now", active=True)))
    assert "Active incidents" in html
    assert "Elevated errors" in html
    assert "Scheduled" in html
    assert "In progress" in html


def test_times_are_utc_time_elements() -> None:
    html = html_of(active_incidents=(incident(),))
    assert '<time datetime="2026-11-24T11:40:30Z">2026-11-24 11:40 UTC</time>' in html
    assert 'Last updated <time datetime="2026-11-24T12:00:30Z">' in html


def test_subscribe_form_only_when_enabled() -> None:
    html = html_of()
    forms = [attrs for tag, attrs in parse(html).tags if tag == "form"]
    assert forms == [{"method": "post", "action": "/s/acme/subscribe"}]
    options = [attrs.get("value") for tag, attrs in parse(html).tags if tag == "option"]
    assert options == ["", "API", "Web"]
    assert 'name="email"' in html
    assert "<form" not in html_of(subscriptions_enabled=False)


def test_no_assets_from_other_hosts() -> None:
    html = html_of()
    urls = [
        value
        for _tag, attrs in parse(html).tags
        for name, value in attrs.items()
        if name in ("src", "href", "action") and value
    ]
    external = [u for u in urls if not u.startswith("/")]
    assert external == ["https://cdn.acme.test/logo.png"]  # the page's own logo only


@pytest.mark.parametrize(
    "logo", ["http://cdn.acme.test/logo.png", "javascript:alert(1)", 'https://x.test/a"b.png', None]
)
def test_bad_logo_urls_are_not_rendered(logo: str | None) -> None:
    body, csp = render_html(snapshot(logo_url=logo))
    assert b"<img" not in body
    assert "img-src 'self';" in csp


@pytest.mark.parametrize(
    ("accent", "expected"),
    ACCENTS,
)
def test_validated_accent_and_its_text_colour_style_the_page(accent: str | None, expected: str) -> None:
    """The accent as `accent_colours` validates it (tests/statuspage/test_formatting.py) reaches the page."""
    colour, text = accent_colours(accent)
    assert colour == expected
    html = html_of(accent_color=accent)
    assert f"--accent:{expected};--on-accent:{text}" in html


def _css_vars(block: str) -> dict[str, str]:
    return dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6})", block))


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("name", ["fg", "muted", "ok", "minor", "partial", "major", "maint"])
def test_stylesheet_text_colours_meet_wcag_aa(scheme: str, name: str) -> None:
    css = (resources.files("spectra.statuspage") / "static" / "page.css").read_text()
    light_block, dark_block = (
        css.split("@media (prefers-color-scheme: dark)")[0],
        css.split("@media (prefers-color-scheme: dark)")[1].split("}")[0],
    )
    colours = _css_vars(light_block if scheme == "light" else dark_block)
    for background in ("bg", "panel"):
        assert contrast(colours[name], colours[background]) >= 4.5, (name, background)


def test_inline_style_is_allowed_by_its_hash_only() -> None:
    body, csp = render_html(snapshot())
    inline = re.search(r"<style>(.*?)</style>", body.decode(), re.S)
    assert inline is not None
    digest = base64.b64encode(hashlib.sha256(inline.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp


def test_json_matches_the_snapshot() -> None:
    value = json.loads(render_json(snapshot(active_incidents=(incident(),))))
    assert value["activeIncidents"][0]["title"] == "Elevated errors"
    assert value["activeIncidents"][0]["updates"][0]["bodyHtml"] == "<p>We are <strong>looking</strong>.</p>"
    assert [d["day"] for d in value["pastIncidents"]][:2] == [
        TODAY.isoformat(),
        (TODAY - timedelta(days=1)).isoformat(),
    ]


def test_global_maintenance_banner_is_plain_escaped_text() -> None:
    message = f"Upgrading <b>everything</b> {XSS}\nBack soon & thanks"
    html = html_of(notice=PlatformNotice(message, NOW + timedelta(hours=2)))
    assert XSS not in html
    assert "<b>everything</b>" not in html
    assert (
        "Upgrading &lt;b&gt;everything&lt;/b&gt; &lt;script&gt;alert(1)&lt;/script&gt;\nBack soon &amp; thanks" in html
    )
    assert '<section class="notice" role="status" aria-labelledby="notice-h">' in html
    until = (NOW + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M UTC")
    assert f">{until}</time>" in html
    assert html.index('class="notice"') < html.index('class="banner')  # above the overall state
    assert 'class="notice"' not in html_of()
    assert "Until" not in html_of(notice=PlatformNotice("Upgrading", None))


def test_global_maintenance_banner_in_json() -> None:
    value = json.loads(render_json(snapshot(notice=PlatformNotice("Upgrading <b>it</b>", NOW + timedelta(hours=2)))))
    assert value["notice"] == {"message": "Upgrading <b>it</b>", "until": "2026-11-24T14:00:30Z"}
    assert json.loads(render_json(snapshot()))["notice"] is None


# --- In Debian's Chromium: the CSP lets the page's own style and script work, colours are readable --------------

CHROMIUM = Path("/usr/bin/chromium")
ORIGIN = "https://status.acme.test"
EFFECTIVE_COLOURS_JS = """
(selector) => Array.from(document.querySelectorAll(selector)).map((el) => {
  const fg = getComputedStyle(el).color;
  let node = el, bg = 'rgba(0, 0, 0, 0)';
  while (node && node.nodeType === 1) {
    bg = getComputedStyle(node).backgroundColor;
    if (bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent') break;
    node = node.parentElement;
  }
  if (!node || node.nodeType !== 1) bg = getComputedStyle(document.body).backgroundColor;
  return [el.textContent.trim(), fg, bg];
})
"""


def _hex(css: str) -> str:
    r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")
@pytest.mark.parametrize(
    ("scheme", "viewport"),
    [
        ("light", {"width": 1280, "height": 900}),
        ("dark", {"width": 1280, "height": 900}),
        ("light", {"width": 360, "height": 740}),
    ],
)
@pytest.mark.parametrize("overall", ["major_outage", "degraded", "operational"])
def test_page_in_a_browser(scheme: Literal["light", "dark"], viewport: ViewportSize, overall: str) -> None:
    from playwright.sync_api import Route, sync_playwright

    states = ("operational", "degraded", "partial_outage", "major_outage", "maintenance", "unknown")
    value = snapshot(
        overall=overall,
        stale=True,
        logo_url=None,
        groups=(GroupView("Core", tuple(component(f"C {s}", state=s) for s in states)),),
        active_incidents=(incident(),),
        maintenance=(maintenance(),),
    )
    body, csp = render_html(value)
    static = resources.files("spectra.statuspage") / "static"

    def serve(route: Route) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        if path == "/s/acme":
            route.fulfill(
                status=200,
                body=body,
                headers={"Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": csp},
            )
        elif path == "/s/static/page.css":
            route.fulfill(status=200, body=(static / "page.css").read_bytes(), headers={"Content-Type": "text/css"})
        elif path == "/s/static/localtime.js":
            route.fulfill(
                status=200, body=(static / "localtime.js").read_bytes(), headers={"Content-Type": "text/javascript"}
            )
        else:
            route.fulfill(status=404, body=b"")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context(color_scheme=scheme, viewport=viewport, timezone_id="Europe/Berlin")
            page = context.new_page()
            messages: list[str] = []
            page.on("console", lambda message: messages.append(message.text))
            page.route(f"{ORIGIN}/**", serve)
            page.goto(f"{ORIGIN}/s/acme")
            page.wait_for_load_state("load")
            assert not [m for m in messages if "Content Security Policy" in m], messages
            # The stylesheet and the accent style applied (the banner has its state colour) ...
            assert (
                _hex(page.eval_on_selector(".banner", "el => getComputedStyle(el).backgroundColor"))
                == STATE_COLOURS[overall]
            )
            # ... and the local-time script ran: times are shown in the reader's zone (Berlin is UTC+1 in November).
            last = page.locator("footer time").inner_text()
            assert "UTC" not in last
            assert "1:00" in last  # 12:00 UTC
            # Every piece of text that carries a state is readable (WCAG AA) in this colour scheme.
            for selector in (".banner h2", ".state", ".brand h1", ".stale", ".muted", ".subscribe button"):
                for text, fg, bg in page.evaluate(EFFECTIVE_COLOURS_JS, selector):
                    assert contrast(_hex(fg), _hex(bg)) >= 4.5, (selector, text, fg, bg)
            assert page.get_by_text("Live data is unavailable").is_visible()
            # No sideways scrolling on a phone.
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            context.close()
        finally:
            browser.close()
