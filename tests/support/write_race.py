"""Another writer that commits while a transaction under test sits between its reads and its writes.

SQLite in WAL mode fails such a transaction at once ("database is locked") when the other writer's
commit lands in between: a transaction holding the write lock from BEGIN (`write_transaction`,
`take_write_lock`) makes the other writer wait instead; one run under `retry_conflicts` fails once and
succeeds when run again. Tests call `commit_now()` at the point between the reads and the writes, or
arm `before(engine, "UPDATE ...")` to do it just before a statement is sent; then `finish()` once the
transaction under test is over. The other writer runs in a thread of its own, so it can wait for a lock
the test's thread holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

# How long `commit_now` gives the other writer to commit: long enough that, without the lock, its commit
# lands before the transaction under test goes on (so the test fails); with the lock the writer is
# blocked and this wait simply runs out.
LANDING_S = 1.0


class WriteRace:
    def __init__(self, factory: sessionmaker[Session], write: Callable[[Session], object]) -> None:
        self._factory = factory
        self._write = write
        self._threads: list[threading.Thread] = []
        self._committed: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def commit_now(self) -> None:
        """Start the other writer and wait (up to LANDING_S) for its commit."""
        done = threading.Event()
        thread = threading.Thread(target=self._run, args=(done,), name="write-race")
        self._threads.append(thread)
        thread.start()
        done.wait(timeout=LANDING_S)

    @contextmanager
    def before(self, engine: sa.Engine, statement: str, *, every: bool = False) -> Iterator[list[str]]:
        """Once (``every``: each time, unless the other writer is still waiting), just before the test's
        threads send a statement starting with ``statement``, let the other writer commit (`commit_now`);
        yields the statements it came before."""
        seen: list[str] = []

        def interleave(_conn: Any, _cursor: Any, sent: str, *_: Any) -> None:
            if threading.current_thread() in self._threads or not sent.startswith(statement):
                return
            if (seen and not every) or any(thread.is_alive() for thread in self._threads):
                return
            seen.append(sent)
            self.commit_now()

        sa.event.listen(engine, "before_cursor_execute", interleave)
        try:
            yield seen
        finally:
            sa.event.remove(engine, "before_cursor_execute", interleave)

    def finish(self) -> None:
        """Wait for the other writer to be done; every write it started must have committed, after waiting
        if need be."""
        for thread in self._threads:
            thread.join(timeout=60)
        assert not self.errors, self.errors
        assert self._threads, "the point of the race was never reached"
        missing = len(self._threads) - len(self._committed)
        assert not missing, f"{missing} write(s) never committed"

    def _run(self, done: threading.Event) -> None:
        try:
            with self._factory.begin() as session:
                self._write(session)
            self._committed.append(threading.current_thread())  # append is atomic; += is not
            done.set()
        except BaseException as error:  # reported by finish()
            self.errors.append(error)
