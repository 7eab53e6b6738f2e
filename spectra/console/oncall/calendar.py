"""A user's shifts as an iCalendar feed (RFC 5545), made with the `icalendar` library."""

from __future__ import annotations

from datetime import datetime

import icalendar

from .service import FeedOwner

PRODID = "-//SpectraMonitor//On-call//EN"


def ics(owner: FeedOwner, *, now: datetime, host: str) -> bytes:
    """One VEVENT per shift, in UTC; UIDs are stable across fetches (schedule and start)."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", f"On call: {owner.email}")
    for shift in owner.shifts:
        event = icalendar.Event()
        event.add("uid", f"{shift.namespace}.{shift.schedule}.{int(shift.start.timestamp())}@{host}")
        event.add("dtstamp", now)
        event.add("dtstart", shift.start)
        event.add("dtend", shift.end)
        label = " (override)" if shift.override is not None else ""
        event.add("summary", f"On call: {shift.namespace}/{shift.schedule}{label}")
        event.add("description", f"Contact {shift.contact} is on call for Schedule {shift.namespace}/{shift.schedule}.")
        event.add("transp", "TRANSPARENT")
        calendar.add_component(event)
    return bytes(calendar.to_ical())
