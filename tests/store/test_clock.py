"""database_now: the one clock every lease and staleness decision uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from spectra.store.clock import database_now


def test_database_now_is_an_aware_utc_time_close_to_ours(session: Session) -> None:
    now = database_now(session)
    assert now.tzinfo is not None
    assert abs(now - datetime.now(UTC)) < timedelta(minutes=1)  # same machine: the clocks agree
