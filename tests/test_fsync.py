"""FSYNC modes: which bytes reach the disk before they are acknowledged, and how bytes lost
in a machine crash (FSYNC "complete") are noticed instead of trusted."""
import hashlib
import io
import os

import pytest
from sqlalchemy import select

from uploadsvc import create_app
from uploadsvc.core.extensions import db
from uploadsvc.core.models import Upload
from uploadsvc.services import api_completion, api_uploads
from uploadsvc.services.errors import MissingChunks
from uploadsvc.storage.restarts import DATA_BOOT

from .helpers import ClosingClient, complete, random_file, restart_machine, store_chunk
from .tus_helpers import create, head, patch, path_of


@pytest.fixture
def synced(monkeypatch):
    """(path, inode) of the files and directories fsync'd (the real fsync still runs)."""
    paths = []
    real = os.fsync

    def fsync(fd):
        paths.append((os.readlink(f"/proc/self/fd/{fd}"), os.fstat(fd).st_ino))
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
    f = random_file(250, 100)
    with app.app_context():
        for index in range(f.total):
            store_chunk(f.md5, f.name, f.total, index, io.BytesIO(f.chunk(index)))
        acknowledged = len(synced)
        upload = complete(f.md5, f.name, f.total)
        db.engine.dispose()
    # Once per upload when chunks are not fsync'd, the boot mark (written aside, then
    # renamed) and its directory (see BootMarks); every chunk here is written in place.
    marks = [i for i, (path, _) in enumerate(synced[:acknowledged])
             if os.path.basename(path).startswith(".") and path.endswith(".part")]
    assert (data_dir / "chunks").exists() and not any((data_dir / "chunks").iterdir())
    assert len(marks) == (1 if fsync == "complete" else 0)
    chunk_syncs = acknowledged - 2 * len(marks)
    assert (chunk_syncs >= f.total) is chunks_synced and (chunk_syncs == 0) is not chunks_synced
    placed = str(data_dir / "uploads" / upload.stored_name)
    uploads_dir = str(data_dir / "uploads")
    after = synced[acknowledged:]
    # The finished file's bytes (its inode, under whichever name) and its directory entry.
    assert (uploads_dir in {path for path, _ in after}) is file_synced
    assert (os.stat(placed).st_ino in {inode for _, inode in after}) is file_synced


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
        with open(data_dir / "chunks" / key / "data", "r+b") as damaged:  # the full size,
            damaged.seek(120)                                             # with a hole
            damaged.write(bytes(50))
        restart_machine(monkeypatch, app)
        with pytest.raises(MissingChunks) as raised:
            complete(f.md5, f.name, f.total)
        assert raised.value.extra["missingChunks"] == [0, 1, 2]
        assert api_completion.check_chunks(f.md5, f.name, f.total)[1] == []
        for index in range(f.total):
            store_chunk(f.md5, f.name, f.total, index, io.BytesIO(f.chunk(index)))
        done = complete(f.md5, f.name, f.total)
        db.engine.dispose()
    assert (data_dir / "uploads" / done.stored_name).read_bytes() == f.data


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
    key = path.rsplit("/", 1)[1]
    os.truncate(next((data_dir / "chunks" / key).glob("data*")), kept)
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


def test_tus_bytes_fsynced_as_they_come_need_no_boot_mark(data_dir, database_url):
    app = make_app(data_dir, database_url, True)
    client = app.test_client()
    path = path_of(create(client, 1000))
    assert patch(client, path, 0, bytes(600)).status_code == 204
    key = path.rsplit("/", 1)[1]
    assert not (data_dir / "chunks" / key / DATA_BOOT).exists()
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
    assert not (data_dir / "chunks" / path.rsplit("/", 1)[1] / DATA_BOOT).exists()
    assert head(client, path).headers["Upload-Offset"] == "100000"  # trusted again
    assert patch(client, path, 100_000, data[100_000:]).status_code == 204
    assert head(client, path).headers["Upload-MD5"] == hashlib.md5(data).hexdigest()
    with app.app_context():
        db.engine.dispose()
