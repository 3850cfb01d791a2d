"""AzureStore: the storage contract on Azurite, and how it keeps an upload's bytes there:
chunks as staged blocks committed once, writes committed only over what they listed,
nothing left behind."""
import io
import sys
import uuid

import pytest

from uploadsvc.storage import AzureStore, StorageFull, StorageUnavailable, UploadGone, open_store
from uploadsvc.storage.azure.client import make_client

pytest.register_assert_rewrite("tests.storage_contract")

from .azurite import CONTAINER, Azurite  # noqa: E402
from .storage_contract import (  # noqa: E402 - after the rewrite
    NEVER,
    StoreContract,
    hashed,
    md5_of,
    needs_md5state,
    spooled,
    stored_bytes,
)
from .stores import start_failure  # noqa: E402

KEY = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


def new_store(azurite, data_dir, prefix=None, **options) -> AzureStore:
    prefix = prefix or f"t-{uuid.uuid4().hex[:12]}"
    client = azurite.service().get_container_client(CONTAINER)
    return AzureStore(client, f"azure://{CONTAINER}/{prefix}", str(data_dir),
                      buffer_size=1024, **options)


def blobs(store) -> list[str]:
    """Every blob under the store's prefix (those of staged blocks only too)."""
    return sorted(blob.name[len(store.prefix):] for blob in store.client.list_blobs(
        name_starts_with=store.prefix, include=["uncommittedblobs"]))


def blocks(store, key: str) -> tuple[list[str], list[str]]:
    """The kinds of an upload's committed and staged blocks, in order."""
    committed, staged = store._blob(store._upload_name(key)).get_block_list("all")
    return ([block.id[:1] for block in committed], sorted(block.id[:1] for block in staged))


class TestAzureStore(StoreContract):
    """Every staged block and every commit is acknowledged by the store: a restart costs
    nothing. Where Azure differs (a staged block is read only once committed), the tests
    below say how."""

    durable_writes = True

    @pytest.fixture
    def store(self, azurite, tmp_path):
        self.prefix = f"t-{uuid.uuid4().hex[:12]}"
        return new_store(azurite, tmp_path / "data", self.prefix)

    @pytest.fixture
    def restarted_store(self, azurite, tmp_path):
        return lambda: new_store(azurite, tmp_path / "data", self.prefix)

    # A chunk is staged with no request asking whether its upload exists (its one Put
    # Block is all it costs): the service finds the row gone when it records the chunk and
    # removes the upload's blob again, and cleanup lists blobs of staged blocks too.

    @pytest.mark.parametrize("offset", [0, None], ids=["in-place", "aside"])
    @pytest.mark.parametrize("spool", [False, True], ids=["body", "spooled"])
    def test_chunks_of_an_upload_never_created_are_gone(self, store, chunks, offset, spool):
        with pytest.raises(UploadGone):
            chunks.place_chunks(NEVER, 1)
        with pytest.raises(UploadGone):
            chunks.clear(NEVER)
        assert chunks.stored_sizes(NEVER, {0: 1}, 1) == {}
        with chunks.claim(NEVER, 0) as claimed, \
                spooled(store, b"x") if spool else io.BytesIO(b"x") as src:
            assert claimed is True
            assert chunks.write_chunk(NEVER, 0, src, offset) == 1
        with pytest.raises(UploadGone):
            chunks.place_chunks(NEVER, 1)
        with pytest.raises(UploadGone):
            store.seal(NEVER, 1)
        assert [key for key, _ in store.upload_keys()] == [NEVER]
        store.delete(NEVER)
        assert list(store.upload_keys()) == [] and blobs(store) == []
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
        assert list(store.upload_keys()) == [] and blobs(store) == []

    def test_placed_chunks_stay_aside_until_dropped(self, store, chunks):
        # Placing commits the copies aside where they stand: nothing of them stays aside.
        store.create(KEY)
        chunks.write_chunk(KEY, 1, io.BytesIO(b"bb"), None)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"aa"), None)
        assert chunks.chunks_aside(KEY, [0, 1]) == [0, 1]
        assert chunks.place_chunks(KEY, 2) == [0, 1]
        assert chunks.chunks_aside(KEY, [0, 1]) == []
        assert chunks.place_chunks(KEY, 2) == []  # placing again changes nothing
        chunks.drop_chunks(KEY, [0, 1])
        assert chunks.stored_sizes(KEY, {0: 2, 1: 2}, 2) == {0: 2, 1: 2}
        assert stored_bytes(store, KEY) == b"aabb"

    @needs_md5state
    def test_bytes_in_place_do_not_change_until_chunks_are_placed(self, store, chunks):
        store.create(KEY)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"first try!"), 0)
        with pytest.raises(ValueError):  # staged, not committed: not read back yet
            store.hash_prefix(KEY, None, 10)
        assert chunks.unplaced_chunks(KEY, [0], 10) == [0]
        chunks.place_chunks(KEY, 10)
        assert chunks.unplaced_chunks(KEY, [0], 10) == []
        state = store.hash_prefix(KEY, None, 10)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"second try"), None)  # a re-send goes aside
        assert chunks.unplaced_chunks(KEY, [0], 10) == [0]
        assert store.hash_prefix(KEY, None, 10) == state
        chunks.place_chunks(KEY, 10)
        assert hashed(store.hash_prefix(KEY, None, 10)) == (10, md5_of(b"second try"))

    def test_temp_files_are_listed_and_removed(self, store):
        # A sealed upload is its own blob, committed: only a join leaves a blob of its own.
        store.create(KEY)
        store.write(KEY, 0, io.BytesIO(b"left behind"), 11)
        sealed = store.seal(KEY, 11)
        assert list(store.temp_files()) == []
        store.discard(sealed)
        assert store.size(KEY) == 11
        joined = store.concatenate([KEY])
        [(name, _)] = store.temp_files()
        store.remove_temp_file(name)
        assert list(store.temp_files()) == []
        store.discard(joined)

    def test_a_chunk_written_in_place_drops_its_copy_aside(self, store, chunks):
        # A staged block cannot be removed: a copy aside stays until completion, where it
        # stands in place. The services write in place only a chunk never recorded, so such a
        # copy is one that a crash left before its record; completion then hashes the file
        # whole, never trusting a hash carried through the bytes in place.
        store.create(KEY)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"aside"), None)
        chunks.write_chunk(KEY, 0, io.BytesIO(b"place"), 0)
        assert chunks.chunks_aside(KEY, [0]) == [0]
        assert chunks.place_chunks(KEY, 5) == [0]
        assert chunks.chunks_aside(KEY, [0]) == []
        assert stored_bytes(store, KEY) == b"aside"


# -- the store stopped, and at start --------------------------------------------------------


def test_the_store_stopped_answers_unavailable_then_works(azurite, tmp_path):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
        client = make_client(CONTAINER, timeout=1, attempts=1)
    store = AzureStore(client, f"azure://{CONTAINER}/t-{uuid.uuid4().hex[:12]}",
                       str(tmp_path / "data"))
    store.create(KEY)
    azurite.pause()
    try:
        with pytest.raises(StorageUnavailable):
            store.write(KEY, 0, io.BytesIO(b"bytes"), 5)
    finally:
        azurite.resume()
    assert store.write(KEY, 0, io.BytesIO(b"bytes"), 5).size == 5


def test_a_missing_container_fails_at_start_in_one_line(tmp_path, azure_env, monkeypatch):
    line = start_failure(tmp_path, "azure://no-such-container/x", monkeypatch)
    assert "azure://no-such-container/x/" in line and "does not exist" in line


def test_wrong_credentials_fail_at_start_in_one_line(tmp_path, azure_env, monkeypatch):
    wrong = azure_env.connection_string.replace("AccountKey=Eby8", "AccountKey=Xby8")
    line = start_failure(tmp_path, f"azure://{CONTAINER}/x", monkeypatch,
                 AZURE_STORAGE_CONNECTION_STRING=wrong)
    assert "refused the credentials" in line and "Xby8" not in line


def test_no_account_and_an_unreachable_store_fail_at_start_in_one_line(tmp_path, azure_env,
                                                                       monkeypatch):
    line = start_failure(tmp_path, f"azure://{CONTAINER}/x", monkeypatch,
                 AZURE_STORAGE_CONNECTION_STRING="")
    assert "AZURE_STORAGE_CONNECTION_STRING" in line
    unreachable = azure_env.connection_string.replace(azure_env.endpoint,
                                                      "http://127.0.0.1:1/devstoreaccount1")
    line = start_failure(tmp_path, f"azure://{CONTAINER}/x", monkeypatch,
                 AZURE_STORAGE_CONNECTION_STRING=unreachable)
    assert "cannot reach Azure" in line
    line = start_failure(tmp_path, "azure://UPPER/x", monkeypatch)
    assert "is not an Azure container name" in line


def test_a_usable_container_opens(tmp_path, azure_env):
    assert isinstance(open_store(str(tmp_path / "data"), storage_url=f"azure://{CONTAINER}/x"),
                      AzureStore)


@pytest.mark.parametrize("url, package, extra", [
    (f"azure://{CONTAINER}/x", "azure-storage-blob", "azure"),
    ("gs://bucket/x", "google-cloud-storage", "gcs"),
])
def test_a_store_whose_sdk_is_not_installed_fails_at_start_in_one_line(
        tmp_path, monkeypatch, url, package, extra):
    # An SDK left out of the install (an optional extra), as Python sees a missing package.
    prefixes = ("azure", "google", "uploadsvc.storage.azure", "uploadsvc.storage.gcs")
    for name in [name for name in sys.modules if name.startswith(prefixes)]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "azure", None)
    monkeypatch.setitem(sys.modules, "google", None)
    line = start_failure(tmp_path, url, monkeypatch)
    assert line.startswith(f"{package} is not installed"), line
    assert f"pip install 'uploadsvc[{extra}]'" in line


def test_a_store_out_of_room_is_full_not_an_unexpected_error(tmp_path):
    """Azurite with 1 MB of memory for blobs: a write past it is StorageFull (507 in the
    service), and the store's failure is said in one sentence."""
    full = Azurite(tmp_path / "azurite", memory_limit_mb=1).start()
    try:
        store = new_store(full, tmp_path / "data")
        store.create(KEY)
        with pytest.raises(StorageFull, match="full"):
            store.write(KEY, 0, io.BytesIO(b"x" * (4 * 1024 * 1024)), 4 * 1024 * 1024)
    finally:
        full.stop()
