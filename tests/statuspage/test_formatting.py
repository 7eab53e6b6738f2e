"""The display vocabulary: state labels and colours, percentages, day bars, accent colours and logos."""

from __future__ import annotations

from datetime import date

import pytest

from spectra.statuspage.formatting import (
    OVERALL_TEXT,
    STATE_COLOURS,
    STATE_LABELS,
    accent_colours,
    contrast,
    day_class,
    day_text,
    format_percent,
    logo_origin,
    state_label,
)
from spectra.statuspage.model import DayBar
from tests.factories.pages import ACCENTS

TODAY = date(2026, 11, 24)


@pytest.mark.parametrize(
    ("bar", "text"),
    [
        (DayBar(TODAY, 100.0, 0, False), f"{TODAY}: 100% uptime, 0 min down"),
        (DayBar(TODAY, 99.999, 0, False), f"{TODAY}: 99.99% uptime, 0 min down"),  # never rounds up to 100
        (DayBar(TODAY, 87.5, 180, True), f"{TODAY}: 87.50% uptime, 180 min down, maintenance"),
        (DayBar(TODAY, None, 0, False), f"{TODAY}: no data"),
        (DayBar(TODAY, None, 0, True), f"{TODAY}: no data, maintenance"),
    ],
)
def test_day_text(bar: DayBar, text: str) -> None:
    assert day_text(bar) == text


@pytest.mark.parametrize(
    ("uptime", "maintenance", "css"),
    [
        (100.0, False, "ok"),
        (99.9, False, "ok"),
        (99.89, False, "minor"),
        (99.0, False, "minor"),
        (98.99, False, "partial"),
        (95.0, False, "partial"),
        (94.99, False, "major"),
        (0.0, True, "major"),  # a day with data is coloured by its data, maintenance or not
        (None, False, "none"),
        (None, True, "maint"),
    ],
)
def test_day_class(uptime: float | None, maintenance: bool, css: str) -> None:
    assert day_class(DayBar(TODAY, uptime, 0, maintenance)) == css


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (100.0, "100%"),
        (100.5, "100%"),
        (99.999, "99.99%"),  # never rounds up to 100
        (99.5, "99.50%"),
        (0.0, "0.00%"),
        (None, "no data"),
    ],
)
def test_format_percent(value: float | None, text: str) -> None:
    assert format_percent(value) == text


@pytest.mark.parametrize(
    ("state", "label"),
    [
        ("operational", "Operational"),
        ("partial_outage", "Partial outage"),
        ("maintenance", "Under maintenance"),
        ("unknown", "Status unknown"),
        ("identified", "Identified"),
        ("some_new_state", "Some new state"),  # a state without a label is still words
    ],
)
def test_state_label(state: str, label: str) -> None:
    assert state_label(state) == label


def test_every_page_state_has_a_label_a_banner_text_and_a_colour() -> None:
    assert set(OVERALL_TEXT) == set(STATE_COLOURS)
    assert set(STATE_COLOURS) <= set(STATE_LABELS)


@pytest.mark.parametrize(
    ("a", "b", "ratio"),
    [("#000000", "#ffffff", 21.0), ("#ffffff", "#000000", 21.0), ("#777777", "#777777", 1.0)],
)
def test_contrast_is_the_wcag_ratio(a: str, b: str, ratio: float) -> None:
    assert contrast(a, b) == pytest.approx(ratio)


@pytest.mark.parametrize(
    ("accent", "expected"),
    ACCENTS,
)
def test_accent_is_validated_and_text_on_it_readable(accent: str | None, expected: str) -> None:
    colour, text = accent_colours(accent)
    assert colour == expected
    assert contrast(colour, text) >= 4.5


@pytest.mark.parametrize("accent", ["#ffffff", "#000000", "#777777", "#00ff00", "#0000ff", "#ff0000", "#808080"])
def test_text_on_any_accent_meets_aa_large_or_better(accent: str) -> None:
    colour, text = accent_colours(accent)
    # Mid greys cannot reach 4.5:1 with any text colour; the better of black and white always reaches 4.5 here.
    assert contrast(colour, text) >= 4.5


@pytest.mark.parametrize(("accent", "text"), [("#ffffff", "#000000"), ("#000000", "#ffffff"), ("#ffcc00", "#000000")])
def test_text_on_the_accent_is_black_or_white(accent: str, text: str) -> None:
    assert accent_colours(accent) == (accent, text)


@pytest.mark.parametrize("state", sorted(STATE_COLOURS))
def test_banner_colours_keep_white_text_readable(state: str) -> None:
    assert contrast(STATE_COLOURS[state], "#ffffff") >= 4.5


@pytest.mark.parametrize(
    ("logo", "origin"),
    [
        ("https://cdn.acme.test/logo.png", "https://cdn.acme.test"),
        ("https://cdn.acme.test:8443/a/logo.svg", "https://cdn.acme.test:8443"),
        ("http://cdn.acme.test/logo.png", None),
        ("javascript:alert(1)", None),
        ('https://x.test/a"b.png', None),
        ("https://x.test/a b.png", None),
        ("https:///logo.png", None),
        ("", None),
        (None, None),
    ],
)
def test_logo_origin(logo: str | None, origin: str | None) -> None:
    assert logo_origin(logo) == origin
