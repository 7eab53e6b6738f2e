"""Global maintenance: the platform-wide switch that stops every page.

While it is in effect (switched on, and its `until`, if it has one, not yet passed) the alerter still
opens incidents but pages nobody: a step that falls due waits, and the incident's timeline says why.
When it ends (turned off, or `until` passes) the steps that waited fall due at that moment, as they do
at a maintenance window's end. With `show_on_status_pages` every public status page shows the message.

The state is one row (`global_maintenance`, id 1). :func:`current` reads it; :class:`GlobalMaintenanceCache`
keeps it for a couple of seconds, so a process that asks every half second (the alerter) reads the
database only once per TTL. A person's action goes through `spectra.auth.global_maintenance`, which
audits it; :func:`switch_on` and :func:`switch_off` here only validate and write the row.
"""

from __future__ import annotations

import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from spectra.api.durations import DurationError, parse_duration
from spectra.runtime.timefmt import iso_utc, utc
from spectra.store import GlobalMaintenance, upsert

ROW_ID: Final = 1
GLOBAL_MAINTENANCE: Final = GlobalMaintenance.__table__
MESSAGE_MAX: Final = 2000  # the column's length, in characters
CACHE_TTL_S: Final = 2.0  # how stale the alerter's view may be: pages stop within this after turning on


class GlobalMaintenanceRefused(ValueError):
    """Turning global maintenance on or off was refused; the message is exact and nothing changed."""


@dataclass(frozen=True)
class Status:
    """Global maintenance as of one instant.

    `ended_at` is when the last one ended (turned off, or its `until` passed): None while it is on and
    before it was ever used. The other fields describe the current one, or the last one when off.
    """

    on: bool
    message: str
    until: datetime | None
    show_on_status_pages: bool
    started_by: str | None
    started_at: datetime | None
    ended_at: datetime | None

    @property
    def banner(self) -> str | None:
        """The text every public status page shows now, if any (plain text: pages escape it)."""
        return self.message if self.on and self.show_on_status_pages else None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (camelCase, times as ISO 8601 UTC)."""

        def when(moment: datetime | None) -> str | None:
            return iso_utc(moment) if moment is not None else None

        return {
            "on": self.on,
            "message": self.message,
            "until": when(self.until),
            "showOnStatusPages": self.show_on_status_pages,
            "startedBy": self.started_by,
            "startedAt": when(self.started_at),
            "endedAt": when(self.ended_at),
        }


@dataclass(frozen=True)
class Switch:
    """The row as stored; :meth:`at` says what it means at an instant (an `until` may have passed)."""

    switched_on: bool
    message: str
    until: datetime | None
    show_on_status_pages: bool
    started_by: str | None
    started_at: datetime | None
    ended_at: datetime | None

    def at(self, now: datetime) -> Status:
        expired = self.until is not None and now >= self.until
        on = self.switched_on and not expired
        if on:
            ended = None
        elif self.switched_on:
            ended = self.until  # still switched on in the row, but its time is up
        else:
            ended = self.ended_at
        return Status(
            on=on,
            message=self.message,
            until=self.until,
            show_on_status_pages=self.show_on_status_pages,
            started_by=self.started_by,
            started_at=self.started_at,
            ended_at=ended,
        )


NEVER_USED: Final = Switch(False, "", None, False, None, None, None)


def read(session: Session) -> Switch:
    """The row as it is in the database now (columns, not the ORM object: never a stale identity-map copy)."""
    g = GlobalMaintenance
    row = session.execute(
        select(g.active, g.message, g.until, g.show_on_status_pages, g.started_by, g.started_at, g.ended_at).where(
            g.id == ROW_ID
        )
    ).first()
    if row is None:
        return NEVER_USED
    return Switch(
        switched_on=bool(row.active),
        message=row.message,
        until=row.until,
        show_on_status_pages=bool(row.show_on_status_pages),
        started_by=row.started_by,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


def current(session: Session, *, now: datetime) -> Status:
    """Global maintenance as of `now` (read from the database: use :class:`GlobalMaintenanceCache` on a hot path)."""
    return read(session).at(now)


# --- changing it (spectra.auth.global_maintenance audits who did) -------------------------------------


def clean_message(message: str) -> str:
    """The message as stored: trimmed; GlobalMaintenanceRefused when empty, too long or holding control characters."""
    text = message.strip()
    if not text:
        raise GlobalMaintenanceRefused("the message is empty: say why nothing is paged")
    if len(text) > MESSAGE_MAX:
        raise GlobalMaintenanceRefused(f"the message is {len(text)} characters long; at most {MESSAGE_MAX}")
    if any(unicodedata.category(char) == "Cc" and char not in "\n\t" for char in text):
        raise GlobalMaintenanceRefused("the message contains control characters; only line breaks and tabs are allowed")
    return text


def parse_until(text: str, *, now: datetime) -> datetime:
    """`--until` as people write it: an ISO 8601 time with an offset (`2026-03-02T12:00+01:00`, `...Z`) or a
    duration from `now` (`90m`, `2h`, `1d`). GlobalMaintenanceRefused when it is neither, or not later than `now`."""
    value = text.strip()
    try:
        until = now + parse_duration(value, calendar_units=True)
    except DurationError:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise GlobalMaintenanceRefused(
                f"until {text!r} is neither a time (ISO 8601 with an offset, e.g. 2026-03-02T12:00+01:00) "
                "nor a duration (e.g. 90m, 2h, 1d)"
            ) from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise GlobalMaintenanceRefused(f"until {text!r} has no offset; add one, e.g. +01:00 or Z") from None
        until = parsed
    return checked_until(until, now=now)


def checked_until(until: datetime, *, now: datetime) -> datetime:
    """`until` in UTC; GlobalMaintenanceRefused when it is naive or not later than `now`."""
    if until.tzinfo is None or until.utcoffset() is None:
        raise GlobalMaintenanceRefused("until has no time zone")
    if until <= now:
        raise GlobalMaintenanceRefused(f"until {iso_utc(until)} is not in the future (now: {iso_utc(now)})")
    return utc(until)


def _locked_row(session: Session) -> GlobalMaintenance:
    """The row, created when missing, locked until the caller's transaction ends (two admins switching at
    once are serialized; SQLite has one writer at a time anyway)."""
    upsert(session, GLOBAL_MAINTENANCE, [_empty_row()], key=["id"], update=[])
    return session.scalars(
        select(GlobalMaintenance)
        .where(GlobalMaintenance.id == ROW_ID)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _empty_row() -> dict[str, Any]:
    return {"id": ROW_ID, "active": False, "message": "", "show_on_status_pages": False}


def switch_on(
    session: Session,
    *,
    message: str,
    until: datetime | None,
    show_on_status_pages: bool,
    started_by: str,
    now: datetime,
) -> tuple[Status, Status]:
    """Turn it on, or change the one in effect (its message, end and banner; it keeps its start, so what it
    holds stays held). Returns (before, after). Flushes; the caller commits."""
    text = clean_message(message)
    end = checked_until(until, now=now) if until is not None else None
    row = _locked_row(session)
    before = _switch_of(row).at(now)
    if not before.on:
        row.started_at = now
        row.started_by = started_by
        row.ended_at = None
    row.active = True
    row.message = text
    row.until = end
    row.show_on_status_pages = show_on_status_pages
    session.flush()
    return before, _switch_of(row).at(now)


def switch_off(session: Session, *, now: datetime) -> Status:
    """Turn it off now; returns the status before. GlobalMaintenanceRefused when it is not on. Flushes."""
    row = _locked_row(session)
    before = _switch_of(row).at(now)
    if not before.on:
        ended = f" (the last one ended {iso_utc(before.ended_at)})" if before.ended_at is not None else ""
        raise GlobalMaintenanceRefused(f"global maintenance is not on{ended}; nothing changed")
    row.active = False
    row.ended_at = now
    session.flush()
    return before


def _switch_of(row: GlobalMaintenance) -> Switch:
    return Switch(
        switched_on=row.active,
        message=row.message,
        until=row.until,
        show_on_status_pages=row.show_on_status_pages,
        started_by=row.started_by,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


# --- the hot path ---------------------------------------------------------------------------------------


class GlobalMaintenanceCache:
    """The row, read at most once per `ttl_s` (monotonic seconds); :meth:`status` evaluates it at any
    instant, so an `until` passing takes effect at once, whatever the cache's age. Thread-safe."""

    def __init__(self, ttl_s: float = CACHE_TTL_S, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._switch: Switch | None = None
        self._read_at = 0.0
        self.reads = 0  # database reads so far (tests and metrics)

    def switch(self, session: Session) -> Switch:
        with self._lock:
            if self._switch is None or self._monotonic() - self._read_at >= self._ttl:
                self._switch = read(session)
                self._read_at = self._monotonic()
                self.reads += 1
            return self._switch

    def status(self, session: Session, now: datetime) -> Status:
        return self.switch(session).at(now)

    def invalidate(self) -> None:
        """Read again next time (after this process changed the switch itself)."""
        with self._lock:
            self._switch = None
