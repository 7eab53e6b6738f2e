"""Who waits for whom: the index that lets the operator apply an object again the moment what it is
missing arrives, instead of at the next periodic pass.

An object whose outcome is `MissingReference` waits for the objects it names; one whose outcome is
`SecretMissing` waits for the Secrets it names. When an object is applied (by a kopf handler, the
periodic pass or a re-apply of a waiter) its waiters become due. Secrets are not watched: the operator
may only `get` Secrets it is told the name of, never list or watch them, so the Secrets someone waits for
are polled instead, each on its own backoff (`first_poll_s`, doubling up to `max_poll_s`), and their
waiters become due when one appears or its keys change.

A race that would lose a wake-up: an object reads the store (its reference is missing), the reference is
stored and announced, and only then does the object record what it waits for, too late to be found. So
every announcement takes a sequence number, a waiter records with the number taken (`mark`) before its
apply began, and it is due at once when anything it waits for was announced since.

Memory is bounded: at most `max_waiters` objects (beyond that, the periodic pass alone serves the rest)
and the last `remembered` announcements (a forgotten one counts as recent, which costs one re-apply).
Thread-safe: kopf runs handlers in threads.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Final, TypeGuard

ObjectKey = tuple[str, str, str]
"""(kind, namespace, name); the namespace is "" for cluster-scoped kinds."""
SecretKey = tuple[str, str]
"""(namespace, Secret name)."""
Awaited = ObjectKey | SecretKey

MAX_WAITERS: Final = 50_000
REMEMBERED: Final = 4_096
FIRST_POLL_S: Final = 0.5
MAX_POLL_S: Final = 10.0


@dataclass
class _Poll:
    """When a Secret someone waits for is read next, and what it held at the last read."""

    next_at: float
    interval: float
    seen: bool = False
    keys: frozenset[str] | None = None


class Waits:
    def __init__(
        self,
        *,
        max_waiters: int = MAX_WAITERS,
        remembered: int = REMEMBERED,
        first_poll_s: float = FIRST_POLL_S,
        max_poll_s: float = MAX_POLL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_waiters = max_waiters
        self.remembered = remembered
        self.first_poll_s = first_poll_s
        self.max_poll_s = max_poll_s
        self.clock = clock
        self.refused = 0  # records turned away because the index was full
        self._lock = threading.Lock()
        self._sequence = 0
        self._horizon = 0  # announcements numbered up to here may have been forgotten
        self._announced: OrderedDict[Awaited, int] = OrderedDict()
        self._wants: dict[ObjectKey, tuple[frozenset[Awaited], int]] = {}  # what, and when recorded
        self._waiters: dict[Awaited, set[ObjectKey]] = {}
        self._polls: dict[SecretKey, _Poll] = {}
        self._due: dict[ObjectKey, None] = {}  # insertion-ordered set
        self._wake: Callable[[], None] | None = None

    # --- recording ---------------------------------------------------------------------------------

    def mark(self) -> int:
        """The current sequence number: take it before an apply, pass it to `record` after."""
        with self._lock:
            return self._sequence

    def record(
        self, waiter: ObjectKey, objects: Iterable[ObjectKey], secrets: Iterable[SecretKey], *, since: int
    ) -> bool:
        """What `waiter` waits for now (nothing: it leaves the index). False when the index is full."""
        wanted: frozenset[Awaited] = frozenset([*objects, *secrets])
        if not wanted:
            self.forget(waiter)
            return True
        wake = False
        with self._lock:
            if waiter not in self._wants and len(self._wants) >= self.max_waiters:
                self.refused += 1
                return False
            self._unlink(waiter)
            self._sequence += 1
            self._wants[waiter] = (wanted, self._sequence)
            now = self.clock()
            for awaited in wanted:
                self._waiters.setdefault(awaited, set()).add(waiter)
                if _is_secret(awaited) and awaited not in self._polls:
                    self._polls[awaited] = _Poll(next_at=now + self.first_poll_s, interval=self.first_poll_s)
                    wake = True  # the loop may be asleep until a later poll
            if any(self._announced_since(awaited, since) for awaited in wanted):
                wake = self._make_due([waiter]) or wake
        self._call_wake(wake)
        return True

    def forget(self, waiter: ObjectKey) -> None:
        """The object is gone, or waits for nothing any more."""
        with self._lock:
            self._unlink(waiter)
            self._due.pop(waiter, None)

    def forget_absent(self, present: Collection[ObjectKey], recorded_by: int) -> int:
        """Forget waiters not in `present` (a list of every object) that recorded at or before the mark
        `recorded_by` (taken before the list); later records may be objects created after the list."""
        with self._lock:
            gone = [
                waiter
                for waiter, (_, recorded) in self._wants.items()
                if recorded <= recorded_by and waiter not in present
            ]
            for waiter in gone:
                self._unlink(waiter)
                self._due.pop(waiter, None)
        return len(gone)

    def make_due(self, waiters: Iterable[ObjectKey]) -> None:
        """Apply these again soon, whatever they wait for (e.g. what they name was deleted)."""
        with self._lock:
            wake = self._make_due(waiters)
        self._call_wake(wake)

    def applied(self, key: ObjectKey) -> None:
        """`key` is in the store now: its waiters are due."""
        with self._lock:
            wake = self._announce(key)
        self._call_wake(wake)

    # --- Secrets -----------------------------------------------------------------------------------

    def secrets_due(self) -> list[SecretKey]:
        """Secrets someone waits for whose next read is due."""
        now = self.clock()
        with self._lock:
            return [key for key, poll in self._polls.items() if poll.next_at <= now]

    def secret_read(self, key: SecretKey, keys: frozenset[str] | None) -> None:
        """What a fresh read of the Secret found (None: it does not exist). Its waiters are due when it
        exists and this is the first read or its keys changed."""
        with self._lock:
            poll = self._polls.get(key)
            if poll is None:
                return  # nobody waits for it any more
            changed = not poll.seen or keys != poll.keys
            if changed and poll.seen:
                poll.interval = self.first_poll_s  # someone is editing it: look again soon
            else:
                poll.interval = min(poll.interval * 2, self.max_poll_s)
            poll.seen, poll.keys = True, keys
            poll.next_at = self.clock() + poll.interval
            wake = self._announce(key) if changed and keys is not None else False
        self._call_wake(wake)

    def has_work(self) -> bool:
        """Whether a waiter is due or a Secret's read is."""
        now = self.clock()
        with self._lock:
            return bool(self._due) or any(poll.next_at <= now for poll in self._polls.values())

    def next_poll_in(self) -> float | None:
        """Seconds until the next Secret read is due (0 when one is), None when no Secret is awaited."""
        with self._lock:
            if not self._polls:
                return None
            first = min(poll.next_at for poll in self._polls.values())
        return max(0.0, first - self.clock())

    # --- the re-apply loop -------------------------------------------------------------------------

    def take_due(self) -> list[ObjectKey]:
        """The waiters to apply again, in the order they became due; the list is emptied."""
        with self._lock:
            due = list(self._due)
            self._due.clear()
        return due

    def on_due(self, wake: Callable[[], None]) -> None:
        """Call `wake` (from any thread) when a waiter becomes due or a new Secret is to be polled."""
        self._wake = wake

    # --- answers -----------------------------------------------------------------------------------

    def waiters(self, key: Awaited) -> frozenset[ObjectKey]:
        """Who waits for an object (kind, namespace, name) or a Secret (namespace, name)."""
        with self._lock:
            return frozenset(self._waiters.get(key, ()))

    def waiting_for(self, waiter: ObjectKey) -> frozenset[Awaited]:
        with self._lock:
            found = self._wants.get(waiter)
        return found[0] if found is not None else frozenset()

    def polled_secrets(self) -> frozenset[SecretKey]:
        with self._lock:
            return frozenset(self._polls)

    def __len__(self) -> int:
        with self._lock:
            return len(self._wants)

    # --- inside the lock ---------------------------------------------------------------------------

    def _unlink(self, waiter: ObjectKey) -> None:
        previous = self._wants.pop(waiter, None)
        if previous is None:
            return
        for awaited in previous[0]:
            waiters = self._waiters.get(awaited)
            if waiters is None:
                continue
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[awaited]
                if _is_secret(awaited):
                    self._polls.pop(awaited, None)

    def _announce(self, key: Awaited) -> bool:
        self._sequence += 1
        self._announced[key] = self._sequence
        self._announced.move_to_end(key)
        while len(self._announced) > self.remembered:
            _, number = self._announced.popitem(last=False)
            self._horizon = max(self._horizon, number)
        return self._make_due(self._waiters.get(key, ()))

    def _announced_since(self, awaited: Awaited, since: int) -> bool:
        number = self._announced.get(awaited)
        if number is None:
            return since < self._horizon  # maybe announced and forgotten: assume so
        return number > since

    def _make_due(self, waiters: Iterable[ObjectKey]) -> bool:
        added = False
        for waiter in waiters:
            if waiter not in self._due:
                self._due[waiter] = None
                added = True
        return added

    def _call_wake(self, wake: bool) -> None:
        if wake and self._wake is not None:
            self._wake()


def _is_secret(key: Awaited) -> TypeGuard[SecretKey]:
    return len(key) == 2
