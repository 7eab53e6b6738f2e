"""Shared by the HTTP channels: how a provider's status code and Retry-After turn into our failures."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

from spectra.notify.channel import PermanentFailure, TemporaryFailure

# A provider asking for more than this is treated as asking for this (a page must not wait a day).
MAX_RETRY_AFTER_S: Final = 3_600.0


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date; None when absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header value by case-insensitive name from any mapping (dict, HTTPMessage, CaseInsensitiveDict)."""
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    if getter is not None:
        found = getter(name)
        if found is not None:
            return str(found)
    lowered = name.lower()
    for key, value in headers.items():
        if str(key).lower() == lowered:
            return str(value)
    return None


def is_success(status: int) -> bool:
    return 200 <= status < 300


def failure_for_status(
    provider: str, status: int, headers: Mapping[str, str] | None = None, detail: str = ""
) -> TemporaryFailure | PermanentFailure:
    """429 and 5xx are worth retrying (honouring Retry-After); any other status is permanent."""
    reason = f"{provider} answered HTTP {status}" + (f": {detail}" if detail else "")
    if status == 429 or status >= 500:
        return TemporaryFailure(
            reason, status_code=status, retry_after_s=parse_retry_after(header(headers, "Retry-After"))
        )
    return PermanentFailure(reason, status_code=status)
