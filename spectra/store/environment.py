"""Settings read from the environment: seconds or a count, refused with its variable's name when not one."""

from __future__ import annotations

import os


def seconds_setting(name: str, default: float, *, minimum: float, maximum: float) -> float:
    """$``name`` as seconds (``default`` when unset or empty); ValueError naming it when not in range."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of seconds") from None
    if not minimum <= value <= maximum:
        raise ValueError(f"{name}={raw!r} must be between {minimum:g} and {maximum:g} seconds")
    return value


def count_setting(name: str, default: int, *, minimum: int, maximum: int) -> int:
    """$``name`` as a whole number (``default`` when unset or empty); ValueError naming it when not in range."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number") from None
    if not minimum <= value <= maximum:
        raise ValueError(f"{name}={raw!r} must be between {minimum} and {maximum}")
    return value
