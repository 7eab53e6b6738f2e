"""UTCDateTime, the big-integer key and JSON behave the same on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from spectra.store import AuditLog, Incident, utcnow
from spectra.store.types import UTCDateTime

CEST = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2024, 3, 31, 1, 59, 59, 999_999, tzinfo=UTC),
        datetime(2024, 3, 31, 4, 30, 0, 123_456, tzinfo=CEST),  # converted, not relabelled
        datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
    ],
)
def test_aware_datetimes_round_trip_as_utc(session: Session, moment: datetime) -> None:
    entry = AuditLog(at=moment, actor="alice", action="login")
    session.add(entry)
    session.commit()
    session.expunge_all()

    loaded = session.scalars(sa.select(AuditLog.at)).one()

    assert loaded == moment  # same instant, microseconds kept (DATETIME(6) on MySQL)
    assert loaded.tzinfo is UTC
    assert loaded.utcoffset() == timedelta(0)


def test_comparisons_use_utc(session: Session) -> None:
    session.add(AuditLog(at=datetime(2024, 1, 1, 12, 0, tzinfo=UTC), actor="a", action="x"))
    session.flush()
    # 13:30 at +02:00 is 11:30 UTC: before the entry, though its wall clock reads later.
    after = datetime(2024, 1, 1, 13, 30, tzinfo=CEST)
    assert session.scalars(sa.select(AuditLog.id).where(AuditLog.at > after)).all() != []
    assert session.scalars(sa.select(AuditLog.id).where(AuditLog.at < after)).all() == []


def test_naive_datetimes_are_refused(session: Session) -> None:
    session.add(AuditLog(at=datetime(2024, 1, 1, 12, 0), actor="a", action="x"))
    with pytest.raises(sa.exc.StatementError, match="naive datetime") as caught:
        session.flush()
    assert isinstance(caught.value.orig, ValueError)


def test_naive_datetimes_are_refused_in_queries(session: Session) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        session.execute(sa.select(AuditLog).where(AuditLog.at < datetime(2024, 1, 1)))


def test_non_datetimes_are_refused() -> None:
    with pytest.raises(TypeError, match="expects a datetime"):
        UTCDateTime().process_bind_param("2024-01-01", sa.create_engine("sqlite://").dialect)  # type: ignore[arg-type]


def test_big_integer_keys_autoincrement(session: Session) -> None:
    first, second = AuditLog(actor="a", action="x"), AuditLog(actor="b", action="y")
    session.add_all([first, second])
    session.flush()
    assert isinstance(first.id, int)
    assert second.id > first.id > 0


def test_json_none_is_sql_null_and_values_round_trip(session: Session) -> None:
    details = {"ip": "2001:db8::1", "tags": ["a", "ü", "🚨"], "nested": {"n": 1.5, "ok": True}}
    session.add_all([AuditLog(actor="a", action="x", details=None), AuditLog(actor="b", action="y", details=details)])
    session.commit()
    session.expunge_all()

    assert session.scalars(sa.select(AuditLog.actor).where(AuditLog.details.is_(None))).all() == ["a"]
    assert session.scalars(sa.select(AuditLog.details).where(AuditLog.actor == "b")).one() == details


def test_four_byte_characters_fit_in_string_columns(session: Session) -> None:
    """utf8mb4: emoji and CJK survive in VARCHAR columns on MySQL too."""
    title = "支付 API down 🔥" * 20
    session.add(Incident(code="K7Q2", namespace="default", monitor_name="pay", title=title, severity="critical"))
    session.commit()
    session.expunge_all()
    assert session.scalars(sa.select(Incident.title)).one() == title


def test_default_timestamps_are_aware_utc(session: Session) -> None:
    before = utcnow()
    entry = AuditLog(actor="a", action="x")
    session.add(entry)
    session.commit()
    session.expunge_all()
    loaded = session.scalars(sa.select(AuditLog.at)).one()
    assert loaded.tzinfo is UTC
    assert before <= loaded <= utcnow()
