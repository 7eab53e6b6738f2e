"""Engines and sessions for SQLite (standalone) and MySQL/MariaDB (cluster)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

from sqlalchemy import URL, Connection, Engine, create_engine, event, exc, make_url
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import Session, sessionmaker

from spectra.store.types import MYSQL_DIALECTS

T = TypeVar("T")

DEFAULT_DATABASE_URL: Final = "sqlite:///spectra.db"
DATABASE_URL_ENV: Final = "SPECTRA_DATABASE_URL"

SQLITE_BUSY_TIMEOUT_MS: Final = 5_000
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


def make_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """An engine configured for the store; ``url`` defaults to :func:`database_url`."""
    parsed = normalize_url(database_url(None) if url is None else url)
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {}
    if backend in MYSQL_DIALECTS:
        options.update(pool_pre_ping=True, pool_recycle=MYSQL_POOL_RECYCLE_S)
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
        connection.exec_driver_sql("BEGIN")


def retry_locked(action: Callable[[], T], attempts: int = 4) -> T:
    """Run a short write transaction, again when SQLite says the database is locked.

    In WAL mode a transaction that read before writing fails at once (no busy wait) when another
    writer (the probe writer, the alerter) committed in between; the actions here are conditional
    updates, so running one again is safe.
    """
    for attempt in range(attempts):
        try:
            return action()
        except exc.OperationalError as error:
            if attempt == attempts - 1 or "locked" not in str(error.orig).lower():
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")
