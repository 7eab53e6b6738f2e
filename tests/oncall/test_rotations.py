"""Rotation arithmetic: wall times to instants across DST, turn starts, whose turn it is."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spectra.api.schedule import Layer
from spectra.oncall import next_handoff, on_call
from spectra.oncall.localtime import clock_minutes, require_aware, to_instant, wall_time
from spectra.oncall.rotations import Rotation
from tests.factories.oncall import layer, schedule, t

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("zone", "wall", "expected"),
    [
        ("Europe/Berlin", "2026-01-05T09:00", "2026-01-05T08:00Z"),
        ("Europe/Berlin", "2026-07-06T09:00", "2026-07-06T07:00Z"),
        # Spring forward 02:00 -> 03:00: 02:00 and 02:30 do not exist; they happen at 03:00 CEST.
        ("Europe/Berlin", "2026-03-29T02:00", "2026-03-29T01:00Z"),
        ("Europe/Berlin", "2026-03-29T02:30", "2026-03-29T01:00Z"),
        ("Europe/Berlin", "2026-03-29T03:00", "2026-03-29T01:00Z"),
        ("Europe/Berlin", "2026-03-29T01:59", "2026-03-29T00:59Z"),
        # Fall back 03:00 -> 02:00: 02:30 happens twice; the first (CEST) counts.
        ("Europe/Berlin", "2026-10-25T02:30", "2026-10-25T00:30Z"),
        ("Europe/Berlin", "2026-10-25T03:00", "2026-10-25T02:00Z"),
        ("America/New_York", "2026-03-08T02:30", "2026-03-08T07:00Z"),
        ("America/New_York", "2026-11-01T01:30", "2026-11-01T05:30Z"),
        ("America/New_York", "2026-11-01T09:00", "2026-11-01T14:00Z"),
        # Lord Howe Island jumps by 30 minutes (02:00 -> 02:30).
        ("Australia/Lord_Howe", "2026-10-04T02:10", "2026-10-04T02:30+11:00"),
        ("UTC", "2026-03-29T02:30", "2026-03-29T02:30Z"),
    ],
)
def test_to_instant_follows_gap_and_fold_rules(zone: str, wall: str, expected: str) -> None:
    assert to_instant(datetime.fromisoformat(wall), ZoneInfo(zone)) == t(expected)
    assert to_instant(datetime.fromisoformat(wall), ZoneInfo(zone)).tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "minutes"), [("00:00", 0), ("09:00", 540), ("23:59", 1439), ("24:00", 1440), ("18:30", 1110)]
)
def test_clock_minutes(text: str, minutes: int) -> None:
    assert clock_minutes(text) == minutes
    assert wall_time(date(2026, 1, 1), minutes) == datetime(2026, 1, 1) + timedelta(minutes=minutes)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="offset"):
        require_aware(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="offset"):
        on_call(schedule(layer(["alice"])), datetime(2026, 1, 6))


def _rotation(zone: str = "Europe/Berlin", **kwargs: str) -> Rotation:
    start, rotation, handoff = kwargs.get("start", "2026-01-05"), kwargs.get("rotation", "1w"), kwargs.get("handoff")
    spec = schedule(layer(["alice", "bob"], start=start, rotation=rotation, handoff=handoff or "09:00"), zone=zone)
    return Rotation(spec.layers[0], ZoneInfo(zone))


@pytest.mark.parametrize(
    ("zone", "kwargs", "turn", "expected"),
    [
        # Weekly 09:00 Berlin stays 09:00 local across both DST changes of 2026.
        ("Europe/Berlin", {}, 0, "2026-01-05T09:00+01:00"),
        ("Europe/Berlin", {}, 11, "2026-03-23T09:00+01:00"),
        ("Europe/Berlin", {}, 12, "2026-03-30T09:00+02:00"),
        ("Europe/Berlin", {}, 41, "2026-10-19T09:00+02:00"),
        ("Europe/Berlin", {}, 42, "2026-10-26T09:00+01:00"),
        ("America/New_York", {"start": "2026-03-02"}, 0, "2026-03-02T09:00-05:00"),
        ("America/New_York", {"start": "2026-03-02"}, 1, "2026-03-09T09:00-04:00"),
        ("America/New_York", {"start": "2026-03-02"}, 35, "2026-11-02T09:00-05:00"),
        # 12h turns count absolute time: after spring forward they change at 09:00/21:00 CEST.
        ("Europe/Berlin", {"start": "2026-03-28", "rotation": "12h", "handoff": "08:00"}, 1, "2026-03-28T20:00+01:00"),
        ("Europe/Berlin", {"start": "2026-03-28", "rotation": "12h", "handoff": "08:00"}, 2, "2026-03-29T09:00+02:00"),
        ("Europe/Berlin", {"start": "2026-03-28", "rotation": "1d", "handoff": "02:30"}, 1, "2026-03-29T03:00+02:00"),
        ("Europe/Berlin", {"start": "2026-03-28", "rotation": "1d", "handoff": "02:30"}, 2, "2026-03-30T02:30+02:00"),
        ("Europe/Berlin", {"start": "2026-10-24", "rotation": "1d", "handoff": "02:30"}, 1, "2026-10-25T02:30+02:00"),
        ("UTC", {"start": "2026-02-01", "rotation": "1d", "handoff": "24:00"}, 0, "2026-02-02T00:00Z"),
        ("UTC", {"start": "2026-02-01", "rotation": "36h", "handoff": "00:00"}, 3, "2026-02-05T12:00Z"),
    ],
)
def test_handoff_instants(zone: str, kwargs: dict[str, str], turn: int, expected: str) -> None:
    rotation = _rotation(zone, **kwargs)
    assert rotation.handoff(turn) == t(expected)
    assert rotation.turn_at(t(expected)) == turn
    assert rotation.turn_at(t(expected) - timedelta(microseconds=1)) == (turn - 1 if turn else None)


@pytest.mark.parametrize(
    ("at", "turn", "person"),
    [
        ("2025-12-31T12:00Z", None, None),
        ("2026-01-05T07:59:59Z", None, None),
        ("2026-01-05T08:00Z", 0, "alice"),
        ("2026-01-11T23:00Z", 0, "alice"),
        ("2026-01-12T08:00Z", 1, "bob"),
        ("2026-03-30T06:59Z", 11, "bob"),
        ("2026-03-30T07:00Z", 12, "alice"),
        ("2027-01-04T08:00Z", 52, "alice"),
    ],
)
def test_turn_at(at: str, turn: int | None, person: str | None) -> None:
    rotation = _rotation()
    assert rotation.turn_at(t(at)) == turn
    assert rotation.on_call(t(at)) == person


def test_handoffs_between() -> None:
    rotation = _rotation()
    got = list(rotation.handoffs(t("2026-03-16T08:00Z"), t("2026-04-06T07:00Z")))
    assert got == [t("2026-03-23T08:00Z"), t("2026-03-30T07:00Z"), t("2026-04-06T07:00Z")]
    assert list(rotation.handoffs(t("2025-12-01T00:00Z"), t("2026-01-06T00:00Z"))) == [t("2026-01-05T08:00Z")]


# Zones and handoff times away from their DST transitions (01:00-03:59 local), so that a plain
# wall-clock comparison is a correct oracle.
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]
safe_handoffs = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(4, 23), st.integers(0, 59))
starts = st.dates(date(2026, 1, 1), date(2026, 12, 31))
instants = st.datetimes(datetime(2025, 12, 1), datetime(2028, 12, 31), timezones=st.just(UTC))
people = st.lists(st.sampled_from(["alice", "bob", "carol", "dave", "erin"]), min_size=1, max_size=5, unique=True)


def _elapsed_by_wall_clock(spec_layer: Layer, zone: ZoneInfo, at: datetime) -> int | None:
    """Turns elapsed, counted by stepping wall-clock handoffs one by one."""
    local = at.astimezone(zone).replace(tzinfo=None)
    handoff = datetime.combine(spec_layer.start, time()) + timedelta(minutes=clock_minutes(spec_layer.handoff_time))
    if local < handoff:
        return None
    elapsed = 0
    while handoff + spec_layer.rotation <= local:
        handoff += spec_layer.rotation
        elapsed += 1
    return elapsed


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    participants=people,
    days=st.integers(1, 21),
    handoff=safe_handoffs,
    start=starts,
    at=instants,
)
def test_whole_day_rotation_matches_wall_clock_count(
    zone: str, participants: list[str], days: int, handoff: str, start: date, at: datetime
) -> None:
    spec = schedule(layer(participants, start=start.isoformat(), rotation=f"{days}d", handoff=handoff), zone=zone)
    elapsed = _elapsed_by_wall_clock(spec.layers[0], ZoneInfo(zone), at)
    expected = [] if elapsed is None else [participants[elapsed % len(participants)]]
    assert on_call(spec, at) == expected
    assert Rotation(spec.layers[0], ZoneInfo(zone)).turn_at(at) == elapsed


@settings(max_examples=150, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    participants=people,
    hours=st.integers(1, 100).filter(lambda h: h % 24),
    handoff=safe_handoffs,
    start=starts,
    at=instants,
)
def test_sub_day_rotation_counts_absolute_time(
    zone: str, participants: list[str], hours: int, handoff: str, start: date, at: datetime
) -> None:
    spec = schedule(layer(participants, start=start.isoformat(), rotation=f"{hours}h", handoff=handoff), zone=zone)
    first = datetime.combine(start, time.fromisoformat(handoff), tzinfo=ZoneInfo(zone)).astimezone(UTC)
    if at < first:
        assert on_call(spec, at) == []
        return
    elapsed = int((at - first).total_seconds() // (hours * 3600))
    assert on_call(spec, at) == [participants[elapsed % len(participants)]]


@settings(max_examples=100, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    days=st.integers(1, 14),
    handoff=safe_handoffs,
    start=starts,
    offset_hours=st.integers(0, 24 * 400),
)
def test_consecutive_handoffs_are_one_rotation_apart_in_wall_time(
    zone: str, days: int, handoff: str, start: date, offset_hours: int
) -> None:
    tz = ZoneInfo(zone)
    spec = schedule(layer(["alice", "bob"], start=start.isoformat(), rotation=f"{days}d", handoff=handoff), zone=zone)
    at = datetime.combine(start, time(), tzinfo=tz).astimezone(UTC) + timedelta(hours=offset_hours)
    first = next_handoff(spec, at)
    assert first is not None
    second = next_handoff(spec, first)
    assert second is not None
    local_first, local_second = first.astimezone(tz), second.astimezone(tz)
    assert local_first.strftime("%H:%M") == handoff == local_second.strftime("%H:%M")
    assert local_second.replace(tzinfo=None) - local_first.replace(tzinfo=None) == timedelta(days=days)
    assert on_call(spec, first) != on_call(spec, second)
