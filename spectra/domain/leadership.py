"""One active instance of a role per database, elected through a ``leader_leases`` row named after the role.

The alerter (row ``alerter``) and the operator's loops (row ``operator``) use it. The leader renews its
lease every RENEW (2 s) with a TTL of TTL (6 s); a standby does nothing but try to take the lease, which
it gets once the leader released it (clean stop) or let it run out.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.orm import Session, sessionmaker

from spectra.store import acquire_lease, release_lease

TTL: Final = timedelta(seconds=6)
RENEW: Final = timedelta(seconds=2)


class Leadership:
    """Whether this instance leads, renewing through the database when due."""

    def __init__(self, session_factory: sessionmaker[Session], holder: str, *, name: str) -> None:
        self._sessions = session_factory
        self.holder = holder[:64]
        self.name = name
        self._until: datetime | None = None
        self._renewed: datetime | None = None

    @property
    def holding(self) -> bool:
        """Whether this instance held the lease when it last asked (no database access)."""
        return self._until is not None

    def is_leader(self, now: datetime) -> bool:
        """True when this instance holds the lease at ``now`` (renewing it or trying to take it if due)."""
        fresh = self._renewed is not None and self._until is not None and now - self._renewed < RENEW
        if fresh and self._until is not None and now < self._until:
            return True
        with self._sessions() as session:
            won = acquire_lease(session, self.name, self.holder, now=now, until=now + TTL)
            session.commit()
        if won:
            self._until, self._renewed = now + TTL, now
        else:
            self._until = self._renewed = None
        return won

    def release(self) -> None:
        if self._until is None:
            return
        with self._sessions() as session:
            release_lease(session, self.name, self.holder)
            session.commit()
        self._until = self._renewed = None
