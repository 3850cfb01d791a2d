"""LocalStore: the storage contract on a local data directory, under both fsync policies,
and how it lays its bytes out there (tested here only: the contract knows no paths)."""
import errno
import hashlib
import io
import mmap
import os
import threading
import time
import types

import pytest

from uploadsvc.storage import (
    LocalStore,
    LockBusy,
    NameTaken,
    PartTooLarge,
    locking,
    spool,
    writeback,
)
from uploadsvc.storage.local import store as local
from uploadsvc.storage.local.chunkfiles import CLAIMS
from uploadsvc.storage.local.restarts import DATA_BOOT
from uploadsvc.storage.md5state import AVAILABLE, Md5State

pytest.register_assert_rewrite("tests.storage_contract")

from .storage_contract import (  # noqa: E402 - after its assertions are set to be rewritten
    HASH_LOCK,
    KEY,
    OTHER,
    WAIT,
    InThread,
    StoreContract,
    StreamedChunksContract,
    md5_of,
    published,
    read_file,
    sealed_upload,
    spooled,
    written,
)

BOOT, NEXT_BOOT = "boot-1", "boot-2"
GRANULARITY = mmap.ALLOCATIONGRANULARITY


def new_store(root, fsync=True, boot_id=BOOT, buffer_size=1024) -> LocalStore:
    return LocalStore(str(root), fsync=fsync, buffer_size=buffer_size, boot_id=boot_id)


class TestLocalStore(StoreContract, StreamedChunksContract):
    """fsync True: every write is durable before it returns; a restart costs nothing."""

    fsync: bool | str = True
    durable_writes = True

    @pytest.fixture
    def store(self, tmp_path):
        return new_store(tmp_path / "data", self.fsync)  # a small buffer: bodies cross it

    @pytest.fixture
    def restarted_store(self, tmp_path):
        return lambda: new_store(tmp_path / "data", self.fsync, boot_id=NEXT_BOOT)


class TestLocalStoreFsyncComplete(TestLocalStore):
    """fsync "complete": only sealed files are fsync'd; bytes written in another boot of the
    machine are lost_in_restart."""

    fsync = "complete"
    durable_writes = False


# -- the layout, tested once -----------------------------------------------------------------


@pytest.fixture
def root(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def store(root):
    return new_store(root)


def files_under(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_the_data_directory_is_laid_out(store, root):
    assert sorted(p.name for p in root.iterdir()) == ["chunks", "locks", "temp", "uploads"]
    assert all(p.is_dir() for p in root.iterdir())
    store.create(KEY)
    assert files_under(root) == [f"chunks/{KEY}/{CLAIMS}"]
    assert store.location(KEY) == f"chunks/{KEY}"


def test_a_spooled_chunk_aside_is_given_its_name_in_place_without_a_copy(store, root):
    store.create(KEY)
    part = spooled(store, b"hello")
    inode = os.fstat(part.fileno()).st_ino
    assert files_under(root / "temp") == []  # nameless until then
    assert store.write_chunk(KEY, 0, part, None) == 5
    part.close()
    chunk = root / "chunks" / KEY / "0"
    assert chunk.read_bytes() == b"hello"
    assert chunk.stat().st_ino == inode  # the very file spooled
    assert files_under(root / "temp") == []


def test_a_spooled_chunk_in_place_is_copied_and_the_part_goes_on_close(store, root):
    store.create(KEY)
    part = spooled(store, b"hello")
    assert store.write_chunk(KEY, 1, part, 5) == 5
    part.seek(0)
    assert part.read() == b"hello"  # still the part's own until it is closed
    part.close()
    assert (root / "chunks" / KEY / "data").read_bytes() == b"\0" * 5 + b"hello"
    assert files_under(root / "temp") == []
    assert files_under(root / "chunks") == [f"{KEY}/{CLAIMS}", f"{KEY}/data"]


def test_a_spool_file_lives_in_temp_with_no_name(store, root):
    part = store.spool()
    part.write(b"abandoned")
    # In temp/ (the data directory's filesystem, so that a chunk file can take it over),
    # yet no name there: a process killed now leaves nothing behind.
    target = os.readlink(f"/proc/self/fd/{part.fileno()}")
    assert target.startswith(str(root / "temp") + "/") and target.endswith(" (deleted)")
    assert part.path is None and files_under(root / "temp") == []
    part.close()
    assert files_under(root / "temp") == []


def test_a_spooled_chunk_resent_aside_replaces_the_earlier_file(store, root):
    store.create(KEY)
    with spooled(store, b"old") as old, spooled(store, b"newer") as new:
        store.write_chunk(KEY, 0, old, None)
        assert store.write_chunk(KEY, 0, new, None) == 5
        inode = os.fstat(new.fileno()).st_ino
    chunk = root / "chunks" / KEY / "0"
    assert chunk.read_bytes() == b"newer" and chunk.stat().st_ino == inode
    assert files_under(root / "chunks") == [f"{KEY}/{CLAIMS}", f"{KEY}/0"]  # no link beside
    assert files_under(root / "temp") == []


@pytest.fixture
def no_tmpfile(monkeypatch):
    """A filesystem that makes no nameless files: open(O_TMPFILE) fails as on one."""
    real_open = os.open

    def refusing_open(path, flags, *args, **kwargs):
        if spool.O_TMPFILE and flags & spool.O_TMPFILE == spool.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)


def test_without_nameless_files_a_spooled_part_is_named_and_goes_on_close(store, root,
                                                                          no_tmpfile):
    part = store.spool()
    part.write(b"named")
    [name] = files_under(root / "temp")
    assert name.startswith("spool-") and [n for n, _ in store.temp_files()] == [f"temp/{name}"]
    part.close()
    assert files_under(root / "temp") == []


def test_without_nameless_files_a_spooled_chunk_aside_is_renamed(store, root, no_tmpfile):
    store.create(KEY)
    with spooled(store, b"old") as old, spooled(store, b"hello") as part:
        store.write_chunk(KEY, 0, old, None)
        inode = os.fstat(part.fileno()).st_ino
        assert store.write_chunk(KEY, 0, part, None) == 5
    chunk = root / "chunks" / KEY / "0"
    assert chunk.read_bytes() == b"hello" and chunk.stat().st_ino == inode
    assert files_under(root / "temp") == []


def test_without_nameless_files_a_part_never_taken_over_still_has_no_name(root, no_tmpfile):
    (root / "temp").mkdir(parents=True)
    with spool.SpoolFile(str(root / "temp"), linkable=False) as part:
        part.write(b"on its way")
        assert part.path is None and files_under(root / "temp") == []
        with pytest.raises(ValueError):
            part.link_as(str(root / "taken"))
    fd = spool.anonymous_file(str(root / "temp"))
    os.close(fd)
    assert files_under(root) == []


def test_a_spooled_part_too_large_is_removed_before_anyone_closes_it(store, root):
    part = store.spool(limit=4)
    with pytest.raises(PartTooLarge):
        part.write(b"12345")
    assert files_under(root / "temp") == []  # the parser that owns it never closes it
    part.close()


class RecordingMd5:
    """hashlib.md5 that records which buffer every update() came from."""

    buffers: list = []

    def __init__(self) -> None:
        self.digest = hashlib.md5()

    def update(self, data) -> None:
        self.buffers.append((memoryview(data).obj, memoryview(data).nbytes))
        self.digest.update(data)

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


@pytest.mark.parametrize("how", ["seal", "concatenate"])
def test_sealing_reads_through_one_fixed_buffer(root, monkeypatch, how):
    store = new_store(root, buffer_size=4096)
    monkeypatch.setattr(RecordingMd5, "buffers", [])
    monkeypatch.setattr(local, "hashlib", types.SimpleNamespace(md5=RecordingMd5))
    store.create(KEY)
    store.write_chunk(KEY, 0, io.BytesIO(b"a" * 60_000), 0)
    store.create(OTHER)
    store.write_chunk(OTHER, 0, io.BytesIO(b"b" * 40_000), 0)
    if how == "seal":
        store.write_chunk(KEY, 1, io.BytesIO(b"b" * 40_000), 60_000)
        sealed, sources = store.seal(KEY, 100_000), 1
    else:
        sealed, sources = store.concatenate([KEY, OTHER]), 2
    assert (sealed.size, sealed.md5) == (100_000, md5_of(b"a" * 60_000 + b"b" * 40_000))
    updates = RecordingMd5.buffers
    assert sum(size for _, size in updates) == 100_000
    assert all(size <= 4096 for _, size in updates)
    buffers = {id(buffer): buffer for buffer, _ in updates}  # kept alive: ids are unique
    assert len(buffers) == sources  # one buffer per file read, whatever its size
    assert all(len(buffer) == 4096 for buffer in buffers.values())


@pytest.mark.skipif(not AVAILABLE, reason="libcrypto's MD5 state cannot be saved here")
def test_hash_prefix_resumes_across_mapping_windows(store, monkeypatch):
    lengths = []

    def mapped(fileno, length, **kwargs):
        lengths.append(length)
        return mmap.mmap(fileno, length, **kwargs)

    monkeypatch.setattr(local, "HASH_WINDOW", 3 * GRANULARITY)
    monkeypatch.setattr(local, "mmap", types.SimpleNamespace(
        mmap=mapped, ACCESS_COPY=mmap.ACCESS_COPY, ALLOCATIONGRANULARITY=GRANULARITY))
    body = os.urandom(10 * GRANULARITY + 123)
    store.create(KEY)
    written(store, KEY, body)
    state = None
    for end in (1000, 5 * GRANULARITY + 7, len(body)):  # unaligned starts
        state = store.hash_prefix(KEY, state, end)
        assert Md5State(state).length == end
        assert Md5State(state).hexdigest() == md5_of(body[:end])
    assert len(lengths) >= 5 and max(lengths) <= 3 * GRANULARITY


def test_chunks_are_files_beside_the_data_file(store, root):
    store.create(KEY)
    directory = root / "chunks" / KEY
    store.write_chunk(KEY, 1, io.BytesIO(b"b" * 10), 10)
    store.write_chunk(KEY, 3, io.BytesIO(b"d" * 4), None)
    assert files_under(directory) == [CLAIMS, "3", "data"]
    assert (directory / "3").read_bytes() == b"dddd"
    assert (directory / "data").read_bytes() == b"\0" * 10 + b"b" * 10
    assert store.place_chunks(KEY, 10) == [3]
    assert files_under(directory) == [CLAIMS, "3", "data"]
    store.drop_chunks(KEY, [3])
    assert files_under(directory) == [CLAIMS, "data"]
    assert (directory / "data").read_bytes() == b"\0" * 10 + b"b" * 10 + b"\0" * 10 + b"dddd"
    store.create(OTHER)
    written(store, OTHER, b"tus bytes")
    assert (root / "chunks" / OTHER / "data").read_bytes() == b"tus bytes"


def test_stored_sizes_take_the_data_file_for_every_chunk_it_reaches(store):
    store.create(KEY)
    store.write_chunk(KEY, 1, io.BytesIO(b"b" * 10), 10)
    # Chunk 0 lies in the file's first bytes (a hole here); chunk 2 ends past the file.
    assert store.stored_sizes(KEY, {0: 10, 1: 10, 2: 10}, 10) == {0: 10, 1: 10}


def test_clear_leaves_only_the_claims_file(root):
    store = new_store(root, fsync="complete")
    store.create(KEY)
    store.write_chunk(KEY, 0, io.BytesIO(b"a"), 0)
    store.write_chunk(KEY, 1, io.BytesIO(b"b"), None)
    (root / "chunks" / KEY / ".stray.part").write_bytes(b"a write that died")
    store.clear(KEY)
    assert files_under(root / "chunks") == [f"{KEY}/{CLAIMS}"]


# -- boot marks ------------------------------------------------------------------------------


WRITES = {
    "write": lambda s: s.write(KEY, 0, io.BytesIO(b"bytes"), 10),
    "in-place": lambda s: s.write_chunk(KEY, 0, io.BytesIO(b"bytes"), 0),
    "aside": lambda s: s.write_chunk(KEY, 0, io.BytesIO(b"bytes"), None),
}


@pytest.mark.parametrize("how", WRITES)
@pytest.mark.parametrize("fsync", [True, "complete", False])
def test_a_boot_mark_comes_before_bytes_not_fsynced(root, fsync, how):
    store = new_store(root, fsync)
    store.create(KEY)
    mark = root / "chunks" / KEY / DATA_BOOT
    WRITES[how](store)
    assert mark.exists() is (fsync is not True)
    if fsync is True:
        return
    assert mark.read_text() == BOOT
    inode = mark.stat().st_ino
    WRITES[how](store)
    assert mark.stat().st_ino == inode  # once per upload and boot
    stored = "0" if how == "aside" else "data"
    assert files_under(root / "chunks" / KEY) == sorted([CLAIMS, DATA_BOOT, stored])


@pytest.mark.parametrize("fsync", [True, "complete"])
def test_a_mark_of_another_boot_goes_with_the_next_write(root, fsync):
    store = new_store(root, "complete")
    store.create(KEY)
    written(store, KEY, b"lost")
    after = new_store(root, fsync, boot_id=NEXT_BOOT)
    assert after.lost_in_restart(KEY) and after.size(KEY) == 0
    assert (root / "chunks" / KEY / DATA_BOOT).read_text() == BOOT  # asking changes nothing
    written(after, KEY, b"again")
    mark = root / "chunks" / KEY / DATA_BOOT
    assert not after.lost_in_restart(KEY)
    if fsync is True:
        assert not mark.exists()
    else:
        assert mark.read_text() == NEXT_BOOT


def test_without_a_boot_id_nothing_is_marked_or_lost(root):
    store = new_store(root, "complete", boot_id=None)
    store.create(KEY)
    written(store, KEY, b"trusted")
    assert not (root / "chunks" / KEY / DATA_BOOT).exists()
    after = new_store(root, "complete", boot_id=None)
    assert not after.lost_in_restart(KEY) and after.size(KEY) == 7


# -- locks -----------------------------------------------------------------------------------


def test_lock_files_live_under_locks(store, root):
    with store.locker.hold(KEY, exclusive=False), store.locker.hold(HASH_LOCK):
        assert files_under(root / "locks") == [KEY, HASH_LOCK]
    assert files_under(root / "locks") == [KEY, HASH_LOCK]  # made on first use, kept
    assert files_under(root / "chunks") == []  # a lock makes no upload


def test_delete_removes_the_lock_files_too(store, root):
    store.create(KEY)
    written(store, KEY, b"bytes")
    with store.locker.hold(KEY), store.locker.hold(HASH_LOCK):
        pass
    store.delete(KEY)
    assert files_under(root / "locks") == [] and files_under(root / "chunks") == []


def test_a_lock_file_alone_is_listed_for_cleanup_until_deleted(store, root):
    # A request that raced a removal can leave a lock file behind: cleanup must see it.
    with store.locker.hold(HASH_LOCK):
        pass
    assert [key for key, _ in store.upload_keys()] == [KEY]
    store.delete(KEY)
    assert list(store.upload_keys()) == [] and files_under(root / "locks") == []


def test_a_waiter_locks_the_file_the_name_means_now(store, root, monkeypatch):
    polling = threading.Event()

    def sleep(seconds: float) -> None:
        polling.set()  # the waiter has the lock file open and found it busy
        time.sleep(seconds)

    monkeypatch.setattr(locking, "time", types.SimpleNamespace(monotonic=time.monotonic,
                                                               sleep=sleep))
    waiter = InThread(lambda: store.locker.hold(KEY, True, WAIT))
    with InThread(lambda: store.locker.hold(KEY, True, 0)):
        waiter.start()
        assert polling.wait(WAIT)
        store.locker.forget(KEY)  # removed under the waiter (an upload being deleted)
        assert not (root / "locks" / KEY).exists()
    with waiter:
        assert (root / "locks" / KEY).exists()
        # The waiter holds the file the name means now, not the removed one.
        with pytest.raises(LockBusy), store.locker.hold(KEY, True, 0):
            pass
    with store.locker.hold(KEY, True, 0):
        pass


# -- housekeeping ------------------------------------------------------------------------------


def test_housekeeping_listings(store, root):
    store.create(KEY)
    part = store.spool()  # nameless: never listed
    leftover = root / "temp" / "spool-x1.part"  # an earlier version's, after a crash
    leftover.write_bytes(b"a part whose process died")
    assert [key for key, _ in store.upload_keys()] == [KEY]
    assert [found for found, _ in store.temp_files()] == ["temp/spool-x1.part"]
    store.remove_temp_file("temp/spool-x1.part")
    assert not leftover.exists() and list(store.temp_files()) == []
    part.close()


def test_temp_files_left_in_chunk_directories_are_listed(store, root):
    store.create(KEY)
    (root / "chunks" / KEY / ".x1.part").write_bytes(b"a chunk write that died")
    assert [name for name, _ in store.temp_files()] == [f"chunks/{KEY}/.x1.part"]
    store.remove_temp_file(f"chunks/{KEY}/.x1.part")
    assert list(store.temp_files()) == []


def test_remove_temp_file_removes_nothing_but_temporary_files(store, root):
    published(store, "movie.part", b"a finished file")
    store.create(KEY)
    written(store, KEY, b"bytes")
    for stray in ("x.part", "chunks/x.part", "locks/x.part"):
        (root / stray).write_bytes(b"not a temporary file")
    before = files_under(root)
    for name in ("uploads/movie.part", f"chunks/{KEY}/data", f"chunks/{KEY}/{CLAIMS}",
                 "x.part", "chunks/x.part", "locks/x.part", "temp/../uploads/movie.part",
                 str(root / "uploads" / "movie.part"), "../data/uploads/movie.part"):
        store.remove_temp_file(name)
    assert files_under(root) == before
    assert read_file(store, "movie.part") == b"a finished file"


# -- finished files --------------------------------------------------------------------------


def test_a_finished_upload_is_never_copied(store, root):
    store.create(KEY)
    written(store, KEY, b"linked, not copied")
    store.publish(store.seal(KEY, 18), "done.bin")
    data = root / "chunks" / KEY / "data"
    assert (root / "uploads" / "done.bin").stat().st_ino == data.stat().st_ino


def test_copy_links_the_same_bytes_under_another_name(store, root):
    uploads = root / "uploads"
    published(store, "original.bin", b"shared bytes")
    store.publish(store.copy("original.bin"), "copy.bin")
    assert (uploads / "copy.bin").read_bytes() == b"shared bytes"
    assert (uploads / "copy.bin").stat().st_ino == (uploads / "original.bin").stat().st_ino


def test_without_hard_links_files_are_copied_and_never_replaced(store, root, monkeypatch):
    def no_links(source, dest, **kwargs):
        raise OSError(errno.EPERM, "no hard links here", dest)

    monkeypatch.setattr(os, "link", no_links)
    uploads = root / "uploads"
    store.publish(sealed_upload(store, KEY, b"first"), "a.bin")
    assert (uploads / "a.bin").stat().st_ino != (root / "chunks" / KEY / "data").stat().st_ino
    sealed = sealed_upload(store, OTHER, b"second")
    with pytest.raises(NameTaken):
        store.publish(sealed, "a.bin")
    assert (uploads / "a.bin").read_bytes() == b"first"
    store.publish(sealed, "a.bin", replace=True)
    assert (uploads / "a.bin").read_bytes() == b"second"
    store.publish(store.copy("a.bin"), "b.bin")
    assert (uploads / "b.bin").read_bytes() == b"second"
    assert (uploads / "b.bin").stat().st_ino != (uploads / "a.bin").stat().st_ino
    assert files_under(root / "temp") == []


def test_serve_gives_the_path_of_the_finished_file(store, root):
    published(store, "served.bin", b"served bytes")
    download = store.serve("served.bin")
    assert download.path == str(root / "uploads" / "served.bin")
    with open(download.path, "rb") as served:
        assert (download.size, served.read()) == (12, b"served bytes")


@pytest.mark.parametrize("fsync", [True, "complete", False])
def test_a_write_starts_its_writeback_as_it_goes(root, monkeypatch, fsync):
    """Every buffer is sent on its way to the disk as soon as it is written, whatever the
    fsync mode (the fsync before an answer then has little left, and dirty pages never pile
    up until the kernel throttles the writer)."""
    ranges = []
    original = writeback.start

    def recording(fd, offset, length):
        ranges.append((offset, length))
        original(fd, offset, length)

    monkeypatch.setattr(writeback, "start", recording)
    store = new_store(root, fsync=fsync, buffer_size=64 * 1024)
    key = "ab" * 16
    store.create(key)
    data = os.urandom(200_000)
    store.write(key, 0, io.BytesIO(data[:100]), 100)
    assert store.write(key, 100, io.BytesIO(data[100:]), len(data)).size == len(data) - 100
    assert ranges[0] == (0, 100)
    assert sum(length for _, length in ranges) == len(data)
    assert all(a + n == b for (a, n), (b, _) in zip(ranges, ranges[1:], strict=False))
    with open(os.path.join(root, "chunks", key, "data"), "rb") as f:
        assert f.read() == data
