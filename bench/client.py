"""A frugal HTTP/1.1 client for the benchmark: headers from Python, bodies by os.sendfile.

Request bodies are a small preamble, a slice of a file sent by the kernel, and a small
epilogue, so the client spends almost no CPU of its own on the bytes it sends and the
figures measure the server.
"""
import base64
import hashlib
import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

from .connections import HOST, Connection, Connections, Response, request  # noqa: F401


@dataclass(frozen=True)
class Slice:
    """Bytes offset..offset+size of a file on disk, with their md5."""

    path: str
    offset: int
    size: int
    md5: str


def _check(response: Response, *ok: int) -> Response:
    if response.status not in ok:
        raise RuntimeError(f"HTTP {response.status}: {response.body[:300]!r}")
    return response


def _json_post(conns: Connections, path: str, data: dict) -> Response:
    body = json.dumps(data).encode()
    with conns.get() as conn:
        return conn.request("POST", path, {"Content-Type": "application/json"}, [body])


def _run_parallel(jobs: list, in_flight: int, work) -> None:
    """Run work(job) for each job on in_flight threads, jobs taken in list order."""
    with ThreadPoolExecutor(in_flight) as pool:
        for _ in pool.map(work, jobs):  # re-raises the first failure
            pass


@dataclass(frozen=True)
class Timing:
    """Seconds from the first byte sent to the last answer, and of the last request alone."""

    total: float
    last: float


def seed_upload(port: int, data: Slice, chunk_size: int, name: str, in_flight: int = 1,
                order: list[int] | None = None, chunk_md5: bool = False) -> Timing:
    """Upload through the seed API and complete it; the answer's md5 and size are checked.
    With chunk_md5, each chunk is sent as the Vue page sends it: the file part first, then
    the fields and the chunk's own MD5 (computed before the clock starts)."""
    total = max(1, -(-data.size // chunk_size))
    ident = {"md5": data.md5, "fileName": name, "totalChunks": total}
    boundary = uuid.uuid4().hex
    md5s = chunk_md5s(data, chunk_size) if chunk_md5 else None
    conns = Connections(port)
    fd = os.open(data.path, os.O_RDONLY)
    try:
        started = time.perf_counter()
        _check(_json_post(conns, "/api/check-chunks", ident), 200)

        def send(index: int) -> None:
            offset = index * chunk_size
            count = min(chunk_size, data.size - offset)
            fields = {"chunkIndex": index, "md5": data.md5, "fileName": name,
                      "totalChunks": total}
            if md5s is not None:
                fields["chunkMd5"] = md5s[index]
            text = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"'
                           f"\r\n\r\n{v}\r\n" for k, v in fields.items())
            part = (f'--{boundary}\r\nContent-Disposition: form-data; name="chunk"; '
                    f'filename="blob"\r\nContent-Type: application/octet-stream\r\n\r\n')
            if md5s is None:
                pre, epilogue = text + part, f"\r\n--{boundary}--\r\n"
            else:
                pre, epilogue = part, f"\r\n{text}--{boundary}--\r\n"
            pre, epilogue = pre.encode(), epilogue.encode()
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
            with conns.get() as conn:
                _check(conn.request("POST", "/api/upload-chunk", headers,
                                    [pre, (fd, data.offset + offset, count), epilogue]), 200)

        _run_parallel(list(range(total)) if order is None else order, in_flight, send)
        complete_started = time.perf_counter()
        answer = _check(_json_post(conns, "/api/complete-upload", ident), 200).json()
        finished = time.perf_counter()
    finally:
        os.close(fd)
        conns.close()
    if answer.get("md5") != data.md5 or answer.get("size") != data.size:
        raise RuntimeError(f"complete-upload answered {answer}, expected {data.md5}")
    return Timing(finished - started, finished - complete_started)


def chunk_md5s(data: Slice, chunk_size: int) -> list[str]:
    """The MD5 of every chunk of the slice, as a page computes them before sending."""
    md5s = []
    with open(data.path, "rb") as f:
        for offset in range(0, data.size, chunk_size):
            f.seek(data.offset + offset)
            md5s.append(hashlib.md5(f.read(min(chunk_size, data.size - offset))).hexdigest())
    return md5s or [hashlib.md5(b"").hexdigest()]


def seed_delete(port: int, data: Slice, name: str) -> None:
    """Remove a completed upload and its file, so the next run transfers the bytes again."""
    _check(request(port, "DELETE", f"/api/upload/{data.md5}/{name}"), 200)


def has_tus(port: int) -> bool:
    """Whether the server answers OPTIONS /files/ as a tus server."""
    try:
        response = request(port, "OPTIONS", "/files/", {"Tus-Resumable": "1.0.0"}, timeout=10)
    except OSError:
        return False
    return response.headers.get("Tus-Version") is not None


def tus_upload(port: int, data: Slice, chunk_size: int, name: str) -> tuple[Timing, str]:
    """Create a tus upload and PATCH it in chunk_size pieces; returns timing and its path.
    The server's MD5 of the file, if it gives one, must be the file's."""
    metadata = f"filename {base64.b64encode(name.encode()).decode()}"
    conn = Connection(port)
    fd = os.open(data.path, os.O_RDONLY)
    try:
        started = time.perf_counter()
        created = _check(conn.request("POST", "/files/", {
            "Tus-Resumable": "1.0.0", "Upload-Length": data.size,
            "Upload-Metadata": metadata}), 201)
        path = urlsplit(created.headers["Location"]).path
        offset = 0
        while offset < data.size:
            count = min(chunk_size, data.size - offset)
            last_started = time.perf_counter()
            answer = _check(conn.request("PATCH", path, {
                "Tus-Resumable": "1.0.0", "Upload-Offset": offset,
                "Content-Type": "application/offset+octet-stream"},
                [(fd, data.offset + offset, count)]), 204)
            offset += count
            if int(answer.headers["Upload-Offset"]) != offset:
                raise RuntimeError(f"tus offset {answer.headers['Upload-Offset']} != {offset}")
        finished = time.perf_counter()
    finally:
        os.close(fd)
        conn.close()
    md5 = answer.headers.get("Upload-MD5")  # uploadsvc's; @tus/server computes none
    if md5 is not None and md5 != data.md5:
        raise RuntimeError(f"tus upload's md5 {md5} != {data.md5}")
    return Timing(finished - started, finished - last_started), path


def tus_delete(port: int, path: str) -> None:
    _check(request(port, "DELETE", path, {"Tus-Resumable": "1.0.0"}), 204, 200)


def sink_put(port: int, data: Slice) -> Timing:
    """PUT the bytes to a discarding sink; it must report having read every one."""
    fd = os.open(data.path, os.O_RDONLY)
    try:
        started = time.perf_counter()
        answer = _check(request(port, "PUT", "/sink", {
            "Content-Type": "application/octet-stream"}, [(fd, data.offset, data.size)]),
            200, 204)
        finished = time.perf_counter()
    finally:
        os.close(fd)
    received = answer.headers.get("X-Received")
    if received is not None and int(received) != data.size:
        raise RuntimeError(f"sink read {received} of {data.size} bytes")
    return Timing(finished - started, 0.0)
