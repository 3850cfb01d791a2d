"""Incremental hashing: chunks folded into a saved MD5 as they arrive, and every way back to
hashing the whole file in one pass."""
import hashlib
import io
import os
import random
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from uploadsvc.core.extensions import db
from uploadsvc.core.models import Upload
from uploadsvc.services import hashing, stores
from uploadsvc.services.chunked import chunks as api_chunks
from uploadsvc.services.chunked import completion as api_completion
from uploadsvc.services.chunked import uploads as api_uploads
from uploadsvc.services.errors import Md5Mismatch, MissingChunks
from uploadsvc.services.followups import FollowUp
from uploadsvc.storage.md5state import Md5State

from .helpers import (
    chunks_of,
    complete,
    finished_bytes,
    md5_in_place,
    random_file,
    restart_machine,
    store_chunk,
    store_of,
)


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def merges(app, monkeypatch):
    """Counts completions that hash the whole file in one pass (no saved MD5 state)."""
    calls = []
    original = store_of(app).seal

    def counting(key, size, md5=None, saved=None):
        if md5 is None and saved is None:
            calls.append(key)
        return original(key, size, md5, saved)

    monkeypatch.setattr(store_of(app), "seal", counting)
    return calls


def store(f, index, body=None):
    data = f.chunk(index) if body is None else body
    return store_chunk(f.md5, f.name, f.total, index, io.BytesIO(data))


def hashed(f) -> int:
    upload = api_uploads.find(f.md5, f.name)
    value = db.session.execute(select(Upload.hashed_chunks).filter_by(id=upload.id)).scalar()
    db.session.commit()
    return value


def test_saved_md5_state_resumes_to_hashlibs_digest():
    data = os.urandom(300_000)
    state = Md5State()
    state.update(bytearray(data[:123_457]))
    resumed = Md5State(state.save())
    resumed.update(memoryview(bytearray(data[123_457:])))
    assert resumed.length == len(data)
    assert resumed.hexdigest() == hashlib.md5(data).hexdigest()
    assert resumed.hexdigest() == resumed.hexdigest()  # reading the digest changes nothing


def test_saved_md5_state_of_another_size_is_refused():
    with pytest.raises(ValueError):
        Md5State(b"\0" * 10)


def test_chunks_in_order_are_hashed_as_they_arrive_and_complete_without_a_merge(
        ctx, app, merges):
    f = random_file(1000, 128)
    for index in range(f.total):
        store(f, index)
        assert hashed(f) == index + 1
    upload = complete(f.md5, f.name, f.total)
    assert upload.size == 1000 and merges == []
    assert finished_bytes(app, f.name) == f.data


def test_chunks_in_random_order_are_folded_once_the_gap_closes(ctx, app, merges):
    f = random_file(2000, 128)
    order = list(range(1, f.total))
    random.Random(3).shuffle(order)
    for index in order:
        store(f, index)
        assert hashed(f) == 0
    store(f, 0)
    assert hashed(f) == f.total
    complete(f.md5, f.name, f.total)
    assert merges == [] and finished_bytes(app, f.name) == f.data


def test_a_chunk_changed_after_it_was_hashed_is_caught_by_the_merge(ctx, app, merges):
    f = random_file(500, 128)
    for index in range(f.total):
        store(f, index)
    store(f, 1, b"x" * 128)  # the hashed copy of chunk 1 no longer matches the stored one
    assert hashed(f) == -1
    with pytest.raises(Md5Mismatch):
        complete(f.md5, f.name, f.total)
    assert len(merges) == 1 and not store_of(app).has_file(f.name)
    store(f, 1)  # the client sends the right bytes again
    assert complete(f.md5, f.name, f.total).is_completed
    assert finished_bytes(app, f.name) == f.data


def test_a_retried_chunk_falls_back_to_a_correct_merge(ctx, app, merges):
    f = random_file(500, 128)
    store(f, 0, b"y" * 128)
    store(f, 0)
    for index in range(1, f.total):
        store(f, index)
    complete(f.md5, f.name, f.total)
    assert len(merges) == 1 and finished_bytes(app, f.name) == f.data


def test_a_data_file_cut_short_asks_for_its_lost_chunks_again(ctx, app, merges):
    f = random_file(500, 128)
    for index in range(f.total):
        store(f, index)
    upload = api_uploads.find(f.md5, f.name)
    stores.store().truncate(upload.key, 300)  # chunks 2 and 3 end later
    with pytest.raises(MissingChunks) as raised:
        complete(f.md5, f.name, f.total)
    assert raised.value.extra["missingChunks"] == [2, 3]
    store(f, 2)
    store(f, 3)
    complete(f.md5, f.name, f.total)
    assert len(merges) == 1 and finished_bytes(app, f.name) == f.data


def test_fsyncd_chunks_and_their_hash_are_trusted_after_a_machine_restart(
        ctx, app, merges, monkeypatch):
    """By default every chunk is fsync'd before it is recorded, and hashed bytes never
    change in place, so a restart costs nothing."""
    f = random_file(500, 128)
    for index in range(f.total):
        store(f, index)
    assert hashed(f) == f.total
    restart_machine(monkeypatch, app)
    assert complete(f.md5, f.name, f.total).md5 == f.md5
    assert merges == [] and finished_bytes(app, f.name) == f.data


def test_a_busy_hash_lock_leaves_chunks_after_a_gap_to_the_next_folder(ctx, app, merges):
    f = random_file(500, 128)
    store(f, 0)
    assert hashed(f) == 1  # hashed as its bytes passed
    upload = api_uploads.find(f.md5, f.name)
    with app.extensions["store"].locker.try_hold(f"{upload.key}.hash") as held:
        assert held
        store(f, 2)  # after a gap: not hashed
        assert hashed(f) == 1
        store(f, 1)  # in order: hashed as it passes, which needs no lock
        assert hashed(f) == 2  # another folder holds the lock: chunk 2 is left to it
    store(f, 3)  # not the next chunk, so nothing is folded yet
    assert hashed(f) == 2
    complete(f.md5, f.name, f.total)  # completion folds what is left
    assert merges == [] and finished_bytes(app, f.name) == f.data


def test_parallel_in_order_chunks_across_workers_are_all_hashed_before_completion(
        live_server, tmp_path):
    data = os.urandom(40 * 300_000 + 17)
    md5, size, total = hashlib.md5(data).hexdigest(), 300_000, 41
    ident = {"md5": md5, "fileName": "folded.bin", "totalChunks": total}

    def send(index):
        response = requests.post(f"{live_server.url}/api/upload-chunk",
                                 files={"chunk": ("blob", data[index * size:(index + 1) * size])},
                                 data={**ident, "chunkIndex": index})
        assert response.status_code == 200, response.text

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, range(total)))
    deadline = time.monotonic() + 10  # the last fold runs just after the last answer
    while time.monotonic() < deadline:
        with sqlite3.connect(live_server.data_dir / "uploadsvc.sqlite3") as conn:
            folded = conn.execute("SELECT hashed_chunks FROM uploads WHERE md5 = ?",
                                  (md5,)).fetchone()
        if folded == (total,):
            break
        time.sleep(0.05)
    assert folded == (total,)
    done = requests.post(f"{live_server.url}/api/complete-upload", json=ident).json()
    assert done["md5"] == md5 and done["size"] == len(data)
    assert (live_server.data_dir / "uploads" / "folded.bin").read_bytes() == data


# -- chunks in place --------------------------------------------------------------------


def key_of(f) -> str:
    return api_uploads.find(f.md5, f.name).key


def sizes(f, indices) -> dict[int, int]:
    return {index: len(f.chunk(index)) for index in indices}


def test_chunks_are_written_once_at_their_offset_in_any_order(ctx, app, merges):
    f = random_file(1000, 128)
    for index in [3, 0, 7, 1, 2, 4, 6, 5]:
        store(f, index)
    key, chunks = key_of(f), chunks_of(app)
    assert chunks.chunks_aside(key, range(f.total)) == []
    assert store_of(app).size(key) == len(f.data)
    assert md5_in_place(app, key, len(f.data)) == f.md5
    complete(f.md5, f.name, f.total)
    assert merges == [] and finished_bytes(app, f.name) == f.data


def test_the_last_chunk_sent_first_waits_in_a_file_of_its_own(ctx, app, merges):
    f = random_file(1000, 128)
    last = f.total - 1
    store(f, last)  # no other chunk has told the chunk size: its offset is unknown
    key, chunks = key_of(f), chunks_of(app)
    assert chunks.chunks_aside(key, range(f.total)) == [last]
    assert chunks.stored_sizes(key, sizes(f, [last]), None) == sizes(f, [last])
    assert store_of(app).size(key) == 0  # nothing in place yet
    for index in range(f.total - 1):
        store(f, index)
    assert hashed(f) == f.total - 1  # the fold stops before it
    complete(f.md5, f.name, f.total)  # puts it in place and hashes on from there
    assert merges == [] and finished_bytes(app, f.name) == f.data


def test_a_chunk_claimed_by_another_request_goes_to_a_file_of_its_own(ctx, app, merges):
    f = random_file(500, 128)
    store(f, 0)
    key, chunk_store = api_uploads.find(f.md5, f.name).key, app.extensions["store"]
    with chunk_store.claim(key, 1) as first:
        with chunk_store.claim(key, 1) as second, chunk_store.claim(key, 2) as other:
            assert first and not second and other  # per open file: threads exclude too
        store(f, 1)
    assert chunk_store.chunks_aside(key, range(f.total)) == [1]
    assert chunk_store.stored_sizes(key, sizes(f, [0, 1]), 128) == sizes(f, [0, 1])
    assert store_of(app).size(key) == 128  # chunk 0 in place, chunk 1 aside
    for index in range(2, f.total):
        store(f, index)
    complete(f.md5, f.name, f.total)
    assert merges == [] and finished_bytes(app, f.name) == f.data


def test_a_resent_chunk_never_changes_hashed_bytes(ctx, app, merges, monkeypatch):
    """A re-send goes to a chunk file of its own, even when its request dies before the
    chunk is recorded again: the bytes in place are the ones hashed, and completion, seeing
    the chunk file, hashes the whole file instead of trusting the saved state."""
    f = random_file(500, 128)
    for index in range(f.total):
        store(f, index)
    assert hashed(f) == f.total

    def dies(*args):
        raise ConnectionResetError("the worker died before recording the chunk")

    with monkeypatch.context() as patch:
        patch.setattr(api_chunks, "_record_chunk", dies)
        with pytest.raises(ConnectionResetError):
            store(f, 1, b"x" * 128)
    assert hashed(f) == f.total  # nothing recorded
    key = key_of(f)  # the bytes hashed in place are untouched; the re-send lies aside
    assert md5_in_place(app, key, len(f.data)) == f.md5
    assert chunks_of(app).chunks_aside(key, range(f.total)) == [1]
    with pytest.raises(Md5Mismatch):  # never a verified success over other bytes
        complete(f.md5, f.name, f.total)
    assert len(merges) == 1
    store(f, 1)  # the client sends the right bytes again
    assert complete(f.md5, f.name, f.total).md5 == f.md5
    assert finished_bytes(app, f.name) == f.data


def test_a_write_in_place_that_dies_midway_is_not_counted_and_is_written_again(
        ctx, app, merges):
    f = random_file(500, 128)
    store(f, 0)

    class Dying(io.BytesIO):
        def read(self, size=-1):
            if self.tell():
                raise ConnectionResetError("the client went away")
            return super().read(50)

    with pytest.raises(ConnectionResetError):
        store_chunk(f.md5, f.name, f.total, 1, Dying(f.chunk(1)))
    assert api_completion.check_chunks(f.md5, f.name, f.total)[1] == [0]
    for index in range(1, f.total):
        store(f, index)
    key = key_of(f)  # in place, claimed anew
    assert chunks_of(app).chunks_aside(key, range(f.total)) == []
    assert store_of(app).size(key) == len(f.data)
    complete(f.md5, f.name, f.total)
    assert merges == [] and finished_bytes(app, f.name) == f.data


def test_a_hash_fallen_too_far_behind_is_caught_up_before_the_answer(
        ctx, app, merges, monkeypatch):
    """Where the background hash cannot keep pace (here it never runs) with chunks that
    arrive while the one before them is in flight (so none is hashed as it passes), a chunk
    more than LAG_LIMIT ahead of it waits while its request hashes what is ready."""
    monkeypatch.setattr(hashing, "catch_up_later", lambda upload: FollowUp(lambda: None))
    monkeypatch.setattr(hashing, "passing", lambda *args: None)
    monkeypatch.setattr(hashing, "LAG_LIMIT", 3 * 128)
    f = random_file(1280, 128)
    seen = []
    for index in range(f.total):
        store(f, index)
        seen.append(hashed(f))
    # Behind by up to LAG_LIMIT, then caught up by the request of the chunk past it.
    assert seen == [0, 0, 0, 0, 5, 5, 5, 5, 5, 10]
    upload = complete(f.md5, f.name, f.total)
    assert upload.md5 == f.md5 and merges == []
