"""`heartbeat_pushes`: pushes found by the token's hash, never the token; SQLite and MariaDB."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from spectra.store import HeartbeatPush, last_push, push_token_hash, record_push
from tests.factories.store import NOW, MonitorFactory


def test_heartbeat_pushes_by_token_hash(session: Session, make_monitor: MonitorFactory) -> None:
    cron, other = make_monitor("cron"), make_monitor("other")
    cron.push_token_hash = push_token_hash("s3cret-token")
    session.flush()

    assert last_push(session, cron.resource_id) is None
    assert record_push(session, "s3cret-token", NOW) is True
    assert record_push(session, "s3cret-token", NOW + timedelta(seconds=30)) is True
    assert record_push(session, "wrong-token", NOW) is False
    session.expire_all()

    assert last_push(session, cron.resource_id) == NOW + timedelta(seconds=30)
    pushed = session.get(HeartbeatPush, cron.resource_id)
    assert pushed is not None
    assert pushed.pushes == 2
    assert last_push(session, other.resource_id) is None
    stored = session.scalars(sa.select(sa.func.count()).select_from(HeartbeatPush)).one()
    assert stored == 1
    # Only the hash is stored, never the token.
    assert cron.push_token_hash == hashlib.sha256(b"s3cret-token").hexdigest()
    assert "s3cret-token" not in str(session.execute(sa.select(HeartbeatPush.__table__)).all())


def test_push_token_hashes_are_unique(session: Session, make_monitor: MonitorFactory) -> None:
    a, b = make_monitor(), make_monitor()
    a.push_token_hash = b.push_token_hash = push_token_hash("same")
    with pytest.raises(sa.exc.IntegrityError):
        session.flush()
