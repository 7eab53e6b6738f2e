"""Handled webhook requests: a key is new exactly once (also when replicas race), can be forgotten after a
failure, and is pruned by housekeeping once expired; on SQLite and MariaDB."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.housekeeping import Housekeeping
from spectra.store import WebhookRequest
from spectra.store.webhook_requests import KEEP, first_time, forget, seen

NOW = datetime(2026, 12, 20, 12, 0, tzinfo=UTC)
KEY = "twilio:sms:SM" + "a" * 32


def keys(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(sa.select(WebhookRequest.request_key).order_by(WebhookRequest.id)))


def test_a_key_is_new_once(sessions: sessionmaker[Session]) -> None:
    assert first_time(sessions, KEY, now=NOW)
    assert not first_time(sessions, KEY, now=NOW)
    assert not first_time(sessions, KEY, now=NOW + timedelta(days=30))
    assert first_time(sessions, "twilio:voice:CA" + "a" * 32, now=NOW)  # another kind, another key
    with sessions() as session:
        row = session.scalars(sa.select(WebhookRequest).where(WebhookRequest.request_key == KEY)).one()
        assert row.expires_at == NOW + KEEP


def test_racing_replicas_act_once(sessions: sessionmaker[Session]) -> None:
    """Eight requests with one id at the same moment (Twilio retrying into several web replicas)."""
    start = threading.Barrier(8)

    def attempt(_: int) -> bool:
        start.wait(timeout=30)
        return first_time(sessions, KEY, now=NOW)

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert outcomes.count(True) == 1
    assert keys(sessions) == [KEY]


def test_a_forgotten_key_is_new_again(sessions: sessionmaker[Session]) -> None:
    assert first_time(sessions, KEY, now=NOW)
    forget(sessions, KEY)
    with sessions() as session:
        assert not seen(session, KEY)
    assert first_time(sessions, KEY, now=NOW)


@pytest.mark.parametrize("key", ["", "k" * 129], ids=["empty", "too-long"])
def test_bad_keys_are_refused(sessions: sessionmaker[Session], key: str) -> None:
    with pytest.raises(ValueError, match="1 to 128 characters"):
        first_time(sessions, key, now=NOW)
    assert keys(sessions) == []


def test_housekeeping_prunes_expired_keys_only(sessions: sessionmaker[Session]) -> None:
    old, recent = "twilio:sms:SM" + "1" * 32, "twilio:sms:SM" + "2" * 32
    assert first_time(sessions, old, now=NOW - KEEP - timedelta(minutes=1))
    assert first_time(sessions, recent, now=NOW - KEEP + timedelta(minutes=1))
    Housekeeping(sessions, clock=lambda: NOW).once()
    assert keys(sessions) == [recent]
    assert first_time(sessions, old, now=NOW)  # forgotten: after 90 days a request is new again
