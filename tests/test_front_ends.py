"""The requests of the original Vue 3 and React front ends, byte for byte as they send them
(field order, types, the Blob part first, the browser's headers), and what they rely on in
the answers: instantUpload, the data envelope, fileSize, chunkMd5, totalChunks 0 for an empty
file and the health message in Chinese. Every answer is checked against the OpenAPI document
by the client fixture, on SQLite and MariaDB."""
import hashlib
import json
import os

import pytest

from .helpers import leftovers

EMPTY_MD5 = hashlib.md5(b"").hexdigest()
CHUNK = 64 * 1024
# What Chromium adds to the pages' axios requests.
BROWSER = {"Accept": "application/json, text/plain, */*", "Accept-Language": "zh-CN,zh;q=0.9",
           "Origin": "http://localhost:5173"}
BOUNDARY = "----WebKitFormBoundaryu7QmKc3ZtB9xRfVa"


def post_json(client, path: str, body: dict):
    """axios.post(path, body): JSON in the order the page wrote its fields."""
    return client.post(path, data=json.dumps(body, ensure_ascii=False).encode(),
                       headers={**BROWSER, "Content-Type": "application/json"})


def post_form(client, fields: list[tuple[str, str | bytes]]):
    """axios.post of a FormData, as Chromium encodes it: the chunk is a Blob ("blob",
    application/octet-stream), the other fields text, in the order they were appended."""
    body = b""
    for name, value in fields:
        if isinstance(value, bytes):
            head = (f'Content-Disposition: form-data; name="{name}"; filename="blob"\r\n'
                    "Content-Type: application/octet-stream\r\n")
        else:
            head, value = f'Content-Disposition: form-data; name="{name}"\r\n', value.encode()
        body += f"--{BOUNDARY}\r\n".encode() + head.encode() + b"\r\n" + value + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    return client.post("/api/upload-chunk", data=body, headers={
        **BROWSER, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})


class Page:
    """One front end's calls for one file (services/upload.ts of each page)."""

    def __init__(self, client, data: bytes, name: str, vue: bool) -> None:
        self.client, self.data, self.name, self.vue = client, data, name, vue
        self.md5 = hashlib.md5(data).hexdigest()
        self.total = -(-len(data) // CHUNK)  # Math.ceil(file.size / chunkSize): 0 when empty

    def check(self):
        body = {"md5": self.md5, "fileName": self.name, "totalChunks": self.total}
        if self.vue:  # ...(fileSize !== undefined ? { fileSize } : {})
            body["fileSize"] = len(self.data)
        return post_json(self.client, "/api/check-chunks", body)

    def chunk(self, index: int, body: bytes | None = None):
        data = self.data[index * CHUNK:(index + 1) * CHUNK]
        fields = [("chunk", data if body is None else body), ("chunkIndex", str(index)),
                  ("md5", self.md5), ("fileName", self.name), ("totalChunks", str(self.total))]
        if self.vue:  # enableChunkMd5: spark-md5 of the slice, lowercase hex
            fields.append(("chunkMd5", hashlib.md5(data).hexdigest()))
        return post_form(self.client, fields)

    def complete(self):
        return post_json(self.client, "/api/complete-upload", {
            "md5": self.md5, "fileName": self.name, "totalChunks": self.total})

    def upload(self):
        """The page's whole flow: check, send what is missing, complete."""
        found = self.check()
        assert found.status_code == 200, found.json
        for index in range(self.total):
            if index not in found.json["uploadedChunks"]:
                assert self.chunk(index).status_code == 200
        return self.complete()


@pytest.fixture(params=["vue", "react"])
def page(request, client):
    def make(data: bytes, name: str = "视频.mp4") -> Page:
        return Page(client, data, name, vue=request.param == "vue")
    return make


def test_a_page_uploads_and_reads_the_data_envelope(page, client, app):
    data = os.urandom(3 * CHUNK + 1000)
    upload = page(data)
    found = upload.check().json
    assert found["instantUpload"] is False and found["uploadedChunks"] == []
    assert found["data"] == {"instantUpload": False, "uploadedChunks": [], "progress": 0}
    done = upload.upload()
    assert done.status_code == 200
    assert done.json["data"] == {"fileName": "视频.mp4", "fileSize": len(data),
                                 "filePath": "/uploads/视频.mp4", "md5": upload.md5,
                                 "uploadTime": done.json["uploadTime"]}
    assert client.get(done.json["data"]["filePath"]).data == data
    assert leftovers(app)[1] == []


def test_a_known_file_is_an_instant_upload(page, client):
    data = os.urandom(2 * CHUNK)
    assert page(data, "first.bin").upload().status_code == 200
    again = page(data, "again.bin")
    found = again.check().json
    assert found["instantUpload"] is True and found["completed"] is True
    instant = {"fileUrl": "/uploads/again.bin", "fileName": "again.bin", "fileSize": len(data)}
    assert {key: found[key] for key in instant} == instant
    assert found["data"] == {"instantUpload": True, "uploadedChunks": [0, 1], "progress": 100,
                             **instant}
    assert client.get("/uploads/again.bin").data == data  # no chunk was sent


def test_an_empty_file_is_no_chunks(page, client):
    """There is nothing to send: check-chunks completes it at once (the React page then
    never calls complete-upload; the Vue page does, and gets the same answer)."""
    empty = page(b"", "empty.txt")
    assert empty.total == 0
    found = empty.check()
    assert found.status_code == 200
    assert (found.json["uploadedChunks"], found.json["progress"]) == ([], 100)
    assert found.json["instantUpload"] is True and found.json["path"] == "/uploads/empty.txt"
    assert client.get("/uploads/empty.txt").data == b""
    done = empty.complete()
    assert done.status_code == 200
    assert (done.json["size"], done.json["md5"]) == (0, EMPTY_MD5)
    assert done.json["data"]["fileSize"] == 0 and done.json["path"] == "/uploads/empty.txt"
    status = client.get(f"/api/upload-status/{EMPTY_MD5}/empty.txt").json
    assert status["status"] == "completed" and status["percentage"] == 100


def test_an_empty_file_said_to_have_bytes_fails_verification(client):
    refused = post_json(client, "/api/check-chunks", {
        "md5": EMPTY_MD5, "fileName": "liar.txt", "totalChunks": 0, "fileSize": 5})
    assert refused.status_code == 422 and refused.json["error"] == "size_mismatch"
    assert client.get(f"/api/upload-status/{EMPTY_MD5}/liar.txt").json["status"] == "uploading"


def test_no_chunks_is_only_for_the_empty_file(client):
    for body in ({"md5": "a" * 32, "fileName": "x.bin", "totalChunks": 0},
                 {"md5": "a" * 32, "fileName": "x.bin", "totalChunks": 0, "fileSize": 0}):
        for path in ("/api/check-chunks", "/api/complete-upload"):
            refused = post_json(client, path, body)
            assert refused.status_code == 400 and "totalChunks" in refused.json["fields"]


def test_a_wrong_chunk_is_refused_and_nothing_of_it_kept(client):
    """The Vue page sends chunkMd5 with every chunk (the React page sends none)."""
    data = os.urandom(2 * CHUNK)
    upload = Page(client, data, "wrong.bin", vue=True)
    upload.check()
    bad = bytearray(data[:CHUNK])
    bad[100] ^= 0xFF
    refused = upload.chunk(0, bytes(bad))  # chunkMd5 is of the right bytes
    assert refused.status_code == 400 and refused.json["error"] == "chunk_md5_mismatch"
    found = upload.check().json
    assert found["uploadedChunks"] == []
    assert upload.chunk(0).status_code == 200 and upload.chunk(1).status_code == 200
    assert upload.complete().json["md5"] == upload.md5


def test_a_chunk_md5_in_capitals_is_the_same(client):
    data = os.urandom(1000)
    md5 = hashlib.md5(data).hexdigest()
    stored = post_form(client, [("chunk", data), ("chunkIndex", "0"), ("md5", md5),
                                ("fileName", "caps.bin"), ("totalChunks", "1"),
                                ("chunkMd5", md5.upper())])
    assert stored.status_code == 200


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", "1e3"])
def test_malformed_chunk_fields_are_400(client, value):
    data = os.urandom(100)
    md5 = hashlib.md5(data).hexdigest()
    for name in ("fileSize", "chunkMd5"):
        refused = post_form(client, [("chunk", data), ("chunkIndex", "0"), ("md5", md5),
                                     ("fileName", "bad.bin"), ("totalChunks", "1"),
                                     (name, value)])
        assert refused.status_code == 400 and name in refused.json["fields"]


@pytest.mark.parametrize("value", [-1, 1.5, "100", True, None])
def test_malformed_file_size_is_400(client, value):
    refused = post_json(client, "/api/check-chunks", {
        "md5": "b" * 32, "fileName": "bad.bin", "totalChunks": 1, "fileSize": value})
    assert refused.status_code == 400 and "fileSize" in refused.json["fields"]


def test_a_file_over_the_limit_is_refused_at_once(app, client):
    app.config["MAX_FILE_SIZE"] = 10 * CHUNK
    body = {"md5": "c" * 32, "fileName": "big.iso", "totalChunks": 11,
            "fileSize": 10 * CHUNK + 1}
    refused = post_json(client, "/api/check-chunks", body)
    assert refused.status_code == 413 and refused.json["error"] == "file_too_large"
    assert client.get(f"/api/upload-status/{'c' * 32}/big.iso").status_code == 404
    chunk = post_form(client, [("chunk", b"x" * CHUNK), ("chunkIndex", "0"), ("md5", "c" * 32),
                               ("fileName", "big.iso"), ("totalChunks", "11"),
                               ("fileSize", str(10 * CHUNK + 1))])
    assert chunk.status_code == 413
    assert client.get(f"/api/upload-status/{'c' * 32}/big.iso").status_code == 404


def test_the_merged_file_must_have_the_declared_size(client):
    data = os.urandom(CHUNK + 10)
    md5 = hashlib.md5(data).hexdigest()
    body = {"md5": md5, "fileName": "sized.bin", "totalChunks": 2, "fileSize": CHUNK + 11}
    assert post_json(client, "/api/check-chunks", body).status_code == 200
    for index in range(2):
        part = data[index * CHUNK:(index + 1) * CHUNK]
        assert post_form(client, [("chunk", part), ("chunkIndex", str(index)), ("md5", md5),
                                  ("fileName", "sized.bin"),
                                  ("totalChunks", "2")]).status_code == 200
    refused = post_json(client, "/api/complete-upload", {
        "md5": md5, "fileName": "sized.bin", "totalChunks": 2})
    assert refused.status_code == 422 and refused.json["error"] == "size_mismatch"
    assert (refused.json["expectedSize"], refused.json["actualSize"]) == (CHUNK + 11, CHUNK + 10)
    status = client.get(f"/api/upload-status/{md5}/sized.bin").json
    assert status["status"] == "uploading" and status["uploaded"] == 2
    other = post_json(client, "/api/check-chunks", {**body, "fileSize": CHUNK + 10})
    assert other.status_code == 409 and other.json["error"] == "file_size_conflict"


@pytest.mark.parametrize("language, message", [
    ("zh-CN,zh;q=0.9", "后端服务运行正常"), ("zh-TW", "后端服务运行正常"),
    ("en-US,en;q=0.9", "Upload service is running"), (None, "Upload service is running"),
    ("fr, zh;q=0.5", "后端服务运行正常"), ("en;q=0.5, zh-CN", "后端服务运行正常"),
])
def test_the_health_message_speaks_the_pages_language(client, language, message):
    headers = {"Accept": "application/json, text/plain, */*"}
    if language:
        headers["Accept-Language"] = language
    health = client.get("/api/health", headers=headers)
    assert health.status_code == 200 and health.json["message"] == message
