"""Connections of the benchmark's client: kept open for a stream's requests, as real clients
keep them, or one per request; bodies sent by os.sendfile."""
import http.client
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


def request(port: int, method: str, path: str, headers: dict | None = None,
            body: list | tuple = (), timeout: float = 600) -> Response:
    """One request on a fresh connection; body parts are bytes or (fd, offset, count)."""
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        return _exchange(sock, port, method, path, headers, body, timeout, keep_alive=False)


class Connection:
    """One stream's connection to the server, as real clients keep it: reused for request
    after request (KEEP_ALIVE), or a new one for each request when KEEP_ALIVE is off. A
    connection the server closed while idle is opened again and the request sent again
    (every request of the bench may be repeated)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    def request(self, method: str, path: str, headers: dict | None = None,
                body: list | tuple = (), timeout: float = 600) -> Response:
        if not KEEP_ALIVE:
            return request(self.port, method, path, headers, body, timeout)
        for attempt in range(2):
            reused = self.sock is not None
            if self.sock is None:
                self.sock = socket.create_connection((HOST, self.port), timeout=timeout)
            try:
                response = _exchange(self.sock, self.port, method, path, headers, body,
                                     timeout, keep_alive=True)
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                self.close()
                if attempt or not reused:
                    raise
                continue
            if response.headers.get("Connection", "").lower() == "close":
                self.close()
            return response
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# Connections kept open for all of a stream's requests, as browsers, tus clients and
# requests.Session do; `python -m bench --new-connections` opens one per request instead.
KEEP_ALIVE = True


def _exchange(sock: socket.socket, port: int, method: str, path: str, headers: dict | None,
              body: list | tuple, timeout: float, keep_alive: bool) -> Response:
    """Send one request on sock and read its answer."""
    length = sum(len(p) if isinstance(p, bytes) else p[2] for p in body)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}",
             f"Connection: {'keep-alive' if keep_alive else 'close'}",
             f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)  # blocking: os.sendfile then waits instead of failing
    pending = head
    for part in body:
        if isinstance(part, bytes):
            pending += part
            continue
        if pending:
            sock.sendall(pending)
            pending = b""
        _sendfile(sock, *part)
    if pending:
        sock.sendall(pending)
    sock.settimeout(timeout)
    response = http.client.HTTPResponse(sock, method=method)
    response.begin()
    data = response.read()
    return Response(response.status, response.headers, data)


def _sendfile(sock: socket.socket, fd: int, offset: int, count: int) -> None:
    while count:
        sent = os.sendfile(sock.fileno(), fd, offset, count)
        if sent == 0:
            raise ConnectionError("peer closed while sending the body")
        offset += sent
        count -= sent


class Connections:
    """The connections of one upload: one for each request in flight, each reused (a
    browser's or a client's connection pool)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.free: list[Connection] = []
        self.opened: list[Connection] = []
        self.lock = threading.Lock()

    @contextmanager
    def get(self) -> Iterator[Connection]:
        with self.lock:
            conn = self.free.pop() if self.free else None
            if conn is None:
                conn = Connection(self.port)
                self.opened.append(conn)
        try:
            yield conn
        finally:
            with self.lock:
                self.free.append(conn)

    def close(self) -> None:
        for conn in self.opened:
            conn.close()
