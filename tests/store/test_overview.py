"""The monitor overview: one state per monitor from its locations' states; SQLite and MariaDB."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from spectra.store import monitor_overview, save_states
from spectra.store.clock import database_now
from spectra.store.overview import combined_state
from tests.factories.store import NOW, MonitorFactory, state_row


@pytest.mark.parametrize(
    ("paused", "quorum", "states", "expected"),
    [
        (True, 1, ["down"], "paused"),
        (False, 1, [], "pending"),
        (False, 1, ["up", "up"], "up"),
        (False, 2, ["down", "down", "up"], "down"),
        (False, 2, ["down", "up", "up"], "degraded"),  # down below quorum
        (False, 1, ["degraded", "up"], "degraded"),
        (False, 3, ["down", "down"], "down"),  # quorum capped at the locations reporting
        (False, 2, ["down"], "down"),
        (False, 1, ["down", "degraded"], "down"),
    ],
)
def test_combined_state(paused: bool, quorum: int, states: list[str], expected: str) -> None:
    assert combined_state(paused, quorum, states) == expected


def test_overview_combines_locations(session: Session, make_monitor: MonitorFactory) -> None:
    quorum2 = make_monitor("checkout", locations=("eu", "us", "ap"))
    quorum2.quorum = 2
    partial = make_monitor("search", locations=("eu", "us", "ap"))
    partial.quorum = 2
    stale = make_monitor("stale", locations=("eu", "us"))
    paused = make_monitor("paused", locations=("eu",))
    paused.paused = True
    make_monitor("fresh", locations=("eu",))
    session.flush()
    old = NOW - timedelta(seconds=91)  # interval 30 s: more than 3 intervals ago
    save_states(
        session,
        [
            state_row(quorum2.resource_id, "eu", "down"),
            state_row(quorum2.resource_id, "us", "down", at=NOW - timedelta(seconds=5)),
            state_row(quorum2.resource_id, "ap", "up"),
            state_row(partial.resource_id, "eu", "down"),
            state_row(partial.resource_id, "us", "up"),
            state_row(partial.resource_id, "ap", "up"),
            state_row(stale.resource_id, "eu", "up"),
            state_row(stale.resource_id, "us", "down", at=old),  # not reporting: left out, not failing
            state_row(paused.resource_id, "eu", "paused"),
        ],
    )

    overview = {item.name: item for item in monitor_overview(session, now=NOW)}

    assert [item.name for item in monitor_overview(session, now=NOW)] == sorted(overview)
    assert {name: item.state for name, item in overview.items()} == {
        "checkout": "down",
        "search": "degraded",
        "stale": "up",
        "paused": "paused",
        "fresh": "pending",
    }
    checkout = overview["checkout"]
    assert (checkout.type, checkout.target, checkout.last_check_at) == ("http", "https://checkout.example", NOW)
    assert checkout.reason == "down in eu"
    assert checkout.last_latency_ms == 12.5
    assert [(loc.location, loc.state, loc.reporting) for loc in overview["stale"].locations] == [
        ("eu", "up", True),
        ("us", "down", False),
    ]
    assert [(loc.location, loc.state) for loc in overview["fresh"].locations] == [("eu", "pending")]
    assert overview["fresh"].last_check_at is None
    assert overview["fresh"].reason == ""
    # quorum 1 (the factory's default) with one location reporting down: down
    save_states(session, [state_row(stale.resource_id, "eu", "down")])
    assert {i.name: i.state for i in monitor_overview(session, now=NOW)}["stale"] == "down"


@pytest.mark.parametrize(
    ("checked_ago_s", "reported_ago_s", "reporting"),
    [
        (5, 5, True),
        (500, 5, True),  # the probe's clock runs behind: it stored a result just now all the same
        (-500, 500, False),  # the probe's clock runs ahead: its last result was stored long ago
        (5, None, True),  # written before reported_at existed: last_check_at decides
        (500, None, False),
    ],
)
def test_a_location_is_reporting_by_when_its_result_was_stored_in_database_time(
    session: Session, make_monitor: MonitorFactory, checked_ago_s: int, reported_ago_s: int | None, reporting: bool
) -> None:
    monitor = make_monitor("web", locations=("eu",))  # every 30 s: silent after 90 s
    session.flush()
    now = database_now(session)
    reported = None if reported_ago_s is None else now - timedelta(seconds=reported_ago_s)
    row = state_row(monitor.resource_id, "eu", "down", at=now - timedelta(seconds=checked_ago_s), reported_at=reported)
    save_states(session, [row])

    (overview,) = monitor_overview(session)  # judged against the database's now
    assert [location.reporting for location in overview.locations] == [reporting]
    assert overview.state == ("down" if reporting else "pending")


def test_overview_of_some_monitors_reads_only_those(session: Session, make_monitor: MonitorFactory) -> None:
    monitors = {name: make_monitor(name, locations=("eu", "us")) for name in ("zeta", "alpha", "mid", "other")}
    session.flush()
    save_states(session, [state_row(m.resource_id, "eu", "down") for m in monitors.values()])
    wanted = [monitors[name].resource_id for name in ("zeta", "alpha", "mid")]

    some = monitor_overview(session, now=NOW, monitor_ids=wanted)

    assert [item.name for item in some] == ["alpha", "mid", "zeta"]  # by name, like the whole overview
    whole = {item.name: item for item in monitor_overview(session, now=NOW)}
    assert some == [whole[name] for name in ("alpha", "mid", "zeta")]
    assert monitor_overview(session, now=NOW, monitor_ids=[]) == []
