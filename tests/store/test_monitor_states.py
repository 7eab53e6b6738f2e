"""`monitor_states`: one upsert per batch, constrained values, paused monitors; SQLite and MariaDB."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from spectra.store import down_monitors, load_states, save_states
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
