"""FSYNC modes: which bytes reach the disk before they are acknowledged, and how bytes lost
in a machine crash (FSYNC "complete") are noticed instead of trusted."""
import hashlib
import io
import os
import stat

import pytest
from sqlalchemy import select

from uploadsvc import create_app
from uploadsvc.core.extensions import db
from uploadsvc.core.models import Upload
from uploadsvc.services.chunked import completion as api_completion
from uploadsvc.services.chunked import uploads as api_uploads
from uploadsvc.services.errors import MissingChunks

from .helpers import (
    ClosingClient,
    chunks_of,
    complete,
    finished_bytes,
    leftovers,
    random_file,
    restart_machine,
    store_chunk,
    store_of,
)
from .tus_helpers import create, head, patch, path_of


@pytest.fixture
def synced(monkeypatch):
    """(path, inode, whether a directory) of the files and directories fsync'd (the real
    fsync still runs)."""
    paths = []
    real = os.fsync

    def fsync(fd):
        found = os.fstat(fd)
        paths.append((os.readlink(f"/proc/self/fd/{fd}"), found.st_ino,
                      stat.S_ISDIR(found.st_mode)))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return paths


def make_app(data_dir, database_url, fsync):
    return create_app({"TESTING": True, "DATA_DIR": str(data_dir),
                       "DATABASE_URL": database_url, "FSYNC": fsync})


@pytest.mark.parametrize("value, parsed", [
    (True, True), ("true", True), ("1", True), ("complete", "complete"),
    ("Complete", "complete"), ("false", False), (False, False)])
def test_fsync_setting_values(tmp_path, value, parsed):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "FSYNC": value})
    assert app.config["FSYNC"] == parsed


def test_fsync_setting_refuses_a_typo(tmp_path):
    with pytest.raises(ValueError, match="FSYNC"):
        create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "FSYNC": "completed"})


@pytest.mark.parametrize("fsync, chunks_synced, file_synced", [
    (True, True, True), ("complete", False, True), (False, False, False)])
def test_what_reaches_the_disk_before_it_is_acknowledged(data_dir, database_url, synced,
                                                        fsync, chunks_synced, file_synced):
    app = make_app(data_dir, database_url, fsync)
    f = random_file(400, 100)
    syncs = []  # what each chunk's store fsync'd before it was acknowledged
    with app.app_context():
        for index in range(f.total):
            before = len(synced)
            store_chunk(f.md5, f.name, f.total, index, io.BytesIO(f.chunk(index)))
            syncs.append(["directory" if is_dir else "file"
                          for _, _, is_dir in synced[before:]])
        acknowledged = len(synced)
        upload = complete(f.md5, f.name, f.total)
        db.engine.dispose()
    assert leftovers(app) == ([], [])
    # Every chunk here is written in place. Not fsync'd, they cost nothing but, once per
    # upload and boot under "complete", the durable note that unsynced bytes follow (what
    # lost_in_restart reads after a crash): a file and its directory entry, made with the
    # first chunk.
    assert all("file" in kinds for kinds in syncs) is chunks_synced
    if not chunks_synced:
        note = ["file", "directory"] if fsync == "complete" else []
        assert syncs == [note] + [[]] * (f.total - 1)
    placed = str(data_dir / "uploads" / upload.stored_name)
    uploads_dir = str(data_dir / "uploads")
    after = synced[acknowledged:]
    # The finished file's bytes (its inode, under whichever name) and its directory entry.
    assert (uploads_dir in {path for path, _, _ in after}) is file_synced
    assert (os.stat(placed).st_ino in {inode for _, inode, _ in after}) is file_synced


def test_chunks_lost_in_a_machine_crash_are_asked_for_again(data_dir, database_url,
                                                            monkeypatch):
    """Under FSYNC "complete" a crash may leave zeros anywhere in chunks already recorded:
    after a restart none of them is trusted, and the client is told to send them again."""
    app = make_app(data_dir, database_url, "complete")
    f = random_file(250, 100)
    with app.app_context():
        for index in range(f.total):
            store_chunk(f.md5, f.name, f.total, index, io.BytesIO(f.chunk(index)))
        key = api_uploads.find(f.md5, f.name).key
        # Zeros where the page cache was lost: the full size, with a hole in chunk 1.
        chunks_of(app).write_chunk(key, 1, io.BytesIO(bytes(50)), 120)
        assert store_of(app).size(key) == 250 and not store_of(app).lost_in_restart(key)
        restart_machine(monkeypatch, app)
        assert store_of(app).lost_in_restart(key)
        with pytest.raises(MissingChunks) as raised:
            complete(f.md5, f.name, f.total)
        assert raised.value.extra["missingChunks"] == [0, 1, 2]
        assert api_completion.check_chunks(f.md5, f.name, f.total)[1] == []
        for index in range(f.total):
            store_chunk(f.md5, f.name, f.total, index, io.BytesIO(f.chunk(index)))
        done = complete(f.md5, f.name, f.total)
        db.engine.dispose()
    assert finished_bytes(app, done.stored_name) == f.data


def test_a_resumed_upload_is_told_what_a_crash_may_have_lost(data_dir, database_url,
                                                            monkeypatch):
    app = make_app(data_dir, database_url, "complete")
    f = random_file(250, 100)
    with app.app_context():
        store_chunk(f.md5, f.name, f.total, 0, io.BytesIO(f.chunk(0)))
        restart_machine(monkeypatch, app)
        # The first chunk sent after the restart finds the old mark: the one before it is
        # forgotten, the new one kept.
        store_chunk(f.md5, f.name, f.total, 1, io.BytesIO(f.chunk(1)))
        assert api_completion.check_chunks(f.md5, f.name, f.total)[1] == [1]
        db.engine.dispose()


def crashed_tus_upload(data_dir, database_url, size: int, sent: int, kept: int):
    """(client, path, data, app) of a tus upload with `sent` bytes acknowledged under
    FSYNC "complete", of which a machine crash kept only `kept` on disk."""
    app = make_app(data_dir, database_url, "complete")
    app.test_client_class = ClosingClient  # runs the hashing done after each answer
    client = app.test_client()
    data = os.urandom(size)
    path = path_of(create(client, len(data)))
    assert patch(client, path, 0, data[:sent]).status_code == 204
    store_of(app).truncate(path.rsplit("/", 1)[1], kept)
    return client, path, data, app


def test_tus_offset_follows_the_bytes_a_crash_left(data_dir, database_url):
    client, path, data, app = crashed_tus_upload(data_dir, database_url,
                                                 300_000, 200_000, 120_000)
    with app.app_context():  # the MD5 of the first 200000 bytes, hashed from the page cache
        assert db.session.execute(select(Upload.md5_state)).scalar_one() is not None
    assert head(client, path).headers["Upload-Offset"] == "120000"
    with app.app_context():  # covered bytes the disk lost: hashing starts again
        assert db.session.execute(select(Upload.md5_state)).scalar_one() is None
    refused = patch(client, path, 200_000, data[200_000:])
    assert refused.status_code == 409
    assert patch(client, path, 120_000, data[120_000:]).status_code == 204
    assert head(client, path).headers["Upload-Offset"] == "300000"
    placed = list((data_dir / "uploads").iterdir())
    assert [p.read_bytes() for p in placed] == [data]
    assert head(client, path).headers["Upload-MD5"] == hashlib.md5(data).hexdigest()
    with app.app_context():
        db.engine.dispose()


def test_tus_patch_after_a_crash_is_told_the_real_offset(data_dir, database_url):
    client, path, data, app = crashed_tus_upload(data_dir, database_url,
                                                 200_000, 150_000, 100_000)
    refused = patch(client, path, 150_000, data[150_000:])  # without a HEAD first
    assert refused.status_code == 409
    assert head(client, path).headers["Upload-Offset"] == "100000"
    with app.app_context():
        db.engine.dispose()


def test_tus_bytes_not_fsynced_before_a_machine_restart_are_sent_again(
        data_dir, database_url, monkeypatch):
    """Under FSYNC "complete" a data file from before a restart may hold zeros anywhere, at
    any size: the upload starts again from 0 rather than trust it."""
    client, path, data, app = crashed_tus_upload(data_dir, database_url,
                                                 300_000, 200_000, 200_000)
    assert head(client, path).headers["Upload-Offset"] == "200000"  # same boot: trusted
    restart_machine(monkeypatch, app)
    assert head(client, path).headers["Upload-Offset"] == "0"
    assert patch(client, path, 0, data).status_code == 204
    assert head(client, path).headers["Upload-MD5"] == hashlib.md5(data).hexdigest()
    assert [p.read_bytes() for p in (data_dir / "uploads").iterdir()] == [data]
    with app.app_context():
        db.engine.dispose()


def test_tus_bytes_fsynced_as_they_come_are_trusted_after_a_machine_restart(
        data_dir, database_url, monkeypatch):
    app = make_app(data_dir, database_url, True)
    client = app.test_client()
    data = os.urandom(1000)
    path = path_of(create(client, len(data)))
    assert patch(client, path, 0, data[:600]).status_code == 204
    restart_machine(monkeypatch, app)
    assert not store_of(app).lost_in_restart(path.rsplit("/", 1)[1])
    assert head(client, path).headers["Upload-Offset"] == "600"
    assert patch(client, path, 600, data[600:]).status_code == 204
    assert head(client, path).headers["Upload-MD5"] == hashlib.md5(data).hexdigest()
    with app.app_context():
        db.engine.dispose()


def test_after_a_restart_with_fsync_on_the_old_mark_goes_with_the_old_bytes(
        data_dir, database_url, monkeypatch):
    _, path, data, app = crashed_tus_upload(data_dir, database_url, 300_000, 200_000, 200_000)
    with app.app_context():
        db.engine.dispose()
    app = make_app(data_dir, database_url, True)  # restarted with every PATCH fsync'd
    restart_machine(monkeypatch, app)
    client = app.test_client()
    assert head(client, path).headers["Upload-Offset"] == "0"
    assert patch(client, path, 0, data[:100_000]).status_code == 204
    assert head(client, path).headers["Upload-Offset"] == "100000"  # trusted again
    restart_machine(monkeypatch, app, "a-second-boot")  # and after the next restart too
    assert not store_of(app).lost_in_restart(path.rsplit("/", 1)[1])
    assert head(client, path).headers["Upload-Offset"] == "100000"
    assert patch(client, path, 100_000, data[100_000:]).status_code == 204
    assert head(client, path).headers["Upload-MD5"] == hashlib.md5(data).hexdigest()
    with app.app_context():
        db.engine.dispose()
