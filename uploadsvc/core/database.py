"""Database wiring: Flask-SQLAlchemy, Flask-Migrate and per-backend engine tuning."""
import fcntl
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url

from .extensions import db
from .mysql_driver import import_pymysql

SQLITE_BUSY_TIMEOUT_SECONDS = 30
# How often gunicorn workers checkpoint SQLite's WAL (see _tune_sqlite).
CHECKPOINT_PERIOD = 1.0

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Bind db and migrate to app with engine options that suit several workers."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    backend = url.get_backend_name()
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if backend == "sqlite":
        options.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        if url.database and url.database != ":memory:":  # a file: pooled connections
            for name, value in pool_size_options(app.config).items():
                options.setdefault(name, value)
    elif backend == "mysql":
        import_pymysql()
        url = mysql_url(url)
        app.config["SQLALCHEMY_DATABASE_URI"] = url.render_as_string(hide_password=False)
        for name, value in mysql_pool_options(app.config).items():
            options.setdefault(name, value)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    db.init_app(app)
    if backend == "mysql":
        with app.app_context():
            _tune_mysql(db.engine)
    if not _serving():
        from flask_migrate import Migrate  # Alembic: about 11 MiB of memory per process

        Migrate(app, db, directory=app.config.get("MIGRATIONS_DIR", _migrations_dir()))
    if backend == "sqlite":
        with app.app_context():
            _tune_sqlite(db.engine, checkpoint_apart=_serving())


def _serving() -> bool:
    """Whether this process is a gunicorn worker: it serves requests and never migrates
    (`flask db` and the tests do), so it leaves Alembic unloaded."""
    return "gunicorn.workers.base" in sys.modules


def mysql_url(url: URL) -> URL:
    """The URL with charset=utf8mb4 unless it names one: 4-byte characters (emoji) in file
    names need it, and MySQL's older utf8 would refuse them."""
    if "charset" in url.query:
        return url
    return url.update_query_dict({"charset": "utf8mb4"})


# gunicorn's threads per worker when GUNICORN_THREADS is not set (gunicorn.conf.py sets it
# for its workers from its own default, so both always agree).
DEFAULT_THREADS = 8
# Threads of a worker beside its requests' that use the database: the lease renewer, the
# hook deliverer, the hash after a chunk, SQLite's checkpoints.
BACKGROUND_THREADS = 4


def pool_size_options(config: Any) -> dict:
    """The pool of one gunicorn worker: a connection kept for each of its threads, and as
    many more in a burst, plus the background threads'. A request thread uses at most two at
    once (its session's, and a lease's of its own); fewer would let threads that each hold
    one wait for another until the pool's timeout."""
    threads = int(os.environ.get("GUNICORN_THREADS", DEFAULT_THREADS))
    size = int(config.get("DATABASE_POOL_SIZE") or max(threads, 4))
    overflow = config.get("DATABASE_MAX_OVERFLOW")
    return {"pool_size": size,
            "max_overflow": int(overflow if overflow not in (None, "") else
                                size + BACKGROUND_THREADS)}


def mysql_pool_options(config: Any) -> dict:
    """Pool settings for MySQL, sized to one gunicorn worker's threads."""
    return {
        **pool_size_options(config),
        # The server drops connections idle longer than wait_timeout (8 h by default, often
        # minutes on hosted MySQL): recycle before that, and test each one leaving the pool.
        "pool_pre_ping": True,
        "pool_recycle": int(config.get("DATABASE_POOL_RECYCLE") or 1800),
        # Every statement sees the latest committed rows, as on SQLite; InnoDB's default
        # REPEATABLE READ would also take gap locks on the unique indexes racing inserts use.
        "isolation_level": config.get("DATABASE_ISOLATION_LEVEL") or "READ COMMITTED",
        # A connection handed back is rolled back only if a transaction is open on it (see
        # _tune_mysql), not after every COMMIT.
        "pool_reset_on_return": None,
    }


# MySQL's server status flag: a transaction is open on this connection.
IN_TRANSACTION = 1
# In a connection's info while its transaction has written or taken a lock.
HOLDS = "transaction_holds"


def _tune_mysql(engine: Engine) -> None:
    """Save the round trips that do nothing: the pool's ROLLBACK of a connection handed back
    with no transaction open (every request's last COMMIT was followed by one), and the
    COMMIT of a transaction that has only read (see end_reads)."""

    @event.listens_for(engine, "reset")
    def on_reset(dbapi_connection, record, reset_state) -> None:
        if reset_state.terminate_only:
            return
        status = getattr(dbapi_connection, "server_status", None)
        if status is None or status & IN_TRANSACTION:  # the server says whether one is open
            dbapi_connection.rollback()
        record.info.pop(HOLDS, None)

    _track_holds(engine)


def _track_holds(engine: Engine) -> None:
    """Mark a connection whose transaction has written or taken a lock (HOLDS): end_reads
    commits only those on MySQL, and a lease's fence checks only those (services.leases)."""

    @event.listens_for(engine, "before_cursor_execute")
    def on_execute(connection, _cursor, statement, *_args) -> None:
        if not _holds_nothing(statement):
            if _reading_only.get():
                raise RuntimeError("a statement that writes or locks, inside reads_only()")
            connection.info[HOLDS] = True

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def on_end(connection) -> None:
        connection.info.pop(HOLDS, None)


def _holds_nothing(statement: str) -> bool:
    """A plain read: it takes no row lock (FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE) and
    no named lock; or SQLite's BEGIN and PRAGMAs, which write nothing."""
    text = statement.lstrip()[:6].upper()
    if text.startswith(("BEGIN", "PRAGMA")):
        return True
    if text != "SELECT":
        return False
    upper = statement.upper()
    return not any(word in upper for word in (" FOR UPDATE", " FOR SHARE", " LOCK IN SHARE",
                                               "GET_LOCK("))


# Set inside reads_only(): SQLite's transaction then begins DEFERRED (see _tune_sqlite).
_reading_only: ContextVar[bool] = ContextVar("reading_only", default=False)


@contextmanager
def reads_only() -> Iterator[None]:
    """Statements that only read: a transaction SQLite begins for them takes no write lock
    (in WAL a reader never waits), instead of queueing behind other workers' writes as
    every other transaction does (BEGIN IMMEDIATE); it is ended on the way out as
    end_reads() ends one. A statement that writes or locks in it is refused."""
    token = _reading_only.set(True)
    try:
        yield
    finally:
        _reading_only.reset(token)
        end_reads()


def end_reads() -> None:
    """End the session's transaction before waiting for a lock or reading a request body,
    where that matters: always on SQLite (every transaction there holds the write lock, see
    _tune_sqlite), on MySQL only if it has written or taken a lock (one that has only read
    holds nothing under READ COMMITTED, and goes on as the transaction that records the
    chunk)."""
    session = db.session()
    if not session.in_transaction():
        return
    if (db.engine.dialect.name != "mysql" or session.connection().info.get(HOLDS)
            or not _reads_latest()):
        session.commit()


def _reads_latest() -> bool:
    """Whether each statement sees the latest committed rows (then a transaction that has
    only read can go on: its next read is as fresh as a new transaction's)."""
    level = current_app.config.get("DATABASE_ISOLATION_LEVEL") or "READ COMMITTED"
    return level.upper() in ("READ COMMITTED", "READ UNCOMMITTED")


# MySQL's named lock that `flask db upgrade` holds, and how long one waits for it.
MIGRATION_LOCK = "uploadsvc-migrate"
MIGRATION_WAIT_SECONDS = 600


@contextmanager
def migration_lock(connection: Connection) -> Iterator[None]:
    """Run migrations one at a time however many hosts start at once: MySQL's GET_LOCK
    (held by the connection, so a killed migrator's goes with it), or on SQLite an flock
    beside the database file."""
    if connection.dialect.name == "mysql":
        got = connection.exec_driver_sql(
            f"SELECT GET_LOCK('{MIGRATION_LOCK}', {MIGRATION_WAIT_SECONDS})").scalar()
        connection.commit()  # GET_LOCK is the session's, not the transaction's
        if got != 1:
            raise RuntimeError(f"another host has been migrating the database for "
                               f"{MIGRATION_WAIT_SECONDS} s; try again")
        try:
            yield
        finally:
            connection.exec_driver_sql(f"SELECT RELEASE_LOCK('{MIGRATION_LOCK}')")
            connection.commit()
        return
    database = connection.engine.url.database
    if connection.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _migrations_dir() -> str:
    project = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return os.path.join(project, "migrations")


def _tune_sqlite(engine: Engine, checkpoint_apart: bool = False) -> None:
    """WAL for concurrent readers, and BEGIN IMMEDIATE so that writers queue on the busy
    timeout instead of failing with "database is locked" when a read turns into a write.

    With checkpoint_apart (gunicorn workers), checkpoints run on a thread of their own
    instead of inside whichever request commits past SQLite's threshold (1000 pages): a
    checkpoint fsyncs, and an fsync waits for the filesystem to write back what it must
    first, which under FSYNC=complete held single chunk requests for 0.3-0.7 s.
    """

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: sqlite3.Connection, _record) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" event emit BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        if checkpoint_apart:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection) -> None:
        # Deferred for reads_only(): a transaction that only reads needs no write lock.
        connection.exec_driver_sql("BEGIN" if _reading_only.get() else "BEGIN IMMEDIATE")

    _track_holds(engine)

    if checkpoint_apart:
        threading.Thread(target=_checkpoint_every, args=(engine, CHECKPOINT_PERIOD),
                         name="sqlite-checkpoint", daemon=True).start()


def _checkpoint_every(engine: Engine, period: float) -> None:
    """Move what the WAL holds into the database file every period seconds, without
    waiting for readers or writers (PASSIVE); another worker's checkpoint may be running."""
    while True:
        time.sleep(period)
        try:
            checkpoint(engine)
        except Exception:  # a busy or broken database now is no reason to stop for good
            log.warning("SQLite checkpoint failed", exc_info=True)


def checkpoint(engine: Engine) -> None:
    connection = engine.raw_connection()  # autocommit (see on_connect): no BEGIN first
    try:
        connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        connection.close()
