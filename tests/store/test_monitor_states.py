"""`monitor_states`: one upsert per batch, constrained values, paused monitors; SQLite and MariaDB."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.store import down_monitors, load_states, save_states
from spectra.store.clock import database_now
from spectra.store.migrate import downgrade, upgrade
from spectra.store.monitor_states import mark_paused
from tests.factories.store import NOW, MonitorFactory, state_row


def test_states_round_trip_with_one_upsert_per_batch(session: Session, make_monitor: MonitorFactory) -> None:
    a, b = make_monitor(locations=("eu",)), make_monitor(locations=("eu",))
    save_states(session, [state_row(a.resource_id, "eu", "up"), state_row(b.resource_id, "eu", "down")])
    later = NOW + timedelta(minutes=1)
    updated = state_row(a.resource_id, "eu", "down", at=later, consecutive_failures=2, facts={"status_code": 500})
    save_states(session, [updated])
    session.expire_all()

    states = load_states(session, [a.resource_id, b.resource_id, 999], "eu")
    assert set(states) == {a.resource_id, b.resource_id}
    row = states[a.resource_id]
    assert (row.state, row.consecutive_failures, row.last_check_at, row.facts) == (
        "down",
        2,
        later,
        {"status_code": 500},
    )
    assert load_states(session, None, "eu").keys() == states.keys()
    assert load_states(session, None, "us") == {}


def test_down_monitors_are_those_any_location_judges_down(session: Session, make_monitor: MonitorFactory) -> None:
    everywhere, somewhere, nowhere, paused = (make_monitor(locations=("eu", "us")) for _ in range(4))
    save_states(
        session,
        [
            state_row(everywhere.resource_id, "eu", "down"),
            state_row(everywhere.resource_id, "us", "down"),
            state_row(somewhere.resource_id, "eu", "up"),
            state_row(somewhere.resource_id, "us", "down"),
            state_row(nowhere.resource_id, "eu", "degraded"),
            state_row(paused.resource_id, "eu", "paused"),
        ],
    )

    assert down_monitors(session) == {everywhere.resource_id, somewhere.resource_id}


def test_state_values_are_constrained(session: Session, make_monitor: MonitorFactory) -> None:
    monitor = make_monitor(locations=("eu",))
    with pytest.raises(sa.exc.IntegrityError):
        save_states(session, [state_row(monitor.resource_id, "eu", "sideways")])


def test_mark_paused(session: Session, make_monitor: MonitorFactory) -> None:
    a, b = make_monitor(locations=("eu",)), make_monitor(locations=("eu",))
    save_states(session, [state_row(a.resource_id, "eu", "up")])
    mark_paused(session, {a.resource_id, b.resource_id}, "eu", NOW + timedelta(hours=1))
    mark_paused(session, {a.resource_id}, "eu", NOW + timedelta(hours=2))  # already paused: unchanged
    session.expire_all()
    states = load_states(session, None, "eu")
    assert {k: (v.state, v.changed_at) for k, v in states.items()} == {
        a.resource_id: ("paused", NOW + timedelta(hours=1)),
        b.resource_id: ("paused", NOW + timedelta(hours=1)),
    }
    assert states[a.resource_id].last_reason == "up in eu"  # the last result's details stay


def test_state_stored_at_moves_only_when_the_state_or_its_change_time_does(
    session: Session, make_monitor: MonitorFactory
) -> None:
    """The write's database time is kept for a new row and a changed state, not for the same state stored
    again at the next check (the live console reads only rows that changed). On MariaDB the expression
    must run before `state` is overwritten in the same ON DUPLICATE KEY UPDATE."""
    a, b, c = (make_monitor(locations=("eu",)) for _ in range(3))

    def stored(at: timedelta, **states: tuple[str, timedelta]) -> None:
        ids = {"a": a.resource_id, "b": b.resource_id, "c": c.resource_id}
        rows = [
            state_row(ids[name], "eu", state, at=NOW + at, changed_at=NOW + changed, reported_at=NOW + at)
            for name, (state, changed) in states.items()
        ]
        save_states(session, rows)

    def stamps() -> dict[int, object]:
        session.expire_all()
        return {k: v.state_stored_at for k, v in load_states(session, None, "eu").items()}

    zero, one, two = timedelta(0), timedelta(seconds=1), timedelta(seconds=2)
    stored(zero, a=("up", zero), b=("up", zero), c=("up", zero))
    assert stamps() == dict.fromkeys((a.resource_id, b.resource_id, c.resource_id), NOW)
    # a: the same state again; b: down; c: up -> down -> up within one batch (changed_at moved)
    stored(one, a=("up", zero), b=("down", one), c=("up", one))
    assert stamps() == {a.resource_id: NOW, b.resource_id: NOW + one, c.resource_id: NOW + one}
    stored(two, a=("up", zero), b=("down", one), c=("up", one))
    assert stamps() == {a.resource_id: NOW, b.resource_id: NOW + one, c.resource_id: NOW + one}
    row = load_states(session, [b.resource_id], "eu")[b.resource_id]
    assert (row.state, row.reported_at) == ("down", NOW + two)  # the other columns are written as ever


def test_mark_paused_stamps_the_change_with_the_database_s_time(session: Session, make_monitor: MonitorFactory) -> None:
    a, b = make_monitor(locations=("eu",)), make_monitor(locations=("eu",))
    save_states(session, [state_row(a.resource_id, "eu", "up", reported_at=NOW)])
    before = database_now(session)
    mark_paused(session, {a.resource_id, b.resource_id}, "eu", NOW)
    session.expire_all()
    stamps = {k: v.state_stored_at for k, v in load_states(session, None, "eu").items()}
    assert stamps.keys() == {a.resource_id, b.resource_id}
    assert all(stamp is not None and stamp >= before for stamp in stamps.values())


def test_rows_from_before_0012_get_their_reported_at_as_state_stored_at(
    engine: sa.Engine, session: Session, make_monitor: MonitorFactory, sessions: sessionmaker[Session]
) -> None:
    monitor_id = make_monitor(locations=("eu", "us")).resource_id
    session.commit()
    session.close()
    downgrade(engine, "0011")
    with engine.begin() as conn:
        for location, reported in (("eu", NOW.replace(tzinfo=None)), ("us", None)):
            conn.execute(
                sa.text(
                    "INSERT INTO monitor_states (monitor_id, location, state, consecutive_failures,"
                    " consecutive_successes, last_reason, changed_at, reported_at)"
                    " VALUES (:id, :location, 'up', 0, 3, '', :changed, :reported)"
                ),
                {"id": monitor_id, "location": location, "changed": NOW.replace(tzinfo=None), "reported": reported},
            )
    upgrade(engine)
    with sessions() as session:
        stamps = {k: v.state_stored_at for k, v in load_states(session, None, "eu").items()}
        assert stamps == {monitor_id: NOW}
        assert load_states(session, None, "us")[monitor_id].state_stored_at is None
    indexes = {index["name"] for index in sa.inspect(engine).get_indexes("monitor_states")}
    assert "ix_monitor_states_state_stored_at" in indexes
    assert "ix_monitor_states_changed_at" not in indexes  # the live hub no longer filters on the probe's clock
