"""The service on the object store backend: the seed API and tus through Flask's test
client, with every byte in the session's SeaweedFS (its bucket under a prefix of each
test's own) and the rows in SQLite."""
import hashlib
import uuid

import pytest
from botocore.awsrequest import AWSResponse

from .helpers import finished_bytes, leftovers, random_file, send_chunk, upload_all
from .seaweedfs import BUCKET
from .tus_helpers import create, head, patch, path_of

MiB = 1024 * 1024


@pytest.fixture
def app_config():
    return {"S3_TIMEOUT": 2}  # a stopped store is noticed soon


@pytest.fixture
def client(s3_app):
    """Answers checked against the OpenAPI document, read and closed as a server does."""
    return s3_app.test_client()


def post_chunk(client, f, index):
    """A chunk as one multipart body built here (the test client would spool a large one
    to a temp file that it never closes)."""
    boundary = uuid.uuid4().hex
    fields = {"chunkIndex": str(index), "md5": f.md5, "fileName": f.name,
              "totalChunks": str(f.total)}
    head = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                   f"{value}\r\n" for name, value in fields.items())
    body = (head + f'--{boundary}\r\nContent-Disposition: form-data; name="chunk"; '
            'filename="blob"\r\nContent-Type: application/octet-stream\r\n\r\n').encode()
    body += f.chunk(index) + f"\r\n--{boundary}--\r\n".encode()
    return client.post("/api/upload-chunk", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}")


def objects(app) -> list[str]:
    store = app.extensions["store"]
    found = store.client.list_objects_v2(Bucket=BUCKET, Prefix=store.prefix)
    return sorted(item["Key"][len(store.prefix):] for item in found.get("Contents", []))


@pytest.mark.parametrize("size, chunk", [(250_000, 64_000), (11 * MiB + 5, 5 * MiB)],
                         ids=["small-chunks", "5-mib-chunks"])
def test_chunks_out_of_order_complete_with_the_md5_verified(s3_app, client, size, chunk):
    f = random_file(size, chunk)
    for index in reversed(range(f.total)):
        assert post_chunk(client, f, index).status_code == 200
    done = client.post("/api/complete-upload", json=f.ident()).get_json()
    assert done["success"] is True and done["md5"] == f.md5
    assert finished_bytes(s3_app, "test.bin") == f.data
    assert leftovers(s3_app) == ([], [])
    assert objects(s3_app) == ["uploads/test.bin"]


def test_downloads_stream_from_the_bucket_with_range(s3_app, client):
    f = random_file(300_000, 100_000)
    assert upload_all(client, f).get_json()["path"] == "/uploads/test.bin"
    whole = client.get("/uploads/test.bin")
    assert whole.status_code == 200 and whole.data == f.data
    assert whole.headers["Content-Length"] == str(len(f.data))
    assert whole.headers["Accept-Ranges"] == "bytes"
    etag = whole.headers["ETag"]
    part = client.get("/uploads/test.bin", headers={"Range": "bytes=123456-123999"})
    assert part.status_code == 206 and part.data == f.data[123456:124000]
    assert part.headers["Content-Range"] == f"bytes 123456-123999/{len(f.data)}"
    tail = client.get("/uploads/test.bin", headers={"Range": "bytes=-10", "If-Range": etag})
    assert tail.status_code == 206 and tail.data == f.data[-10:]
    stale = client.get("/uploads/test.bin", headers={"Range": "bytes=0-9", "If-Range": '"x"'})
    assert stale.status_code == 200 and stale.data == f.data
    assert client.get("/uploads/test.bin", headers={"If-None-Match": etag}).status_code == 304
    beyond = client.get("/uploads/test.bin", headers={"Range": f"bytes={len(f.data)}-"})
    assert beyond.status_code == 416


def test_a_wrong_md5_publishes_nothing(s3_app, client):
    f = random_file(1000, 300)
    for index in range(f.total):
        send_chunk(client, f, index, md5="0" * 32)
    answer = client.post("/api/complete-upload", json=f.ident(md5="0" * 32))
    assert answer.status_code == 422
    assert not any(name.startswith("uploads/") for name in objects(s3_app))


def test_upload_status_and_delete_leave_nothing_behind(s3_app, client):
    f = random_file(3000, 1000)
    send_chunk(client, f, 1)
    status = client.get(f"/api/upload-status/{f.md5}/{f.name}").get_json()
    assert (status["uploaded"], status["total"]) == (1, 3)
    assert client.post("/api/check-chunks", json=f.ident()).get_json()["uploadedChunks"] == [1]
    assert client.delete(f"/api/upload/{f.md5}/{f.name}").status_code == 200
    assert objects(s3_app) == [] and leftovers(s3_app) == ([], [])


def test_tus_patches_of_odd_sizes(s3_app, client):
    data = hashlib.sha256(b"seed").digest() * 40_000  # 1,280,000 bytes
    path = path_of(create(client, len(data)))
    offset = 0
    for size in (1, 4095, 333_333, 17, 500_001):
        assert patch(client, path, offset, data[offset:offset + size]).status_code == 204
        offset += size
        assert head(client, path).headers["Upload-Offset"] == str(offset)
    assert patch(client, path, offset, data[offset:]).status_code == 204
    assert head(client, path).headers["Upload-Offset"] == str(len(data))
    names = [name for name in objects(s3_app) if name.startswith("uploads/")]
    assert len(names) == 1 and finished_bytes(s3_app, names[0][len("uploads/"):]) == data


def test_the_object_store_stopped_answers_503_with_retry_after(s3_app, s3_env, client):
    """(The client checks the answer against the document's shared 503.)"""
    f = random_file(100, 100)
    s3_env.pause()
    try:
        answer = send_chunk(client, f, 0)
    finally:
        s3_env.resume()
    assert answer.status_code == 503, answer.get_data(as_text=True)
    assert answer.headers["Retry-After"] == "5"
    assert answer.get_json()["error"] == "storage_unavailable"
    assert client.post("/api/check-chunks", json=f.ident()).get_json()["uploadedChunks"] == []
    assert upload_all(client, f).get_json()["success"] is True  # then it completes


class Refusal:
    """The store's answer to every PutObject while on: 403 AccessDenied, as S3 answers a
    key whose policy denies writes. SeaweedFS cannot be made to refuse one key (it takes
    any bucket and any key its one identity writes), so this answer alone is made here, at
    the client's last step: botocore parses it as it would S3's."""

    BODY = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
            b"<Message>Access Denied</Message></Error>")

    def __init__(self, client) -> None:
        self.client = client

    def __enter__(self) -> "Refusal":
        self.client.meta.events.register_first("before-send.s3.PutObject", self.answer)
        return self

    def __exit__(self, *exc) -> None:
        self.client.meta.events.unregister("before-send.s3.PutObject", self.answer)

    def answer(self, request, **kwargs) -> AWSResponse:
        return AWSResponse(request.url, 403, {"Content-Type": "application/xml"}, self)

    def stream(self, **kwargs):
        """The answer's body, as botocore reads it from the raw response."""
        yield self.BODY


def test_a_store_that_refuses_answers_503_and_counts_nothing(s3_app, client, caplog):
    """A refusal the service has no answer of its own for is a part of the service
    failing: 503 `storage_failed` with Retry-After and the store's answer in the log, not a
    500. Nothing was counted; once the store takes writes again the upload completes."""
    f = random_file(300_000, 100_000)
    with Refusal(s3_app.extensions["store"].client):
        answer = send_chunk(client, f, 0)
    assert answer.status_code == 503, answer.get_data(as_text=True)
    assert answer.headers["Retry-After"] == "30"
    body = answer.get_json()
    assert (body["success"], body["error"]) == (False, "storage_failed")
    assert "Traceback" not in answer.get_data(as_text=True)
    assert "AccessDenied" in caplog.text  # what the store answered
    assert client.post("/api/check-chunks", json=f.ident()).get_json()["uploadedChunks"] == []
    assert upload_all(client, f).get_json()["md5"] == f.md5
    assert finished_bytes(s3_app, "test.bin") == f.data
