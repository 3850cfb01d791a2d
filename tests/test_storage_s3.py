"""S3Store: the storage contract on a real object store (SeaweedFS), and how it keeps an
upload's bytes there: segments, chunks aside, parts of any size, nothing left behind."""
import hashlib
import io
import math
import os
import random
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from uploadsvc.storage import S3Store, StorageUnavailable, UploadGone
from uploadsvc.storage.s3.client import PlainJSON, ProcessClient, make_client
from uploadsvc.storage.s3.join import MAX_COPY, MAX_PARTS, MIN_PART, Piece, plan
from uploadsvc.storage.spool import SpoolFile

pytest.register_assert_rewrite("tests.storage_contract")

from .helpers import assert_parts_are_the_pieces  # noqa: E402
from .seaweedfs import BUCKET  # noqa: E402
from .storage_contract import NEVER, StoreContract, spooled  # noqa: E402 - after the rewrite
from .test_cli_errors import flask, one_line  # noqa: E402


def new_store(seaweedfs, data_dir, prefix=None, **options) -> S3Store:
    prefix = prefix or f"t-{uuid.uuid4().hex[:12]}"
    return S3Store(seaweedfs.client(), f"s3://{BUCKET}/{prefix}", str(data_dir),
                   buffer_size=1024, **options)


class TestS3Store(StoreContract):
    """Every write is an object the store acknowledged: a restart costs nothing."""

    durable_writes = True

    @pytest.fixture
    def store(self, seaweedfs, tmp_path):
        self.prefix = f"t-{uuid.uuid4().hex[:12]}"
        return new_store(seaweedfs, tmp_path / "data", self.prefix)

    @pytest.fixture
    def restarted_store(self, seaweedfs, tmp_path):
        return lambda: new_store(seaweedfs, tmp_path / "data", self.prefix)

    # A chunk is claimed and written with no request asking whether its upload exists (its
    # own PutObject is all it costs): the service finds the row gone when it records the
    # chunk and removes the upload's bytes again, and cleanup lists what is left.

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

MiB = 1024 * 1024
KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def store(seaweedfs, tmp_path):
    return new_store(seaweedfs, tmp_path / "data")


def objects(store) -> list[str]:
    """Every object under the store's prefix, by its name below the prefix."""
    found = store.client.list_objects_v2(Bucket=BUCKET, Prefix=store.prefix).get("Contents", [])
    return sorted(item["Key"][len(store.prefix):] for item in found)


def multipart_uploads(store) -> list[str]:
    found = store.client.list_multipart_uploads(Bucket=BUCKET, Prefix=store.prefix)
    return [upload["Key"] for upload in found.get("Uploads", [])]


def chunked(store, parts: list[bytes], chunk_size: int, order, aside=()) -> str:
    """Send parts as chunks in this order (the indices in aside aside), seal and publish
    them; the ETag of the finished file (a multipart object's tells its part count)."""
    store.create(KEY)
    for index in order:
        offset = None if index in aside else index * chunk_size
        assert store.write_chunk(KEY, index, io.BytesIO(parts[index]), offset) == \
            len(parts[index])
    store.place_chunks(KEY, chunk_size)
    whole = b"".join(parts)
    sealed = store.seal(KEY, len(whole))
    assert (sealed.size, sealed.md5) == (len(whole), hashlib.md5(whole).hexdigest())
    store.publish(sealed, "file")
    tag = store.client.head_object(Bucket=BUCKET, Key=f"{store.prefix}uploads/file")["ETag"]
    store.delete(KEY)
    with store.open_file("file") as f:
        data = f.read()
    assert data == whole
    assert objects(store) == ["uploads/file"] and multipart_uploads(store) == []
    assert os.listdir(store.temp_dir) == [] and nameless_files_in(store.temp_dir) == 0
    return tag


def test_small_chunks_are_joined_by_streaming_into_one_object(store):
    parts = [secrets.token_bytes(1000) for _ in range(40)] + [b"end"]
    order = random.Random(1).sample(range(len(parts)), len(parts))
    tag = chunked(store, parts, 1000, order, aside=set(order[::3]))
    assert "-" not in tag  # one PutObject: far below a part's minimum


def test_chunks_of_5_mib_become_parts_copied_by_the_store(store):
    parts = [secrets.token_bytes(5 * MiB), secrets.token_bytes(5 * MiB), b"short last"]
    tag = chunked(store, parts, 5 * MiB, [2, 0, 1], aside={2})
    assert tag.endswith('-3"')  # a part each, the short last one too


def test_chunks_just_under_5_mib_are_streamed_into_parts(seaweedfs, tmp_path):
    store = new_store(seaweedfs, tmp_path / "data", part_size=5 * MiB)
    size = 5 * MiB - 1
    parts = [secrets.token_bytes(size), secrets.token_bytes(size), b"x"]
    tag = chunked(store, parts, size, [1, 2, 0])
    # 5 MiB − 1 and 1 byte of the next chunk make the first part; the rest of it and the
    # last byte the last part.
    assert tag.endswith('-2"')


def test_more_parts_than_allowed_are_joined_in_rounds(seaweedfs, tmp_path):
    store = new_store(seaweedfs, tmp_path / "data", max_parts=2)  # 10,000 for real
    parts = [secrets.token_bytes(5 * MiB) for _ in range(3)] + [b"!"]
    assert chunked(store, parts, 5 * MiB, [0, 1, 2, 3]).endswith('-2"')


@pytest.mark.parametrize("data", [b"", b"1"], ids=["zero-byte", "one-byte"])
def test_a_file_of_no_or_one_byte(store, data):
    parts = [data] if data else []
    store.create(KEY)
    for index, part in enumerate(parts):
        store.write_chunk(KEY, index, io.BytesIO(part), 0)
    sealed = store.seal(KEY, len(data))
    store.publish(sealed, "tiny")
    with store.open_file("tiny") as f:
        assert f.read() == data
    store.delete(KEY)
    assert objects(store) == ["uploads/tiny"]


def test_a_resent_chunk_replaces_the_first_copy(store):
    store.create(KEY)
    store.write_chunk(KEY, 0, io.BytesIO(b"a" * 10), 0)
    store.write_chunk(KEY, 1, io.BytesIO(b"first try"), 10)
    store.write_chunk(KEY, 1, io.BytesIO(b"again!"), None)  # a re-send goes aside
    store.write_chunk(KEY, 1, io.BytesIO(b"last one"), None)
    assert store.place_chunks(KEY, 10) == [1]
    store.drop_chunks(KEY, [1])
    sealed = store.seal(KEY, 18)
    assert sealed.md5 == hashlib.md5(b"a" * 10 + b"last one").hexdigest()


class ReadSizes(SpoolFile):
    """A spooled part that keeps the sizes it is read in."""

    sizes: list[int]

    def read(self, size=-1):
        self.sizes.append(size)
        return super().read(size)


def test_a_chunk_is_sent_in_reads_of_the_buffer_size(store):
    # botocore reads a body it signs 1 MiB at a time: every thread that sends one held that.
    store.create(KEY)
    data = secrets.token_bytes(300_000)
    with ReadSizes(store.temp_dir, linkable=False) as part:
        part.sizes = []
        part.write(data)
        assert store.write_chunk(KEY, 0, part, 0) == len(data)
        assert 0 < max(part.sizes) <= store.buffer_size
    assert store.seal(KEY, len(data)).md5 == hashlib.md5(data).hexdigest()


def test_many_out_of_order_chunks(store):
    parts = [secrets.token_bytes(997) for _ in range(150)] + [b"tail"]
    order = random.Random(7).sample(range(len(parts)), len(parts))
    chunked(store, parts, 997, order, aside=set(order[:20]))


def test_tus_appends_of_odd_sizes_hash_as_they_go(store):
    store.create(KEY)
    sizes = [1, 4095, 5 * MiB + 3, 17, 6 * MiB - 5, 2]
    data = b""
    state = None
    for size in sizes:
        body = secrets.token_bytes(size)
        assert store.write(KEY, len(data), io.BytesIO(body), 10 * MiB).size == size
        data += body
        state = store.hash_prefix(KEY, state, len(data) - 1)  # the next write goes on
    assert store.size(KEY) == len(data)
    sealed = store.seal(KEY, len(data), saved=state)
    assert sealed.md5 == hashlib.md5(data).hexdigest()
    store.publish(sealed, "appended")
    with store.open_file("appended") as f:
        f.seek(5 * MiB)
        assert f.read(100) == data[5 * MiB:5 * MiB + 100]  # a ranged read
        f.seek(0)
        assert hashlib.md5(f.read()).digest() == hashlib.md5(data).digest()


def test_a_body_longer_than_a_part_streams_in_parts(seaweedfs, tmp_path):
    store = new_store(seaweedfs, tmp_path / "data", part_size=5 * MiB)
    store.create(KEY)
    body = secrets.token_bytes(11 * MiB)
    assert store.write(KEY, 0, io.BytesIO(body), len(body)).size == len(body)
    head = store.client.head_object(Bucket=BUCKET, Key=store._segment_name(KEY, 0))
    assert head["ETag"].endswith('-3"') and head["ContentLength"] == len(body)


def test_delete_removes_every_object_and_aborts_multipart_uploads(store):
    store.create(KEY)
    store.write_chunk(KEY, 0, io.BytesIO(b"in place"), 0)
    store.write_chunk(KEY, 3, io.BytesIO(b"aside"), None)
    # A worker killed mid-join left multipart uploads of this upload behind.
    for name in (store._segment_name(KEY, 8), f"{store.prefix}sealed/{KEY}.killed"):
        store.client.create_multipart_upload(Bucket=BUCKET, Key=name)
    assert len(multipart_uploads(store)) == 2
    store.delete(KEY)
    assert objects(store) == [] and multipart_uploads(store) == []
    assert list(store.upload_keys()) == []


def test_cleanup_sees_what_a_killed_join_left(store):
    store.client.create_multipart_upload(Bucket=BUCKET, Key=f"{store.prefix}sealed/x.y")
    store.client.put_object(Bucket=BUCKET, Key=f"{store.prefix}sealed/x.z", Body=b"1")
    names = sorted(name for name, _ in store.temp_files())
    assert len(names) == 2 and names[1] == "sealed/x.z"
    for name in names:
        store.remove_temp_file(name)
    assert list(store.temp_files()) == [] and multipart_uploads(store) == []


def nameless_files_in(directory: str) -> int:
    """How many files with no name in directory this process has open."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        count += target.startswith(directory + "/") and target.endswith(" (deleted)")
    return count


class Watched(io.RawIOBase):
    """A body that notes, at every read, the names in temp/ and the nameless files there."""

    def __init__(self, data: bytes, temp_dir: str) -> None:
        self.data, self.temp_dir = io.BytesIO(data), temp_dir
        self.names: set[str] = set()
        self.nameless = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self.names.update(os.listdir(self.temp_dir))
        self.nameless = max(self.nameless, nameless_files_in(self.temp_dir))
        return self.data.readinto(buffer)


def test_parts_on_their_way_have_no_name_in_temp(seaweedfs, tmp_path):
    # Spooled parts and the part a body is streamed through go with a killed process.
    store = new_store(seaweedfs, tmp_path / "data", part_size=5 * MiB)
    store.create(KEY)
    data = secrets.token_bytes(6 * MiB)  # two parts: a multipart upload
    body = Watched(data, store.temp_dir)
    assert store.write(KEY, 0, body, len(data)).size == len(data)
    assert body.names == set() and body.nameless == 1
    with store.spool() as part:
        part.write(b"a chunk aside")
        assert os.listdir(store.temp_dir) == [] and nameless_files_in(store.temp_dir) == 1
        assert store.write_chunk(KEY, 0, part, None) == 13
    assert os.listdir(store.temp_dir) == [] and nameless_files_in(store.temp_dir) == 0


def test_the_object_store_stopped_is_storage_unavailable(s3_env, tmp_path):
    client = make_client(timeout=1, attempts=1)
    store = S3Store(client, f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}", str(tmp_path))
    store.create(KEY)
    s3_env.pause()
    try:
        with pytest.raises(StorageUnavailable, match="object store"):
            store.write(KEY, 0, io.BytesIO(b"bytes"), 5)
    finally:
        s3_env.resume()
    assert store.write(KEY, 0, io.BytesIO(b"bytes"), 5).size == 5


# -- at start -------------------------------------------------------------------------------


def start(tmp_path, url, **env):
    return flask(tmp_path, "db", "upgrade", UPLOADSVC_STORAGE_URL=url, **env)


def test_a_client_made_again_in_one_process_reads_no_model_again(s3_env, monkeypatch):
    make_client()  # the process's first: botocore's models read once
    read = []
    original = PlainJSON.load_file
    monkeypatch.setattr(PlainJSON, "load_file",
                        lambda self, path: read.append(path) or original(self, path))
    again = make_client()
    assert read == []
    assert again.head_bucket(Bucket=BUCKET)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_missing_bucket_fails_at_start_in_one_line(tmp_path, s3_env):
    line = one_line(start(tmp_path, "s3://no-such-bucket/x"))
    assert "s3://no-such-bucket/x/" in line and "does not exist" in line


def test_wrong_credentials_fail_at_start_in_one_line(tmp_path, s3_env):
    line = one_line(start(tmp_path, f"s3://{BUCKET}/x", AWS_SECRET_ACCESS_KEY="wrong"))
    assert "refused the credentials" in line and "wrong" not in line


def test_an_unreachable_store_fails_at_start_in_one_line(tmp_path, s3_env):
    line = one_line(start(tmp_path, f"s3://{BUCKET}/x", AWS_ENDPOINT_URL="http://127.0.0.1:1"))
    assert "cannot reach the object store" in line and "AWS_ENDPOINT_URL" in line


def test_a_url_that_is_not_s3_fails_at_start_in_one_line(tmp_path, s3_env):
    assert "not an s3://BUCKET/PREFIX URL" in one_line(start(tmp_path, "s4://bucket"))


def test_a_usable_bucket_starts(tmp_path, s3_env):
    assert start(tmp_path, f"s3://{BUCKET}/x").returncode == 0


# -- the part plan, for any chunk size (no requests) ----------------------------------------

GiB = 1024 * MiB


def check_plan(sizes: list[int], part_size: int = 16 * MiB) -> list:
    pieces = [Piece(f"o{i}", 0, size) for i, size in enumerate(sizes)]
    parts = plan(pieces, part_size)
    assert sum(part.size for part in parts) == sum(sizes)
    assert all(MIN_PART <= part.size <= MAX_COPY for part in parts[:-1])
    assert all(part.size <= MAX_COPY for part in parts)
    assert_parts_are_the_pieces(parts, pieces)
    return parts


@pytest.mark.parametrize("chunk, count", [
    (1, 100_000), (256 * 1024, 4000), (5 * MiB - 1, 3000), (5 * MiB, 100_000),
    (5 * MiB + 1, 5000), (GiB, 100_000)])
def test_any_chunk_size_up_to_100000_chunks_plans_valid_parts(chunk, count):
    parts = check_plan([chunk] * (count - 1) + [max(1, chunk // 3)])
    if chunk >= MIN_PART:
        assert sum(part.copied for part in parts) >= count - 2  # copied by the store
    # Beyond 10,000 parts the joiner joins runs of them first: rounds stay few.
    assert math.ceil(math.log(max(len(parts), 2), MAX_PARTS)) <= 2


def test_random_piece_sizes_plan_valid_parts():
    rng = random.Random(5)
    for _ in range(200):
        check_plan([rng.choice([0, 1, 4095, MIN_PART - 1, MIN_PART, MIN_PART + 1, 12 * MiB,
                                rng.randrange(1, 20 * MiB)]) for _ in range(rng.randrange(30))],
                   part_size=rng.choice([MIN_PART, 16 * MiB]))


def test_a_piece_beyond_5_gib_is_copied_in_several_parts():
    parts = check_plan([12 * GiB, 3])
    assert [part.size for part in parts] == [5 * GiB, 5 * GiB, 2 * GiB, 3]


# -- the client: its addressing, one per process, its connections ----------------------------


def addressing(client) -> str:
    return client.meta.config.s3["addressing_style"]


def test_an_endpoint_of_ones_own_is_addressed_path_style(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert addressing(make_client()) == "path"
    assert addressing(make_client("virtual")) == "virtual"


def test_aws_itself_keeps_boto3s_choice_unless_told(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert addressing(make_client()) == "auto"
    assert addressing(make_client("path")) == "path"


def test_a_process_makes_one_client_for_its_threads_and_a_forked_one_its_own():
    made = []
    clients = ProcessClient(lambda: made.append(object()) or made[-1])
    with ThreadPoolExecutor(8) as pool:
        given = set(map(id, pool.map(lambda _: clients(), range(32))))
    assert len(made) == 1 and given == {id(made[0])}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a gunicorn worker forked from a master that made one
        os.write(write, b"own" if clients() is made[-1] and len(made) == 2 else b"shared")
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 8) == b"own"
    os.close(read)
    assert clients() is made[0] and len(made) == 1


def test_the_client_keeps_a_connection_for_each_thread(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("GUNICORN_THREADS", "16")
    assert make_client().meta.config.max_pool_connections == 20
    monkeypatch.delenv("GUNICORN_THREADS")
    assert make_client().meta.config.max_pool_connections == 12


def test_an_unknown_addressing_style_fails_at_start_in_one_line(tmp_path, s3_env):
    line = one_line(start(tmp_path, f"s3://{BUCKET}/x", UPLOADSVC_S3_ADDRESSING_STYLE="dns"))
    assert "addressing style" in line
