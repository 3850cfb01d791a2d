"""Real tus clients against uploadsvc under gunicorn: tuspy, tus-js-client (Node), and two
PATCHes racing for one upload across workers. Every test checks the stored bytes."""
import hashlib
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from tusclient import client as tus_client
from tusclient.storage.filestorage import FileStorage

from .servers import GunicornServer
from .tus_helpers import TUS, metadata

JS_DIR = Path(__file__).resolve().parent / "js"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """uploadsvc under gunicorn with 3 workers; locks wait 1 s so that races end quickly."""
    server = GunicornServer(tmp_path_factory.mktemp("tus") / "data", workers=3, threads=4,
                            env={"UPLOADSVC_LOCK_WAIT_SECONDS": "1"}).start()
    yield server
    server.stop()


def stored(server, url: str) -> tuple[bytes, str]:
    """The finished upload's bytes under uploads/, and the md5 the server recorded."""
    response = requests.head(url, headers=TUS, timeout=10)
    assert response.status_code == 200, response.headers
    assert response.headers["Upload-Offset"] == response.headers["Upload-Length"]
    path = response.headers["Upload-Path"]
    assert path.startswith("/uploads/")
    return (server.data_dir / path.lstrip("/")).read_bytes(), response.headers["Upload-MD5"]


def send_then_drop(url: str, offset: int, body: bytes, declared: int) -> None:
    """A PATCH whose connection dies after `body`, short of the `declared` length."""
    parts = urlsplit(url)
    head = (f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {declared}\r\n\r\n").encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head + body)
        time.sleep(0.2)  # let the server read what was sent before the connection dies


def wait_for_offset(url: str, wanted: int, timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while True:
        offset = int(requests.head(url, headers=TUS, timeout=10).headers["Upload-Offset"])
        if offset == wanted or time.monotonic() > deadline:
            return offset
        time.sleep(0.05)


# tuspy opens the file once per chunk and never closes it (its fingerprinting closes any
# stream handed in instead, so there is no way around it from here).
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_tuspy_uploads_is_interrupted_and_resumes(server, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 12345)
    source = tmp_path / "holiday.mov"
    source.write_bytes(data)
    storage = FileStorage(str(tmp_path / "tuspy-urls.json"))
    client = tus_client.TusClient(server.url + "/files/")

    def uploader():
        return client.uploader(str(source), chunk_size=256 * 1024, store_url=True,
                               url_storage=storage, upload_checksum=True,
                               metadata={"filename": "holiday.mov"})

    first = uploader()
    first.upload(stop_at=1024 * 1024)  # four checksummed chunks, then the client stops
    assert first.get_offset() == 1024 * 1024
    # The next PATCH breaks off after 100 KiB; the server keeps what arrived.
    offset = 1024 * 1024
    send_then_drop(first.url, offset, data[offset:offset + 100_000], declared=256 * 1024)
    assert wait_for_offset(first.url, offset + 100_000) == offset + 100_000

    resumed = uploader()  # as a new process would: the URL found by fingerprint
    assert resumed.url == first.url
    assert resumed.offset == offset + 100_000
    resumed.upload()
    body, md5 = stored(server, first.url)
    assert body == data
    assert md5 == hashlib.md5(data).hexdigest()


def run_js(*args: str) -> dict:
    result = subprocess.run(["node", str(JS_DIR / "tus_client.mjs"), *args], cwd=JS_DIR,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_tus_js_client_parallel_uploads_are_concatenated(server, tmp_path):
    data = os.urandom(2 * 1024 * 1024 + 7)
    source = tmp_path / "parallel.bin"
    source.write_bytes(data)
    result = run_js(server.url + "/files/", str(source), "parallel.bin", "parallel")
    final = requests.head(result["url"], headers=TUS, timeout=10)
    assert final.headers["Upload-Concat"].startswith("final;")
    assert len(final.headers["Upload-Concat"][len("final;"):].split()) == 3
    body, md5 = stored(server, result["url"])
    assert body == data and md5 == hashlib.md5(data).hexdigest()


def test_tus_js_client_resumes_after_abort(server, tmp_path):
    data = os.urandom(4 * 1024 * 1024 + 3)
    source = tmp_path / "resumed.bin"
    source.write_bytes(data)
    result = run_js(server.url + "/files/", str(source), "resumed.bin", "resume")
    assert 0 < result["resumedFrom"] < len(data)
    body, md5 = stored(server, result["url"])
    assert body == data and md5 == hashlib.md5(data).hexdigest()


def test_racing_patches_never_interleave(server):
    size = 1024 * 1024
    created = requests.post(server.url + "/files/", timeout=10, headers={
        **TUS, "Upload-Length": str(2 * size), "Upload-Metadata": metadata(filename="race.bin")})
    url = created.headers["Location"]
    slow_bytes = os.urandom(size)
    results = {}

    def slow_body():
        for start in range(0, size, 64 * 1024):
            yield slow_bytes[start:start + 64 * 1024]
            time.sleep(0.1)  # about 1.6 s in all: longer than the 1 s lock wait

    def slow_patch():
        results["slow"] = requests.patch(url, data=slow_body(), timeout=30, headers={
            **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})

    thread = threading.Thread(target=slow_patch)
    thread.start()
    time.sleep(0.4)
    fast = requests.patch(url, data=os.urandom(size), timeout=30, headers={
        **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    thread.join()
    assert fast.status_code in (409, 423), fast.text
    assert fast.json()["success"] is False
    assert results["slow"].status_code == 204
    assert results["slow"].headers["Upload-Offset"] == str(size)
    rest = os.urandom(size)
    done = requests.patch(url, data=rest, timeout=30, headers={
        **TUS, "Upload-Offset": str(size), "Content-Type": "application/offset+octet-stream"})
    assert done.status_code == 204
    body, _ = stored(server, url)
    assert body == slow_bytes + rest
