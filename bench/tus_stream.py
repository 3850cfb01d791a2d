"""Streams one large tus PATCH into uploadsvc under gunicorn and reports throughput and the
workers' memory before and after: memory must stay flat whatever the body size.

    .venv/bin/python -m bench.tus_stream [--mib 1024] [--workers 2]
"""
import argparse
import tempfile
import time
from pathlib import Path

import psutil
import requests

from tests.servers import GunicornServer
from tests.tus_helpers import TUS, metadata

PIECE = 1024 * 1024


def worker_rss(server: GunicornServer) -> int:
    return sum(psutil.Process(pid).memory_info().rss for pid in server.worker_pids())


def body(mib: int):
    piece = bytes(range(256)) * (PIECE // 256)
    for _ in range(mib):
        yield piece


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="body size in MiB")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    size = args.mib * PIECE
    with tempfile.TemporaryDirectory() as tmp:
        server = GunicornServer(Path(tmp) / "data", workers=args.workers).start()
        try:
            created = requests.post(server.url + "/files/", timeout=10, headers={
                **TUS, "Upload-Length": str(size),
                "Upload-Metadata": metadata(filename="bench.bin")})
            before = worker_rss(server)
            started = time.monotonic()
            # A generator body goes out chunked: the server cannot size anything from a header.
            response = requests.patch(created.headers["Location"], data=body(args.mib),
                                      timeout=600, headers={
                                          **TUS, "Upload-Offset": "0",
                                          "Content-Type": "application/offset+octet-stream"})
            seconds = time.monotonic() - started
            after = worker_rss(server)
            assert response.status_code == 204, response.text
            assert response.headers["Upload-Offset"] == str(size)
        finally:
            server.stop()
    print(f"PATCH of {args.mib} MiB in {seconds:.1f} s ({args.mib / seconds:.0f} MiB/s, "
          f"including fsync, whole-file MD5 and placing the file)")
    print(f"workers' RSS: {before / PIECE:.1f} MiB before, {after / PIECE:.1f} MiB after "
          f"({(after - before) / PIECE:+.1f} MiB)")


if __name__ == "__main__":
    main()
