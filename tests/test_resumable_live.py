"""The IETF draft under real gunicorn: the 104 on the wire (raw sockets and curl: Python's
http.client takes a 104 for the final answer), creations and appends cut short and
resumed, a stalled append that newer requests end, a worker killed mid-append, and
tus-js-client's ietf-draft-05."""
import hashlib
import json
import os
import signal
import socket
import subprocess
import time
from urllib.parse import unquote, urlsplit

import pytest
import requests

from .resumable_helpers import PARTIAL, draft
from .servers import GunicornServer
from .test_tus_clients import JS_DIR

SIZE = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """uploadsvc under gunicorn, 2 workers; the lock wait (10 s) and the body timeout (30 s)
    are far above what a request ended by a newer one may take."""
    server = GunicornServer(tmp_path_factory.mktemp("ietf") / "data", workers=2,
                            threads=4).start()
    yield server
    server.stop()


def head_of(data: bytes) -> tuple[int, dict]:
    lines = data.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    return status, {name.lower(): value.strip() for name, _, value in
                    (line.partition(":") for line in lines[1:] if line)}


def read_answer(sock: socket.socket, buffer: bytearray) -> tuple[int, dict, bytes]:
    """The next response (interim or final) on the socket: status, headers, body."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before an answer")
        buffer += data
    end = buffer.index(b"\r\n\r\n")
    status, headers = head_of(bytes(buffer[:end]))
    del buffer[:end + 4]
    length = 0 if status < 200 else int(headers.get("content-length", 0))
    while len(buffer) < length:
        buffer += sock.recv(65536)
    body = bytes(buffer[:length])
    del buffer[:length]
    return status, headers, body


def open_request(url: str, method: str, headers: dict, length: int,
                 version: str = "HTTP/1.1") -> socket.socket:
    """A request whose head is sent, its body (`length` bytes) for the caller to send."""
    parts = urlsplit(url)
    lines = [f"{method} {parts.path} {version}", f"Host: {parts.netloc}",
             f"Content-Length: {length}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    sock = socket.create_connection((parts.hostname, parts.port), timeout=20)
    sock.sendall("\r\n".join(lines).encode())
    return sock


def stored(server, location: str) -> bytes:
    answer = requests.head(location, headers=draft(9), timeout=10)
    assert answer.headers["Upload-Complete"] == "?1", answer.headers
    path = answer.headers["Content-Location"]
    return (server.data_dir / unquote(path).lstrip("/")).read_bytes()


def finish(location: str, data: bytes, version: int = 9) -> requests.Response:
    """Ask the offset, then send the rest with Upload-Complete: ?1."""
    offset = int(requests.head(location, headers=draft(version), timeout=10)
                 .headers["Upload-Offset"])
    done = requests.patch(location, data=data[offset:], timeout=30, headers=draft(
        version, Upload_Offset=str(offset), Upload_Complete="?1", Content_Type=PARTIAL))
    assert done.status_code == 201, done.text
    return done


def test_optimistic_creation_is_announced_by_104_before_its_body(server):
    data = os.urandom(100_000)
    sock = open_request(server.url + "/files/", "POST", draft(
        6, Upload_Complete="?1", Content_Disposition="inline; filename=early.bin"), len(data))
    with sock:
        buffer = bytearray()
        status, interim, _ = read_answer(sock, buffer)  # before a byte of the body is sent
        assert status == 104
        assert interim["upload-draft-interop-version"] == "6"
        assert interim["upload-limit"].startswith("max-size=")
        sock.sendall(data)
        status, final, _ = read_answer(sock, buffer)
    assert (status, final["upload-complete"]) == (201, "?1")
    assert final["location"] == interim["location"]
    assert stored(server, final["location"]) == data


def test_no_104_without_a_served_version_or_on_http_1_0(server):
    cases = [({"Tus-Resumable": "1.0.0", "Upload-Length": "3", "Content-Type":
               "application/offset+octet-stream"}, "HTTP/1.1", 201),
             (draft(9, Upload_Complete="?0"), "HTTP/1.0", 201),
             (draft(10, Upload_Complete="?0"), "HTTP/1.1", 412)]
    for headers, version, expected in cases:
        with open_request(server.url + "/files/", "POST", headers, 3, version) as sock:
            sock.sendall(b"abc")
            status, _, _ = read_answer(sock, bytearray())
        assert status == expected, (headers, version)


def test_curl_shows_the_104_then_the_final_answer(server, tmp_path):
    source = tmp_path / "curl.bin"
    source.write_bytes(os.urandom(50_000))
    out = subprocess.run(
        ["curl", "-si", "-X", "POST", "-H", "Upload-Draft-Interop-Version: 8",
         "-H", "Upload-Complete: ?1", "--data-binary", f"@{source}", server.url + "/files/"],
        capture_output=True, timeout=30, check=True).stdout.decode("latin-1")
    statuses = [line.split()[1] for line in out.splitlines() if line.startswith("HTTP/1.1 ")]
    assert statuses == ["104", "201"], out


def test_optimistic_creation_cut_after_its_104_is_resumed(server):
    data = os.urandom(SIZE)
    sock = open_request(server.url + "/files/", "POST",
                        draft(6, Upload_Complete="?1"), len(data))
    with sock:
        _, interim, _ = read_answer(sock, bytearray())
        sock.sendall(data[:SIZE // 2])
    finish(interim["location"], data, 6)
    assert stored(server, interim["location"]) == data


def test_an_append_cut_mid_body_is_resumed_from_the_offset_head_reports(server):
    data = os.urandom(SIZE)
    location = requests.post(server.url + "/files/", timeout=10, headers=draft(
        7, Upload_Complete="?0", Upload_Length=str(SIZE))).headers["Location"]
    with open_request(location, "PATCH", draft(7, Upload_Offset="0", Upload_Complete="?1",
                                               Content_Type=PARTIAL), SIZE) as sock:
        sock.sendall(data[:SIZE // 2])  # then the connection is gone
    # What arrived before the cut is kept, once the cut request has ended (a HEAD that
    # comes before it has even begun reads the offset as it was: 0).
    deadline, offset = time.monotonic() + 20, 0
    while not offset and time.monotonic() < deadline:
        offset = int(requests.head(location, headers=draft(7), timeout=10)
                     .headers["Upload-Offset"])
        time.sleep(0.05)
    assert 0 < offset <= SIZE // 2
    assert finish(location, data, 7).headers["Upload-Complete"] == "?1"
    assert stored(server, location) == data


def test_a_stalled_append_is_ended_by_head_and_a_new_patch(server):
    data = os.urandom(SIZE)
    created = requests.post(server.url + "/files/", timeout=10,
                            headers=draft(9, Upload_Complete="?0", Upload_Length=str(SIZE)))
    location = created.headers["Location"]
    stalled = open_request(location, "PATCH", draft(
        9, Upload_Offset="0", Upload_Complete="?1", Content_Type=PARTIAL), SIZE)
    with stalled:
        stalled.sendall(data[:SIZE // 2])  # and then nothing: a phone that lost its network
        time.sleep(0.5)  # (the server reads what arrived meanwhile; not needed to pass)
        started = time.monotonic()
        head = requests.head(location, headers=draft(9), timeout=30)
        assert head.status_code == 204
        assert time.monotonic() - started < 5  # not the lock wait (10 s), nor the body's 30
        assert int(head.headers["Upload-Offset"]) <= SIZE // 2
        finish(location, data)
        status, headers, body = read_answer(stalled, bytearray())
    assert status == 409 and json.loads(body)["error"] == "upload_superseded"
    assert stored(server, location) == data


def test_a_worker_killed_mid_append_loses_nothing_recorded(server):
    data = os.urandom(SIZE)
    location = requests.post(server.url + "/files/", timeout=10, headers=draft(
        8, Upload_Complete="?0")).headers["Location"]
    first = requests.patch(location, data=data[:1000], timeout=10, headers=draft(
        8, Upload_Offset="0", Upload_Complete="?0", Content_Type=PARTIAL))
    assert first.status_code == 204
    with open_request(location, "PATCH", draft(8, Upload_Offset="1000", Upload_Complete="?1",
                                               Content_Type=PARTIAL), SIZE - 1000) as sock:
        sock.sendall(data[1000:SIZE // 2])
        time.sleep(0.3)
        for pid in server.worker_pids():
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # gunicorn starts new workers
        try:
            answer = requests.head(location, headers=draft(8), timeout=5)
            if answer.status_code == 204:
                break
        except requests.RequestException:
            pass
        time.sleep(0.2)
    assert 1000 <= int(answer.headers["Upload-Offset"]) <= SIZE // 2
    finish(location, data, 8)
    got = stored(server, location)
    assert hashlib.md5(got).hexdigest() == hashlib.md5(data).hexdigest()


def test_tus_js_client_ietf_draft_05_uploads_aborts_and_resumes(server, tmp_path):
    data = os.urandom(4 * 1024 * 1024 + 3)
    source = tmp_path / "draft.bin"
    source.write_bytes(data)
    result = subprocess.run(
        ["node", str(JS_DIR / "tus_client.mjs"), server.url + "/files/", str(source),
         "draft.bin", "resume", "ietf-draft-05"],
        cwd=JS_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0 < answer["resumedFrom"] < len(data)
    assert stored(server, answer["url"]) == data


def test_an_empty_creation_gets_its_final_answer_alone(server):
    """No 104 before an answer that follows at once: Python's http.client (requests) would
    take it for the final one."""
    created = requests.post(server.url + "/files/", headers=draft(9, Upload_Complete="?0"),
                            timeout=10)
    assert created.status_code == 201 and created.headers["Location"]
