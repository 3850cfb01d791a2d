"""Limits, each refused with its 4xx before bytes are stored: file and chunk sizes, unfinished
uploads per client and in all, client addresses behind a proxy, rate limits, slow bodies."""
import io

import pytest
from werkzeug.exceptions import RequestTimeout

from uploadsvc.http.timeouts import MAX_SLICE, TimedInput

from .helpers import TestFile, random_file, send_chunk


def stored(data_dir) -> list[str]:
    """Every file under temp/, chunks/ and uploads/ (lock files aside)."""
    return sorted(str(p.relative_to(data_dir)) for d in ("temp", "chunks", "uploads")
                  for p in (data_dir / d).rglob("*") if p.is_file() and p.name != ".lock")


class CountingStream(io.BytesIO):
    """A request body that records how much of it was read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size=-1):
        data = super().read(size)
        self.bytes_read += len(data)
        return data

    readinto = None  # force werkzeug through read(), which counts


def multipart(f: TestFile, index: int, body: bytes) -> bytes:
    fields = {"chunkIndex": str(index), "md5": f.md5, "fileName": f.name,
              "totalChunks": str(f.total)}
    parts = [f'--XX\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(b'--XX\r\nContent-Disposition: form-data; name="chunk"; filename="blob"\r\n'
                 b"Content-Type: application/octet-stream\r\n\r\n" + body + b"\r\n--XX--\r\n")
    return b"".join(parts)


def test_file_over_max_file_size_as_actually_sent_is_413(app, client, data_dir):
    app.config["MAX_FILE_SIZE"] = 1000
    f = random_file(1500, 1500)  # one chunk: nothing declared, the bytes themselves exceed
    response = send_chunk(client, f, 0)
    assert response.status_code == 413 and response.get_json()["error"] == "file_too_large"
    assert stored(data_dir) == []


def test_chunk_over_max_chunk_size_is_refused_by_content_length_unread(app, client, data_dir):
    app.config["MAX_CHUNK_SIZE"] = 1000
    f = random_file(200_000, 100_000)
    body = CountingStream(multipart(f, 0, f.chunk(0)))
    response = client.post("/api/upload-chunk", input_stream=body,
                           content_length=len(body.getvalue()),
                           content_type="multipart/form-data; boundary=XX")
    assert response.status_code == 413 and response.get_json()["error"] == "chunk_too_large"
    assert body.bytes_read == 0
    assert stored(data_dir) == []


def test_chunk_over_max_chunk_size_without_length_is_stopped_while_spooling(app, client,
                                                                             data_dir):
    app.config["MAX_CHUNK_SIZE"] = 1000
    f = random_file(8000, 4000)
    body = CountingStream(multipart(f, 0, f.chunk(0)))
    response = client.post("/api/upload-chunk", input_stream=body,
                           content_type="multipart/form-data; boundary=XX",
                           environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413 and response.get_json()["error"] == "chunk_too_large"
    assert stored(data_dir) == []


def test_chunk_at_max_chunk_size_is_accepted(app, client):
    app.config["MAX_CHUNK_SIZE"] = 1000
    f = random_file(2000, 1000)
    assert send_chunk(client, f, 0).status_code == 200


FILES = {name: random_file(200, 100, name) for name in ("a.bin", "b.bin", "c.bin")}


def upload_from(client, address: str, name: str, index: int = 0):
    return client.post("/api/upload-chunk", data=FILES[name].form(index),
                       environ_base={"REMOTE_ADDR": address})


def test_unfinished_uploads_are_limited_per_address(app, client):
    app.config["MAX_ACTIVE_UPLOADS_PER_CLIENT"] = 2
    assert upload_from(client, "127.0.0.2", "a.bin").status_code == 200
    assert upload_from(client, "127.0.0.2", "b.bin").status_code == 200
    refused = upload_from(client, "127.0.0.2", "c.bin")
    assert refused.status_code == 429 and refused.get_json()["error"] == "too_many_uploads"
    assert upload_from(client, "127.0.0.3", "c.bin").status_code == 200
    # more chunks of an upload already started are never refused
    assert upload_from(client, "127.0.0.2", "a.bin", index=1).status_code == 200


def test_unfinished_uploads_are_limited_in_all(app, client):
    app.config["MAX_ACTIVE_UPLOADS"] = 2
    assert upload_from(client, "127.0.0.2", "a.bin").status_code == 200
    assert upload_from(client, "127.0.0.3", "b.bin").status_code == 200
    assert upload_from(client, "127.0.0.4", "c.bin").status_code == 429
    assert client.get("/api/stats").get_json()["activeUploads"] == 2
    a = FILES["a.bin"]
    assert client.delete(f"/api/upload/{a.md5}/a.bin").status_code == 200
    assert upload_from(client, "127.0.0.4", "c.bin").status_code == 200


def test_completing_an_upload_makes_room(app, client):
    app.config["MAX_ACTIVE_UPLOADS_PER_CLIENT"] = 1
    f = random_file(100, 100, "one.bin")
    assert send_chunk(client, f, 0).status_code == 200
    assert send_chunk(client, random_file(100, 100, "two.bin"), 0).status_code == 429
    assert client.post("/api/complete-upload", json=f.ident()).status_code == 200
    assert send_chunk(client, random_file(100, 100, "two.bin"), 0).status_code == 200


@pytest.mark.parametrize("proxies, expected", [(0, 429), (1, 200)])
def test_forwarded_for_is_trusted_only_behind_a_configured_proxy(migrated_database, tmp_path,
                                                                 proxies, expected):
    import shutil

    from uploadsvc import create_app
    shutil.copy(migrated_database, tmp_path / "uploadsvc.sqlite3")
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "TRUSTED_PROXIES": proxies,
                      "MAX_ACTIVE_UPLOADS_PER_CLIENT": 1})
    client = app.test_client()
    for name, forwarded in (("a.bin", "127.0.0.5"), ("b.bin", "127.0.0.6")):
        f = random_file(100, 100, name)
        response = client.post("/api/upload-chunk", data=f.form(0),
                               headers={"X-Forwarded-For": forwarded})
    assert response.status_code == expected


def test_rate_limit_per_client_when_configured(migrated_database, tmp_path):
    import shutil

    from uploadsvc import create_app
    shutil.copy(migrated_database, tmp_path / "uploadsvc.sqlite3")
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "RATE_LIMIT": "3/minute"})
    client = app.test_client()
    for _ in range(3):
        assert client.get("/api/stats").status_code == 200
    refused = client.get("/api/stats")
    assert refused.status_code == 429
    assert refused.get_json()["success"] is False and "Retry-After" in refused.headers
    other = client.get("/api/stats", environ_base={"REMOTE_ADDR": "127.0.0.9"})
    assert other.status_code == 200


def test_no_rate_limit_by_default(client):
    for _ in range(50):
        assert client.get("/api/health").status_code == 200


class Trickle(io.RawIOBase):
    """A body source that stalls (raises the socket's timeout) or sends a byte at a time."""

    def __init__(self, stall: bool) -> None:
        self.stall = stall

    def read(self, size=-1):
        if self.stall:
            raise TimeoutError("timed out")
        return b"x"


def test_stalled_body_is_408():
    with pytest.raises(RequestTimeout):
        TimedInput(Trickle(stall=True), timeout=5, min_rate=1).read(100)


def test_trickling_body_is_408_after_the_grace_time(monkeypatch):
    clock = iter(range(0, 1000, 1))
    monkeypatch.setattr("uploadsvc.http.timeouts.time.monotonic", lambda: next(clock))
    body = TimedInput(Trickle(stall=False), timeout=3, min_rate=10)
    for _ in range(2):  # within the first 3 s anything goes
        assert body.read(100) == b"x"
    with pytest.raises(RequestTimeout):
        for _ in range(5):
            body.read(100)


def test_timed_input_reads_a_whole_body_in_slices():
    data = bytes(range(256)) * 1000
    body = TimedInput(io.BytesIO(data), timeout=5, min_rate=1024)
    assert body.read(10) == data[:10]
    assert body.read() == data[10:]
    assert body.read() == b""


class ReadOnly(io.RawIOBase):
    """A body source with read() but no readinto(), like gunicorn's own body reader."""

    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)

    def read(self, size=-1):
        return self.data.read(size)

    readinto = None


@pytest.mark.parametrize("source", [io.BytesIO, ReadOnly])
def test_timed_input_reads_into_a_buffer_in_slices(source):
    data = bytes(range(256)) * 1000
    body = TimedInput(source(data), timeout=5, min_rate=1024)
    buffer = bytearray(100_000)
    got = bytearray()
    while n := body.readinto(buffer):
        assert n <= MAX_SLICE  # sliced, so that a trickle is noticed
        got += buffer[:n]
    assert got == data and body.received == len(data)


def test_stalled_readinto_is_408():
    class Stalls(io.RawIOBase):
        def readinto(self, buffer):
            raise TimeoutError("timed out")

    with pytest.raises(RequestTimeout):
        TimedInput(Stalls(), timeout=5, min_rate=1).readinto(bytearray(10))


def test_spool_file_stops_and_removes_itself_at_its_limit(tmp_path):
    from uploadsvc.storage import LocalStore, PartTooLarge

    spool = LocalStore(str(tmp_path)).spool(limit=10)
    assert spool.write(b"12345") == 5
    with pytest.raises(PartTooLarge):
        spool.write(b"678901")
    assert spool.closed and list((tmp_path / "temp").iterdir()) == []


def test_timed_input_slices_follow_a_fast_body():
    body = TimedInput(io.BytesIO(b"x" * (8 * MAX_SLICE)), timeout=30, min_rate=1024)
    assert body.slice < 64 * 1024
    while body.read(MAX_SLICE):
        pass
    assert body.slice == MAX_SLICE  # a fast body is read in large slices, not 7 KiB ones
