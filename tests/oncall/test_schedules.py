"""Who is on call: layers stacked, restrictions, overrides, and when the answer next changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spectra.api.schedule import ScheduleSpec
from spectra.oncall import HANDOFF_HORIZON, next_handoff, on_call
from tests.factories.oncall import layer, schedule, t

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
BUSINESS = [{"days": WEEKDAYS, "from": "09:00", "to": "18:00"}]

WEEKLY = schedule(layer(["alice", "bob"]))  # Mondays 09:00 Berlin from 2026-01-05, alice first
NEW_YORK = schedule(layer(["ann", "ben"], start="2026-03-02"), zone="America/New_York")
TWELVE_HOURS = schedule(layer(["day", "night"], start="2026-03-28", rotation="12h", handoff="08:00"))
DAILY_UTC = schedule(layer(["a", "b", "c"], start="2026-02-01", rotation="1d", handoff="00:00"), zone="UTC")
BUSINESS_ONLY = schedule(layer(["carol"], restrictions=BUSINESS))
OVERNIGHT = schedule(layer(["nina"], restrictions=[{"days": ["fri"], "from": "22:00", "to": "06:00"}]))
WEEKEND = schedule(
    layer(["alice", "bob"], name="weekly"),
    layer(["dave"], name="weekend", restrictions=[{"days": ["sat", "sun"], "from": "00:00", "to": "24:00"}]),
)
EXAMPLE = schedule(
    layer(["alice", "bob"], name="weekly"),
    layer(["carol"], name="business-hours-backup", restrictions=BUSINESS),
    overrides=[{"contact": "bob", "start": "2026-12-24T00:00:00+01:00", "end": "2026-12-27T00:00:00+01:00"}],
)
OVERRIDES = schedule(
    layer(["alice", "bob"]),
    overrides=[
        {"contact": "zoe", "start": "2026-01-07T10:00:00+01:00", "end": "2026-01-07T14:00:00+01:00"},
        {"contact": "yan", "start": "2026-01-07T12:00:00+01:00", "end": "2026-01-07T13:00:00+01:00"},
        {"contact": "xia", "start": "2025-12-31T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
    ],
)


@pytest.mark.parametrize(
    ("name", "spec", "at", "expected"),
    [
        ("before start", WEEKLY, "2026-01-05T07:59:59Z", []),
        ("first turn begins", WEEKLY, "2026-01-05T09:00+01:00", ["alice"]),
        ("last second of first turn", WEEKLY, "2026-01-12T07:59:59Z", ["alice"]),
        ("second turn", WEEKLY, "2026-01-12T08:00Z", ["bob"]),
        ("March DST: 08:59 CEST is still the old turn", WEEKLY, "2026-03-30T08:59+02:00", ["bob"]),
        ("March DST: handoff at 09:00 CEST", WEEKLY, "2026-03-30T07:00Z", ["alice"]),
        ("October DST: 08:59 CET is still the old turn", WEEKLY, "2026-10-26T07:59Z", ["bob"]),
        ("October DST: handoff at 09:00 CET", WEEKLY, "2026-10-26T09:00+01:00", ["alice"]),
        ("any offset of the same instant", WEEKLY, "2026-10-26T03:00-05:00", ["alice"]),
        ("New York before March handoff", NEW_YORK, "2026-03-09T08:59-04:00", ["ann"]),
        ("New York March handoff 09:00 EDT", NEW_YORK, "2026-03-09T13:00Z", ["ben"]),
        ("New York November handoff 09:00 EST", NEW_YORK, "2026-11-02T14:00Z", ["ben"]),
        ("New York before November handoff", NEW_YORK, "2026-11-02T13:59Z", ["ann"]),
        ("12h second turn", TWELVE_HOURS, "2026-03-28T19:00Z", ["night"]),
        ("12h turn shifts with DST (08:30 CEST)", TWELVE_HOURS, "2026-03-29T08:30+02:00", ["night"]),
        ("12h third turn at 09:00 CEST", TWELVE_HOURS, "2026-03-29T09:00+02:00", ["day"]),
        ("12h before start", TWELVE_HOURS, "2026-03-28T06:59Z", []),
        ("daily third day", DAILY_UTC, "2026-02-03T12:00Z", ["c"]),
        ("daily wraps around", DAILY_UTC, "2026-02-04T00:00Z", ["a"]),
        ("business hours start", BUSINESS_ONLY, "2026-01-07T09:00+01:00", ["carol"]),
        ("business hours last minute", BUSINESS_ONLY, "2026-01-07T17:59+01:00", ["carol"]),
        ("business hours end", BUSINESS_ONLY, "2026-01-07T18:00+01:00", []),
        ("business hours: Saturday is empty", BUSINESS_ONLY, "2026-01-10T10:00+01:00", []),
        ("business hours in summer time", BUSINESS_ONLY, "2026-03-30T09:00+02:00", ["carol"]),
        ("business hours: 08:59 CEST", BUSINESS_ONLY, "2026-03-30T06:59Z", []),
        ("overnight starts Friday 22:00", OVERNIGHT, "2026-01-09T22:00+01:00", ["nina"]),
        ("overnight continues Saturday morning", OVERNIGHT, "2026-01-10T05:59+01:00", ["nina"]),
        ("overnight ends Saturday 06:00", OVERNIGHT, "2026-01-10T06:00+01:00", []),
        ("overnight not Thursday night", OVERNIGHT, "2026-01-08T23:00+01:00", []),
        ("overnight not Friday early morning", OVERNIGHT, "2026-01-09T05:00+01:00", []),
        ("weekend layer wins Saturday", WEEKEND, "2026-01-10T12:00+01:00", ["dave"]),
        ("weekend layer until Sunday 24:00", WEEKEND, "2026-01-11T23:59+01:00", ["dave"]),
        ("weekly layer Monday 00:00", WEEKEND, "2026-01-12T00:00+01:00", ["alice"]),
        ("weekly layer Monday after handoff", WEEKEND, "2026-01-12T09:00+01:00", ["bob"]),
        ("weekend layer before weekly start", WEEKEND, "2026-01-03T12:00+01:00", []),
        ("example: carol in business hours", EXAMPLE, "2026-01-05T09:00+01:00", ["carol"]),
        ("example: weekly after hours", EXAMPLE, "2026-01-05T18:00+01:00", ["alice"]),
        ("example: Christmas override", EXAMPLE, "2026-12-24T10:00+01:00", ["bob"]),
        ("example: after the override", EXAMPLE, "2026-12-27T00:00+01:00", ["alice"]),
        ("override wins over the layer", OVERRIDES, "2026-01-07T11:00+01:00", ["zoe"]),
        ("later-starting override wins", OVERRIDES, "2026-01-07T12:30+01:00", ["yan"]),
        ("overlapped override resumes", OVERRIDES, "2026-01-07T13:00+01:00", ["zoe"]),
        ("override end is exclusive", OVERRIDES, "2026-01-07T14:00+01:00", ["alice"]),
        ("override before the layer starts", OVERRIDES, "2025-12-31T12:00Z", ["xia"]),
    ],
)
def test_on_call(name: str, spec: ScheduleSpec, at: str, expected: list[str]) -> None:
    assert on_call(spec, t(at)) == expected, name


@pytest.mark.parametrize(
    ("name", "spec", "after", "expected"),
    [
        ("before start: the first handoff", WEEKLY, "2026-01-01T00:00Z", "2026-01-05T08:00Z"),
        ("strictly after a handoff", WEEKLY, "2026-01-12T08:00Z", "2026-01-19T08:00Z"),
        ("across March DST (09:00 CEST)", WEEKLY, "2026-03-25T12:00Z", "2026-03-30T07:00Z"),
        ("across October DST (09:00 CET)", WEEKLY, "2026-10-20T00:00Z", "2026-10-26T08:00Z"),
        ("New York across March DST", NEW_YORK, "2026-03-05T00:00Z", "2026-03-09T13:00Z"),
        ("12h across DST", TWELVE_HOURS, "2026-03-28T20:00Z", "2026-03-29T07:00Z"),
        ("business hours: Friday evening to Monday", BUSINESS_ONLY, "2026-01-09T17:30Z", "2026-01-12T08:00Z"),
        ("business hours: end of day", BUSINESS_ONLY, "2026-01-12T08:00Z", "2026-01-12T17:00Z"),
        ("overnight window opens", OVERNIGHT, "2026-01-08T00:00Z", "2026-01-09T21:00Z"),
        ("overnight window closes", OVERNIGHT, "2026-01-09T21:00Z", "2026-01-10T05:00Z"),
        ("weekend layer to weekly", WEEKEND, "2026-01-10T12:00Z", "2026-01-11T23:00Z"),
        ("example: carol takes over at 09:00", EXAMPLE, "2026-01-12T07:00Z", "2026-01-12T08:00Z"),
        ("example: carol hands back at 18:00", EXAMPLE, "2026-01-12T08:00Z", "2026-01-12T17:00Z"),
        ("example: override begins", EXAMPLE, "2026-12-23T18:00Z", "2026-12-23T23:00Z"),
        ("example: override ends", EXAMPLE, "2026-12-24T00:00Z", "2026-12-26T23:00Z"),
        ("overlapping overrides begin", OVERRIDES, "2026-01-07T09:30Z", "2026-01-07T11:00Z"),
        ("overlapping overrides end", OVERRIDES, "2026-01-07T11:00Z", "2026-01-07T12:00Z"),
        ("outer override ends", OVERRIDES, "2026-01-07T12:00Z", "2026-01-07T13:00Z"),
    ],
)
def test_next_handoff(name: str, spec: ScheduleSpec, after: str, expected: str) -> None:
    got = next_handoff(spec, t(after))
    assert got == t(expected), name
    assert got is not None
    assert got.tzinfo is UTC
    assert on_call(spec, got) != on_call(spec, got - timedelta(microseconds=1)), name


@pytest.mark.parametrize(
    ("name", "spec", "after", "expected"),
    [
        ("daily at 02:30: spring forward happens at 03:00 CEST", "02:30", "2026-03-28T12:00Z", "2026-03-29T01:00Z"),
        ("daily at 02:30: fall back happens the first time", "02:30", "2026-10-24T12:00Z", "2026-10-25T00:30Z"),
        ("daily at 02:30 the day after", "02:30", "2026-10-25T00:30Z", "2026-10-26T01:30Z"),
        ("daily at 24:00 across spring forward", "24:00", "2026-03-28T12:00Z", "2026-03-28T23:00Z"),
    ],
)
def test_next_handoff_in_dst_gaps_and_folds(name: str, spec: str, after: str, expected: str) -> None:
    daily = schedule(layer(["a", "b"], start="2026-01-01", rotation="1d", handoff=spec))
    assert next_handoff(daily, t(after)) == t(expected), name


def test_same_person_handoffs_are_not_changes() -> None:
    # A one-person rotation never changes; an override of the person already on call is no change either.
    single = schedule(layer(["alice"], rotation="1d"))
    assert next_handoff(single, t("2026-02-01T00:00Z")) is None
    masked = schedule(
        layer(["alice", "bob"]),
        overrides=[{"contact": "alice", "start": "2026-01-07T10:00:00+01:00", "end": "2026-01-14T10:00:00+01:00"}],
    )
    # The 12 Jan handoff to bob is hidden by the override: bob starts when it ends.
    assert next_handoff(masked, t("2026-01-06T00:00Z")) == t("2026-01-14T09:00Z")


def test_next_handoff_looks_five_weeks_ahead() -> None:
    far = schedule(layer(["alice", "bob"], start="2026-06-01"))
    assert next_handoff(far, t("2026-04-27T07:00Z")) == t("2026-06-01T07:00Z")
    assert next_handoff(far, t("2026-04-27T06:59Z")) is None
    assert timedelta(weeks=5) == HANDOFF_HORIZON


# --- properties -------------------------------------------------------------------------------

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"]
names = st.sampled_from(["alice", "bob", "carol"])
clock = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 59]))
restriction = st.builds(
    lambda days, start, end: {"days": days, "from": start, "to": end},
    st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), min_size=1, max_size=7, unique=True),
    clock,
    st.one_of(clock, st.just("24:00")),
).filter(lambda r: r["from"] != r["to"])
layers = st.builds(
    lambda participants, start, rotation, handoff, restrictions: layer(
        participants, start=start.isoformat(), rotation=rotation, handoff=handoff, restrictions=restrictions
    ),
    st.lists(names, min_size=1, max_size=3),
    st.dates(date(2026, 1, 1), date(2026, 12, 1)),
    st.sampled_from(["1d", "1w", "2d", "12h", "8h", "36h"]),
    clock,
    st.lists(restriction, max_size=2),
)
instants = st.datetimes(datetime(2026, 1, 1), datetime(2027, 1, 1), timezones=st.just(UTC))
overrides = st.lists(
    st.builds(
        lambda contact, start, hours: {
            "contact": contact,
            "start": start.isoformat(),
            "end": (start + timedelta(hours=hours)).isoformat(),
        },
        names,
        instants,
        st.integers(1, 24 * 10),
    ),
    max_size=3,
)


@st.composite
def schedules(draw: st.DrawFn) -> ScheduleSpec:
    drawn: list[dict[str, Any]] = draw(st.lists(layers, min_size=1, max_size=3))
    for index, item in enumerate(drawn):
        item["name"] = f"layer-{index}"
    return schedule(*drawn, zone=draw(st.sampled_from(ZONES)), overrides=draw(overrides))


@settings(max_examples=150, deadline=None)
@given(spec=schedules(), at=instants, fractions=st.lists(st.floats(0, 1, exclude_max=True), min_size=3, max_size=5))
def test_result_is_constant_until_next_handoff(spec: ScheduleSpec, at: datetime, fractions: list[float]) -> None:
    current = on_call(spec, at)
    boundary = next_handoff(spec, at)
    end = at + HANDOFF_HORIZON if boundary is None else boundary
    for fraction in fractions:
        point = min(at + (end - at) * fraction, end - timedelta(microseconds=1))
        assert on_call(spec, point) == current, point
    assert on_call(spec, end - timedelta(microseconds=1)) == current
    if boundary is not None:
        assert boundary > at
        assert on_call(spec, boundary) != current
