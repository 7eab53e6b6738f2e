from __future__ import annotations

from datetime import timedelta

import pytest

from spectra.api.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "calendar", "expected"),
    [
        ("30s", False, timedelta(seconds=30)),
        ("500ms", False, timedelta(milliseconds=500)),
        ("1h30m", False, timedelta(minutes=90)),
        ("2h0m5s", False, timedelta(hours=2, seconds=5)),
        ("0s", False, timedelta(0)),
        ("1w", True, timedelta(weeks=1)),
        ("1d12h", True, timedelta(hours=36)),
    ],
)
def test_parse(text: str, calendar: bool, expected: timedelta) -> None:
    assert parse_duration(text, calendar_units=calendar) == expected


@pytest.mark.parametrize(
    ("text", "calendar"),
    [
        ("30", False),
        ("1d", False),
        ("s", False),
        ("-5s", False),
        ("1.5h", False),
        ("30 s", False),
        ("1y", True),
        ("", True),
    ],
)
def test_reject(text: str, calendar: bool) -> None:
    with pytest.raises(DurationError, match="not a duration"):
        parse_duration(text, calendar_units=calendar)


@pytest.mark.parametrize(
    ("value", "calendar", "text"),
    [
        (timedelta(seconds=90), False, "1m30s"),
        (timedelta(hours=24), False, "24h"),
        (timedelta(days=7), True, "1w"),
        (timedelta(milliseconds=1500), False, "1s500ms"),
        (timedelta(0), False, "0s"),
    ],
)
def test_format_round_trips(value: timedelta, calendar: bool, text: str) -> None:
    assert format_duration(value, calendar_units=calendar) == text
    assert parse_duration(text, calendar_units=calendar) == value
