"""What the object store backend costs in requests: each one the store's real boto3 client
sends to the session's SeaweedFS is counted (botocore's before-send event, once per HTTP
request, retries included), for the writes every upload makes many times."""
import hashlib
import io
import threading
import uuid

import pytest

from uploadsvc.storage import LeaseLost, S3Store, StorageError
from uploadsvc.storage.s3.plan import MIN_PART

from .helpers import finished_bytes, leftovers, random_file, send_chunk
from .seaweedfs import BUCKET
from .tus_helpers import create, head, patch, path_of

KEY = "0123456789abcdef0123456789abcdef"
MiB = 1024 * 1024


class Requests:
    """The operations a client sends, in order, while counting."""

    def __init__(self, client) -> None:
        self.client = client
        self.sent: list[str] = []

    def _count(self, event_name: str, **kwargs) -> None:
        self.sent.append(event_name.rpartition(".")[2])

    def __enter__(self) -> "Requests":
        self.client.meta.events.register("before-send.s3", self._count)
        return self

    def __exit__(self, *exc) -> None:
        self.client.meta.events.unregister("before-send.s3", self._count)


@pytest.fixture
def store(seaweedfs, tmp_path) -> S3Store:
    store = S3Store(seaweedfs.client(), f"s3://{BUCKET}/r-{uuid.uuid4().hex[:12]}",
                    str(tmp_path / "data"))
    store.create(KEY)
    return store


def spooled(store, data: bytes):
    part = store.spool()
    part.write(data)
    part.seek(0)
    return part


def objects(store) -> list[str]:
    found = store.client.list_objects_v2(Bucket=BUCKET, Prefix=store.prefix).get("Contents", [])
    return sorted(item["Key"][len(store.prefix):] for item in found)


# -- an /api chunk ---------------------------------------------------------------------------


@pytest.mark.parametrize("spool", [True, False], ids=["spooled", "body"])
def test_a_chunk_in_place_is_its_put_and_the_removal_of_a_copy_aside(store, spool):
    data = b"c" * 70_000
    digest = hashlib.md5()
    with spooled(store, data) if spool else io.BytesIO(data) as src, Requests(store.client) as sent:
        with store.claim(KEY, 1) as claimed:
            assert claimed
            assert store.write_chunk(KEY, 1, src, 70_000, [digest]) == 70_000
    assert sent.sent == ["PutObject", "DeleteObjects"]
    assert digest.hexdigest() == hashlib.md5(data).hexdigest()  # fed as the bytes passed


def test_a_chunk_aside_is_one_put(store):
    with spooled(store, b"late") as src, Requests(store.client) as sent:
        assert store.write_chunk(KEY, 3, src, None) == 4
    assert sent.sent == ["PutObject"]


def test_a_spooled_chunk_larger_than_a_part_is_still_one_put(seaweedfs, tmp_path):
    store = S3Store(seaweedfs.client(), f"s3://{BUCKET}/r-{uuid.uuid4().hex[:12]}",
                    str(tmp_path / "data"), part_size=5 * MiB)
    store.create(KEY)
    data = b"p" * (6 * MiB)
    digest = hashlib.sha256()
    with spooled(store, data) as src, Requests(store.client) as sent:
        assert store.write_chunk(KEY, 0, src, 0, [digest]) == len(data)
    assert sent.sent == ["PutObject", "DeleteObjects"]
    assert digest.digest() == hashlib.sha256(data).digest()


def test_a_chunk_written_after_its_upload_was_removed_is_removed_with_it(store):
    """No request checks that the upload exists: the service, finding its row gone when it
    records the chunk, removes the upload's bytes again; cleanup lists what is left."""
    store.delete(KEY)
    with store.claim(KEY, 0) as claimed:
        assert claimed
        store.write_chunk(KEY, 0, io.BytesIO(b"late"), 0)
    store.write_chunk(KEY, 1, io.BytesIO(b"later"), None)
    assert [key for key, _ in store.upload_keys()] == [KEY]
    store.delete(KEY)
    assert objects(store) == [] and list(store.upload_keys()) == []


# -- a tus PATCH ------------------------------------------------------------------------------


def test_a_patch_at_the_offset_costs_a_listing_and_a_put(store):
    store.write(KEY, 0, io.BytesIO(b"first"), 5)
    digest = hashlib.md5()
    with Requests(store.client) as sent:
        written = store.write(KEY, 5, io.BytesIO(b"second"), 100, [digest])
    assert written.size == 6 and digest.hexdigest() == hashlib.md5(b"second").hexdigest()
    assert sent.sent == ["ListObjectsV2", "PutObject"]
    assert store.size(KEY) == 11


def test_a_patch_longer_than_a_part_adds_only_its_parts(seaweedfs, tmp_path):
    store = S3Store(seaweedfs.client(), f"s3://{BUCKET}/r-{uuid.uuid4().hex[:12]}",
                    str(tmp_path / "data"), part_size=5 * MiB)
    store.create(KEY)
    data = b"q" * (11 * MiB)
    with Requests(store.client) as sent:
        assert store.write(KEY, 0, io.BytesIO(data), len(data)).size == len(data)
    assert sent.sent == ["ListObjectsV2", "CreateMultipartUpload", "UploadPart", "UploadPart",
                         "UploadPart", "CompleteMultipartUpload"]


def test_a_patch_drops_the_bytes_past_its_offset_that_were_never_recorded(store):
    store.write(KEY, 0, io.BytesIO(b"recorded"), 8)
    store.write(KEY, 8, io.BytesIO(b"never"), 5)  # then the worker died
    store.write(KEY, 13, io.BytesIO(b"recorded either"), 15)
    with Requests(store.client) as sent:
        store.write(KEY, 8, io.BytesIO(b"!"), 10)
    assert sent.sent == ["ListObjectsV2", "DeleteObjects", "PutObject"]
    assert store.size(KEY) == 9


class Paused(io.RawIOBase):
    """A body whose first half arrives at once and the rest when let go: a client that
    paused (or a host that stopped) mid-body."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position, self.half = data, 0, len(data) // 2
        self.started, self.go_on = threading.Event(), threading.Event()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.position == self.half:
            self.started.set()
            assert self.go_on.wait(30)
        end = self.half if self.position < self.half else len(self.data)
        n = min(len(buffer), end - self.position)
        buffer[:n] = self.data[self.position:self.position + n]
        self.position += n
        return n


@pytest.mark.parametrize("size", [1000, 11 * MiB], ids=["one put", "multipart"])
def test_a_late_write_never_replaces_the_bytes_another_wrote_at_its_offset_since(
        seaweedfs, tmp_path, size):
    """A PATCH whose lease lapsed while its body arrived, and whose offset another PATCH
    (on another host, holding the lease now) has filled and recorded since, is refused when
    its bytes are in: the object store keeps the other's."""
    store = S3Store(seaweedfs.client(), f"s3://{BUCKET}/r-{uuid.uuid4().hex[:12]}",
                    str(tmp_path / "data"), part_size=5 * MiB)
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
    assert read_back(store, size) == b"T" * size


def read_back(store, size: int) -> bytes:
    return b"".join(store.joiner.read(store._pieces(store._segments(KEY))))[:size]


def test_an_empty_patch_leaves_the_bytes_at_its_offset(store):
    store.write(KEY, 0, io.BytesIO(b"0123456789"), 10)
    assert store.write(KEY, 4, io.BytesIO(b""), 10).size == 0
    assert store.size(KEY) == 4


def test_creating_an_upload_is_one_put(seaweedfs, tmp_path):
    store = S3Store(seaweedfs.client(), f"s3://{BUCKET}/r-{uuid.uuid4().hex[:12]}",
                    str(tmp_path / "data"))
    with Requests(store.client) as sent:
        store.create(KEY)
    assert sent.sent == ["PutObject"]


# -- completion --------------------------------------------------------------------------


def test_completion_copies_each_segment_once_straight_into_the_finished_file(store):
    segments = [hashlib.sha256(bytes([i])).digest() * (MIN_PART // 32) for i in range(3)]
    for i, data in enumerate(segments):
        store.write(KEY, i * MIN_PART, io.BytesIO(data), len(data))
    whole = b"".join(segments)
    with Requests(store.client) as sent:
        sealed = store.seal(KEY, len(whole), md5=hashlib.md5(whole).hexdigest())
        store.publish(sealed, "file")
    # The segments listed, then one join into the file's name: no object joined on the
    # way, whose copy would have stored every byte twice more.
    assert sent.sent == ["ListObjectsV2", "CreateMultipartUpload", *["UploadPartCopy"] * 3,
                         "CompleteMultipartUpload"], sent.sent
    assert [name for name in objects(store) if not name.startswith("chunks/")] == \
        ["uploads/file"]
    with store.open_file("file") as f:
        assert hashlib.md5(f.read()).hexdigest() == hashlib.md5(whole).hexdigest()


def test_a_part_that_fails_stops_the_join_and_leaves_nothing(store):
    segments = [hashlib.sha256(bytes([i])).digest() * (MIN_PART // 32) for i in range(6)]
    for i, data in enumerate(segments):
        store.write(KEY, i * MIN_PART, io.BytesIO(data), len(data))
    sealed = store.seal(KEY, MIN_PART * len(segments), md5="0" * 32)
    # A segment gone under the sealed pieces: its copy fails while others are being made.
    store.client.delete_object(Bucket=BUCKET, Key=store._segment_name(KEY, 3 * MIN_PART))
    with pytest.raises(StorageError):
        store.publish(sealed, "file")
    assert not store.has_file("file")
    assert store.client.list_multipart_uploads(Bucket=BUCKET, Prefix=store.prefix).get(
        "Uploads", []) == []


# -- through the app ---------------------------------------------------------------------------


def test_an_in_order_chunk_through_the_app_writes_its_bytes_once(s3_app):
    client = s3_app.test_client()
    f = random_file(300_000, 100_000)
    store = s3_app.extensions["store"]
    assert send_chunk(client, f, 0).status_code == 200
    with Requests(store.client) as sent:
        assert send_chunk(client, f, 1).status_code == 200
    # Its bytes, and the copy aside of an earlier try removed (if any), nothing else: it
    # was hashed as it passed, so nothing is read back.
    assert sent.sent == ["PutObject", "DeleteObjects"], sent.sent
    assert send_chunk(client, f, 2).status_code == 200
    assert client.post("/api/complete-upload", json=f.ident()).get_json()["md5"] == f.md5
    assert finished_bytes(s3_app, "test.bin") == f.data
    assert leftovers(s3_app) == ([], [])


def test_a_patch_through_the_app_writes_its_bytes_once(s3_app):
    client = s3_app.test_client()
    data = hashlib.sha256(b"seed").digest() * 10_000
    path = path_of(create(client, len(data)))
    assert patch(client, path, 0, data[:100_000]).status_code == 204
    store = s3_app.extensions["store"]
    with Requests(store.client) as sent:
        assert patch(client, path, 100_000, data[100_000:200_000]).status_code == 204
    # A listing from the offset on (the upload is there, and nothing past the offset that
    # was never recorded) and its bytes: hashed as they passed, nothing is read back.
    assert sent.sent == ["ListObjectsV2", "PutObject"], sent.sent
    assert patch(client, path, 200_000, data[200_000:]).status_code == 204
    assert head(client, path).headers["Upload-Offset"] == str(len(data))
