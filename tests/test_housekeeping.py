"""Rollups and retention run in the background: status pages get their history, old rows go."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from spectra import housekeeping
from spectra.api import parse_object
from spectra.auth.accounts import prune_used_links
from spectra.housekeeping import Housekeeping
from spectra.reconcile import MANIFEST_SOURCE, apply_set
from spectra.store import (
    CheckResult,
    DailyRollup,
    HourlyRollup,
    Monitor,
    UsedLink,
    insert_results,
    rollup,
)
from tests.support.databases import sqlite_only
from tests.support.write_race import WriteRace

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def monitor_id(sessions: sessionmaker[Session]) -> int:
    """The id of monitor "web", applied to the shared migrated database."""
    with sessions.begin() as session:
        apply_set(
            session,
            [
                parse_object(
                    {
                        "apiVersion": "spectra.dev/v1alpha1",
                        "kind": "Monitor",
                        "metadata": {"name": "web"},
                        "spec": {"type": "tcp", "tcp": {"host": "db.example.com", "port": 5432}},
                    }
                )
            ],
            MANIFEST_SOURCE,
        )
    with sessions() as session:
        return session.scalars(select(Monitor.resource_id)).one()


def results(monitor_id: int, at: datetime, statuses: list[str]) -> list[dict[str, object]]:
    return [
        {
            "monitor_id": monitor_id,
            "location": "default",
            "checked_at": at + timedelta(seconds=i),
            "status": status,
            "latency_ms": 5.0,
            "reason": "",
        }
        for i, status in enumerate(statuses)
    ]


def test_rollups_appear_and_old_results_are_pruned(sessions: sessionmaker[Session], monitor_id: int) -> None:
    with sessions.begin() as session:
        insert_results(session, results(monitor_id, NOW - timedelta(minutes=30), ["up", "up", "down", "degraded"]))
        insert_results(session, results(monitor_id, NOW - timedelta(days=10), ["up"]))  # past raw retention
    Housekeeping(sessions, clock=lambda: NOW).once()
    with sessions() as session:
        daily = session.scalars(select(DailyRollup).where(DailyRollup.monitor_id == monitor_id)).all()
        today = [row for row in daily if row.bucket_start.date() == NOW.date()]
        assert [(row.checks_total, row.checks_up, row.checks_down, row.checks_degraded) for row in today] == [
            (4, 2, 1, 1)
        ]
        hourly = session.scalar(select(func.count()).select_from(HourlyRollup))
        assert hourly is not None
        assert hourly >= 1
        oldest = session.scalar(select(func.min(CheckResult.checked_at)))
        assert oldest is not None
        assert oldest >= NOW - timedelta(days=7)


def test_a_second_pass_changes_nothing(sessions: sessionmaker[Session], monitor_id: int) -> None:
    with sessions.begin() as session:
        insert_results(session, results(monitor_id, NOW - timedelta(minutes=5), ["up", "down"]))
    keeper = Housekeeping(sessions, clock=lambda: NOW)
    keeper.once()
    keeper.once()
    with sessions() as session:
        rows = session.scalars(select(DailyRollup)).all()
        assert [(row.checks_total, row.checks_down) for row in rows] == [(2, 1)]


def test_the_hourly_prune_runs_the_prunes_it_is_given(sessions: sessionmaker[Session]) -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    with sessions.begin() as session:
        session.add_all(
            [
                UsedLink(token_hash="a" * 64, used_at=now - timedelta(days=8), expires_at=now - timedelta(days=1)),
                UsedLink(token_hash="b" * 64, used_at=now, expires_at=now + timedelta(days=7)),
            ]
        )
    calls: list[datetime] = []

    def failing_nothing(session: Session, at: datetime) -> int:
        calls.append(at)
        return 0

    keeper = Housekeeping(
        sessions,
        clock=lambda: now,
        prunes={"used links": lambda session, at: prune_used_links(session, now=at), "nothing": failing_nothing},
    )
    keeper.once()
    keeper.once()  # within the hour: no second prune
    with sessions() as session:
        assert session.scalars(select(UsedLink.token_hash)).all() == ["b" * 64]
    assert calls == [now]


def test_the_hourly_jobs_run_once_an_hour(sessions: sessionmaker[Session]) -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    clock = [now]
    calls: list[datetime] = []

    def job(session: Session, at: datetime) -> int:
        calls.append(at)
        return 1

    keeper = Housekeeping(sessions, clock=lambda: clock[0], hourly={"things done": job})
    keeper.once()
    clock[0] = now + timedelta(minutes=59)
    keeper.once()
    clock[0] = now + timedelta(hours=1)
    keeper.once()
    assert calls == [now, now + timedelta(hours=1)]


@sqlite_only
def test_the_rollup_is_not_lost_when_the_probe_writes_while_it_reads(
    sessions: sessionmaker[Session], monitor_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite fails a transaction that read and then writes when another writer committed in between: the
    rollup (read results, write buckets) holds the write lock from its start, so the probe's writer waits."""
    with sessions.begin() as session:
        insert_results(session, results(monitor_id, NOW - timedelta(minutes=5), ["up", "down"]))
    probe = WriteRace(
        sessions, lambda session: insert_results(session, results(monitor_id, NOW - timedelta(minutes=1), ["up"]))
    )

    def rollup_with_a_write_between(session: Session, since: datetime, until: datetime) -> object:
        session.execute(select(func.count()).select_from(CheckResult)).scalar_one()  # the read comes first
        probe.commit_now()
        return rollup(session, since, until)

    monkeypatch.setattr(housekeeping, "rollup", rollup_with_a_write_between)
    Housekeeping(sessions, clock=lambda: NOW).once()
    probe.finish()
    with sessions() as session:
        rows = session.scalars(select(DailyRollup)).all()
        assert [(row.checks_total, row.checks_down) for row in rows] == [(2, 1)]  # the write came after


@sqlite_only
def test_the_hourly_jobs_are_not_lost_when_the_probe_writes_while_they_read(
    sessions: sessionmaker[Session], monitor_id: int
) -> None:
    """Each prune and hourly job reads, then writes; each holds the write lock, so a commit by the probe's
    writer in between waits for it instead of failing it (and with it the jobs after it, for an hour)."""
    probe = WriteRace(sessions, lambda session: insert_results(session, results(monitor_id, NOW, ["up"])))
    done: list[str] = []

    def reads_then_writes(what: str) -> Callable[[Session, datetime], int]:
        def job(session: Session, now: datetime) -> int:
            session.execute(select(func.count()).select_from(UsedLink)).scalar_one()
            probe.commit_now()
            session.add(UsedLink(token_hash=f"{what:0<64}"[:64], expires_at=now + timedelta(hours=1)))
            session.flush()
            done.append(what)
            return 1

        return job

    Housekeeping(
        sessions,
        clock=lambda: NOW,
        prunes={"links": reads_then_writes("a")},
        hourly={"reminders": reads_then_writes("b")},
    ).once()
    probe.finish()
    assert done == ["a", "b"]


def test_a_failed_hourly_job_runs_again_at_the_next_pass_not_an_hour_later(sessions: sessionmaker[Session]) -> None:
    clock = [NOW]
    runs: list[datetime] = []

    def flaky(session: Session, now: datetime) -> int:
        runs.append(now)
        if len(runs) == 1:
            raise OperationalError("DELETE", {}, Exception("database is locked"))
        return 0

    keeper = Housekeeping(sessions, clock=lambda: clock[0], hourly={"flaky": flaky})
    with pytest.raises(OperationalError):
        keeper.once()
    clock[0] = NOW + timedelta(minutes=1)
    keeper.once()
    clock[0] = NOW + timedelta(minutes=2)
    keeper.once()  # it succeeded a minute ago: not due again within the hour
    assert runs == [NOW, NOW + timedelta(minutes=1)]
