"""What the Azure backend costs in requests: each HTTP request its real SDK client sends to
the session's Azurite is counted (at the transport, so retries count too), for the writes
every upload makes many times and for completion."""
import hashlib
import io
import os
import threading
import tracemalloc
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from uploadsvc.storage import AzureStore, LeaseLost
from uploadsvc.storage.azure.client import make_client

from .azurite import CONTAINER
from .helpers import finished_bytes, leftovers, random_file, send_chunk
from .test_s3_requests import Paused
from .tus_helpers import create, head, patch, path_of

KEY = "0123456789abcdef0123456789abcdef"
MiB = 1024 * 1024


def operation(method: str, url: str, headers) -> str:
    """The Blob service operation an HTTP request is."""
    query = parse_qs(urlsplit(url).query)
    comp = query.get("comp", [""])[0]
    if comp == "list":
        return "ListBlobs"
    if comp == "block":
        return "PutBlock"
    if comp == "blocklist":
        return "PutBlockList" if method == "PUT" else "GetBlockList"
    if method == "PUT" and "x-ms-copy-source" in headers:
        return "CopyBlob"
    return {"GET": "GetBlob", "HEAD": "GetBlobProperties", "DELETE": "DeleteBlob",
            "PUT": "PutBlob"}.get(method, method)


class Requests:
    """The operations a container client's transport sends, in order, while counting."""

    def __init__(self, client) -> None:
        self.transport = client._pipeline._transport
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def __enter__(self) -> "Requests":
        send = type(self.transport).send

        def counted(transport, request, **kwargs):
            with self.lock:
                self.sent.append(operation(request.method, request.url, request.headers))
            return send(transport, request, **kwargs)

        self.transport.send = counted.__get__(self.transport)
        return self

    def __exit__(self, *exc) -> None:
        del self.transport.send


def new_store(azurite, tmp_path, **options) -> AzureStore:
    client = azurite.service().get_container_client(CONTAINER)
    return AzureStore(client, f"azure://{CONTAINER}/r-{uuid.uuid4().hex[:12]}",
                      str(tmp_path / "data"), **options)


@pytest.fixture
def store(azurite, tmp_path) -> AzureStore:
    store = new_store(azurite, tmp_path)
    store.create(KEY)
    return store


def spooled(store, data: bytes):
    part = store.spool()
    part.write(data)
    part.seek(0)
    return part


# -- an /api chunk ---------------------------------------------------------------------------


@pytest.mark.parametrize("spool", [True, False], ids=["spooled", "body"])
@pytest.mark.parametrize("offset", [70_000, None], ids=["in-place", "aside"])
def test_a_chunk_is_one_put_block(store, spool, offset):
    data = b"c" * 70_000
    digest = hashlib.md5()
    with spooled(store, data) if spool else io.BytesIO(data) as src, Requests(store.client) as sent:
        with store.claim(KEY, 1) as claimed:
            assert claimed
            assert store.write_chunk(KEY, 1, src, offset, [digest]) == 70_000
    assert sent.sent == ["PutBlock"]
    assert digest.hexdigest() == hashlib.md5(data).hexdigest()  # fed as the bytes passed


def test_completion_commits_the_chunks_once_and_copies_the_file_once(store):
    parts = [bytes([65 + i]) * 1000 for i in range(5)] + [b"end"]
    for index in (3, 0, 1, 2, 5):
        store.write_chunk(KEY, index, io.BytesIO(parts[index]), index * 1000)
    store.write_chunk(KEY, 4, io.BytesIO(parts[4]), None)  # a re-send, aside
    whole = b"".join(parts)
    with Requests(store.client) as sent:
        assert store.stored_sizes(KEY, {i: len(p) for i, p in enumerate(parts)}, 1000) == {
            i: len(p) for i, p in enumerate(parts)}
        assert store.place_chunks(KEY, 1000) == [4]
        sealed = store.seal(KEY, len(whole), md5=hashlib.md5(whole).hexdigest())
        store.drop_chunks(KEY, [4])
        store.publish(sealed, "file")
        store.delete(KEY)
    assert sent.sent == ["GetBlockList", "GetBlobProperties", "GetBlockList", "PutBlockList",
                         "GetBlobProperties", "GetBlockList", "CopyBlob", "DeleteBlob"]
    with store.open_file("file") as f:
        assert f.read() == whole


def test_bytes_read_back_stream_in_one_get_with_little_memory(azurite, tmp_path, monkeypatch):
    """Hashing an upload whose MD5 was not carried, and serving its file, read the blob in
    one streamed GET each, a buffer at a time, through the app's own client. (The SDK's
    download_blob fetched 4 MiB at a time and held each fetch twice while it was read.)"""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    client = make_client(CONTAINER)
    store = AzureStore(client, f"azure://{CONTAINER}/r-{uuid.uuid4().hex[:12]}",
                       str(tmp_path / "data"))
    store.create(KEY)
    data = os.urandom(9 * MiB + 123)
    store.write_chunk(KEY, 0, io.BytesIO(data), 0)
    store.place_chunks(KEY, len(data))
    with Requests(client) as sent, Allocated() as held:
        sealed = store.seal(KEY, len(data))
    assert sealed.md5 == hashlib.md5(data).hexdigest()
    assert sent.sent.count("GetBlob") == 1, sent.sent
    assert held.peak < 2 * MiB, held.peak
    store.publish(sealed, "file")
    with Requests(client) as sent, store.open_file("file") as f:
        with Allocated() as held:
            digest = hashlib.md5()
            for piece in iter(lambda: f.read(256 * 1024), b""):
                digest.update(piece)
        assert digest.hexdigest() == sealed.md5
        assert held.peak < 2 * MiB, held.peak
        f.seek(5 * MiB)
        assert f.read(10) == data[5 * MiB:5 * MiB + 10]
    assert sent.sent.count("GetBlob") == 2, sent.sent  # the whole file, then from the seek


class Allocated:
    """The most Python allocated at once (tracemalloc) beyond what was held at the start."""

    def __enter__(self) -> "Allocated":
        tracemalloc.start()
        self.peak = 0
        return self

    def __exit__(self, *exc) -> None:
        self.peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def test_a_chunk_written_after_its_upload_was_removed_is_removed_with_it(store):
    """No request checks that the upload exists: the service, finding its row gone when it
    records the chunk, removes the upload's blob again; cleanup lists what is left."""
    store.delete(KEY)
    with store.claim(KEY, 0) as claimed:
        assert claimed
        store.write_chunk(KEY, 0, io.BytesIO(b"late"), 0)
    store.write_chunk(KEY, 1, io.BytesIO(b"later"), None)
    assert [key for key, _ in store.upload_keys()] == [KEY]
    store.delete(KEY)
    assert list(store.upload_keys()) == []


# -- a tus PATCH ------------------------------------------------------------------------------


def test_a_patch_is_a_block_list_read_a_block_and_a_commit(store):
    store.write(KEY, 0, io.BytesIO(b"first"), 5)
    digest = hashlib.md5()
    with Requests(store.client) as sent:
        written = store.write(KEY, 5, io.BytesIO(b"second"), 100, [digest])
    assert written.size == 6 and digest.hexdigest() == hashlib.md5(b"second").hexdigest()
    assert sent.sent == ["GetBlockList", "PutBlock", "PutBlockList"]
    assert store.size(KEY) == 11


def test_a_patch_longer_than_a_block_adds_only_its_blocks(azurite, tmp_path):
    store = new_store(azurite, tmp_path, block_size=1 * MiB)
    store.create(KEY)
    data = b"q" * (2 * MiB + 5)
    with Requests(store.client) as sent:
        assert store.write(KEY, 0, io.BytesIO(data), len(data)).size == len(data)
    assert sent.sent == ["GetBlockList", "PutBlock", "PutBlock", "PutBlock", "PutBlockList"]


@pytest.mark.parametrize("size", [1000, 3 * MiB], ids=["one block", "several"])
def test_a_late_write_never_replaces_the_bytes_another_wrote_at_its_offset_since(
        azurite, tmp_path, size):
    """A PATCH whose lease lapsed while its body arrived, and whose offset another PATCH
    (on another host, holding the lease now) has filled and recorded since, is refused when
    its bytes are in: its blocks have a token of their own and its commit names the block
    list it read, which changed."""
    store = new_store(azurite, tmp_path, block_size=1 * MiB)
    store.create(KEY)
    late, outcome = Paused(b"L" * size), []

    def write_late():
        try:
            outcome.append(store.write(KEY, 0, late, size))
        except LeaseLost as exc:
            outcome.append(exc)

    writer = threading.Thread(target=write_late)
    writer.start()
    assert late.started.wait(30)
    assert store.write(KEY, 0, io.BytesIO(b"T" * size), size).size == size  # the taker's
    late.go_on.set()
    writer.join(60)
    assert isinstance(outcome[0], LeaseLost), outcome
    assert b"".join(store._read(store._upload_name(KEY), 0, size)) == b"T" * size


def test_creating_an_upload_is_one_commit(azurite, tmp_path):
    store = new_store(azurite, tmp_path)
    with Requests(store.client) as sent:
        store.create(KEY)
        store.create(KEY)  # again: refused by If-None-Match, the bytes kept
    assert sent.sent == ["PutBlockList", "PutBlockList"]


# -- through the app ---------------------------------------------------------------------------


def test_an_in_order_chunk_through_the_app_is_one_put_block(azure_app):
    client = azure_app.test_client()
    f = random_file(300_000, 100_000)
    store = azure_app.extensions["store"]
    assert send_chunk(client, f, 0).status_code == 200
    with Requests(store.client) as sent:
        assert send_chunk(client, f, 1).status_code == 200
    # Its bytes only: hashed as they passed, nothing is read back.
    assert sent.sent == ["PutBlock"], sent.sent
    assert send_chunk(client, f, 2).status_code == 200
    with Requests(store.client) as sent:
        answer = client.post("/api/complete-upload", json=f.ident())
    assert answer.get_json()["md5"] == f.md5
    # Chunks found (1), committed in order (3), nothing read back (the hash passed them
    # all), copied under the name (2, and its name's check), the blob removed (1).
    # The chunks found (1), committed in order (3), the blob looked at again to seal it
    # (2, nothing read back: the hash passed every chunk), the name checked (1), the file
    # copied under it (1), the upload's blob removed (1).
    assert sent.sent == ["GetBlockList", "GetBlobProperties", "GetBlockList", "PutBlockList",
                         "GetBlobProperties", "GetBlockList", "GetBlobProperties", "CopyBlob",
                         "DeleteBlob"], sent.sent
    assert finished_bytes(azure_app, "test.bin") == f.data
    assert leftovers(azure_app) == ([], [])


def test_a_patch_through_the_app_is_three_requests(azure_app):
    client = azure_app.test_client()
    data = hashlib.sha256(b"seed").digest() * 10_000
    path = path_of(create(client, len(data)))
    assert patch(client, path, 0, data[:100_000]).status_code == 204
    store = azure_app.extensions["store"]
    with Requests(store.client) as sent:
        assert patch(client, path, 100_000, data[100_000:200_000]).status_code == 204
    assert sent.sent == ["GetBlockList", "PutBlock", "PutBlockList"], sent.sent
    with Requests(store.client) as sent:
        assert patch(client, path, 200_000, data[200_000:]).status_code == 204
    assert head(client, path).headers["Upload-Offset"] == str(len(data))
    # Its own three, then sealing (2: committed already, nothing read back), the name's
    # check, the copy and the removal.
    assert sent.sent == ["GetBlockList", "PutBlock", "PutBlockList", "GetBlobProperties",
                         "GetBlockList", "GetBlobProperties", "CopyBlob", "DeleteBlob"], sent.sent


def test_more_chunks_than_a_blob_commits_are_refused_at_once(azure_app):
    assert azure_app.config["MAX_TOTAL_CHUNKS"] == 50_000
    f = random_file(10, 10)
    answer = azure_app.test_client().post("/api/check-chunks",
                                          json=f.ident(totalChunks=50_001))
    assert answer.status_code == 400, answer.get_data(as_text=True)
