"""The storage contract: what every Store must do, seen only through its interface.

In the spirit of tus-node-server's packages/utils/src/test/stores.ts: one suite that every
backend passes, run once per backend by a subclass named Test* (tests/test_storage_local.py)
that provides the fixtures

- ``store``: a fresh, empty store for each test;
- ``restarted_store`` (optional): a factory giving the same store as seen after the machine
  restarted, or None where a restart means nothing to the backend (those tests then skip);

and sets ``durable_writes``: whether write() and write_chunk() are durable when they return
(a restart then loses nothing), or only what seal() makes is.

The capabilities (ChunkFiles, Concatenation, FileServer) are tested where the store has them.
Nothing here knows of paths, files, chunk directories or lock files: how a backend keeps its
bytes is tested by that backend's own tests.
"""
import hashlib
import io
import secrets
import threading
import time
import uuid

import pytest

from uploadsvc.storage import (
    ChunkFiles,
    Concatenation,
    FileGone,
    FileServer,
    LockBusy,
    NameTaken,
    PartTooLarge,
    StreamedChunks,
    UploadGone,
    Written,
    md5state,
)
from uploadsvc.storage.md5state import Md5State

KEY = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
NEVER = "00000000000000000000000000000000"  # a key no test creates
HASH_LOCK = f"{KEY}.hash"

BAD_KEYS = ["../x", "", ".", "a/b", "ABCDEF0123456789ABCDEF0123456789", "x" * 32, KEY[:-1],
            KEY + "0", f"../{KEY[3:]}", KEY + "\n"]
BAD_NAMES = ["", ".", "..", "../x", "a/b", "x\0y", "/etc/passwd"]
BAD_LOCKS = ["", "../x", KEY.upper(), f"{KEY}.other", f"{KEY}/hash", f"../{KEY[3:]}"]

WAIT = 10.0  # the longest a test waits for another thread (never reached when all is well)
BUSY = 0.3  # a lock wait that must run out

needs_md5state = pytest.mark.skipif(not md5state.AVAILABLE,
                                    reason="libcrypto's MD5 state cannot be saved here")


# -- helpers --------------------------------------------------------------------------------


class BreaksOff(io.RawIOBase):
    """A request body whose connection dies after `data`."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.data.readinto(buffer)
        if not n:
            raise ConnectionResetError("client went away")
        return n


class InThread:
    """Enter a context manager in another thread and stay inside until this one exits;
    ``with InThread(...) as value`` gives what it yielded there."""

    def __init__(self, make) -> None:
        self.make = make
        self.entered = threading.Event()
        self.release = threading.Event()
        self.value = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with self.make() as value:
                self.value = value
                self.entered.set()
                self.release.wait(WAIT)
        except BaseException as exc:  # noqa: B036 - handed to the test's thread
            self.error = exc
        finally:
            self.entered.set()

    def start(self) -> "InThread":
        """Start the other thread without waiting for it to get in."""
        self.thread.start()
        return self

    def __enter__(self):
        if self.thread.ident is None:
            self.start()
        assert self.entered.wait(WAIT), "the other thread never got in"
        if self.error is not None:
            raise self.error
        return self.value

    def __exit__(self, *exc_info) -> None:
        self.release.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "the other thread never got out"
        if self.error is not None:
            raise self.error


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def read_file(store, name: str) -> bytes:
    with store.open_file(name) as f:
        return f.read()


def stored_bytes(store, key: str) -> bytes:
    """An upload's bytes as the interface shows them: sealed, published, read back."""
    sealed = store.seal(key, store.size(key))
    name = f"read-back-{uuid.uuid4().hex}"
    store.publish(sealed, name)
    try:
        data = read_file(store, name)
    finally:
        store.delete_file(name)
    assert sealed.size == len(data) and sealed.md5 == md5_of(data)
    return data


def written(store, key: str, data: bytes, offset: int = 0):
    """Write data at offset, within its own length."""
    result = store.write(key, offset, io.BytesIO(data), len(data))
    assert result == Written(len(data), False, False)
    return result


def sealed_upload(store, key: str, data: bytes):
    store.create(key)
    if data:
        written(store, key, data)
    return store.seal(key, len(data))


def published(store, name: str, data: bytes, key: str = KEY) -> None:
    store.publish(sealed_upload(store, key, data), name)
    store.delete(key)


def spooled(store, data: bytes):
    part = store.spool()
    part.write(data)
    part.seek(0)
    return part


def hashed(state: bytes) -> tuple[int, str]:
    saved = Md5State(state)
    return saved.length, saved.hexdigest()


# -- the contract ---------------------------------------------------------------------------


def capability(store, kind: type, missing: str):
    """The store as one of its optional capabilities; tests of a capability the backend
    does not offer do not apply to it."""
    if not isinstance(store, kind):
        pytest.skip(f"{type(store).__name__} {missing}")
    return store


class StoreContract:
    """Every Store passes these; a subclass Test<Backend> provides the fixtures."""

    durable_writes = True

    @pytest.fixture
    def store(self):
        pytest.fail("a subclass of StoreContract provides the store fixture")

    @pytest.fixture
    def restarted_store(self):
        return None

    @pytest.fixture
    def restart(self, store, restarted_store):
        if restarted_store is None:
            pytest.skip(f"a machine restart means nothing to {type(store).__name__}")
        return restarted_store

    @pytest.fixture
    def chunks(self, store) -> ChunkFiles:
        return capability(store, ChunkFiles, "has no ChunkFiles")

    @pytest.fixture
    def joiner(self, store) -> Concatenation:
        return capability(store, Concatenation, "cannot concatenate")

    @pytest.fixture
    def server(self, store) -> FileServer:
        return capability(store, FileServer, "serves no files")

    # -- an upload's bytes ----------------------------------------------------------------

    def test_create_is_idempotent_and_keeps_the_bytes(self, store):
        store.create(KEY)
        store.create(KEY)
        written(store, KEY, b"kept")
        store.create(KEY)
        assert store.size(KEY) == 4
        assert stored_bytes(store, KEY) == b"kept"
        assert [key for key, _ in store.upload_keys()] == [KEY]

    def test_a_new_upload_holds_no_bytes(self, store):
        assert store.size(NEVER) == 0
        store.create(KEY)
        assert store.size(KEY) == 0
        assert stored_bytes(store, KEY) == b""

    def test_write_appends_in_order_and_feeds_digests(self, store):
        store.create(KEY)
        body = secrets.token_bytes(5000)
        md5, sha = hashlib.md5(), hashlib.sha256()
        result = store.write(KEY, 0, io.BytesIO(body), 10_000, [md5, sha])
        assert result == Written(5000, False, False)
        assert md5.hexdigest() == md5_of(body)
        assert sha.digest() == hashlib.sha256(body).digest()
        assert store.size(KEY) == 5000
        assert store.write(KEY, 5000, io.BytesIO(b"tail"), 10_000) == Written(4, False, False)
        assert store.size(KEY) == 5004
        assert stored_bytes(store, KEY) == body + b"tail"

    def test_write_cuts_the_bytes_past_its_offset(self, store):
        store.create(KEY)
        written(store, KEY, b"0123456789")
        written(store, KEY, b"xy", offset=4)  # offset 4 recorded, 6 bytes of debris
        assert store.size(KEY) == 6
        assert stored_bytes(store, KEY) == b"0123xy"

    @pytest.mark.parametrize("limit, body, overflow", [
        (4, b"123456", True), (5, b"123456", True), (6, b"123456", False), (0, b"1", True),
        (0, b"", False)])
    def test_write_reports_a_body_past_its_limit(self, store, limit, body, overflow):
        store.create(KEY)
        written(store, KEY, b"abc")
        md5 = hashlib.md5()
        result = store.write(KEY, 3, io.BytesIO(body), limit, [md5])
        assert result == Written(min(limit, len(body)), overflow, False)
        assert md5.hexdigest() == md5_of(body[:limit])  # digests saw only what was kept
        assert store.size(KEY) == 3 + result.size
        store.truncate(KEY, 3)  # the write is refused: its bytes go
        assert store.size(KEY) == 3
        assert stored_bytes(store, KEY) == b"abc"

    @pytest.mark.parametrize("arrived", [0, 1, 3000])
    def test_write_keeps_what_arrived_before_the_body_broke_off(self, store, arrived):
        store.create(KEY)
        written(store, KEY, b"head")
        md5 = hashlib.md5()
        result = store.write(KEY, 4, BreaksOff(b"x" * arrived), 10_000, [md5])
        assert result == Written(arrived, False, True)
        assert md5.hexdigest() == md5_of(b"x" * arrived)
        assert store.size(KEY) == 4 + arrived
        assert stored_bytes(store, KEY) == b"head" + b"x" * arrived

    def test_size_after_a_crash_is_what_the_service_truncated_to(self, store):
        store.create(KEY)
        written(store, KEY, b"recorded")
        written(store, KEY, b"never recorded", offset=8)  # then the worker died
        assert store.size(KEY) == 22
        store.truncate(KEY, 8)  # the recorded offset is the truth
        assert store.size(KEY) == 8
        written(store, KEY, b"!", offset=8)
        assert stored_bytes(store, KEY) == b"recorded!"

    @pytest.mark.parametrize("operation", [
        lambda s: s.write(NEVER, 0, io.BytesIO(b"x"), 10),
        lambda s: s.truncate(NEVER, 0),
        lambda s: s.hash_prefix(NEVER, None, 0),
        lambda s: s.seal(NEVER, 0),
    ], ids=["write", "truncate", "hash_prefix", "seal"])
    def test_an_upload_never_created_is_gone(self, store, operation):
        with pytest.raises(UploadGone):
            operation(store)
        assert list(store.upload_keys()) == []
        assert list(store.temp_files()) == []

    def test_nothing_is_lost_in_restart_without_a_restart(self, store):
        assert not store.lost_in_restart(NEVER)
        store.create(KEY)
        assert not store.lost_in_restart(KEY)
        written(store, KEY, b"bytes")
        assert not store.lost_in_restart(KEY)
        assert store.size(KEY) == 5

    # -- prefix hashes --------------------------------------------------------------------

    @needs_md5state
    def test_hash_prefix_resumes_a_saved_state(self, store):
        store.create(KEY)
        body = secrets.token_bytes(20_000)
        written(store, KEY, body)
        state = None
        for end in (1000, 4097, 8192, 20_000):
            state = store.hash_prefix(KEY, state, end)
            assert hashed(state) == (end, md5_of(body[:end]))

    @needs_md5state
    def test_hash_prefix_to_where_the_state_stands_changes_nothing(self, store):
        store.create(KEY)
        written(store, KEY, b"0123456789")
        state = store.hash_prefix(KEY, None, 6)
        assert store.hash_prefix(KEY, state, 6) == state
        assert hashed(store.hash_prefix(KEY, None, 0)) == (0, md5_of(b""))

    @needs_md5state
    def test_hash_prefix_refuses_fewer_bytes_than_asked(self, store):
        store.create(KEY)
        written(store, KEY, b"x" * 100)
        with pytest.raises(ValueError):
            store.hash_prefix(KEY, None, 101)
        state = store.hash_prefix(KEY, None, 50)
        with pytest.raises(ValueError):
            store.hash_prefix(KEY, state, 101)

    @needs_md5state
    def test_hash_prefix_refuses_a_state_past_the_end(self, store):
        store.create(KEY)
        written(store, KEY, b"x" * 100)
        state = store.hash_prefix(KEY, None, 60)
        with pytest.raises(ValueError):
            store.hash_prefix(KEY, state, 59)

    @needs_md5state
    def test_hash_prefix_refuses_what_is_not_a_saved_state(self, store):
        store.create(KEY)
        written(store, KEY, b"x" * 100)
        with pytest.raises(ValueError):
            store.hash_prefix(KEY, b"not a state", 10)

    # -- sealing --------------------------------------------------------------------------

    def test_seal_hashes_the_first_bytes_and_keeps_the_upload(self, store):
        store.create(KEY)
        written(store, KEY, b"hello world!!")
        sealed = store.seal(KEY, 11)  # bytes past the length are not part of the file
        assert (sealed.size, sealed.md5) == (11, md5_of(b"hello world"))
        assert store.size(KEY) == 11  # the upload's bytes stay until delete()
        store.publish(sealed, "hello.txt")
        assert read_file(store, "hello.txt") == b"hello world"
        assert list(store.temp_files()) == []

    def test_seal_with_a_given_md5_does_not_hash(self, store):
        store.create(KEY)
        written(store, KEY, b"hello world")
        sealed = store.seal(KEY, 11, md5="0" * 32)
        assert (sealed.size, sealed.md5) == (11, "0" * 32)
        store.publish(sealed, "told.txt")
        assert read_file(store, "told.txt") == b"hello world"

    @needs_md5state
    def test_seal_hashes_only_past_a_saved_prefix(self, store):
        store.create(KEY)
        written(store, KEY, b"hello world")
        prefix = Md5State()
        prefix.update(bytearray(b"HELLO"))  # not the upload's: shows it is not read again
        sealed = store.seal(KEY, 11, saved=prefix.save())
        assert (sealed.size, sealed.md5) == (11, md5_of(b"HELLO world"))
        store.publish(sealed, "prefixed.txt")
        assert read_file(store, "prefixed.txt") == b"hello world"

    def test_an_empty_upload_seals_to_an_empty_file(self, store):
        sealed = sealed_upload(store, KEY, b"")
        assert (sealed.size, sealed.md5) == (0, md5_of(b""))
        store.publish(sealed, "empty")
        assert read_file(store, "empty") == b""

    def test_a_sealed_upload_can_be_sealed_again(self, store):
        first = sealed_upload(store, KEY, b"twice")
        second = store.seal(KEY, 5)
        store.discard(first)
        store.publish(second, "twice.bin")
        assert read_file(store, "twice.bin") == b"twice"
        assert list(store.temp_files()) == []

    def test_a_published_file_outlives_its_upload(self, store):
        store.publish(sealed_upload(store, KEY, b"survivor"), "kept.bin")
        store.delete(KEY)
        assert store.has_file("kept.bin")
        assert read_file(store, "kept.bin") == b"survivor"

    # -- deleting -------------------------------------------------------------------------

    def test_delete_removes_the_bytes_of_the_upload(self, store):
        store.create(KEY)
        written(store, KEY, b"doomed")
        store.delete(KEY)
        assert store.size(KEY) == 0
        assert not store.lost_in_restart(KEY)
        assert list(store.upload_keys()) == []
        with pytest.raises(UploadGone):
            store.write(KEY, 0, io.BytesIO(b"late"), 10)
        with pytest.raises(UploadGone):
            store.seal(KEY, 6)
        assert store.size(KEY) == 0

    def test_delete_is_idempotent_and_spares_other_uploads(self, store):
        store.delete(NEVER)
        store.create(KEY)
        store.create(OTHER)
        written(store, OTHER, b"other")
        store.delete(KEY)
        store.delete(KEY)
        assert [key for key, _ in store.upload_keys()] == [OTHER]
        assert stored_bytes(store, OTHER) == b"other"

    def test_delete_under_the_lock_of_the_upload(self, store):
        store.create(KEY)
        written(store, KEY, b"doomed")
        with store.locker.hold(KEY, exclusive=True, timeout=0):
            store.delete(KEY)
        assert list(store.upload_keys()) == []
        with pytest.raises(UploadGone):
            store.write(KEY, 0, io.BytesIO(b"late"), 10)

    def test_a_deleted_upload_can_be_made_anew_and_empty(self, store):
        store.create(KEY)
        written(store, KEY, b"old")
        store.delete(KEY)
        store.create(KEY)
        assert store.size(KEY) == 0
        written(store, KEY, b"new!")
        assert stored_bytes(store, KEY) == b"new!"

    # -- names ----------------------------------------------------------------------------

    @pytest.mark.parametrize("bad", BAD_KEYS)
    def test_keys_must_be_server_made(self, store, bad):
        operations = [
            lambda: store.create(bad), lambda: store.delete(bad), lambda: store.size(bad),
            lambda: store.write(bad, 0, io.BytesIO(b"x"), 10), lambda: store.truncate(bad, 0),
            lambda: store.lost_in_restart(bad), lambda: store.hash_prefix(bad, None, 0),
            lambda: store.seal(bad, 0), lambda: store.location(bad)]
        for operation in operations:
            with pytest.raises(ValueError):
                operation()
        assert list(store.upload_keys()) == []

    @pytest.mark.parametrize("bad", BAD_KEYS)
    def test_keys_must_be_server_made_for_chunks(self, store, chunks, bad):
        with pytest.raises(ValueError), chunks.claim(bad, 0):
            pass
        operations = [
            lambda: chunks.write_chunk(bad, 0, io.BytesIO(b"x"), 0),
            lambda: chunks.write_chunk(bad, 0, io.BytesIO(b"x"), None),
            lambda: chunks.stored_sizes(bad, {0: 1}, 1),
            lambda: chunks.chunks_aside(bad, [0]), lambda: chunks.place_chunks(bad, 1),
            lambda: chunks.drop_chunks(bad, [0]), lambda: chunks.clear(bad)]
        for operation in operations:
            with pytest.raises(ValueError):
                operation()
        assert list(store.upload_keys()) == []

    @pytest.mark.parametrize("bad", BAD_KEYS)
    def test_keys_must_be_server_made_to_concatenate(self, store, joiner, bad):
        store.create(KEY)
        written(store, KEY, b"x")
        with pytest.raises(ValueError):
            joiner.concatenate([KEY, bad])
        assert list(store.temp_files()) == []

    @pytest.mark.parametrize("bad", BAD_NAMES)
    def test_stored_names_are_validated(self, store, bad):
        sealed = sealed_upload(store, KEY, b"x")
        operations = [
            lambda: store.has_file(bad), lambda: store.open_file(bad),
            lambda: store.delete_file(bad), lambda: store.copy(bad),
            lambda: store.publish(sealed, bad), lambda: store.publish(sealed, bad, True)]
        if isinstance(store, FileServer):
            operations.append(lambda: store.serve(bad))
        for operation in operations:
            with pytest.raises(ValueError):
                operation()
        store.discard(sealed)
        assert list(store.temp_files()) == []

    @pytest.mark.parametrize("bad", BAD_LOCKS)
    def test_lock_names_are_validated(self, store, bad):
        with pytest.raises(ValueError), store.locker.hold(bad, True, 0):
            pass
        with pytest.raises(ValueError), store.locker.try_hold(bad):
            pass

    # -- finished files -------------------------------------------------------------------

    def test_publish_stores_the_file_under_its_name(self, store):
        assert not store.has_file("report.pdf")
        store.publish(sealed_upload(store, KEY, b"mine"), "report.pdf")
        assert store.has_file("report.pdf")
        assert read_file(store, "report.pdf") == b"mine"
        assert list(store.temp_files()) == []

    def test_publish_never_replaces_another_file(self, store):
        published(store, "report.pdf", b"someone else's", key=OTHER)
        sealed = sealed_upload(store, KEY, b"mine")
        with pytest.raises(NameTaken):
            store.publish(sealed, "report.pdf")
        assert read_file(store, "report.pdf") == b"someone else's"
        store.publish(sealed, "report (1).pdf")
        assert read_file(store, "report (1).pdf") == b"mine"
        assert list(store.temp_files()) == []

    def test_publish_can_replace_its_own_reserved_name(self, store):
        published(store, "a.bin", b"an attempt that crashed", key=OTHER)
        store.publish(sealed_upload(store, KEY, b"retry"), "a.bin", replace=True)
        assert read_file(store, "a.bin") == b"retry"
        assert list(store.temp_files()) == []

    def test_discard_drops_a_sealed_file(self, store):
        sealed = sealed_upload(store, KEY, b"unwanted")
        store.discard(sealed)
        store.discard(sealed)
        assert list(store.temp_files()) == []
        assert store.size(KEY) == 8  # the upload's bytes are not the sealed file

    def test_copy_gives_the_same_bytes_under_another_name(self, store):
        published(store, "original.bin", b"shared bytes")
        copied = store.copy("original.bin")
        assert copied.size == 12
        store.publish(copied, "copy.bin")
        store.delete_file("original.bin")
        assert read_file(store, "copy.bin") == b"shared bytes"
        assert not store.has_file("original.bin")
        assert list(store.temp_files()) == []

    def test_a_missing_file_is_gone(self, store):
        assert not store.has_file("nothing.bin")
        with pytest.raises(FileGone):
            store.open_file("nothing.bin")
        with pytest.raises(FileGone):
            store.copy("nothing.bin")
        store.delete_file("nothing.bin")
        assert list(store.temp_files()) == []

    def test_delete_file_removes_it_and_spares_others(self, store):
        published(store, "gone.bin", b"gone")
        published(store, "stays.bin", b"stays", key=OTHER)
        store.delete_file("gone.bin")
        store.delete_file("gone.bin")
        assert not store.has_file("gone.bin")
        with pytest.raises(FileGone):
            store.open_file("gone.bin")
        assert read_file(store, "stays.bin") == b"stays"

    def test_serve_tells_the_size_of_a_finished_file(self, store, server):
        published(store, "served.bin", b"x" * 1234)
        assert server.serve("served.bin").size == 1234
        store.delete_file("served.bin")
        with pytest.raises(FileGone):
            server.serve("served.bin")

    # -- request bodies and housekeeping ----------------------------------------------------

    def test_a_spooled_part_past_its_limit_is_refused_and_removed(self, store):
        part = store.spool(limit=10)
        part.write(b"123456")
        with pytest.raises(PartTooLarge):
            part.write(b"78901")
        part.close()
        assert list(store.temp_files()) == []

    def test_a_spooled_part_may_reach_its_limit(self, store):
        part = store.spool(limit=10)
        part.write(b"12345")
        part.write(b"67890")
        part.seek(0)
        assert part.read() == b"1234567890"
        part.close()

    def test_a_spooled_part_is_no_temp_file_and_goes_on_close(self, store):
        # It has no name a crash could leave behind: nothing for cleanup to find, ever.
        part = store.spool()
        part.write(b"abandoned")
        assert list(store.temp_files()) == []
        part.seek(0)
        assert part.read() == b"abandoned"
        part.close()
        assert list(store.temp_files()) == []

    def test_a_spooled_part_is_written_like_any_body(self, store):
        store.create(KEY)
        with spooled(store, b"spooled body") as part:
            assert store.write(KEY, 0, part, 100) == Written(12, False, False)
        assert stored_bytes(store, KEY) == b"spooled body"
        assert list(store.temp_files()) == []

    def test_temp_files_are_listed_and_removed(self, store):
        published(store, "kept", b"left behind")
        assert list(store.temp_files()) == []
        sealed = store.copy("kept")  # never published nor discarded
        before = time.time()
        [(name, changed)] = store.temp_files()
        assert isinstance(name, str) and abs(changed - before) < 60
        store.remove_temp_file(name)
        assert list(store.temp_files()) == []
        store.discard(sealed)
        assert list(store.temp_files()) == []

    def test_upload_keys_and_locations_list_created_uploads(self, store):
        assert list(store.upload_keys()) == []
        before = time.time()
        store.create(KEY)
        store.create(OTHER)
        found = dict(store.upload_keys())
        assert sorted(found) == sorted([KEY, OTHER])
        assert all(abs(changed - before) < 60 for changed in found.values())
        locations = {store.location(KEY), store.location(OTHER)}
        assert len(locations) == 2 and all(isinstance(place, str) and place
                                           for place in locations)

    # -- locks ----------------------------------------------------------------------------

    @pytest.mark.parametrize("held, wanted, busy", [
        (True, True, True), (True, False, True), (False, True, True), (False, False, False)],
        ids=["exclusive-exclusive", "exclusive-shared", "shared-exclusive", "shared-shared"])
    def test_locks_held_by_another_thread_are_honoured(self, store, held, wanted, busy):
        with InThread(lambda: store.locker.hold(KEY, held, 0)):
            if busy:
                with pytest.raises(LockBusy), store.locker.hold(KEY, wanted, 0):
                    pass
            else:
                with store.locker.hold(KEY, wanted, 0):
                    pass

    def test_lock_busy_comes_after_the_timeout(self, store):
        with InThread(lambda: store.locker.hold(KEY, True, 0)):
            started = time.monotonic()
            with pytest.raises(LockBusy), store.locker.hold(KEY, True, BUSY):
                pass
            waited = time.monotonic() - started
        assert BUSY * 0.9 <= waited < BUSY + WAIT

    def test_try_hold_tells_whether_the_lock_was_free(self, store):
        with store.locker.try_hold(KEY) as held:
            assert held is True
        with InThread(lambda: store.locker.hold(KEY, False, 0)):
            started = time.monotonic()
            with store.locker.try_hold(KEY, BUSY) as held:
                assert held is False
            assert time.monotonic() - started >= BUSY * 0.9
        with store.locker.try_hold(KEY) as held:
            assert held is True

    def test_a_lock_is_free_again_after_release(self, store):
        with InThread(lambda: store.locker.hold(KEY, True, 0)):
            pass
        with store.locker.hold(KEY, True, 0):
            pass
        with pytest.raises(RuntimeError), store.locker.hold(KEY, True, 0):
            raise RuntimeError("the holder failed")
        with InThread(lambda: store.locker.try_hold(KEY)) as held:
            assert held is True

    def test_a_waiter_gets_the_lock_once_it_is_released(self, store):
        waiter = InThread(lambda: store.locker.hold(KEY, True, WAIT))
        with InThread(lambda: store.locker.hold(KEY, True, 0)):
            waiter.start()  # waits (or has not asked yet) while the holder holds
        with waiter:  # got it within its timeout
            with pytest.raises(LockBusy), store.locker.hold(KEY, True, 0):
                pass
        with store.locker.hold(KEY, True, 0):
            pass

    def test_locks_of_different_names_are_independent(self, store):
        with InThread(lambda: store.locker.hold(KEY, True, 0)):
            for name in (HASH_LOCK, OTHER, f"{OTHER}.hash"):
                with store.locker.hold(name, True, 0):
                    pass
        with InThread(lambda: store.locker.hold(HASH_LOCK, True, 0)):
            with store.locker.try_hold(KEY) as held:
                assert held is True
            with store.locker.try_hold(HASH_LOCK) as held:
                assert held is False

    # -- machine restarts -----------------------------------------------------------------

    def test_a_restart_keeps_exactly_the_writes_made_durable(self, store, restart):
        """Writes durable when they return survive a restart; writes made durable only when
        sealed (FSYNC "complete") are all lost, whatever size the file kept."""
        store.create(KEY)
        written(store, KEY, b"in the page cache")
        assert not store.lost_in_restart(KEY) and store.size(KEY) == 17
        after = restart()
        if self.durable_writes:
            assert not after.lost_in_restart(KEY)
            assert after.size(KEY) == 17
            written(after, KEY, b"!", offset=17)
            assert stored_bytes(after, KEY) == b"in the page cache!"
        else:
            assert after.lost_in_restart(KEY)
            assert after.size(KEY) == 0
            assert after.lost_in_restart(KEY)  # asking changes nothing

    def test_an_upload_lost_in_restart_starts_over(self, store, restart):
        store.create(KEY)
        written(store, KEY, b"before")
        after = restart()
        assert after.size(KEY) == (6 if self.durable_writes else 0)
        written(after, KEY, b"again")  # the service lowered its offset to size()
        assert not after.lost_in_restart(KEY)
        assert after.size(KEY) == 5
        assert stored_bytes(after, KEY) == b"again"

    def test_a_restart_keeps_published_files(self, store, restart):
        published(store, "done.bin", b"finished")
        after = restart()
        assert after.has_file("done.bin")
        assert read_file(after, "done.bin") == b"finished"

    def test_a_restart_spares_uploads_with_nothing_written(self, store, restart):
        store.create(KEY)
        after = restart()
        assert not after.lost_in_restart(KEY)
        assert after.size(KEY) == 0
        assert [key for key, _ in after.upload_keys()] == [KEY]

    def test_chunks_not_made_durable_are_lost_in_restart_until_cleared(self, store, chunks,
                                                                       restart):
        store.create(KEY)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"in place"), 0)
        chunks.write_chunk(KEY, 1, io.BytesIO(b"aside"), None)
        after = restart()
        assert after.lost_in_restart(KEY) is not self.durable_writes
        after.clear(KEY)
        assert not after.lost_in_restart(KEY)
        assert after.size(KEY) == 0
        assert after.chunks_aside(KEY, [0, 1]) == []

    # -- ChunkFiles -----------------------------------------------------------------------

    @pytest.mark.parametrize("order, aside, spool", [
        ((3, 2, 0, 1), (3,), ()),
        ((3, 0, 1, 2), (3,), (2,)),  # a spooled part put in place (by the kernel, locally)
        ((3, 2, 1, 0), (0, 1, 2, 3), ()),
        ((1, 3, 0, 2), (0, 1, 2, 3), (1, 3)),
        ((0, 1, 2, 3), (), (0, 3))])
    def test_chunks_in_place_and_aside_seal_in_order(self, store, chunks, order, aside, spool):
        store.create(KEY)
        parts = [secrets.token_bytes(size) for size in (7000, 7000, 7000, 123)]
        for index in order:
            src = spooled(store, parts[index]) if index in spool else io.BytesIO(parts[index])
            offset = None if index in aside else index * 7000
            with chunks.claim(KEY, index) as claimed, src:
                assert claimed
                assert chunks.write_chunk(KEY, index, src, offset) == len(parts[index])
        assert chunks.chunks_aside(KEY, range(4)) == sorted(aside)
        assert chunks.place_chunks(KEY, 7000) == sorted(aside)
        whole = b"".join(parts)
        sealed = store.seal(KEY, len(whole))
        assert (sealed.size, sealed.md5) == (len(whole), md5_of(whole))
        chunks.drop_chunks(KEY, sorted(aside))
        assert chunks.chunks_aside(KEY, range(4)) == []
        store.publish(sealed, "whole.bin")
        assert read_file(store, "whole.bin") == whole
        assert list(store.temp_files()) == []

    @pytest.mark.parametrize("spool", [False, True])
    def test_a_chunk_resent_aside_replaces_the_earlier_copy(self, store, chunks, spool):
        store.create(KEY)
        for index in range(3):
            chunks.write_chunk(KEY, index, io.BytesIO(bytes([65 + index]) * 10), index * 10)
        body = (lambda data: spooled(store, data)) if spool else io.BytesIO
        with body(b"old bytes") as old, body(b"new") as new:
            chunks.write_chunk(KEY, 3, old, None)
            assert chunks.write_chunk(KEY, 3, new, None) == 3
        assert chunks.stored_sizes(KEY, {3: 3}, 10) == {3: 3}
        assert chunks.place_chunks(KEY, 10) == [3]
        assert stored_bytes(store, KEY) == b"A" * 10 + b"B" * 10 + b"C" * 10 + b"new"
        assert list(store.temp_files()) == []

    def test_a_chunk_written_in_place_drops_its_copy_aside(self, store, chunks):
        store.create(KEY)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"aside"), None)
        assert chunks.chunks_aside(KEY, [0]) == [0]
        chunks.write_chunk(KEY, 0, io.BytesIO(b"place"), 0)
        assert chunks.chunks_aside(KEY, [0]) == []
        assert chunks.place_chunks(KEY, 5) == []
        assert stored_bytes(store, KEY) == b"place"

    def test_stored_sizes_follow_the_chunks_in_place_and_aside(self, store, chunks):
        store.create(KEY)
        assert chunks.stored_sizes(KEY, {0: 10, 1: 10}, 10) == {}
        chunks.write_chunk(KEY, 0, io.BytesIO(b"a" * 10), 0)
        chunks.write_chunk(KEY, 1, io.BytesIO(b"b" * 10), 10)
        chunks.write_chunk(KEY, 3, io.BytesIO(b"d" * 4), None)
        recorded = {0: 10, 1: 10, 2: 10, 3: 4}
        assert chunks.stored_sizes(KEY, recorded, 10) == {0: 10, 1: 10, 3: 4}  # 2 is missing
        assert chunks.stored_sizes(KEY, {3: 5}, 10) == {3: 4}  # the size found, not recorded
        assert chunks.chunks_aside(KEY, [0, 1, 2, 3]) == [3]

    def test_stored_sizes_before_the_chunk_size_is_known(self, store, chunks):
        store.create(KEY)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"only"), 0)
        assert chunks.stored_sizes(KEY, {0: 4}, None) == {0: 4}
        assert chunks.stored_sizes(KEY, {0: 5}, None) == {}

    def test_placed_chunks_stay_aside_until_dropped(self, store, chunks):
        store.create(KEY)
        chunks.write_chunk(KEY, 1, io.BytesIO(b"bb"), None)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"aa"), None)
        assert chunks.place_chunks(KEY, 2) == [0, 1]
        assert chunks.chunks_aside(KEY, [0, 1]) == [0, 1]
        assert chunks.place_chunks(KEY, 2) == [0, 1]  # placing again changes nothing
        chunks.drop_chunks(KEY, [0, 1])
        assert chunks.chunks_aside(KEY, [0, 1]) == []
        assert chunks.place_chunks(KEY, 2) == []
        assert chunks.stored_sizes(KEY, {0: 2, 1: 2}, 2) == {0: 2, 1: 2}
        assert stored_bytes(store, KEY) == b"aabb"

    @needs_md5state
    def test_bytes_in_place_do_not_change_until_chunks_are_placed(self, store, chunks):
        store.create(KEY)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"first try!"), 0)
        state = store.hash_prefix(KEY, None, 10)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"second try"), None)  # a re-send goes aside
        assert store.hash_prefix(KEY, None, 10) == state
        chunks.place_chunks(KEY, 10)
        assert hashed(store.hash_prefix(KEY, None, 10)) == (10, md5_of(b"second try"))

    def test_a_spooled_chunk_aside_is_taken_over(self, store, chunks):
        store.create(KEY)
        part = spooled(store, b"spooled chunk")
        assert chunks.write_chunk(KEY, 0, part, None) == 13
        part.close()
        assert list(store.temp_files()) == []
        assert chunks.stored_sizes(KEY, {0: 13}, None) == {0: 13}
        assert chunks.place_chunks(KEY, None) == [0]
        assert stored_bytes(store, KEY) == b"spooled chunk"

    def test_clear_empties_the_upload(self, store, chunks):
        store.create(KEY)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"a" * 10), 0)
        chunks.write_chunk(KEY, 1, io.BytesIO(b"b" * 10), None)
        chunks.clear(KEY)
        assert store.size(KEY) == 0
        assert chunks.chunks_aside(KEY, [0, 1]) == []
        assert chunks.stored_sizes(KEY, {0: 10, 1: 10}, 10) == {}
        assert chunks.place_chunks(KEY, 10) == []
        assert [key for key, _ in store.upload_keys()] == [KEY]  # the upload stays
        chunks.write_chunk(KEY, 0, io.BytesIO(b"again"), 0)
        assert stored_bytes(store, KEY) == b"again"

    def test_a_claim_excludes_the_same_index_only(self, store, chunks):
        store.create(KEY)
        with InThread(lambda: chunks.claim(KEY, 2)) as claimed:
            assert claimed is True
            with chunks.claim(KEY, 2) as again:
                assert again is False
            for index in (0, 1, 3, 200):
                with chunks.claim(KEY, index) as other:
                    assert other is True
        with chunks.claim(KEY, 2) as claimed:
            assert claimed is True

    def test_a_claim_is_released_on_exit(self, store, chunks):
        store.create(KEY)
        with chunks.claim(KEY, 0) as claimed:
            assert claimed is True
        with InThread(lambda: chunks.claim(KEY, 0)) as claimed:
            assert claimed is True
        with pytest.raises(RuntimeError), chunks.claim(KEY, 0):
            raise RuntimeError("the write failed")
        with InThread(lambda: chunks.claim(KEY, 0)) as claimed:
            assert claimed is True

    @pytest.mark.parametrize("offset", [0, None], ids=["in-place", "aside"])
    @pytest.mark.parametrize("spool", [False, True], ids=["body", "spooled"])
    def test_chunks_of_an_upload_never_created_are_gone(self, store, chunks, offset, spool):
        with spooled(store, b"x") if spool else io.BytesIO(b"x") as src:
            with pytest.raises(UploadGone):
                chunks.write_chunk(NEVER, 0, src, offset)
        with pytest.raises(UploadGone):
            chunks.place_chunks(NEVER, 1)
        with pytest.raises(UploadGone):
            chunks.clear(NEVER)
        with chunks.claim(NEVER, 0) as claimed:
            assert claimed is False
        assert chunks.stored_sizes(NEVER, {0: 1}, 1) == {}
        assert chunks.chunks_aside(NEVER, [0]) == []
        assert list(store.upload_keys()) == []
        assert list(store.temp_files()) == []

    def test_chunks_of_a_deleted_upload_are_gone(self, store, chunks):
        store.create(KEY)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"x"), None)
        store.delete(KEY)
        with pytest.raises(UploadGone):
            chunks.write_chunk(KEY, 1, io.BytesIO(b"y"), None)
        with pytest.raises(UploadGone):
            chunks.write_chunk(KEY, 1, io.BytesIO(b"y"), 1)
        assert chunks.chunks_aside(KEY, [0, 1]) == []
        assert list(store.upload_keys()) == []

    def test_chunks_are_not_lost_in_restart_without_a_restart(self, store, chunks):
        store.create(KEY)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"in place"), 0)
        chunks.write_chunk(KEY, 1, io.BytesIO(b"aside"), None)
        assert not store.lost_in_restart(KEY)
        assert store.size(KEY) == 8

    # -- Concatenation --------------------------------------------------------------------

    def test_concatenate_joins_in_order_and_hashes(self, store, joiner):
        store.create(KEY)
        store.create(OTHER)
        written(store, KEY, b"first-")
        written(store, OTHER, b"second")
        sealed = joiner.concatenate([OTHER, KEY])
        assert (sealed.size, sealed.md5) == (12, md5_of(b"secondfirst-"))
        store.publish(sealed, "joined.bin")
        assert read_file(store, "joined.bin") == b"secondfirst-"
        assert stored_bytes(store, KEY) == b"first-"  # the parts stay until deleted
        assert list(store.temp_files()) == []

    def test_concatenate_of_an_upload_never_created_is_gone(self, store, joiner):
        store.create(KEY)
        written(store, KEY, b"first-")
        with pytest.raises(UploadGone):
            joiner.concatenate([KEY, NEVER])
        assert list(store.temp_files()) == []

    def test_concatenate_takes_an_upload_with_nothing_written_as_empty(self, store, joiner):
        store.create(KEY)
        store.create(OTHER)
        written(store, KEY, b"first")
        sealed = joiner.concatenate([KEY, OTHER])
        assert (sealed.size, sealed.md5) == (5, md5_of(b"first"))


class StreamedChunksContract:
    """The StreamedChunks capability: chunks written in place as they arrive. A backend's
    test class takes these tests beside StoreContract's when its store has it."""

    @pytest.fixture
    def streamed(self, store) -> StreamedChunks:
        assert isinstance(store, StreamedChunks)
        return store

    @pytest.fixture
    def chunks(self, store) -> ChunkFiles:
        assert isinstance(store, ChunkFiles)
        return store

    @pytest.mark.parametrize("bad", BAD_KEYS)
    def test_keys_must_be_server_made_for_chunks_in_place(self, store, streamed, bad):
        for operation in [lambda: streamed.write_in_place(bad, 0, io.BytesIO(b"x"), 1),
                          lambda: streamed.md5_in_place(bad, 0, 1),
                          lambda: streamed.copy_in_place(bad, 0, 1, io.BytesIO())]:
            with pytest.raises(ValueError):
                operation()
        assert list(store.upload_keys()) == []

    @pytest.mark.parametrize("limit, body, overflow", [
        (4, b"123456", True), (6, b"123456", False), (8, b"123", False), (0, b"1", True)])
    def test_write_in_place_stops_at_its_limit_and_reports_excess(self, store, chunks, streamed,
                                                                  limit, body, overflow):
        store.create(KEY)
        for index in range(3):
            chunks.write_chunk(KEY, index, io.BytesIO(bytes([65 + index]) * 8), index * 8)
        md5 = hashlib.md5()
        result = streamed.write_in_place(KEY, 8, io.BytesIO(body), limit, [md5])
        assert result == Written(min(limit, len(body)), overflow, False)
        assert md5.hexdigest() == md5_of(body[:limit])
        kept = body[:limit]
        assert stored_bytes(store, KEY) == b"A" * 8 + kept + b"B" * (8 - len(kept)) + b"C" * 8
        assert streamed.md5_in_place(KEY, 8, result.size) == md5_of(kept)

    def test_write_in_place_keeps_what_arrived_before_the_body_broke_off(self, store, streamed):
        store.create(KEY)
        result = streamed.write_in_place(KEY, 5, BreaksOff(b"x" * 3000), 10_000)
        assert result == Written(3000, False, True)
        assert stored_bytes(store, KEY) == b"\0" * 5 + b"x" * 3000

    def test_write_in_place_leaves_a_copy_aside_until_dropped(self, store, chunks, streamed):
        store.create(KEY)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"aside"), None)
        streamed.write_in_place(KEY, 0, io.BytesIO(b"place"), 5)
        assert chunks.chunks_aside(KEY, [0]) == [0]
        chunks.drop_chunks(KEY, [0])
        assert chunks.chunks_aside(KEY, [0]) == []
        assert stored_bytes(store, KEY) == b"place"

    def test_bytes_in_place_can_be_taken_back(self, store, streamed):
        store.create(KEY)
        data = secrets.token_bytes(3 * 1024 * 1024 + 7)
        streamed.write_in_place(KEY, 11, io.BytesIO(data), len(data))
        out = io.BytesIO()
        streamed.copy_in_place(KEY, 11, len(data), out)
        assert out.getvalue() == data
        assert streamed.md5_in_place(KEY, 11, len(data)) == md5_of(data)
        with pytest.raises(ValueError):
            streamed.md5_in_place(KEY, 11, len(data) + 1)

    def test_write_in_place_of_an_upload_never_created_is_gone(self, store, streamed):
        with pytest.raises(UploadGone):
            streamed.write_in_place(NEVER, 0, io.BytesIO(b"x"), 1)
