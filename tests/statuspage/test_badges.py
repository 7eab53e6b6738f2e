"""SVG badges: valid SVG, the right text and colour, derived from public pages only."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest

from spectra.statuspage.badges import STATE_TEXT, BadgeData, badge_svg, find_monitor, uptime_colour
from spectra.statuspage.formatting import contrast, format_percent
from spectra.statuspage.model import GroupView
from tests.factories.pages import NOW, FakeCache, app_for, client_for, component, snapshot

S = "{http://www.w3.org/2000/svg}"


def texts(svg: bytes | str) -> tuple[list[str], list[str]]:
    root = ET.fromstring(svg)
    assert root.tag == f"{S}svg"
    words = [t.text or "" for t in root.iter(f"{S}text")]
    fills = [r.get("fill") or "" for r in root.iter(f"{S}rect")]
    return words, fills


@pytest.mark.parametrize(
    ("state", "word", "colour"),
    [
        ("operational", "up", "#1a7f37"),
        ("degraded", "degraded", "#8a5a00"),
        ("partial_outage", "partial outage", "#bc4c00"),
        ("major_outage", "down", "#cf222e"),
        ("maintenance", "maintenance", "#0969da"),
        ("unknown", "unknown", "#59636e"),
    ],
)
async def test_status_badge(state: str, word: str, colour: str) -> None:
    page = snapshot(groups=(GroupView("Core", (component(state=state),)),))
    async with client_for(app_for(FakeCache(page))) as client:
        response = await client.get("/badges/prod/api-check/status.svg")
    assert response.status_code == 200
    words, fills = texts(response.content)
    assert words == ["status", word]
    assert fills[1] == colour
    assert response.headers["etag"]


@pytest.mark.parametrize(
    ("uptime", "word", "colour"),
    [
        (100.0, "100%", "#1a7f37"),
        (99.999, "99.99%", "#1a7f37"),
        (99.5, "99.50%", "#8a5a00"),
        (97.0, "97.00%", "#bc4c00"),
        (80.0, "80.00%", "#cf222e"),
        (None, "no data", "#59636e"),
    ],
)
async def test_uptime_badge(uptime: float | None, word: str, colour: str) -> None:
    page = snapshot(groups=(GroupView("Core", (component(uptime_percent=uptime),)),))
    async with client_for(app_for(FakeCache(page))) as client:
        response = await client.get("/badges/prod/api-check/uptime.svg")
    words, fills = texts(response.content)
    assert words == ["uptime", word]
    assert fills[1] == colour
    assert format_percent(uptime) == word
    assert uptime_colour(uptime) == colour


@pytest.mark.parametrize("state", sorted(STATE_TEXT))
def test_badge_colours_keep_white_text_readable(state: str) -> None:
    assert contrast(STATE_TEXT[state][1], "#ffffff") >= 4.5


def test_badge_text_is_escaped() -> None:
    svg = badge_svg("a<b", "c&d", "#000000")
    words, _ = texts(svg)
    assert words == ["a<b", "c&d"]
    assert "<b" not in svg.replace("<svg", "")


def test_worst_component_wins_and_private_pages_are_ignored() -> None:
    shared = "prod/api-check"
    public = snapshot(
        groups=(
            GroupView(
                "Core",
                (
                    component("A", state="operational", monitors=(shared,)),
                    component("B", state="major_outage", monitors=(shared, "prod/x"), uptime_percent=98.0),
                ),
            ),
        )
    )
    private = snapshot(
        slug="private", public=False, groups=(GroupView("G", (component("P", monitors=("prod/hidden",)),)),)
    )
    found = find_monitor([public, private], "prod", "api-check")
    assert found == BadgeData("major_outage", 98.0, NOW)
    assert find_monitor([public, private], "prod", "hidden") is None


async def test_badge_304() -> None:
    async with client_for(app_for(FakeCache(snapshot()))) as client:
        first = await client.get("/badges/prod/api-check/status.svg")
        again = await client.get("/badges/prod/api-check/status.svg", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
