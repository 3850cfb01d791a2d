"""Database wiring: Flask-SQLAlchemy, Flask-Migrate and per-backend engine tuning."""
import os
import sqlite3

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from .extensions import db, migrate

SQLITE_BUSY_TIMEOUT_SECONDS = 30


def init_app(app: Flask) -> None:
    """Bind db and migrate to app with engine options that suit several workers."""
    backend = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name()
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if backend == "sqlite":
        options.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
    elif backend == "mysql":
        # Connections idle longer than MySQL's wait_timeout (8 h by default) are dropped by the
        # server: recycle well before that and test each connection as it leaves the pool.
        options.setdefault("pool_pre_ping", True)
        options.setdefault("pool_recycle", app.config.get("DATABASE_POOL_RECYCLE", 1800))
        options.setdefault("pool_size", app.config.get("DATABASE_POOL_SIZE", 10))
        options.setdefault("max_overflow", app.config.get("DATABASE_MAX_OVERFLOW", 10))
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    db.init_app(app)
    migrate.init_app(app, db, directory=app.config.get("MIGRATIONS_DIR", _migrations_dir()))
    if backend == "sqlite":
        with app.app_context():
            _tune_sqlite(db.engine)


def _migrations_dir() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")


def _tune_sqlite(engine: Engine) -> None:
    """WAL for concurrent readers, and BEGIN IMMEDIATE so that writers queue on the busy
    timeout instead of failing with "database is locked" when a read turns into a write."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: sqlite3.Connection, _record) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's "begin" event emit BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
