"""A chunk whose fields come before its bytes (the upload page's order) is written in place
as it arrives, with no spool file; every other order, and every refusal, is as before."""
import errno
import hashlib
import io
import os

import pytest
from werkzeug.exceptions import RequestTimeout

from uploadsvc.storage.local import chunkfiles

from .helpers import TestFile, chunks_of, leftovers, store_of, upload_keys

BOUNDARY = "str3amB0undary"
KiB = 1024
CHUNK = 320 * KiB  # bodies of 256 KiB and more are parsed by the fast parser


def part(name: str, value) -> bytes:
    return (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
            f"{value}\r\n").encode()


def body(before: dict, payload: bytes, after: dict | None = None) -> bytes:
    """A multipart body: the fields `before`, the file part, the fields `after`."""
    return (b"".join(part(k, v) for k, v in before.items())
            + f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="chunk"; '
              f'filename="blob"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + payload + b"\r\n"
            + b"".join(part(k, v) for k, v in (after or {}).items())
            + f"--{BOUNDARY}--\r\n".encode())


def page_fields(f: TestFile, index: int) -> dict:
    """The fields the upload page sends before the file part, in its order."""
    return {"chunkIndex": index, "md5": f.md5, "fileName": f.name, "totalChunks": f.total}


def post(client, raw: bytes, **kwargs):
    return client.post("/api/upload-chunk", data=raw,
                       content_type=f"multipart/form-data; boundary={BOUNDARY}", **kwargs)


def send(client, f: TestFile, index: int, payload: bytes | None = None, after=None, **extra):
    payload = f.chunk(index) if payload is None else payload
    return post(client, body({**page_fields(f, index), **extra}, payload, after))


def stored(client, f: TestFile) -> list[int]:
    return client.post("/api/check-chunks", json=f.ident()).get_json()["uploadedChunks"]


def data_file(app, data_dir) -> bytes:
    (key,) = upload_keys(app)
    return (data_dir / "chunks" / key / "data").read_bytes()


@pytest.fixture
def spools(app, monkeypatch):
    """How many spool files the store has made (a list that grows with each)."""
    made = []
    store = store_of(app)
    original = store.spool

    def spy(limit=None):
        spool = original(limit)
        made.append(spool)
        return spool

    monkeypatch.setattr(store, "spool", spy)
    return made


@pytest.fixture
def f() -> TestFile:
    # The last chunk too is large enough for the fast parser (smaller bodies keep werkzeug's).
    return TestFile(os.urandom(3 * CHUNK + 280 * KiB), CHUNK, "streamed.bin")


def test_a_chunk_whose_fields_come_first_is_written_in_place_without_a_spool(
        app, client, data_dir, f, spools):
    assert send(client, f, 0).status_code == 200  # tells the chunk size: spooled
    assert len(spools) == 1
    response = send(client, f, 2)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["uploaded"] == 2
    assert len(spools) == 1  # no spool file for the chunk written in place
    assert data_file(app, data_dir)[2 * CHUNK:3 * CHUNK] == f.chunk(2)
    assert chunks_of(app).chunks_aside(upload_keys(app)[0], range(f.total)) == []
    assert stored(client, f) == [0, 2]


def test_the_page_order_uploads_a_file_end_to_end(app, client, data_dir, f, spools):
    for index in range(f.total):
        response = send(client, f, index)
        assert response.status_code == 200, response.get_json()
    assert len(spools) == 1  # only the first chunk, before the chunk size was known
    done = client.post("/api/complete-upload", json=f.ident()).get_json()
    assert done["success"] is True and done["md5"] == f.md5 and done["size"] == len(f.data)
    assert (data_dir / "uploads" / f.name).read_bytes() == f.data
    assert leftovers(app) == ([], [])


def test_the_last_chunk_first_is_spooled_and_completes(app, client, data_dir, f, spools):
    for index in [f.total - 1, 1, 0, 2]:
        assert send(client, f, index).status_code == 200
    assert len(spools) == 2  # the last chunk and the first that told the chunk size
    done = client.post("/api/complete-upload", json=f.ident()).get_json()
    assert done["md5"] == f.md5
    assert (data_dir / "uploads" / f.name).read_bytes() == f.data


def test_a_file_part_before_its_fields_is_spooled_as_before(client, data_dir, f, spools):
    for index in range(f.total):
        raw = body({}, f.chunk(index), page_fields(f, index))
        assert post(client, raw).status_code == 200
    assert len(spools) == f.total
    assert client.post("/api/complete-upload", json=f.ident()).get_json()["md5"] == f.md5


def test_fields_missing_before_the_file_part_are_spooled_as_before(client, f, spools):
    assert send(client, f, 0).status_code == 200
    fields = page_fields(f, 1)
    late = {"totalChunks": fields.pop("totalChunks")}
    assert post(client, body(fields, f.chunk(1), late)).status_code == 200
    assert len(spools) == 2
    assert stored(client, f) == [0, 1]


def chunk_md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_a_trailing_chunk_md5_that_matches_stores_the_chunk(client, f, spools):
    assert send(client, f, 0).status_code == 200
    response = send(client, f, 1, after={"chunkMd5": chunk_md5(f.chunk(1)).upper()})
    assert response.status_code == 200
    assert len(spools) == 1 and stored(client, f) == [0, 1]


@pytest.mark.parametrize("where", ["before", "after"])
def test_a_chunk_md5_that_does_not_match_refuses_the_chunk(app, client, data_dir, f, spools,
                                                           where):
    assert send(client, f, 0).status_code == 200
    wrong = {"chunkMd5": chunk_md5(b"other bytes")}
    response = (send(client, f, 1, after=wrong) if where == "after"
                else send(client, f, 1, **wrong))
    assert response.status_code == 400
    assert response.get_json()["error"] == "chunk_md5_mismatch"
    assert len(spools) == 1 and stored(client, f) == [0]
    # Sent again, right this time, it is stored, and the file completes.
    for index in range(1, f.total):
        assert send(client, f, index, chunkMd5=chunk_md5(f.chunk(index))).status_code == 200
    assert client.post("/api/complete-upload", json=f.ident()).get_json()["md5"] == f.md5
    assert leftovers(app) == ([], [])


def test_a_malformed_trailing_field_refuses_the_chunk(client, f):
    assert send(client, f, 0).status_code == 200
    response = send(client, f, 1, after={"chunkMd5": "not-an-md5"})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_input"
    assert stored(client, f) == [0]


def test_a_trailing_file_size_over_the_limit_refuses_the_chunk(app, client, f, spools):
    assert send(client, f, 0).status_code == 200
    too_large = app.config["MAX_FILE_SIZE"] + 1
    response = send(client, f, 1, after={"fileSize": too_large})
    assert response.status_code == 413 and response.get_json()["error"] == "file_too_large"
    assert len(spools) == 1 and stored(client, f) == [0]


def test_a_trailing_file_size_is_recorded_and_checked(client, f):
    assert send(client, f, 0, fileSize=len(f.data)).status_code == 200
    response = send(client, f, 1, after={"fileSize": len(f.data) + 1})
    assert response.status_code == 409 and response.get_json()["error"] == "file_size_conflict"
    assert send(client, f, 1, after={"fileSize": len(f.data)}).status_code == 200
    assert stored(client, f) == [0, 1]


def test_a_part_larger_than_the_chunk_size_is_refused_and_writes_nothing_past_its_place(
        app, client, data_dir, f, spools):
    for index in (0, 2):
        assert send(client, f, index).status_code == 200
    response = send(client, f, 1, payload=f.chunk(1) + b"excess bytes")
    assert response.status_code == 409
    assert response.get_json()["error"] == "chunk_size_conflict"
    assert stored(client, f) == [0, 2]
    assert data_file(app, data_dir)[2 * CHUNK:3 * CHUNK] == f.chunk(2)  # untouched
    assert len(spools) == 2  # taken back and spooled, to be refused as before
    assert leftovers(app)[1] == []


def test_a_streamed_part_over_max_chunk_size_is_a_413(app, client, data_dir, f):
    assert send(client, f, 0).status_code == 200
    app.config["MAX_CHUNK_SIZE"] = CHUNK + 100
    response = send(client, f, 1, payload=f.chunk(1) + os.urandom(200))
    assert response.status_code == 413 and response.get_json()["error"] == "chunk_too_large"
    assert stored(client, f) == [0]
    assert leftovers(app)[1] == []


class BreaksOff(io.BytesIO):
    """A request body that gives its first `keep` bytes, then fails with error (or ends)."""

    def __init__(self, data: bytes, keep: int, error: Exception | None = None) -> None:
        super().__init__(data[:keep])
        self.error = error

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        if not data and self.error is not None:
            raise self.error
        return data


@pytest.mark.parametrize("error, status", [(None, 400), (RequestTimeout(), 408)])
def test_a_body_that_breaks_off_midway_records_nothing(app, client, f, spools, error, status):
    assert send(client, f, 0).status_code == 200
    raw = body(page_fields(f, 1), f.chunk(1))
    response = client.post("/api/upload-chunk", input_stream=BreaksOff(raw, len(raw) // 2, error),
                           # (the test client would take the length of what it holds)
                           environ_overrides={"CONTENT_LENGTH": str(len(raw))},
                           content_type=f"multipart/form-data; boundary={BOUNDARY}")
    assert response.status_code == status and response.get_json()["success"] is False
    assert len(spools) == 1 and stored(client, f) == [0]
    assert leftovers(app)[1] == []
    # The chunk's place is free again: sent whole, it is written there.
    assert send(client, f, 1).status_code == 200 and len(spools) == 1
    assert stored(client, f) == [0, 1]


def test_a_full_disk_while_writing_in_place_is_a_507(app, client, f, monkeypatch):
    assert send(client, f, 0).status_code == 200

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(chunkfiles, "_pwrite_all", full)
    response = send(client, f, 1)
    assert response.status_code == 507
    assert response.get_json()["error"] == "insufficient_storage"
    assert stored(client, f) == [0]
    assert leftovers(app)[1] == []


def test_a_recorded_chunk_sent_again_is_not_overwritten_in_place(app, client, data_dir, f,
                                                                 spools):
    for index in (0, 1):
        assert send(client, f, index).status_code == 200
    other = os.urandom(CHUNK)
    assert send(client, f, 1, payload=other).status_code == 200
    assert data_file(app, data_dir)[CHUNK:2 * CHUNK] == f.chunk(1)  # in place: unchanged
    assert len(spools) == 2  # the re-sent chunk went the spooled way, aside
    assert chunks_of(app).chunks_aside(upload_keys(app)[0], [1]) == [1]


def test_a_chunk_claimed_by_another_request_is_spooled(app, client, f, spools):
    assert send(client, f, 0).status_code == 200
    with app.app_context(), chunks_of(app).claim(upload_keys(app)[0], 1) as claimed:
        assert claimed
        assert send(client, f, 1).status_code == 200
    assert len(spools) == 2 and stored(client, f) == [0, 1]
    assert chunks_of(app).chunks_aside(upload_keys(app)[0], [1]) == [1]


def test_a_chunk_of_a_completed_upload_answers_as_before(client, f, spools):
    for index in range(f.total):
        assert send(client, f, index).status_code == 200
    assert client.post("/api/complete-upload", json=f.ident()).status_code == 200
    response = send(client, f, 1)
    assert response.status_code == 200 and response.get_json()["progress"] == 100
