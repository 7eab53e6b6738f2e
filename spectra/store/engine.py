"""Engines and sessions for SQLite (standalone) and MySQL/MariaDB (cluster)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final, TypeVar

from sqlalchemy import URL, Connection, Engine, create_engine, event, exc, make_url
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import Session, sessionmaker

from spectra.store.environment import seconds_setting
from spectra.store.types import MYSQL_DIALECTS

T = TypeVar("T")

DEFAULT_DATABASE_URL: Final = "sqlite:///spectra.db"
DATABASE_URL_ENV: Final = "SPECTRA_DATABASE_URL"

SQLITE_BUSY_TIMEOUT_MS: Final = 5_000
TIMEOUT_ENV: Final = "SPECTRA_DATABASE_TIMEOUT_S"
# How long one network read or write to MySQL/MariaDB may take before the driver gives up. Without it a
# frozen server (or a half-open connection) blocks a thread forever and nothing says so.
DEFAULT_TIMEOUT_S: Final = 15.0
CONNECT_TIMEOUT_S: Final = 5
# InnoDB waits 50 s for a row lock by default; a stuck lock holder should fail us fast, to be retried.
LOCK_WAIT_TIMEOUT_S: Final = 10
# Below MySQL's default wait_timeout (8 h) and typical proxy idle cut-offs, so pooled connections
# are replaced before the server or a load balancer drops them.
MYSQL_POOL_RECYCLE_S: Final = 1_800

# Bare driver-less schemes get the driver we ship (PyMySQL), not mysqlclient.
_DRIVERLESS: Final = {"mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}


def database_url(explicit: str | None = None) -> str:
    """The URL to use: the explicit argument, else $SPECTRA_DATABASE_URL, else ./spectra.db."""
    if explicit:
        return explicit
    return os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; ``mysql://`` and ``mariadb://`` use PyMySQL with utf8mb4."""
    parsed = make_url(url)
    driver = _DRIVERLESS.get(parsed.drivername)
    if driver is not None:
        parsed = parsed.set(drivername=driver)
    if parsed.get_backend_name() in MYSQL_DIALECTS and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def redacted(url: str | URL) -> str:
    """``url`` safe for logs and error messages: the password is masked."""
    return make_url(url).render_as_string(hide_password=True)


def database_timeout_s() -> float:
    """The driver's read/write timeout: $SPECTRA_DATABASE_TIMEOUT_S, else DEFAULT_TIMEOUT_S."""
    return seconds_setting(TIMEOUT_ENV, DEFAULT_TIMEOUT_S, minimum=1, maximum=3600)


def make_engine(url: str | URL | None = None, *, timeout_s: float | None = None, **kwargs: Any) -> Engine:
    """An engine configured for the store; ``url`` defaults to :func:`database_url`.

    On MySQL/MariaDB every read and write on the wire gives up after ``timeout_s`` (default
    :func:`database_timeout_s`), and a row-lock wait after LOCK_WAIT_TIMEOUT_S: a frozen or stalled
    database turns into an error that the caller logs and retries, never into a thread blocked forever.
    """
    parsed = normalize_url(database_url(None) if url is None else url)
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {}
    if backend in MYSQL_DIALECTS:
        timeout = round(timeout_s if timeout_s is not None else database_timeout_s())
        options.update(
            pool_pre_ping=True,
            pool_recycle=MYSQL_POOL_RECYCLE_S,
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT_S,
                "read_timeout": max(1, timeout),
                "write_timeout": max(1, timeout),
                "init_command": f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_TIMEOUT_S}",
            },
        )
    options.update(kwargs)
    engine = create_engine(parsed, **options)
    if backend == "sqlite":
        _configure_sqlite(engine)
    else:
        event.listen(engine, "handle_error", _check_violation_is_integrity_error)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine``; objects stay readable after commit (no lazy reload)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def set_sqlite_foreign_keys(connection: Connection, enabled: bool) -> None:
    """Switch SQLite FK enforcement; only works outside a transaction (SQLite ignores it inside)."""
    if connection.dialect.name != "sqlite":
        return
    if connection.in_transaction():
        raise RuntimeError("PRAGMA foreign_keys is a no-op inside a transaction")
    # Through the driver so that SQLAlchemy's autobegin (our BEGIN hook) does not run first.
    driver_connection: Any = connection.connection.driver_connection
    driver_connection.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")


# MariaDB (4025) and MySQL (3819) report CHECK violations as OperationalError, SQLite as
# IntegrityError; callers catch one class on both.
_CHECK_VIOLATION_CODES: Final = frozenset({3819, 4025})


def _check_violation_is_integrity_error(context: ExceptionContext) -> None:
    original = context.original_exception
    args = getattr(original, "args", ())
    if isinstance(context.sqlalchemy_exception, exc.OperationalError) and args and args[0] in _CHECK_VIOLATION_CODES:
        raise exc.IntegrityError(context.statement, context.parameters, original) from original


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # sqlite3's legacy mode skips BEGIN before SELECT and DDL; we emit BEGIN ourselves (see
        # _on_begin) so reads are repeatable, SAVEPOINTs nest and migrations are atomic.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")  # off by default; cascades depend on it
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_SQLITE_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


# The execution option `take_write_lock` sets, read by the SQLite BEGIN hook above.
_SQLITE_IMMEDIATE: Final = "spectra_sqlite_begin_immediate"


def take_write_lock(session: Session) -> None:
    """Start ``session``'s transaction holding SQLite's write lock (BEGIN IMMEDIATE, waiting up to the busy
    timeout for another writer to finish).

    SQLite in WAL mode fails a transaction that read before writing at once, with "database is locked",
    when another writer committed in between; for a long transaction (applying a whole manifest set while
    the probe writes results) running it again would meet the same fate. Holding the lock from the start
    means it never has to be upgraded. Call it before the session's first statement. MySQL/MariaDB lock
    rows, not the database: there it only sets an option nothing reads."""
    session.connection(execution_options={_SQLITE_IMMEDIATE: True})


@contextmanager
def write_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """``factory.begin()`` holding SQLite's write lock from BEGIN (see `take_write_lock`): the transaction
    for work that reads and then writes beside another writer (the probe's, in `spectra run`), committed
    on leaving, rolled back on an exception."""
    with factory.begin() as session:
        take_write_lock(session)
        yield session


# MySQL/MariaDB: the transaction was rolled back because of a lock conflict; running it again is safe.
_DEADLOCK: Final = 1213
_LOCK_WAIT_TIMEOUT: Final = 1205
CONFLICT_CODES: Final = frozenset({_DEADLOCK, _LOCK_WAIT_TIMEOUT})


def is_conflict(error: BaseException) -> bool:
    """Whether ``error`` is a lock conflict the database resolved by failing us: a MySQL deadlock
    (1213) or lock wait timeout (1205), or SQLite's "database is locked". The transaction is gone;
    running it again from the start is the cure."""
    seen: BaseException | None = error
    for _ in range(5):  # a failed savepoint rollback raises anew, with the deadlock as its context
        if seen is None:
            return False
        if isinstance(seen, exc.OperationalError):
            original = seen.orig
            args = getattr(original, "args", ())
            if (args and args[0] in CONFLICT_CODES) or "database is locked" in str(original).lower():
                return True
        seen = seen.__cause__ or seen.__context__
    return False


def retry_conflicts(action: Callable[[], T], attempts: int = 6, *, pause_s: float = 0.02) -> T:
    """Run ``action`` (one whole transaction: it opens its own session), again after a lock conflict.

    Deadlocks are normal under concurrency on MySQL (two transactions lock rows in different orders);
    the database rolls one back and expects it to be run again. SQLite in WAL mode fails a transaction
    that read before writing at once when another writer committed in between. The actions given here
    are conditional updates, so running one again is safe. The pause grows and is jittered so that the
    two losers of a deadlock do not collide again.
    """
    for attempt in range(attempts):
        try:
            return action()
        except exc.OperationalError as error:
            if attempt == attempts - 1 or not is_conflict(error):
                raise
            time.sleep(pause_s * (2**attempt) * (0.5 + random.random()))  # noqa: S311 - jitter
    raise AssertionError("unreachable")
