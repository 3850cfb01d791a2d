"""Slow clients against real gunicorn on 127.0.0.1: they are cut off, others are served.

One worker with two threads; more slow connections than threads, each sending its body a
byte at a time (or stalling), must neither stop a normal request nor live past the body
timeout.
"""
import socket
import threading
import time

import pytest
import requests

from .servers import GunicornServer

BODY_TIMEOUT = 2
SLOW_CONNECTIONS = 5  # more than workers x threads


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    server = GunicornServer(tmp_path_factory.mktemp("slow") / "data", workers=1, threads=2,
                            env={"UPLOADSVC_BODY_TIMEOUT": str(BODY_TIMEOUT),
                                 "UPLOADSVC_BODY_MIN_RATE": "1000"}).start()
    yield server
    server.stop()


def slow_upload(port: int, stall: bool, results: list, stop: threading.Event) -> None:
    """Send an upload-chunk request whose body trickles (or stalls); record what came back."""
    started = time.monotonic()
    body_size = 100_000
    head = (f"POST /api/upload-chunk HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary=XX\r\n"
            f"Content-Length: {body_size}\r\n\r\n--XX\r\n").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(head)
        answer = b""
        while not stop.is_set() and time.monotonic() - started < 20:
            try:
                if not stall:
                    sock.sendall(b"x")
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
                if b"\r\n\r\n" in answer:
                    break
            except TimeoutError:
                continue
            except OSError:  # reset by the server: cut off too
                break
    results.append((time.monotonic() - started, answer.split(b"\r\n", 1)[0]))


def test_slow_bodies_are_cut_off_and_do_not_block_others(small_server):
    results, stop = [], threading.Event()
    clients = [threading.Thread(target=slow_upload,
                                args=(small_server.port, i % 2 == 1, results, stop))
               for i in range(SLOW_CONNECTIONS)]
    for thread in clients:
        thread.start()
    time.sleep(0.5)
    try:
        started = time.monotonic()
        health = requests.get(f"{small_server.url}/api/health", timeout=15)
        waited = time.monotonic() - started
        assert health.status_code == 200
        # queued behind at most SLOW_CONNECTIONS / threads rounds of BODY_TIMEOUT each
        assert waited < BODY_TIMEOUT * (SLOW_CONNECTIONS // 2 + 1) + 2, waited
    finally:
        for thread in clients:
            thread.join(30)
        stop.set()
    assert len(results) == SLOW_CONNECTIONS
    for elapsed, status_line in results:
        assert elapsed < 15, results  # none lives on: each is cut off
        assert status_line == b"" or status_line.startswith(b"HTTP/1.1 408"), results
    assert sum(line.startswith(b"HTTP/1.1 408") for _, line in results) >= SLOW_CONNECTIONS - 1
    assert list((small_server.data_dir / "temp").iterdir()) == []
