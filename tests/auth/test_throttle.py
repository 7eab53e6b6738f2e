"""Sign-in throttling: delays that grow after free failures, per account, per client address and per
MFA code; a success clears the account only; two replicas count together; quiet keys are forgotten."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth.throttle import (
    FORGET_AFTER,
    POLICIES,
    TryAgain,
    account_key,
    check,
    client_address_key,
    ensure_free,
    failed,
    mfa_key,
    policy_of,
    prune,
    succeeded,
)
from spectra.store import Throttle, make_engine, session_factory

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
ALICE = account_key("alice@acme.example")
BOB = account_key("bob@acme.example")
OFFICE = client_address_key("203.0.113.9")
HOME = client_address_key("2001:db8:0:1::5")


def snapshot(session: Session) -> list[tuple[str, int, datetime | None, datetime]]:
    session.expire_all()
    rows = session.scalars(sa.select(Throttle).order_by(Throttle.key))
    return [(r.key, r.failures, r.locked_until, r.updated_at) for r in rows]


def fail_until_locked(session: Session, keys: list[str], now: datetime) -> float:
    """Fail until a key waits; the wait."""
    for _ in range(100):
        wait = failed(session, keys, now=now)
        if wait:
            return wait
    raise AssertionError("never locked")


def test_keys() -> None:
    assert account_key(" Alice@ACME.example ") == ALICE
    assert ALICE.startswith("account:")
    assert "alice" not in ALICE  # the table does not collect addresses
    assert len(ALICE) == len("account:") + 64
    assert OFFICE == "client:203.0.113.9"
    assert HOME == "client:2001:db8:0:1::/64"  # an IPv6 client is its /64
    assert client_address_key("2001:db8:0:1::/64") == HOME  # a key spectra.runtime.clients made
    assert client_address_key("::ffff:203.0.113.9") == OFFICE
    assert client_address_key("x" * 500) == client_address_key("x" * 500)
    assert len(client_address_key("x" * 500)) <= 128
    assert mfa_key(42) == "mfa:42"


@pytest.mark.parametrize(
    ("key", "failures", "seconds"),
    [
        (ALICE, 1, 0),
        (ALICE, 5, 0),
        (ALICE, 6, 1),
        (ALICE, 7, 2),
        (ALICE, 8, 4),
        (ALICE, 15, 512),
        (ALICE, 16, 900),  # 15 minutes at most
        (ALICE, 10_000, 900),
        (OFFICE, 20, 0),  # an address shared by many people has more free failures
        (OFFICE, 21, 1),
        (OFFICE, 25, 16),
        (OFFICE, 40, 900),
        (mfa_key(1), 5, 0),
        (mfa_key(1), 6, 1),
        (mfa_key(1), 17, 2048),
        (mfa_key(1), 18, 3600),  # an hour at most: three codes in a million per guess
    ],
)
def test_delays_grow_after_the_free_failures(key: str, failures: int, seconds: int) -> None:
    assert policy_of(key).delay(failures) == timedelta(seconds=seconds)


def test_failures_lock_the_account_with_growing_delays(session: Session) -> None:
    keys = [ALICE, OFFICE]
    now = T0
    waits = []
    for _ in range(9):
        assert check(session, keys, now=now) == 0
        waits.append(failed(session, keys, now=now))
        session.commit()
        now += timedelta(seconds=waits[-1])  # the next try comes when the wait is over
    assert waits == [0, 0, 0, 0, 0, 1, 2, 4, 8]
    assert check(session, keys, now=now - timedelta(seconds=3)) == 3
    assert check(session, [ALICE], now=now - timedelta(seconds=3)) == 3
    assert check(session, [OFFICE], now=now) == 0  # 9 of its 20 free failures
    assert check(session, [BOB, OFFICE], now=now) == 0


def test_a_waiting_key_is_refused_with_the_exact_text_and_nothing_changes(session: Session) -> None:
    fail_until_locked(session, [ALICE, OFFICE], T0)
    session.commit()
    before = snapshot(session)
    with pytest.raises(TryAgain) as refused:
        ensure_free(session, [ALICE, OFFICE], now=T0)
    assert str(refused.value) == "Too many attempts: try again in 1 s."
    assert refused.value.message == "Too many attempts: try again in 1 s."
    assert refused.value.seconds == 1
    session.commit()
    assert snapshot(session) == before
    ensure_free(session, [ALICE, OFFICE], now=T0 + timedelta(seconds=1))  # free again


@pytest.mark.parametrize(("wait", "told"), [(0.001, 1), (0.5, 1), (1.0, 1), (1.01, 2), (899.2, 900), (3600, 3600)])
def test_the_wait_is_told_in_whole_seconds_rounded_up(wait: float, told: int) -> None:
    assert TryAgain(wait).seconds == told
    assert str(TryAgain(wait)) == f"Too many attempts: try again in {told} s."


def test_one_address_trying_many_accounts_is_held_back_by_its_address(session: Session) -> None:
    for number in range(20):  # one guess each at 20 accounts: no account waits, nor the address yet
        assert failed(session, [account_key(f"user{number}@acme.example"), OFFICE], now=T0) == 0
    assert failed(session, [account_key("user20@acme.example"), OFFICE], now=T0) == 1
    session.commit()
    assert check(session, [account_key("user21@acme.example"), OFFICE], now=T0) == 1
    assert check(session, [account_key("user21@acme.example"), HOME], now=T0) == 0  # from elsewhere: free
    assert check(session, [account_key("user0@acme.example")], now=T0) == 0


def test_one_account_tried_from_many_addresses_is_held_back_by_the_account(session: Session) -> None:
    for number in range(5):
        assert failed(session, [ALICE, client_address_key(f"198.51.100.{number}")], now=T0) == 0
    assert failed(session, [ALICE, client_address_key("198.51.100.5")], now=T0) == 1
    session.commit()
    assert check(session, [ALICE, client_address_key("198.51.100.6")], now=T0) == 1


def test_success_clears_the_account_but_not_the_address(session: Session) -> None:
    fail_until_locked(session, [ALICE, OFFICE], T0)
    failed(session, [BOB, OFFICE], now=T0)
    session.commit()
    later = T0 + timedelta(seconds=1)
    succeeded(session, ALICE, now=later)
    session.commit()
    assert [key for key, *_ in snapshot(session)] == sorted([BOB, OFFICE])
    assert {key: failures for key, failures, *_ in snapshot(session)}[OFFICE] == 7
    assert failed(session, [ALICE, OFFICE], now=later) == 0  # the account starts over
    succeeded(session, mfa_key(1), now=later)  # a key with nothing to clear


def test_mfa_codes_are_counted_per_user(session: Session) -> None:
    wait = fail_until_locked(session, [mfa_key(7)], T0)
    session.commit()
    assert wait == 1
    assert check(session, [mfa_key(7)], now=T0) == 1
    assert check(session, [mfa_key(8)], now=T0) == 0
    succeeded(session, mfa_key(7), now=T0)
    assert check(session, [mfa_key(7)], now=T0) == 0


def test_failures_are_forgiven_one_per_period_without_any(session: Session) -> None:
    for _ in range(5):
        failed(session, [ALICE, OFFICE], now=T0)
    session.commit()
    # Two hours later, two of Alice's five are forgiven: the next is her fourth, not her sixth.
    assert failed(session, [ALICE], now=T0 + timedelta(hours=2)) == 0
    session.commit()
    assert snapshot(session)[0][:2] == (ALICE, 4)
    # The clock moves by whole periods: failures every 40 minutes still earn one forgiven an hour.
    for minutes in (160, 200, 240, 280):
        failed(session, [ALICE], now=T0 + timedelta(minutes=minutes))
    session.commit()
    failures = {key: count for key, count, *_ in snapshot(session)}
    assert failures[ALICE] == 4 + 4 - 2  # forgiven at 3 h and 4 h
    assert failures[OFFICE] == 5


def test_quiet_keys_are_forgotten(session: Session) -> None:
    fail_until_locked(session, [ALICE, OFFICE], T0)
    failed(session, [mfa_key(3)], now=T0 + timedelta(hours=12))
    session.commit()
    assert prune(session, now=T0 + FORGET_AFTER - timedelta(minutes=1)) == 0
    assert prune(session, now=T0 + FORGET_AFTER + timedelta(minutes=1)) == 2
    session.commit()
    assert [key for key, *_ in snapshot(session)] == [mfa_key(3)]
    # A key nobody pruned yet that has been quiet as long starts over all the same.
    failed(session, [mfa_key(3)], now=T0 + timedelta(hours=12) + FORGET_AFTER)
    assert snapshot(session)[0][1] == 1


def test_every_key_of_a_failure_is_checked_before_anything_is_written(session: Session) -> None:
    failed(session, [ALICE], now=T0)
    session.commit()
    before = snapshot(session)
    for call in (
        lambda: failed(session, [ALICE, "bob@acme.example"], now=T0),
        lambda: succeeded(session, "203.0.113.9", now=T0),
        lambda: policy_of(""),
    ):
        with pytest.raises(ValueError, match=r"^not a throttle key: ") as refused:
            call()
        assert "not a throttle key" in str(refused.value)
    session.commit()
    assert snapshot(session) == before
    assert check(session, [], now=T0) == 0
    assert failed(session, [], now=T0) == 0


def test_two_replicas_count_together(sessions: sessionmaker[Session], database_url: str) -> None:
    """Two engines on one database, as two web pods: every failure counts once, none is lost."""
    other = make_engine(database_url)
    try:
        replicas = [sessions, session_factory(other)]
        rounds = 15
        errors: list[BaseException] = []

        def sign_in_attempts(factory: sessionmaker[Session]) -> Callable[[], None]:
            def attempts() -> None:
                try:
                    for _ in range(rounds):
                        with factory.begin() as session:
                            failed(session, [ALICE, OFFICE], now=T0)
                except BaseException as error:  # reported by the main thread
                    errors.append(error)

            return attempts

        threads = [threading.Thread(target=sign_in_attempts(factory)) for factory in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors
        assert not any(thread.is_alive() for thread in threads)
        with replicas[1]() as session:
            counts = {key: failures for key, failures, *_ in snapshot(session)}
            assert counts == {ALICE: 2 * rounds, OFFICE: 2 * rounds}
            # What one replica locked, the other refuses.
            assert check(session, [ALICE], now=T0) == POLICIES["account:"].longest.total_seconds()
    finally:
        other.dispose()


def test_a_failure_waits_for_another_replicas_open_one(sessions: sessionmaker[Session], database_url: str) -> None:
    """The second replica's count waits for the first's transaction instead of overwriting it."""
    other = session_factory(make_engine(database_url))
    first = sessions()
    failed(first, [ALICE], now=T0)  # locked until `first` ends
    done = threading.Event()
    errors: list[BaseException] = []

    def second_replica() -> None:
        try:
            with other.begin() as session:
                failed(session, [ALICE], now=T0)
        except BaseException as error:
            errors.append(error)
        finally:
            done.set()

    thread = threading.Thread(target=second_replica)
    thread.start()
    first.commit()
    first.close()
    thread.join(timeout=60)
    assert done.is_set()
    assert not errors
    with sessions() as session:
        assert snapshot(session)[0][:2] == (ALICE, 2)
    bind = other.kw["bind"]
    assert isinstance(bind, sa.Engine)
    bind.dispose()
