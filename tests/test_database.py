"""The database layer on both backends: names, timestamps, MySQL's charset and pool."""
import shutil
import sqlite3
import threading
from contextlib import closing
from datetime import datetime

import pytest
from sqlalchemy import select, text

from uploadsvc import create_app
from uploadsvc.core import database
from uploadsvc.core.extensions import db
from uploadsvc.core.models import UploadEvent
from uploadsvc.services import uploads
from uploadsvc.services.chunked import uploads as api_uploads
from uploadsvc.services.errors import UploadNotFound

from .helpers import random_file, upload_all


def test_four_byte_and_case_different_names_stay_apart(client):
    """Emoji round-trip, and names differing only in case or accents are different uploads
    (MySQL's default collations would call them equal)."""
    names = ["📦 Report 🎉.bin", "📦 report 🎉.bin", "📦 rêport 🎉.bin"]
    files = [random_file(3000, 1024, name) for name in names]
    for test_file in files:
        response = upload_all(client, test_file)
        assert response.status_code == 200, response.json
        assert response.json["fileName"] == test_file.name
    paths = []
    for test_file in files:
        status = client.get(f"/api/upload-status/{test_file.md5}/{test_file.name}").json
        assert status["status"] == "completed"
        paths.append(status["path"])
    assert paths == [f"/uploads/{name}" for name in names]
    other = client.get(f"/api/upload-status/{files[0].md5}/📦 REPORT 🎉.bin")
    assert other.status_code == 404


def test_timestamps_keep_microseconds(app):
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901)
    with app.app_context():
        event = UploadEvent(kind="created", upload_key="0" * 32, md5="0" * 32,
                            file_name="x", created_at=moment)
        db.session.add(event)
        db.session.commit()
        db.session.expunge_all()
        stored = db.session.execute(select(UploadEvent.created_at)).scalar_one()
    assert stored == moment


def test_mysql_engine_defaults(mariadb_database, tmp_path, monkeypatch):
    """utf8mb4 without asking, a pool as large as a worker's threads, pre-ping, recycling
    below the server's wait_timeout, READ COMMITTED; tables utf8mb4 byte-exact."""
    monkeypatch.setenv("GUNICORN_THREADS", "12")
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "DATABASE_URL": mariadb_database})
    with app.app_context():
        engine = db.engine
        assert engine.url.query["charset"] == "utf8mb4"
        assert engine.pool.size() == 12
        assert engine.pool._pre_ping
        with engine.connect() as connection:
            wait_timeout = int(connection.execute(text("SELECT @@wait_timeout")).scalar_one())
            assert 0 < engine.pool._recycle < wait_timeout
            assert connection.get_isolation_level() == "READ COMMITTED"
            collations = dict(connection.execute(text(
                "SELECT table_name, table_collation FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name <> 'alembic_version'")).all())
        engine.dispose()
    assert collations == {"uploads": "utf8mb4_bin", "chunks": "utf8mb4_bin",
                          "upload_events": "utf8mb4_bin", "api_keys": "utf8mb4_bin",
                          "hook_deliveries": "utf8mb4_bin", "upload_event_days": "utf8mb4_bin",
                          "leases": "utf8mb4_bin"}


@pytest.mark.parametrize("url_suffix, charset", [("", "utf8mb4"), ("&charset=utf8", "utf8")])
def test_mysql_charset_is_only_a_default(mariadb_database, tmp_path, url_suffix, charset):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path),
                      "DATABASE_URL": mariadb_database + url_suffix,
                      "DATABASE_POOL_SIZE": 3})
    with app.app_context():
        assert db.engine.url.query["charset"] == charset
        assert db.engine.pool.size() == 3
        db.engine.dispose()


def test_a_reused_row_id_is_not_the_same_upload(app):
    """SQLite gives a deleted row's id to the next row: a request that loaded the old upload
    and waited for its lock must find it gone, not carry on with the newcomer."""
    with app.app_context():
        old = api_uploads.get_or_create("a" * 32, "old.bin", 2)
        uploads.remove(old, UploadEvent.DELETED)
        new = api_uploads.get_or_create("b" * 32, "new.bin", 2)
        assert new.key != old.key
        with pytest.raises(UploadNotFound):
            uploads.reload(old)
        assert uploads.reload(new).file_name == "new.bin"


def test_mysql_pool_replaces_a_connection_the_server_dropped(mariadb, mariadb_database, tmp_path):
    """pre-ping: a pooled connection the server closed (wait_timeout, a restart) is replaced
    as it leaves the pool instead of failing the request."""
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "DATABASE_URL": mariadb_database,
                      "DATABASE_POOL_SIZE": 1})
    with app.app_context():
        first = db.session.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        db.session.commit()
        db.session.close()  # back to the pool
        with mariadb.connect() as admin, admin.cursor() as cursor:
            cursor.execute(f"KILL {int(first)}")
        second = db.session.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        db.session.commit()
        db.engine.dispose()
    assert second != first


def events_in_the_database_file(path) -> int:
    """Events in the SQLite file itself, without what its WAL holds."""
    copy = path.with_name("without-wal.sqlite3")
    shutil.copyfile(path, copy)
    with closing(sqlite3.connect(copy)) as connection:
        return connection.execute("SELECT count(*) FROM upload_events").fetchone()[0]


def test_workers_leave_sqlite_checkpoints_to_a_thread_of_their_own(
        data_dir, migrated_database, monkeypatch):
    monkeypatch.setattr(database, "_serving", lambda: True)  # as in a gunicorn worker
    monkeypatch.setattr(database, "CHECKPOINT_PERIOD", 3600)  # the test runs it by hand
    path = data_dir / "uploadsvc.sqlite3"
    shutil.copyfile(migrated_database, path)
    before = [t for t in threading.enumerate() if t.name == "sqlite-checkpoint"]
    app = create_app({"TESTING": True, "DATA_DIR": str(data_dir),
                      "DATABASE_URL": f"sqlite:///{path}"})
    started = [t for t in threading.enumerate() if t.name == "sqlite-checkpoint"]
    assert len(started) == len(before) + 1
    with app.app_context():
        for index in range(400):  # well past the 1000 pages of SQLite's own checkpoint
            db.session.add(UploadEvent(kind="created", upload_key=f"{index:032x}",
                                       md5="0" * 32, file_name="a.bin"))
            db.session.commit()
        assert events_in_the_database_file(path) == 0  # no commit paid for a checkpoint
        database.checkpoint(db.engine)  # what the thread does every CHECKPOINT_PERIOD
        assert events_in_the_database_file(path) == 400
        db.engine.dispose()
