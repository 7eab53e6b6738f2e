"""spectra.console.platform.service.system on its own: an empty store, run-out leases and silent workers
at their thresholds, the outbox backlog's statuses; and the policy before anything is read."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth import policy
from spectra.console.platform import service
from spectra.store import Role
from spectra.store.worker_leases import ensure_leases
from tests.factories.accounts import member
from tests.factories.platform import leader, outbox_message, worker_holding
from tests.factories.store import monitor_factory
from tests.support.web import NOW


def test_an_empty_store(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        root = member(session, "root@example.com", None, None, platform_admin=True)
        found = service.system(session, root, now=NOW)
    assert (found.locations, found.leaders, found.alerter) == ([], [], service.Leader("alerter", None, None))
    assert (found.outbox.backlog, found.outbox.oldest_pending_at, set(found.outbox.by_status.values())) == (
        0,
        None,
        {0},
    )
    assert found.database.reachable
    assert found.database.up_to_date


def test_run_out_leases_are_unowned_and_quiet_workers_silent(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        root = member(session, "root@example.com", None, None, platform_admin=True)
        make = monitor_factory(session)
        ids = [make(locations=("eu",)).resource_id for _ in range(3)]
        ensure_leases(session, ids, "eu")
        edge = NOW - service.WORKER_SILENT_AFTER
        worker_holding(session, "w-edge", "eu", ids[:1], now=edge, until=NOW)  # runs out exactly now: still held
        worker_holding(
            session, "w-gone", "eu", ids[1:2], now=edge - timedelta(seconds=1), until=NOW - timedelta(seconds=1)
        )
        leader(session, "alerter", "old", now=NOW - timedelta(minutes=1), until=NOW - timedelta(microseconds=1))
        for key, status in (("p", "pending"), ("s", "sending"), ("f", "failed"), ("d", "dead"), ("o", "sent")):
            outbox_message(
                session, key, status, created_at=NOW - timedelta(minutes=len(key) * 10 if status != "dead" else 99)
            )
        found = service.system(session, root, now=NOW)
    [eu] = found.locations
    assert (eu.monitors, eu.unowned) == (3, 2)
    assert [(w.worker_id, w.silent, w.monitors) for w in eu.workers] == [("w-edge", False, 1), ("w-gone", True, 0)]
    assert found.alerter.holder is None
    assert (found.outbox.backlog, found.outbox.by_status["dead"], found.outbox.oldest_pending_age_s) == (3, 1, 600)


def test_only_platform_admins_read_it(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        ada = member(session, "ada@acme.example", "acme", Role.ADMIN)
        with pytest.raises(policy.Forbidden, match=r"only platform admins may do system\.read"):
            service.system(session, ada, now=NOW)
