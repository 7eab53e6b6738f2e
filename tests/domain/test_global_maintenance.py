"""Global maintenance's state: switching it on and off, what it means at an instant (an `until` that
passes), the exact refusals that change nothing, `--until` as people write it, and the short cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from spectra.domain.global_maintenance import (
    MESSAGE_MAX,
    NEVER_USED,
    GlobalMaintenanceCache,
    GlobalMaintenanceRefused,
    Status,
    current,
    parse_until,
    read,
    switch_off,
    switch_on,
)
from spectra.store import GlobalMaintenance

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def turn_on(session: Session, now: datetime = T0, **changes: Any) -> tuple[Status, Status]:
    values: dict[str, Any] = {
        "message": "Upgrading the database",
        "until": None,
        "show_on_status_pages": False,
        "started_by": "ops@spectra.example",
    }
    values.update(changes)
    result = switch_on(session, now=now, **values)
    session.commit()
    return result


def test_never_used_is_off(session: Session) -> None:
    assert read(session) == NEVER_USED
    status = current(session, now=T0)
    assert (status.on, status.ended_at, status.banner) == (False, None, None)


def test_on_then_off(session: Session) -> None:
    before, after = turn_on(session, message="  Upgrading the database\n", show_on_status_pages=True)
    assert not before.on
    assert after == Status(
        on=True,
        message="Upgrading the database",
        until=None,
        show_on_status_pages=True,
        started_by="ops@spectra.example",
        started_at=T0,
        ended_at=None,
    )
    assert current(session, now=T0 + timedelta(days=30)).on  # no `until`: on until turned off
    assert current(session, now=T0).banner == "Upgrading the database"

    ended = T0 + timedelta(minutes=45)
    previous = switch_off(session, now=ended)
    session.commit()
    assert previous.on
    status = current(session, now=ended)
    assert (status.on, status.ended_at, status.banner) == (False, ended, None)
    assert status.message == "Upgrading the database"  # the last one's, for `status`
    assert session.scalar(select(func.count()).select_from(GlobalMaintenance)) == 1


def test_the_banner_only_when_asked(session: Session) -> None:
    turn_on(session, show_on_status_pages=False)
    assert current(session, now=T0).on
    assert current(session, now=T0).banner is None


def test_until_ends_it_without_anyone_turning_it_off(session: Session) -> None:
    until = T0 + timedelta(hours=2)
    turn_on(session, until=until, show_on_status_pages=True)
    assert current(session, now=until - timedelta(microseconds=1)).on
    status = current(session, now=until)
    assert (status.on, status.ended_at, status.banner) == (False, until, None)


def test_turning_on_again_changes_the_one_in_effect_and_keeps_its_start(session: Session) -> None:
    turn_on(session)
    later = T0 + timedelta(minutes=10)
    before, after = turn_on(
        session, later, message="Still upgrading", until=T0 + timedelta(hours=1), started_by="other@spectra.example"
    )
    assert before.on
    assert (after.message, after.until, after.started_at, after.started_by) == (
        "Still upgrading",
        T0 + timedelta(hours=1),
        T0,
        "ops@spectra.example",
    )


def test_after_it_ended_turning_on_starts_a_new_one(session: Session) -> None:
    turn_on(session, until=T0 + timedelta(hours=1))
    later = T0 + timedelta(hours=3)
    _, after = turn_on(session, later, started_by="other@spectra.example")
    assert (after.on, after.started_at, after.started_by, after.until, after.ended_at) == (
        True,
        later,
        "other@spectra.example",
        None,
        None,
    )


def test_as_dict() -> None:
    status = Status(True, "Upgrade", T0 + timedelta(hours=1), True, "cli", T0, None)
    assert status.as_dict() == {
        "on": True,
        "message": "Upgrade",
        "until": "2026-03-02T11:00:00Z",
        "showOnStatusPages": True,
        "startedBy": "cli",
        "startedAt": "2026-03-02T10:00:00Z",
        "endedAt": None,
    }


# --- refusals: exact, and nothing changed ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"message": ""}, "the message is empty: say why nothing is paged"),
        ({"message": " \n\t "}, "the message is empty: say why nothing is paged"),
        (
            {"message": "x" * (MESSAGE_MAX + 1)},
            f"the message is {MESSAGE_MAX + 1} characters long; at most {MESSAGE_MAX}",
        ),
        ({"message": "bell\x07"}, "the message contains control characters; only line breaks and tabs are allowed"),
        (
            {"message": "escape \x1b[31mred"},
            "the message contains control characters; only line breaks and tabs are allowed",
        ),
        ({"until": T0}, "until 2026-03-02T10:00:00Z is not in the future (now: 2026-03-02T10:00:00Z)"),
        (
            {"until": T0 - timedelta(minutes=1)},
            "until 2026-03-02T09:59:00Z is not in the future (now: 2026-03-02T10:00:00Z)",
        ),
        ({"until": datetime(2026, 3, 2, 12, 0)}, "until has no time zone"),  # naive: the bad input itself
    ],
)
def test_turning_on_refuses_bad_input_and_changes_nothing(
    session: Session, changes: dict[str, Any], refusal: str
) -> None:
    turn_on(session, T0 - timedelta(hours=2), until=T0 - timedelta(hours=1), message="An earlier one")
    stored = read(session)
    with pytest.raises(GlobalMaintenanceRefused) as refused:
        turn_on(session, **changes)
    assert str(refused.value) == refusal
    session.rollback()
    assert read(session) == stored


def test_a_message_of_the_longest_length_with_line_breaks_is_taken(session: Session) -> None:
    text = ("line\n\tindented " * 200)[: MESSAGE_MAX - 1] + "."
    _, after = turn_on(session, message=text)
    assert read(session).message == after.message == text.strip()


@pytest.mark.parametrize(
    ("setup", "refusal"),
    [
        ("never", "global maintenance is not on; nothing changed"),
        ("off", "global maintenance is not on (the last one ended 2026-03-02T09:30:00Z); nothing changed"),
        ("expired", "global maintenance is not on (the last one ended 2026-03-02T09:00:00Z); nothing changed"),
    ],
)
def test_turning_off_when_not_on_is_refused_and_changes_nothing(session: Session, setup: str, refusal: str) -> None:
    if setup == "off":
        turn_on(session, T0 - timedelta(hours=1))
        switch_off(session, now=T0 - timedelta(minutes=30))
        session.commit()
    elif setup == "expired":
        turn_on(session, T0 - timedelta(hours=2), until=T0 - timedelta(hours=1))
    stored = read(session)
    with pytest.raises(GlobalMaintenanceRefused) as refused:
        switch_off(session, now=T0)
    assert str(refused.value) == refusal
    session.rollback()
    assert read(session) == stored


# --- --until as people write it --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "until"),
    [
        ("90m", T0 + timedelta(minutes=90)),
        ("2h", T0 + timedelta(hours=2)),
        ("1d12h", T0 + timedelta(days=1, hours=12)),
        ("2026-03-02T12:00:00Z", datetime(2026, 3, 2, 12, 0, tzinfo=UTC)),
        (" 2026-03-02T12:00+01:00 ", datetime(2026, 3, 2, 11, 0, tzinfo=UTC)),
    ],
)
def test_until_is_a_time_with_an_offset_or_a_duration(text: str, until: datetime) -> None:
    parsed = parse_until(text, now=T0)
    assert parsed == until
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        (
            "soon",
            "until 'soon' is neither a time (ISO 8601 with an offset, e.g. 2026-03-02T12:00+01:00) nor a duration "
            "(e.g. 90m, 2h, 1d)",
        ),
        (
            "",
            "until '' is neither a time (ISO 8601 with an offset, e.g. 2026-03-02T12:00+01:00) nor a duration "
            "(e.g. 90m, 2h, 1d)",
        ),
        (
            "-2h",
            "until '-2h' is neither a time (ISO 8601 with an offset, e.g. 2026-03-02T12:00+01:00) nor a duration "
            "(e.g. 90m, 2h, 1d)",
        ),
        ("2026-03-02T12:00", "until '2026-03-02T12:00' has no offset; add one, e.g. +01:00 or Z"),
        ("0s", "until 2026-03-02T10:00:00Z is not in the future (now: 2026-03-02T10:00:00Z)"),
        ("2026-03-02T10:30+01:00", "until 2026-03-02T09:30:00Z is not in the future (now: 2026-03-02T10:00:00Z)"),
    ],
)
def test_until_refusals(text: str, refusal: str) -> None:
    with pytest.raises(GlobalMaintenanceRefused) as refused:
        parse_until(text, now=T0)
    assert str(refused.value) == refusal


def test_until_of_another_zone_is_compared_as_the_same_instant() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert parse_until("2026-03-02T19:00:01+09:00", now=T0) == datetime(2026, 3, 2, 19, 0, 1, tzinfo=tokyo)


# --- the cache -------------------------------------------------------------------------------------------------


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_reads_once_per_ttl_and_judges_until_at_every_instant(session: Session) -> None:
    ticker = Ticker()
    cache = GlobalMaintenanceCache(ttl_s=2.0, monotonic=ticker)
    assert not cache.status(session, T0).on
    turn_on(session, until=T0 + timedelta(minutes=5))
    ticker.now = 1.9
    assert not cache.status(session, T0).on  # still the copy read at 0.0
    assert cache.reads == 1
    ticker.now = 2.0
    assert cache.status(session, T0).on
    assert cache.status(session, T0 + timedelta(minutes=5)).ended_at == T0 + timedelta(minutes=5)  # no new read
    assert cache.reads == 2
    switch_off(session, now=T0 + timedelta(minutes=1))
    session.commit()
    cache.invalidate()
    assert not cache.status(session, T0 + timedelta(minutes=1)).on
    assert cache.reads == 3
