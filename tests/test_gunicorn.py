"""The real app under gunicorn with 4 workers on 127.0.0.1, driven over HTTP."""
import hashlib
import http.client
import os
import random
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from .servers import PROJECT, free_port


def upload_file(url: str, path: Path, name: str, chunk_size: int, in_flight: int) -> dict:
    """Upload like a front end: hash, check, send missing chunks in random order, complete."""
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            md5.update(block)
    size = path.stat().st_size
    total = max(1, -(-size // chunk_size))
    ident = {"md5": md5.hexdigest(), "fileName": name, "totalChunks": total}
    have = requests.post(f"{url}/api/check-chunks", json=ident).json()["uploadedChunks"]
    todo = [i for i in range(total) if i not in have]
    random.shuffle(todo)

    def send(index):
        with open(path, "rb") as f:
            f.seek(index * chunk_size)
            body = f.read(chunk_size)
        response = requests.post(f"{url}/api/upload-chunk", files={"chunk": ("blob", body)},
                                 data={"chunkIndex": index, "md5": ident["md5"],
                                       "fileName": name, "totalChunks": total})
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(in_flight) as pool:
        answers = list(pool.map(send, todo))
    assert max(a["uploaded"] for a in answers) == total
    response = requests.post(f"{url}/api/complete-upload", json=ident)
    assert response.status_code == 200, response.text
    return response.json()


def test_parallel_chunks_across_workers(live_server, tmp_path):
    source = tmp_path / "parallel.bin"
    source.write_bytes(os.urandom(3_000_000))
    done = upload_file(live_server.url, source, "parallel.bin", 100_000, in_flight=8)
    assert done["md5"] == hashlib.md5(source.read_bytes()).hexdigest()
    stored = live_server.data_dir / done["path"].lstrip("/")
    assert stored.read_bytes() == source.read_bytes()
    assert len(set(live_server.worker_pids())) == 4


def test_100_mib_file_in_random_order_four_in_flight(live_server, tmp_path):
    source = tmp_path / "big.bin"
    with open(source, "wb") as f:
        for _ in range(100):
            f.write(os.urandom(1 << 20))
    done = upload_file(live_server.url, source, "big.bin", 5 << 20, in_flight=4)
    assert done["size"] == 100 << 20
    expected = hashlib.md5(source.read_bytes()).hexdigest()
    assert done["md5"] == expected
    with open(live_server.data_dir / done["path"].lstrip("/"), "rb") as f:
        assert hashlib.file_digest(f, "md5").hexdigest() == expected
    stats = requests.get(f"{live_server.url}/api/stats").json()
    assert stats["activeUploads"] == 0


def test_errors_are_json_under_gunicorn(live_server):
    response = requests.post(f"{live_server.url}/api/upload-chunk", data=b"junk",
                             headers={"Content-Type": "multipart/form-data; boundary=zz"})
    assert response.status_code == 400 and response.json()["success"] is False
    response = requests.put(f"{live_server.url}/api/check-chunks")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]


def test_make_run_serves_on_the_given_port_and_data_dir(tmp_path):
    port = free_port()
    env = {**os.environ, "PORT": str(port), "UPLOADSVC_DATA_DIR": str(tmp_path / "run"),
           "WEB_CONCURRENCY": "2", "HOST": "127.0.0.1"}
    log = tmp_path / "make-run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(["make", "run"], cwd=PROJECT, env=env, start_new_session=True,
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"http://127.0.0.1:{port}/api/health", timeout=1)
                break
            except requests.RequestException:  # not listening yet, or workers still booting
                assert process.poll() is None, log.read_text()
                time.sleep(0.2)
        assert health.json()["status"] == "ok"
        assert (tmp_path / "run" / "uploadsvc.sqlite3").exists()
        assert (tmp_path / "run" / "uploads").is_dir()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def test_idle_keep_alive_connections_outlast_a_clients_pause(live_server):
    """A client that pauses between requests (hashing the next chunk, say) finds its
    connection still open: gunicorn's default 5 s closed it under such clients."""
    connection = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=30)
    try:
        connection.request("GET", "/api/health")
        first = connection.getresponse()
        first.read()
        sock = connection.sock
        time.sleep(6)  # longer than gunicorn's default keep-alive, far below ours
        connection.request("GET", "/api/health")
        again = connection.getresponse()
        again.read()
        assert again.status == 200 and connection.sock is sock  # the same connection
    finally:
        connection.close()
