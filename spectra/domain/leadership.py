"""One active instance of a role per database, elected through a ``leader_leases`` row named after the role.

The alerter (row ``alerter``) and the operator's loops (row ``operator``) use it. The leader renews its
lease every RENEW (2 s) with a TTL of TTL (6 s); a standby does nothing but try to take the lease, which
it gets once the leader released it (clean stop) or let it run out.

Whose clock. The lease's expiry is written and compared in the database's time (store/clock.py), never
this node's wall clock: a node whose clock runs ahead must not see a healthy leader's lease as expired.
Between renewals the leader answers from memory, measured on its own monotonic clock (a duration, which
clock skew does not affect). Tests pass explicit instants instead (``is_leader(now)``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from spectra.store import acquire_lease, lease_holder, release_lease
from spectra.store.clock import database_now

log = logging.getLogger("spectra.leadership")

TTL: Final = timedelta(seconds=6)
RENEW: Final = timedelta(seconds=2)


class Leadership:
    """Whether this instance leads, renewing through the database when due."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        holder: str,
        *,
        name: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = session_factory
        self.holder = holder[:64]
        self.name = name
        self._monotonic = monotonic
        self._leading = False
        self._renewed_at: datetime | float | None = None  # the explicit instant, or monotonic seconds
        self.changes = 0  # times leadership was gained or lost (a metric)

    @property
    def holding(self) -> bool:
        """Whether this instance held the lease when it last asked (no database access)."""
        return self._leading

    def is_leader(self, now: datetime | None = None) -> bool:
        """True when this instance holds the lease (renewing it, or trying to take it, when due).

        ``now``: an explicit instant for the whole decision (tests); by default the database's clock.
        A database error means "not leading" (and is raised): a leader that cannot renew must stop acting
        before its lease can run out under a standby.
        """
        if self._leading and self._since_renewal(now) < RENEW:
            return True
        try:
            with self._sessions() as session:
                at = now if now is not None else database_now(session)
                won = acquire_lease(session, self.name, self.holder, now=at, until=at + TTL)
                holder = None if won else lease_holder(session, self.name, at)
                session.commit()
        except OperationalError:
            self._set(False, "the database is unreachable")
            raise
        self._renewed_at = now if now is not None else self._monotonic()
        self._set(won, "" if won else f"held by {holder or 'nobody'}")
        return won

    def release(self) -> None:
        if not self._leading:
            return
        with self._sessions() as session:
            release_lease(session, self.name, self.holder)
            session.commit()
        self._set(False, "released")

    def _since_renewal(self, now: datetime | None) -> timedelta:
        renewed = self._renewed_at
        if isinstance(renewed, datetime) and now is not None:
            return now - renewed
        if isinstance(renewed, float) and now is None:
            return timedelta(seconds=self._monotonic() - renewed)
        return TTL  # unknown or mixed clocks: ask the database

    def _set(self, leading: bool, why: str) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        self.changes += 1
        if leading:
            log.info("%s %s: now the active instance (lease %s s)", self.name, self.holder, TTL.total_seconds())
        else:
            log.warning("%s %s: no longer the active instance: %s", self.name, self.holder, why)
            self._renewed_at = None
