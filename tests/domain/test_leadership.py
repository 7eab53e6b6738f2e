"""Leadership: one active instance per role, through a lease in the database, on explicit instants.

A leader renews every RENEW and otherwise answers from memory; a standby takes over once the lease (TTL)
ran out or was released; two holders never both lead.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.domain.leadership import RENEW, TTL, Leadership
from spectra.store import lease_holder

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


class Statements:
    """Counts the SQL statements sent on an engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        self._engine = engine
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: object) -> None:
        self.count += 1

    def close(self) -> None:
        sa.event.remove(self._engine, "before_cursor_execute", self._seen)


@pytest.fixture
def statements(engine: sa.Engine) -> Iterator[Statements]:
    counter = Statements(engine)
    yield counter
    counter.close()


def holder(sessions: sessionmaker[Session], at: datetime, name: str = "alerter") -> str | None:
    with sessions() as session:
        return lease_holder(session, name, at)


def test_a_leader_renews_without_touching_the_database_within_renew(
    sessions: sessionmaker[Session], statements: Statements
) -> None:
    leader = Leadership(sessions, "a", name="alerter")
    assert leader.is_leader(T0)
    taken = statements.count
    assert taken > 0
    assert leader.is_leader(T0 + timedelta(seconds=1))
    assert leader.is_leader(T0 + RENEW - TICK)
    assert statements.count == taken  # answered from memory
    assert holder(sessions, T0 + TTL + TICK) is None  # ... so the lease was not extended

    renewed_at = T0 + RENEW
    checked = statements.count
    assert leader.is_leader(renewed_at)
    assert statements.count > checked  # due: renewed through the database
    assert holder(sessions, renewed_at + TTL - TICK) == "a"  # extended from the renewal


def test_a_standby_takes_over_once_the_lease_runs_out(sessions: sessionmaker[Session]) -> None:
    a = Leadership(sessions, "a", name="alerter")
    b = Leadership(sessions, "b", name="alerter")
    assert a.is_leader(T0)
    assert not b.is_leader(T0)
    assert not b.is_leader(T0 + TTL)  # a stopped renewing, but the lease holds until T0 + TTL
    assert b.is_leader(T0 + TTL + TICK)
    assert holder(sessions, T0 + TTL + TICK) == "b"
    # a comes back: its memory is stale (older than RENEW), it asks the database and stands by.
    assert not a.is_leader(T0 + TTL + timedelta(seconds=1))
    assert b.is_leader(T0 + TTL + timedelta(seconds=1))


def test_release_hands_over_at_once(sessions: sessionmaker[Session], statements: Statements) -> None:
    a = Leadership(sessions, "a", name="alerter")
    b = Leadership(sessions, "b", name="alerter")
    assert a.is_leader(T0)
    a.release()
    assert holder(sessions, T0) is None
    assert b.is_leader(T0 + TICK)  # long before a's lease would have run out
    assert not a.is_leader(T0 + 2 * TICK)

    before = statements.count
    a.release()  # not leading: nothing to give up, no query
    assert statements.count == before
    assert holder(sessions, T0 + 2 * TICK) == "b"


def test_roles_have_their_own_leases(sessions: sessionmaker[Session]) -> None:
    assert Leadership(sessions, "a", name="alerter").is_leader(T0)
    assert Leadership(sessions, "b", name="operator").is_leader(T0)
    assert (holder(sessions, T0, "alerter"), holder(sessions, T0, "operator")) == ("a", "b")


def test_two_holders_never_both_lead(sessions: sessionmaker[Session]) -> None:
    a = Leadership(sessions, "a", name="alerter")
    b = Leadership(sessions, "b", name="alerter")
    step = timedelta(milliseconds=700)  # not a divisor of RENEW or TTL: asks land everywhere in between
    leaders: list[str] = []
    for n in range(100):
        now = T0 + n * step
        a_paused = timedelta(seconds=10) <= now - T0 < timedelta(seconds=25)  # a hangs (a long GC, a stuck disk)
        b_paused = timedelta(seconds=40) <= now - T0 < timedelta(seconds=55)
        a_leads = not a_paused and a.is_leader(now)
        b_leads = not b_paused and b.is_leader(now)
        assert not (a_leads and b_leads), now
        if not a_paused and not b_paused:
            assert a_leads or b_leads, now  # both ask: one of them leads
        leaders.append("a" if a_leads else "b" if b_leads else "-")
    # a led first, b took over while a hung, and a while b hung; nobody led only while the lease ran out.
    changes = [who for i, who in enumerate(leaders) if i == 0 or who != leaders[i - 1]]
    assert changes == ["a", "-", "b", "-", "a"]
