"""UPLOADSVC_S3_EQUAL_PARTS: every multipart upload the store completes has all its parts
but the last of exactly the part size (what Cloudflare R2 wants), whatever the chunks'
sizes, in rounds beyond the part limit too; the parts as the store lists them."""
import hashlib
import io
import random
import secrets
import uuid

import pytest

from uploadsvc import create_app
from uploadsvc.storage import S3Store
from uploadsvc.storage.s3.join import MIN_PART, Piece, plan_equal

from .helpers import assert_parts_are_the_pieces
from .seaweedfs import BUCKET

MiB = 1024 * 1024
KEY = "0123456789abcdef0123456789abcdef"


class PartsLister:
    """The real client, which asks the store for the parts of each multipart upload just
    before completing it (ListParts) and keeps their sizes, by object name."""

    def __init__(self, client) -> None:
        self.client = client
        self.parts: dict[str, list[list[int]]] = {}

    def __getattr__(self, name):
        return getattr(self.client, name)

    def complete_multipart_upload(self, **request):
        listed = self.client.list_parts(Bucket=request["Bucket"], Key=request["Key"],
                                        UploadId=request["UploadId"], MaxParts=1000)
        sizes = [part["Size"] for part in sorted(listed["Parts"],
                                                 key=lambda part: part["PartNumber"])]
        self.parts.setdefault(request["Key"], []).append(sizes)
        return self.client.complete_multipart_upload(**request)


def equal_store(seaweedfs, tmp_path, part_size: int, **options) -> S3Store:
    return S3Store(PartsLister(seaweedfs.client()), f"s3://{BUCKET}/eq-{uuid.uuid4().hex[:12]}",
                   str(tmp_path / "data"), part_size=part_size, equal_parts=True,
                   buffer_size=64 * 1024, **options)


def join_chunks(store: S3Store, chunks: list[bytes], chunk_size: int) -> bytes:
    """Store the chunks (the last one first, aside), seal and publish them; the file."""
    store.create(KEY)
    order = [len(chunks) - 1, *range(len(chunks) - 1)]
    for index in order:
        offset = None if index == order[0] else index * chunk_size
        store.write_chunk(KEY, index, io.BytesIO(chunks[index]), offset)
    store.place_chunks(KEY, chunk_size)
    whole = b"".join(chunks)
    sealed = store.seal(KEY, len(whole))
    assert sealed.md5 == hashlib.md5(whole).hexdigest()
    store.publish(sealed, "file")
    with store.open_file("file") as f:
        assert hashlib.md5(f.read()).hexdigest() == hashlib.md5(whole).hexdigest()
    return whole


def check_equal(store: S3Store, part_size: int) -> None:
    """Every multipart upload completed: all parts but the last of part_size, none more."""
    completed = [sizes for uploads in store.client.parts.values() for sizes in uploads]
    assert completed
    for sizes in completed:
        assert all(size == part_size for size in sizes[:-1]), sizes
        assert 0 < sizes[-1] <= part_size, sizes


@pytest.mark.parametrize("chunk, count, part_size", [
    (256 * 1024, 22, 5 * MiB), (5 * MiB - 1, 2, 5 * MiB), (8 * MiB, 2, 6 * MiB)],
    ids=["256-kib", "5-mib-less-1", "8-mib"])
def test_chunks_of_any_size_join_into_equal_parts(seaweedfs, tmp_path, chunk, count,
                                                   part_size):
    store = equal_store(seaweedfs, tmp_path, part_size)
    chunks = [secrets.token_bytes(chunk) for _ in range(count)] + [b"short last chunk"]
    whole = join_chunks(store, chunks, chunk)
    expected = [part_size] * (len(whole) // part_size) + [len(whole) % part_size]
    # Joined once, straight into the finished file: nothing sealed on the way (chunks over
    # a part are multipart objects of their own).
    joined = {name: sizes for name, sizes in store.client.parts.items()
              if "/chunks/" not in name}
    assert joined == {f"{store.prefix}uploads/file": [expected]}
    check_equal(store, part_size)


def test_more_parts_than_allowed_join_in_rounds_of_equal_parts(seaweedfs, tmp_path):
    store = equal_store(seaweedfs, tmp_path, MIN_PART, max_parts=2)  # 10,000 for real
    chunks = [secrets.token_bytes(256 * 1024) for _ in range(50)] + [b"!"]
    whole = join_chunks(store, chunks, 256 * 1024)
    rounds = [sizes for name, uploads in store.client.parts.items() if name.endswith(".join")
              for sizes in uploads]
    rest = len(whole) - 2 * MIN_PART
    # Publishing makes two intermediate objects of equal parts...
    assert sorted(rounds) == sorted([[MIN_PART, MIN_PART], [rest]])
    # ...that are the parts of the file it makes: equal too, and two at most.
    assert store.client.parts[f"{store.prefix}uploads/file"] == [[2 * MIN_PART, rest]]
    for uploads in store.client.parts.values():
        for sizes in uploads:
            assert len(sizes) <= 2 and len(set(sizes[:-1])) <= 1, sizes


def test_the_plan_of_equal_parts_for_random_pieces():
    rng = random.Random(11)
    for _ in range(300):
        size = rng.choice([MIN_PART, 6 * MiB, 16 * MiB])
        pieces = [Piece(f"o{i}", 0, rng.choice([0, 1, 4095, MIN_PART - 1, MIN_PART, 17 * MiB,
                                                rng.randrange(1, 40 * MiB)]))
                  for i in range(rng.randrange(1, 30))]
        parts = plan_equal(pieces, size)
        total = sum(piece.size for piece in pieces)
        assert [part.size for part in parts] == \
            [size] * (total // size) + ([total % size] if total % size else [])
        assert_parts_are_the_pieces(parts, pieces)


def test_the_setting_reaches_the_store(s3_env, tmp_path, monkeypatch):
    monkeypatch.setenv("UPLOADSVC_S3_EQUAL_PARTS", "true")
    monkeypatch.setenv("UPLOADSVC_S3_PART_SIZE", str(6 * MiB))
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path),
                      "STORAGE_URL": f"s3://{BUCKET}/setting"})
    joiner = app.extensions["store"].joiner
    assert joiner.equal_parts is True and joiner.part_size == 6 * MiB
