"""Durations as users write them (`30s`, `5m`, `1h30m`), parsed to `timedelta`.

Monitor timings use Go's units (ms, s, m, h) so the CRDs' CEL rules can compare them with
`duration()`; calendar-sized values (rotations, maintenance lengths) also accept `d` and `w`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
SHORT_PATTERN = r"^([0-9]+(ms|s|m|h))+$"
LONG_PATTERN = r"^([0-9]+(ms|s|m|h|d|w))+$"
_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w)")


MAX_DURATION: Final = timedelta(days=3660)  # ten years: longer is a typo, and timedelta overflows soon after


class DurationError(ValueError):
    pass


def parse_duration(text: str, *, calendar_units: bool = False) -> timedelta:
    """Parse `1h30m` style text; `calendar_units` admits `d` and `w` too."""
    pattern = LONG_PATTERN if calendar_units else SHORT_PATTERN
    if not re.fullmatch(pattern, text):
        units = "ms, s, m, h, d, w" if calendar_units else "ms, s, m, h"
        raise DurationError(f"{text!r} is not a duration: write a number and a unit ({units}), e.g. 30s or 1h30m")
    total_ms = sum(int(number) * _UNITS_MS[unit] for number, unit in _PART.findall(text))
    if total_ms > MAX_DURATION.total_seconds() * 1000:
        raise DurationError(f"{text!r} is too long: at most {MAX_DURATION.days} days")
    return timedelta(milliseconds=total_ms)


def format_duration(value: timedelta, *, calendar_units: bool = False) -> str:
    """The shortest spelling that parses back to `value` (`90s` -> `1m30s`; `1w` with calendar units)."""
    remaining = round(value.total_seconds() * 1000)
    if remaining == 0:
        return "0s"
    parts = []
    units = ("w", "d", "h", "m", "s", "ms") if calendar_units else ("h", "m", "s", "ms")
    for unit in units:
        size = _UNITS_MS[unit]
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _validator(calendar_units: bool) -> Any:
    def validate(value: Any) -> Any:
        if isinstance(value, timedelta):
            return value
        if not isinstance(value, str):
            raise DurationError(f"expected a duration string such as 30s, got {type(value).__name__}")
        return parse_duration(value.strip(), calendar_units=calendar_units)

    return validate


Duration = Annotated[
    timedelta,
    BeforeValidator(_validator(False)),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": SHORT_PATTERN}),
]
"""A duration in ms, s, m or h (Go syntax, so CEL's `duration()` reads it)."""

LongDuration = Annotated[
    timedelta,
    BeforeValidator(_validator(True)),
    PlainSerializer(lambda value: format_duration(value, calendar_units=True), return_type=str),
    WithJsonSchema({"type": "string", "pattern": LONG_PATTERN}),
]
"""A duration that may also use days (d) and weeks (w)."""
