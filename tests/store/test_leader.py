"""Leader leases (spectra/store/leader.py): one holder at a time, renewals, expiry, release, one row per name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from spectra.store import acquire_lease, lease_holder, release_lease

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_one_holder_renewal_expiry_and_release(session: Session) -> None:
    ttl = timedelta(seconds=6)
    t = START
    steps = [
        ("a", t, True),  # free
        ("b", t, False),  # held by a
        ("a", t + timedelta(seconds=2), True),  # renewal (an UPDATE that changes nothing but the time)
        ("b", t + timedelta(seconds=7), False),  # renewed until t+8
        ("b", t + timedelta(seconds=8, microseconds=1), True),  # expired
        ("a", t + timedelta(seconds=9), False),
    ]
    for holder, now, won in steps:
        assert acquire_lease(session, "alerter", holder, now=now, until=now + ttl) is won, (holder, now)
        session.commit()
    now = t + timedelta(seconds=9)
    assert lease_holder(session, "alerter", now) == "b"
    assert not release_lease(session, "alerter", "a")
    assert release_lease(session, "alerter", "b")
    session.commit()
    assert lease_holder(session, "alerter", now) is None
    assert acquire_lease(session, "alerter", "a", now=now, until=now + ttl)
    assert acquire_lease(session, "other-role", "b", now=now, until=now + ttl)  # leases are per name
