"""The service layer inside an app context: ordering of bytes and rows, events, locks."""
import io

import pytest
from sqlalchemy import select

from uploadsvc.core.extensions import db
from uploadsvc.core.models import Chunk, Upload, UploadEvent
from uploadsvc.services import stores, uploads
from uploadsvc.services.chunked import completion as api_completion
from uploadsvc.services.chunked import uploads as api_uploads
from uploadsvc.services.errors import MissingChunks, UploadNotFound
from uploadsvc.storage import LockBusy

from .helpers import (
    chunks_of,
    complete,
    finished_bytes,
    leftovers,
    random_file,
    store_chunk,
    upload_keys,
)


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def store_all(f, order=None):
    for index in order if order is not None else range(f.total):
        store_chunk(f.md5, f.name, f.total, index, io.BytesIO(f.chunk(index)))


def events():
    return [e.kind for e in db.session.execute(
        select(UploadEvent).order_by(UploadEvent.id)).scalars()]


def test_rows_follow_bytes(app, ctx):
    f = random_file(250, 100)
    progress = store_chunk(f.md5, f.name, f.total, 1, io.BytesIO(f.chunk(1)))
    assert (progress.uploaded, progress.total, progress.percent) == (1, 3, 33)
    upload = api_uploads.find(f.md5, f.name)
    assert upload.chunk_size == 100 and upload.status == "uploading"
    # In place, at its offset: chunks 0 and 2 will fill the rest of the file.
    chunks = chunks_of(app)
    assert chunks.chunks_aside(upload.key, range(f.total)) == []
    assert chunks.stored_sizes(upload.key, {1: 100}, 100) == {1: 100}
    rows = db.session.execute(select(Chunk.chunk_index, Chunk.size)).all()
    assert rows == [(1, 100)]
    store_all(f, [0, 2])
    assert finished_bytes(app, complete(f.md5, f.name, f.total).stored_name) == f.data


def test_events_are_recorded(ctx):
    f = random_file(250, 100)
    store_all(f)
    complete(f.md5, f.name, f.total)
    api_uploads.delete_upload(f.md5, f.name)
    assert events() == ["created"] + ["chunk_stored"] * 3 + ["completed", "deleted"]


def test_completion_records_size_path_and_removes_chunks(app, ctx):
    f = random_file(250, 100)
    store_all(f, [2, 1, 0])
    upload = complete(f.md5, f.name, f.total)
    assert upload.status == "completed" and upload.size == 250
    assert upload.path == "/uploads/test.bin" and upload.completed_at is not None
    assert db.session.execute(select(Chunk)).first() is None
    assert leftovers(app) == ([], [])


def test_chunk_row_whose_bytes_vanished_is_reported_missing(ctx):
    f = random_file(250, 100)
    store_all(f)
    upload = api_uploads.find(f.md5, f.name)
    stores.store().truncate(upload.key, 150)  # chunks 1 and 2 end later
    with pytest.raises(MissingChunks) as raised:
        complete(f.md5, f.name, f.total)
    assert raised.value.extra["missingChunks"] == [1, 2]
    assert api_uploads.status(f.md5, f.name)[1] == [0]


def test_complete_while_another_request_merges_is_merge_in_progress(app, ctx, client):
    """The services give up on a busy lock after LOCK_WAIT_SECONDS (LockBusy), which the
    HTTP layer answers with 409 merge_in_progress."""
    app.config["LOCK_WAIT_SECONDS"] = 0.05
    f = random_file(250, 100)
    store_all(f)
    upload = api_uploads.find(f.md5, f.name)
    with stores.store().locker.hold(upload.key, exclusive=True, timeout=1):
        with pytest.raises(LockBusy):
            complete(f.md5, f.name, f.total)
        with pytest.raises(LockBusy):
            store_chunk(f.md5, f.name, f.total, 0, io.BytesIO(f.chunk(0)))
        answer = client.post("/api/complete-upload", json=f.ident())
        assert answer.status_code == 409 and answer.json["error"] == "merge_in_progress"
    assert complete(f.md5, f.name, f.total).status == "completed"


def test_crashed_merge_leftover_is_replaced_on_retry(app, ctx, data_dir):
    f = random_file(250, 100)
    store_all(f)
    upload = api_uploads.find(f.md5, f.name)
    # A merge that crashed after placing its file but before committing the row.
    upload.stored_name = "test.bin"
    db.session.commit()
    store = stores.store()
    store.publish(store.seal(upload.key, 250), "test.bin")
    done = complete(f.md5, f.name, f.total)
    assert done.path == "/uploads/test.bin"
    assert sorted(p.name for p in (data_dir / "uploads").iterdir()) == ["test.bin"]
    assert finished_bytes(app, "test.bin") == f.data and leftovers(app) == ([], [])


def test_unknown_upload(ctx):
    with pytest.raises(UploadNotFound):
        api_uploads.status("0" * 32, "x")
    with pytest.raises(UploadNotFound):
        api_uploads.delete_upload("0" * 32, "x")


def test_active_count_counts_unfinished_only(ctx):
    a, b = random_file(100, 50), random_file(100, 50)
    store_all(a)
    store_all(b, [0])
    assert uploads.active_count() == 2
    complete(a.md5, a.name, a.total)
    assert uploads.active_count() == 1


def test_row_of_each_upload_has_its_bytes_in_the_store(app, ctx):
    f = random_file(100, 50)
    store_chunk(f.md5, f.name, f.total, 0, io.BytesIO(f.chunk(0)))
    keys = db.session.execute(select(Upload.key)).scalars().all()
    assert len(keys) == 1 and upload_keys(app) == keys


def test_bytes_removed_under_a_live_upload_make_room_again(app, ctx):
    f = random_file(250, 100)
    store_all(f, [0])
    upload = api_uploads.find(f.md5, f.name)
    stores.store().delete(upload.key)
    assert upload_keys(app) == []
    store_chunk(f.md5, f.name, f.total, 1, io.BytesIO(f.chunk(1)))
    assert upload_keys(app) == [upload.key]
    chunks = chunks_of(app)  # in place again, at its offset
    assert chunks.chunks_aside(upload.key, range(f.total)) == []
    assert chunks.stored_sizes(upload.key, {1: 100}, 100) == {1: 100}
    assert api_uploads.status(f.md5, f.name)[1] == [1]  # chunk 0's bytes went with the rest
    with pytest.raises(MissingChunks) as raised:
        complete(f.md5, f.name, f.total)
    assert raised.value.extra["missingChunks"] == [0, 2]
    store_all(f, [0, 2])
    assert finished_bytes(app, complete(f.md5, f.name, f.total).stored_name) == f.data


def test_instant_upload_whose_source_vanished_falls_back_to_uploading(ctx):
    f = random_file(250, 100)
    store_all(f)
    complete(f.md5, f.name, f.total)
    upload = api_uploads.find(f.md5, f.name)
    source = api_completion._completed_copy(f.md5)
    stores.store().delete_file("test.bin")
    fresh = api_completion._complete_from_copy(api_uploads.get_or_create(f.md5, "b.bin", 3), source)
    assert fresh.status == "uploading" and upload.status == "completed"
