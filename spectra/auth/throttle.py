"""Growing delays after failed sign-ins and MFA codes, per account and per client address.

Counts live in the store (table `throttles`), so every web replica sees the same ones: a second pod is
no way around the limit. Three kinds of key, each with its policy:

- `account:<SHA-256 of the lower-cased email>`: guessing one account's password. The email is hashed
  so that the table does not collect the addresses people mistyped or attackers tried.
- `client:<address>`: one address (an IPv6 client's /64) trying passwords of many accounts. More free
  failures, forgiven faster: an office behind one NAT address types passwords wrong every day.
- `mfa:<user id>`: guessing a TOTP code of someone whose password is known. A longer longest delay: a
  guess has three chances in a million (the code before, now and after are accepted).

After a policy's free failures each failure doubles the wait (1 s, 2 s, 4 s, ...) up to its longest;
one failure is forgiven per `forgive_every` without any. The caller checks before it verifies anything
(`ensure_free` / `check`) and verifies nothing while a key waits, so waiting attempts are not counted;
it reports `failed` after a wrong password or code and `succeeded` after a right one, which clears the
account (or MFA) key but not the client's, so one account an attacker owns does not reset the address
they spray others from. Rows that have been quiet for FORGET_AFTER go (`prune`).

An unknown email is throttled exactly like a known one: the answers must not tell them apart.
Functions flush and do not commit; `failed` locks its rows until the caller's transaction ends, which
should be short (on SQLite, start it with the write: `failed` before any read of the same transaction,
or run it under `spectra.store.engine.retry_conflicts`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from spectra.runtime.clients import client_of_host
from spectra.store.accounts import Throttle
from spectra.store.upsert import upsert

ACCOUNT: Final = "account:"
CLIENT: Final = "client:"
MFA: Final = "mfa:"

_KEY_MAX: Final = 128  # Throttle.key's length


@dataclass(frozen=True)
class Policy:
    free_failures: int
    longest: timedelta
    forgive_every: timedelta
    first: timedelta = timedelta(seconds=1)

    def delay(self, failures: int) -> timedelta:
        """The wait after the `failures`-th failure in a row."""
        beyond = failures - self.free_failures
        if beyond <= 0:
            return timedelta(0)
        doubled: timedelta = self.first * 2 ** min(beyond - 1, 40)  # 2**40 s is past any longest
        return min(self.longest, doubled)


POLICIES: Final = {
    # 5 free, then 1 s ... 15 min: ~100 guesses a day at most, NIST 800-63B's bound on failed attempts.
    ACCOUNT: Policy(free_failures=5, longest=timedelta(minutes=15), forgive_every=timedelta(hours=1)),
    # 20 free and one forgiven every 5 minutes: a shared address's honest typos never add up; one address
    # spraying many accounts settles near one guess per 5 minutes.
    CLIENT: Policy(free_failures=20, longest=timedelta(minutes=15), forgive_every=timedelta(minutes=5)),
    # One guess an hour once locked: ~2.6 % a year to hit one of the three codes accepted at a time, for
    # someone who already knows the password.
    MFA: Policy(free_failures=5, longest=timedelta(hours=1), forgive_every=timedelta(hours=1)),
}

# A key without a failure for this long is forgotten (prune), whatever it counted.
FORGET_AFTER: Final = timedelta(hours=24)


class TryAgain(Exception):
    """Refused without checking anything: a key waits `seconds` more (whole seconds, at least 1)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = max(1, math.ceil(seconds))
        super().__init__(try_again_text(self.seconds))

    @property
    def message(self) -> str:
        return try_again_text(self.seconds)


def try_again_text(seconds: int) -> str:
    return f"Too many attempts: try again in {seconds} s."


def account_key(email: str) -> str:
    """The key of the account an email names (whether or not one exists), lower-cased as users are."""
    return ACCOUNT + hashlib.sha256(email.strip().lower().encode()).hexdigest()


def client_address_key(client: str) -> str:
    """The key of a client: `spectra.runtime.clients.client_key(request)` or an address as text (an
    IPv6 address counts as its /64 either way)."""
    name = client_of_host(client)
    if len(CLIENT) + len(name) > _KEY_MAX:  # not an address (a test client's name): keep it short
        name = hashlib.sha256(name.encode()).hexdigest()
    return CLIENT + name


def mfa_key(user_id: int) -> str:
    return f"{MFA}{user_id}"


def policy_of(key: str) -> Policy:
    for prefix, policy in POLICIES.items():
        if key.startswith(prefix):
            return policy
    raise ValueError(f"not a throttle key: {key!r}")


def check(session: Session, keys: Collection[str], *, now: datetime) -> float:
    """Seconds until every key may try again; 0 when all are free."""
    if not keys:
        return 0.0
    until = session.scalar(select(func.max(Throttle.locked_until)).where(Throttle.key.in_(keys)))
    return max(0.0, (until - now).total_seconds()) if until is not None else 0.0


def ensure_free(session: Session, keys: Collection[str], *, now: datetime) -> None:
    """Raise TryAgain while a key waits."""
    wait = check(session, keys, now=now)
    if wait > 0:
        raise TryAgain(wait)


def failed(session: Session, keys: Collection[str], *, now: datetime) -> float:
    """Count a failure under every key; seconds until they may try again (0: still free)."""
    ordered = sorted(set(keys))  # one lock order for every replica: no deadlock between two of them
    for key in ordered:
        policy_of(key)  # refuse a key of no kind before touching the store
    if not ordered:
        return 0.0
    # Make sure every row exists (an insert that leaves existing rows alone), then lock them: two replicas
    # counting the same key at once wait for each other instead of both writing "one more" on one count.
    rows = [{"key": key, "failures": 0, "locked_until": None, "updated_at": now} for key in ordered]
    upsert(session, Throttle.__table__, rows, key=["key"], update=[])
    locked = session.scalars(
        select(Throttle)
        .where(Throttle.key.in_(ordered))
        .order_by(Throttle.key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    wait = timedelta(0)
    for row in locked:
        policy = policy_of(row.key)
        _forgive(row, policy, now)
        row.failures += 1
        delay = policy.delay(row.failures)
        if delay:
            until = now + delay
            row.locked_until = until if row.locked_until is None else max(row.locked_until, until)
        if row.locked_until is not None:
            wait = max(wait, row.locked_until - now)
    session.flush()
    return wait.total_seconds()


def succeeded(session: Session, key: str, *, now: datetime) -> None:
    """The right password (or code) for `key`'s account: forget its failures. `now` is taken like every
    throttle call's; a success needs no time: the row goes."""
    del now
    policy_of(key)
    session.execute(delete(Throttle).where(Throttle.key == key))
    session.flush()


def prune(session: Session, *, now: datetime) -> int:
    """Forget keys without a failure for FORGET_AFTER (none of them still waits); how many went."""
    result = session.execute(
        delete(Throttle).where(
            Throttle.updated_at < now - FORGET_AFTER,
            or_(Throttle.locked_until.is_(None), Throttle.locked_until <= now),
        )
    )
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def _forgive(row: Throttle, policy: Policy, now: datetime) -> None:
    """Take off one failure per `forgive_every` since the row's clock. The clock (`updated_at`) moves by
    whole periods only, so failures every few minutes still earn their forgiveness."""
    if now - row.updated_at >= FORGET_AFTER:
        row.failures, row.updated_at = 0, now
        return
    periods = max(0, (now - row.updated_at) // policy.forgive_every)
    row.failures = max(0, row.failures - periods)
    row.updated_at = now if row.failures == 0 else row.updated_at + periods * policy.forgive_every
