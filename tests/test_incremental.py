"""Incremental hashing: chunks folded into a saved MD5 as they arrive, and every way back to
the single-pass merge."""
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

from uploadsvc import assembly, service
from uploadsvc.assembly import ASSEMBLY
from uploadsvc.errors import Md5Mismatch
from uploadsvc.extensions import db
from uploadsvc.md5state import Md5State
from uploadsvc.models import Upload
from uploadsvc.storage import ChunkStore

from .helpers import random_file


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def merges(monkeypatch):
    """Counts single-pass merges."""
    calls = []
    original = ChunkStore.merge

    def counting(self, key, count):
        calls.append(key)
        return original(self, key, count)

    monkeypatch.setattr(ChunkStore, "merge", counting)
    return calls


def store(f, index, body=None):
    data = f.chunk(index) if body is None else body
    return service.store_chunk(f.md5, f.name, f.total, index, io.BytesIO(data))


def hashed(f) -> int:
    upload = service.find(f.md5, f.name)
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
        ctx, data_dir, merges):
    f = random_file(1000, 128)
    for index in range(f.total):
        store(f, index)
        assert hashed(f) == index + 1
    upload = service.complete(f.md5, f.name, f.total)
    assert upload.size == 1000 and merges == []
    assert (data_dir / "uploads" / f.name).read_bytes() == f.data


def test_chunks_in_random_order_are_folded_once_the_gap_closes(ctx, data_dir, merges):
    f = random_file(2000, 128)
    order = list(range(1, f.total))
    random.Random(3).shuffle(order)
    for index in order:
        store(f, index)
        assert hashed(f) == 0
    store(f, 0)
    assert hashed(f) == f.total
    service.complete(f.md5, f.name, f.total)
    assert merges == [] and (data_dir / "uploads" / f.name).read_bytes() == f.data


def test_a_chunk_changed_after_it_was_hashed_is_caught_by_the_merge(ctx, data_dir, merges):
    f = random_file(500, 128)
    for index in range(f.total):
        store(f, index)
    store(f, 1, b"x" * 128)  # the hashed copy of chunk 1 no longer matches the stored one
    assert hashed(f) == -1
    with pytest.raises(Md5Mismatch):
        service.complete(f.md5, f.name, f.total)
    assert len(merges) == 1 and not (data_dir / "uploads" / f.name).exists()
    store(f, 1)  # the client sends the right bytes again
    assert service.complete(f.md5, f.name, f.total).is_completed
    assert (data_dir / "uploads" / f.name).read_bytes() == f.data


def test_a_retried_chunk_falls_back_to_a_correct_merge(ctx, data_dir, merges):
    f = random_file(500, 128)
    store(f, 0, b"y" * 128)
    store(f, 0)
    for index in range(1, f.total):
        store(f, index)
    service.complete(f.md5, f.name, f.total)
    assert len(merges) == 1 and (data_dir / "uploads" / f.name).read_bytes() == f.data


def test_a_lost_assembly_falls_back_to_the_merge(ctx, data_dir, merges):
    f = random_file(500, 128)
    for index in range(f.total):
        store(f, index)
    upload = service.find(f.md5, f.name)
    (data_dir / "chunks" / upload.key / ASSEMBLY).unlink()
    service.complete(f.md5, f.name, f.total)
    assert len(merges) == 1 and (data_dir / "uploads" / f.name).read_bytes() == f.data


def test_an_assembly_from_before_a_machine_restart_is_not_placed(ctx, data_dir, merges,
                                                                 monkeypatch):
    """Folds do not fsync the assembly, so after a crash it may hold zeros where the page
    cache was lost, even at its full size: the chunk files (fsync'd) are merged instead."""
    f = random_file(500, 128)
    monkeypatch.setattr(assembly, "BOOT_ID", "boot-before-the-crash")
    for index in range(f.total):
        store(f, index)
    assert hashed(f) == f.total
    upload = service.find(f.md5, f.name)
    path = data_dir / "chunks" / upload.key / ASSEMBLY
    with open(path, "r+b") as damaged:  # what the crash left: the right size, a hole of zeros
        damaged.seek(130)
        damaged.write(bytes(100))
    monkeypatch.setattr(assembly, "BOOT_ID", "boot-after-the-crash")
    assert service.complete(f.md5, f.name, f.total).md5 == f.md5
    assert len(merges) == 1 and (data_dir / "uploads" / f.name).read_bytes() == f.data


def test_folding_stops_when_the_assembly_was_begun_before_a_restart(ctx, data_dir, merges,
                                                                    monkeypatch):
    f = random_file(500, 128)
    monkeypatch.setattr(assembly, "BOOT_ID", "boot-before-the-crash")
    store(f, 0)
    store(f, 1)
    monkeypatch.setattr(assembly, "BOOT_ID", "boot-after-the-crash")
    store(f, 2)  # the next fold finds the assembly's mark from the other boot
    assert hashed(f) == -1
    store(f, 3)
    assert service.complete(f.md5, f.name, f.total).md5 == f.md5
    assert len(merges) == 1 and (data_dir / "uploads" / f.name).read_bytes() == f.data


def test_a_busy_hash_lock_leaves_the_chunk_to_the_next_folder(ctx, app, data_dir, merges):
    f = random_file(500, 128)
    store(f, 0)
    upload = service.find(f.md5, f.name)
    with app.extensions["chunk_store"].hash_lock(upload.key) as held:
        assert held
        store(f, 1)  # another folder holds the lock: this request leaves chunk 1 alone
        assert hashed(f) == 1
    store(f, 2)  # not the next chunk, so nothing is folded yet
    assert hashed(f) == 1
    store(f, 3)
    service.complete(f.md5, f.name, f.total)  # completion folds what is left
    assert merges == [] and (data_dir / "uploads" / f.name).read_bytes() == f.data


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
