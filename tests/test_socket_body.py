"""Large bodies read straight from gunicorn's socket (socketbody.py), over real connections:
keep-alive and pipelined requests still line up, and a cut body stores nothing."""
import hashlib
import http.client
import io
import os
import socket
import time
import uuid
from urllib.parse import urlsplit

import requests

from uploadsvc.http.socketbody import SocketBody

from .helpers import random_file
from .live import complete, files_in, status, upload
from .tus_helpers import TUS, metadata


def multipart_request(host: str, test_file, index: int) -> bytes:
    boundary = uuid.uuid4().hex
    fields = {"chunkIndex": index, "md5": test_file.md5, "fileName": test_file.name,
              "totalChunks": test_file.total}
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'
                    f"{v}\r\n".encode() for k, v in fields.items())
    body += (f'--{boundary}\r\nContent-Disposition: form-data; name="chunk"; '
             f'filename="blob"\r\nContent-Type: application/octet-stream\r\n\r\n').encode()
    body += test_file.chunk(index) + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /api/upload-chunk HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


class Answers:
    """The answers to requests pipelined on one socket, read through one buffer: an
    HTTPResponse per answer would each buffer the socket anew, and the first could read
    ahead into the next answer's bytes (whenever the server is quick enough)."""

    def __init__(self, sock: socket.socket) -> None:
        self.reader = KeptOpen(socket.SocketIO(sock, "rb"))

    def makefile(self, *args, **kwargs) -> io.BufferedReader:
        return self.reader

    def next(self, method: str) -> http.client.HTTPResponse:
        response = http.client.HTTPResponse(self, method=method)
        response.begin()
        return response


class KeptOpen(io.BufferedReader):
    """A reader that the answer read before the next one does not close."""

    def close(self) -> None:
        pass


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def test_pipelined_requests_after_a_large_body(live_server):
    test_file = random_file(2 * 300_000, 300_000, "pipelined.bin")
    host = urlsplit(live_server.url).netloc
    status_path = f"/api/upload-status/{test_file.md5}/{test_file.name}"
    requests_ = (multipart_request(host, test_file, 0) + multipart_request(host, test_file, 1)
                 + f"GET {status_path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    with connect(live_server.url) as sock:
        sock.sendall(requests_)  # all three at once, on one keep-alive connection
        answers, reader = [], Answers(sock)
        for method in ("POST", "POST", "GET"):
            response = reader.next(method)
            answers.append((response.status, response.read()))
    assert [code for code, _ in answers] == [200, 200, 200], answers
    assert b'"uploaded":2' in answers[2][1].replace(b" ", b"")
    assert complete(live_server.url, test_file).json()["md5"] == test_file.md5


def test_large_chunks_on_one_keep_alive_session(live_server):
    test_file = random_file(5 * 200_000 + 123, 200_000, "keepalive.bin")
    upload(live_server.url, test_file)  # one requests.Session: the connection is reused
    done = complete(live_server.url, test_file).json()
    stored = live_server.data_dir / done["path"].lstrip("/")
    assert stored.read_bytes() == test_file.data


def test_a_body_cut_short_stores_nothing(live_server):
    test_file = random_file(400_000, 400_000, "cut-short.bin")
    request = multipart_request(urlsplit(live_server.url).netloc, test_file, 0)
    with connect(live_server.url) as sock:
        sock.sendall(request[:len(request) // 2])
    deadline = time.monotonic() + 10
    while files_in(live_server.data_dir / "temp") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert files_in(live_server.data_dir / "temp") == []
    assert status(live_server.url, test_file).status_code == 404


def test_pipelined_tus_patches_read_into_the_callers_buffer(live_server):
    """tus bodies are read with readinto (recv_into): the head gunicorn buffered, then the
    socket, then the next request on the connection, which must start where the body ends."""
    data = os.urandom(3 * 200_000 + 7)
    host = urlsplit(live_server.url).netloc
    created = requests.post(live_server.url + "/files/", timeout=10, headers={
        **TUS, "Upload-Length": str(len(data)), "Upload-Metadata": metadata(filename="p.bin")})
    path = urlsplit(created.headers["Location"]).path
    pieces = [(0, 200_000), (200_000, 400_000), (400_000, len(data))]
    requests_ = b"".join(
        (f"PATCH {path} HTTP/1.1\r\nHost: {host}\r\nTus-Resumable: 1.0.0\r\n"
         f"Upload-Offset: {start}\r\nContent-Type: application/offset+octet-stream\r\n"
         f"Content-Length: {end - start}\r\n\r\n").encode() + data[start:end]
        for start, end in pieces)
    with connect(live_server.url) as sock:
        sock.sendall(requests_)  # all three at once, on one keep-alive connection
        answers, reader = [], Answers(sock)
        for _ in pieces:
            response = reader.next("PATCH")
            response.read()
            answers.append((response.status, response.getheader("Upload-Offset")))
    assert answers == [(204, str(end)) for _, end in pieces]
    done = requests.head(live_server.url + path, headers=TUS, timeout=10)
    assert done.headers["Upload-MD5"] == hashlib.md5(data).hexdigest()
    assert (live_server.data_dir / done.headers["Upload-Path"].lstrip("/")).read_bytes() == data


class LengthReader:
    """The parts of gunicorn's body reader that SocketBody uses."""

    def __init__(self, length: int, buffered: bytes) -> None:
        self.length = length
        self.unreader = self
        self.buffered = buffered

    def take_buffered(self) -> bytes:
        taken, self.buffered = self.buffered, b""
        return taken

    def unread(self, data: bytes) -> None:
        self.buffered = data + self.buffered


class Body:
    def __init__(self, reader: LengthReader) -> None:
        self.reader = reader
        self.buf = io.BytesIO()
        self.failed = False


def test_readline_takes_blocks_and_keeps_what_follows_the_line():
    body_bytes = b"first line\n" + b"x" * 20_000 + b"\nlast"
    here, there = socket.socketpair()
    with here, there:
        there.sendall(body_bytes[6:] + b"NEXT REQUEST")  # the rest, then a pipelined request
        reader = LengthReader(len(body_bytes), body_bytes[:6])  # gunicorn had buffered 6
        body = SocketBody(Body(reader), here)
        assert body.readline() == b"first line\n"
        assert body.readline(100) == b"x" * 100
        assert body.readline() == b"x" * 19_900 + b"\n"
        assert body.readline() == b"last"
        assert body.readline() == b""
        assert reader.length == 0  # not one byte of the next request was taken
        assert here.recv(100) == b"NEXT REQUEST"
