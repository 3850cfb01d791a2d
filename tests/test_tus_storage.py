"""ChunkStore's data-file methods (tus uploads), without Flask."""
import hashlib
import io
import mmap
import os

import pytest

from uploadsvc.storage import assembly
from uploadsvc.storage.local import ChunkStore, UploadGone
from uploadsvc.storage.md5state import Md5State

KEY = "a" * 32
OTHER = "b" * 32


@pytest.fixture
def store(tmp_path):
    store = ChunkStore(str(tmp_path), buffer_size=1024)
    store.create(KEY)
    return store


class BreaksOff(io.RawIOBase):
    """A body whose connection dies after `data`."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.data.readinto(buffer)
        if not n:
            raise ConnectionResetError("client went away")
        return n


def data_file(store, key=KEY) -> bytes:
    with open(os.path.join(store.chunks_dir, key, "data"), "rb") as f:
        return f.read()


def test_write_at_appends_with_a_small_buffer_and_feeds_digests(store):
    digest = hashlib.sha256()
    body = os.urandom(5000)
    written = store.write_at(KEY, 0, io.BytesIO(body), 10_000, [digest])
    assert (written.size, written.overflow, written.interrupted) == (5000, False, False)
    assert digest.digest() == hashlib.sha256(body).digest()
    store.write_at(KEY, 5000, io.BytesIO(b"tail"), 10_000)
    assert data_file(store) == body + b"tail"


def test_write_at_cuts_off_unrecorded_bytes_first(store):
    store.write_at(KEY, 0, io.BytesIO(b"0123456789"), 100)
    store.write_at(KEY, 4, io.BytesIO(b"xy"), 100)  # offset 4 recorded, 6 bytes of debris
    assert data_file(store) == b"0123xy"


def test_write_at_reports_a_body_longer_than_allowed(store):
    written = store.write_at(KEY, 0, io.BytesIO(b"123456"), 4)
    assert written.overflow and written.size == 4
    store.truncate(KEY, 0)
    assert data_file(store) == b""


def test_write_at_keeps_what_arrived_before_the_body_broke_off(store):
    written = store.write_at(KEY, 0, BreaksOff(b"x" * 3000), 10_000)
    assert written.interrupted and written.size == 3000
    assert data_file(store) == b"x" * 3000


def test_seal_hashes_and_links_without_removing_the_data(store):
    store.write_at(KEY, 0, io.BytesIO(b"hello world!!"), 100)
    merged = store.seal(KEY, 11)  # bytes past the length are not part of the file
    assert merged.md5 == hashlib.md5(b"hello world").hexdigest() and merged.size == 11
    assert data_file(store) == b"hello world"
    store.place(merged, "hello.txt")
    with open(store.file_path("hello.txt"), "rb") as placed:
        assert placed.read() == b"hello world"


def test_hash_data_resumes_a_saved_state_across_mapping_windows(store, monkeypatch):
    monkeypatch.setattr(assembly, "_HASH_WINDOW", 3 * mmap.ALLOCATIONGRANULARITY)
    body = os.urandom(10 * mmap.ALLOCATIONGRANULARITY + 123)
    store.write_at(KEY, 0, io.BytesIO(body), len(body))
    state = None
    for end in (1000, 5 * mmap.ALLOCATIONGRANULARITY + 7, len(body)):  # unaligned starts
        state = store.hash_data(KEY, state, end)
        assert Md5State(state).length == end
        assert Md5State(state).hexdigest() == hashlib.md5(body[:end]).hexdigest()


def test_hash_data_refuses_a_data_file_shorter_than_the_offset(store):
    store.write_at(KEY, 0, io.BytesIO(b"x" * 100), 100)
    with pytest.raises(ValueError):
        store.hash_data(KEY, None, 101)


def test_seal_hashes_only_past_a_saved_prefix(store):
    store.write_at(KEY, 0, io.BytesIO(b"hello world"), 100)
    prefix = Md5State()
    prefix.update(bytearray(b"HELLO"))  # not the file's: shows that the prefix is not re-read
    merged = store.seal(KEY, 11, saved=prefix.save())
    assert merged.md5 == hashlib.md5(b"HELLO world").hexdigest()


def test_concatenate_joins_parts_in_order(store):
    store.create(OTHER)
    store.write_at(KEY, 0, io.BytesIO(b"first-"), 100)
    store.write_at(OTHER, 0, io.BytesIO(b"second"), 100)
    merged = store.concatenate([OTHER, KEY])
    assert merged.md5 == hashlib.md5(b"secondfirst-").hexdigest() and merged.size == 12


def test_missing_upload_is_gone(store):
    with pytest.raises(UploadGone):
        store.write_at(OTHER, 0, io.BytesIO(b"x"), 10)
