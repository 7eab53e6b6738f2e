"""How times are written, everywhere: one function per format.

- :func:`rfc3339`: ``2026-03-01T09:00:00Z`` (UTC, whole seconds): Kubernetes status and Events, where
  equal facts must compare equal between cycles.
- :func:`iso_utc`: ``2026-03-01T09:00:00.123456Z``: JSON documents and feeds (machine-readable, exact).
- :func:`utc_text`: ``2026-03-01 09:00 UTC``: what people read on pages and in mails.
- :func:`utc_text_seconds`: ``2026-03-01 09:00:05 UTC``: the same where the seconds matter (ack pages).

A naive datetime is taken as UTC (the store hands out aware ones; this is for safety, not a habit).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@overload
def rfc3339(moment: datetime) -> str: ...
@overload
def rfc3339(moment: None) -> None: ...
def rfc3339(moment: datetime | None) -> str | None:
    """``2026-03-01T09:00:00Z`` (None stays None)."""
    return None if moment is None else utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_utc(moment: datetime) -> str:
    return utc(moment).isoformat().replace("+00:00", "Z")


def utc_text(moment: datetime) -> str:
    return utc(moment).strftime("%Y-%m-%d %H:%M UTC")


def utc_text_seconds(moment: datetime | None) -> str:
    """With seconds; "" for None (a time that has not happened yet)."""
    return "" if moment is None else utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC")
