"""ChunkStore on a temp directory, without Flask."""
import hashlib
import io
import os
import threading

import pytest

from uploadsvc.storage.local import ChunkStore, LockBusy, NameTaken, UploadGone

KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def store(tmp_path):
    return ChunkStore(str(tmp_path / "data"))


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_layout_is_created(store, tmp_path):
    for name in ("temp", "chunks", "uploads"):
        assert (tmp_path / "data" / name).is_dir()


def test_spooled_chunk_is_renamed_into_place_without_leftovers(store, tmp_path):
    store.create(KEY)
    spool = store.spool()
    spool.write(b"hello")
    assert store.put_chunk(KEY, 0, spool) == 5
    spool.close()
    data = tmp_path / "data"
    assert (data / "chunks" / KEY / "0").read_bytes() == b"hello"
    assert files_under(data / "temp") == []


def test_unclaimed_spool_file_is_removed_on_close(store, tmp_path):
    spool = store.spool()
    spool.write(b"abandoned")
    spool.close()
    assert files_under(tmp_path / "data" / "temp") == []


def test_resent_chunk_replaces_the_old_copy(store):
    store.create(KEY)
    store.put_chunk(KEY, 3, io.BytesIO(b"old bytes"))
    store.put_chunk(KEY, 3, io.BytesIO(b"new"))
    assert store.stored_sizes(KEY, {3: 3}, 10) == {3: 3}


def test_chunk_for_missing_directory_is_gone(store):
    with pytest.raises(UploadGone):
        store.put_chunk(KEY, 0, io.BytesIO(b"x"))
    with pytest.raises(UploadGone):
        store.put_chunk_at(KEY, 0, io.BytesIO(b"x"), 0)


def seal_parts(store, parts, order, in_files=()):
    """Chunks of equal size (the last shorter) written in place, or in chunk files, then
    placed and sealed."""
    chunk_size = len(parts[0])
    for index in order:
        if index in in_files:
            store.put_chunk(KEY, index, io.BytesIO(parts[index]))
        else:
            store.put_chunk_at(KEY, index, io.BytesIO(parts[index]), index * chunk_size)
    placed = store.place_chunk_files(KEY, chunk_size)
    merged = store.seal(KEY, sum(map(len, parts)))
    store.drop_chunk_files(KEY, placed)
    return merged, placed


@pytest.mark.parametrize("spooled", [False, True])
def test_chunks_in_place_and_in_files_seal_in_order_and_hash(store, tmp_path, spooled):
    store.create(KEY)
    parts = [os.urandom(70_000), os.urandom(70_000), os.urandom(70_000), os.urandom(123)]
    if spooled:  # a spooled part is copied into place by the kernel
        spool = store.spool()
        spool.write(parts[2])
        spool.seek(0)
        assert store.put_chunk_at(KEY, 2, spool, 140_000) == 70_000
        spool.close()
    merged, placed = seal_parts(store, parts, (3, 0, 1) if spooled else (3, 2, 0, 1),
                                in_files=(3,))
    whole = b"".join(parts)
    assert placed == [3] and merged.size == len(whole)
    assert merged.md5 == hashlib.md5(whole).hexdigest()
    with open(merged.path, "rb") as f:
        assert f.read() == whole
    assert files_under(tmp_path / "data" / "chunks") == [f"{KEY}/.lock", f"{KEY}/data"]


def test_sealing_uses_fixed_buffers(tmp_path):
    store = ChunkStore(str(tmp_path / "data"), buffer_size=4096)
    store.create(KEY)
    merged, _ = seal_parts(store, [b"a" * 100_000], [0])
    assert merged.size == 100_000
    assert merged.md5 == hashlib.md5(b"a" * 100_000).hexdigest()


def test_stored_sizes_follow_the_data_file_and_chunk_files(store, tmp_path):
    store.create(KEY)
    store.put_chunk_at(KEY, 1, io.BytesIO(b"b" * 10), 10)
    store.put_chunk(KEY, 3, io.BytesIO(b"d" * 4))
    recorded = {0: 10, 1: 10, 2: 10, 3: 4}
    # Chunk 0 lies in the file's first bytes (a hole here); chunk 2 ends past the file.
    assert store.stored_sizes(KEY, recorded, 10) == {0: 10, 1: 10, 3: 4}
    assert store.chunk_files(KEY, [0, 1, 2, 3]) == [3]


def test_place_never_replaces_a_different_file(store, tmp_path):
    store.create(KEY)
    (tmp_path / "data" / "uploads" / "report.pdf").write_bytes(b"someone else's")
    merged, _ = seal_parts(store, [b"mine"], [0])
    with pytest.raises(NameTaken):
        store.place(merged, "report.pdf")
    assert (tmp_path / "data" / "uploads" / "report.pdf").read_bytes() == b"someone else's"
    store.place(merged, "report (1).pdf")
    assert (tmp_path / "data" / "uploads" / "report (1).pdf").read_bytes() == b"mine"
    assert files_under(tmp_path / "data" / "temp") == []


def test_place_can_replace_its_own_reserved_name(store, tmp_path):
    store.create(KEY)
    merged, _ = seal_parts(store, [b"retry"], [0])
    (tmp_path / "data" / "uploads" / "a.bin").write_bytes(b"retry")
    store.place(merged, "a.bin", replace=True)
    assert (tmp_path / "data" / "uploads" / "a.bin").read_bytes() == b"retry"


def test_snapshot_links_the_same_bytes_under_another_name(store, tmp_path):
    uploads = tmp_path / "data" / "uploads"
    (uploads / "original.bin").write_bytes(b"shared bytes")
    store.place(store.snapshot("original.bin"), "copy.bin")
    assert (uploads / "copy.bin").read_bytes() == b"shared bytes"
    assert (uploads / "copy.bin").stat().st_ino == (uploads / "original.bin").stat().st_ino


@pytest.mark.parametrize("bad", ["", ".", "..", "../x", "a/b", "x\0y"])
def test_stored_names_cannot_leave_the_uploads_directory(store, bad):
    with pytest.raises(ValueError):
        store.has_file(bad)


@pytest.mark.parametrize("bad", ["../etc", "ABCDEF0123456789ABCDEF0123456789", "x" * 32, ""])
def test_keys_must_be_server_made(store, bad):
    with pytest.raises(ValueError):
        store.create(bad)


def test_exclusive_lock_excludes_shared_and_exclusive(store):
    store.create(KEY)
    with store.lock(KEY, exclusive=True, timeout=1):
        errors = []

        def try_lock(exclusive):
            try:
                with store.lock(KEY, exclusive=exclusive, timeout=0.1):
                    pass
            except LockBusy as exc:
                errors.append(exc)

        threads = [threading.Thread(target=try_lock, args=(ex,)) for ex in (True, False)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(errors) == 2


def test_shared_locks_coexist(store):
    store.create(KEY)
    with store.lock(KEY, exclusive=False, timeout=1):
        with store.lock(KEY, exclusive=False, timeout=0.1):
            pass


def test_lock_of_deleted_upload_is_gone(store):
    with pytest.raises(UploadGone):
        with store.lock(KEY, exclusive=True, timeout=0):
            pass


def test_housekeeping_listings(store, tmp_path):
    store.create(KEY)
    spool = store.spool()
    assert [k for k, _ in store.chunk_dir_keys()] == [KEY]
    assert [os.path.basename(p) for p, _ in store.temp_files()] == [os.path.basename(spool.path)]
    store.remove_temp_file(spool.path)
    assert list(store.temp_files()) == []
    spool.close()
