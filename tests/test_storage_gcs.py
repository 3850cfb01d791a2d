"""GCSStore: the storage contract on a GCS emulator, and how it keeps an upload's bytes
there: chunks as objects composed at completion, 32 at a time, nothing left behind."""
import hashlib
import io
import secrets
import uuid

import pytest
import requests

from uploadsvc.storage import GCSStore, StorageUnavailable, UploadGone, open_store
from uploadsvc.storage.gcs.client import Client

pytest.register_assert_rewrite("tests.storage_contract")

from .gcsemulator import BUCKET  # noqa: E402
from .storage_contract import NEVER, StoreContract, spooled  # noqa: E402 - after the rewrite
from .stores import start_failure  # noqa: E402

KEY = "0123456789abcdef0123456789abcdef"


def new_store(data_dir, prefix=None, **options) -> GCSStore:
    prefix = prefix or f"t-{uuid.uuid4().hex[:12]}"
    return GCSStore(Client(BUCKET), f"gs://{BUCKET}/{prefix}", str(data_dir),
                    buffer_size=1024, **options)


def objects(store) -> list[str]:
    """Every object under the store's prefix, by its name below the prefix."""
    return sorted(blob.name[len(store.prefix):] for blob in store.client.client.list_blobs(
        BUCKET, prefix=store.prefix))


class TestGCSStore(StoreContract):
    """Every write is an object the store acknowledged: a restart costs nothing."""

    durable_writes = True

    @pytest.fixture
    def store(self, gcs_env, tmp_path):
        self.prefix = f"t-{uuid.uuid4().hex[:12]}"
        return new_store(tmp_path / "data", self.prefix)

    @pytest.fixture
    def restarted_store(self, gcs_env, tmp_path):
        return lambda: new_store(tmp_path / "data", self.prefix)

    # A chunk is claimed and written with no request asking whether its upload exists (its
    # own upload is all it costs): the service finds the row gone when it records the chunk
    # and removes the upload's objects again, and cleanup lists what is left.

    @pytest.mark.parametrize("offset", [0, None], ids=["in-place", "aside"])
    @pytest.mark.parametrize("spool", [False, True], ids=["body", "spooled"])
    def test_chunks_of_an_upload_never_created_are_gone(self, store, chunks, offset, spool):
        with pytest.raises(UploadGone):
            chunks.place_chunks(NEVER, 1)
        with pytest.raises(UploadGone):
            chunks.clear(NEVER)
        assert chunks.stored_sizes(NEVER, {0: 1}, 1) == {}
        assert chunks.chunks_aside(NEVER, [0]) == []
        with chunks.claim(NEVER, 0) as claimed, \
                spooled(store, b"x") if spool else io.BytesIO(b"x") as src:
            assert claimed is True
            assert chunks.write_chunk(NEVER, 0, src, offset) == 1
        assert [key for key, _ in store.upload_keys()] == [NEVER]
        store.delete(NEVER)
        assert list(store.upload_keys()) == [] and objects(store) == []
        assert list(store.temp_files()) == []

    def test_chunks_of_a_deleted_upload_are_gone(self, store, chunks):
        store.create(KEY)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"x"), None)
        store.delete(KEY)
        chunks.write_chunk(KEY, 1, io.BytesIO(b"y"), None)
        chunks.write_chunk(KEY, 1, io.BytesIO(b"y"), 1)
        with pytest.raises(UploadGone):
            store.seal(KEY, 1)
        assert [key for key, _ in store.upload_keys()] == [KEY]
        store.delete(KEY)
        assert chunks.chunks_aside(KEY, [0, 1]) == []
        assert list(store.upload_keys()) == [] and objects(store) == []


# -- how the bytes are kept in the bucket, tested here only ---------------------------------


@pytest.fixture
def store(gcs_env, tmp_path):
    return new_store(tmp_path / "data")


def test_more_than_32_chunks_are_composed_in_rounds_and_nothing_is_left(store):
    parts = [secrets.token_bytes(100) for _ in range(70)] + [b"end"]
    store.create(KEY)
    for index, part in enumerate(parts):
        store.write_chunk(KEY, index, io.BytesIO(part), index * 100)
    whole = b"".join(parts)
    sealed = store.seal(KEY, len(whole))
    assert (sealed.size, sealed.md5) == (len(whole), hashlib.md5(whole).hexdigest())
    store.publish(sealed, "file")
    store.delete(KEY)
    with store.open_file("file") as f:
        assert f.read() == whole
    assert objects(store) == ["uploads/file"]


def test_a_segment_cut_short_is_composed_from_a_copy_of_its_part(store):
    store.create(KEY)
    store.write(KEY, 0, io.BytesIO(b"0123456789"), 10)
    store.write(KEY, 4, io.BytesIO(b"xy"), 10)  # the first segment counts to 4 now
    store.write(KEY, 6, io.BytesIO(b"z"), 10)
    sealed = store.seal(KEY, 7)
    store.publish(sealed, "cut")
    with store.open_file("cut") as f:
        assert f.read() == b"0123xyz"
    store.delete(KEY)
    assert objects(store) == ["uploads/cut"]


def test_what_the_store_removes_the_emulator_keeps_no_copy_of(store, gcs_env):
    """The emulator runs as a bucket without soft delete: its default keeps every removed
    object for 7 days, which filled the bench's memory and then its disk."""
    store.create(KEY)
    store.write_chunk(KEY, 0, io.BytesIO(b"x" * 1000), 0)
    store.delete(KEY)
    kept = requests.get(f"{gcs_env.endpoint}/storage/v1/b/{BUCKET}/o", timeout=10,
                        params={"softDeleted": "true", "prefix": store.prefix}).json()
    assert kept["kind"] == "storage#objects" and kept["items"] == []


# -- the store stopped, and at start --------------------------------------------------------


def test_the_store_stopped_answers_unavailable_then_works(gcs_env, tmp_path):
    store = GCSStore(Client(BUCKET, timeout=1), f"gs://{BUCKET}/t-{uuid.uuid4().hex[:12]}",
                     str(tmp_path / "data"))
    store.create(KEY)
    gcs_env.pause()
    try:
        with pytest.raises(StorageUnavailable):
            store.write(KEY, 0, io.BytesIO(b"bytes"), 5)
    finally:
        gcs_env.resume()
    assert store.write(KEY, 0, io.BytesIO(b"bytes"), 5).size == 5


def test_a_missing_bucket_fails_at_start_in_one_line(tmp_path, gcs_env, monkeypatch):
    line = start_failure(tmp_path, "gs://no-such-bucket/x", monkeypatch)
    assert "gs://no-such-bucket/x/" in line and "does not exist" in line


def test_an_unreachable_store_fails_at_start_in_one_line(tmp_path, gcs_env, monkeypatch):
    line = start_failure(tmp_path, f"gs://{BUCKET}/x", monkeypatch,
                 STORAGE_EMULATOR_HOST="http://127.0.0.1:1")
    assert "cannot reach GCS" in line and "STORAGE_EMULATOR_HOST" in line
    assert "is not a GCS bucket name" in start_failure(tmp_path, "gs://x/y", monkeypatch)


def test_a_usable_bucket_opens(tmp_path, gcs_env):
    assert isinstance(open_store(str(tmp_path / "data"), storage_url=f"gs://{BUCKET}/x"),
                      GCSStore)
