"""Rate limits shared by every gunicorn worker through Redis (a real redis-server and a real
gunicorn on 127.0.0.1). With the default memory:// storage each worker counts alone."""
import shutil
import subprocess
import time

import pytest
import requests

from .servers import GunicornServer, free_port

LIMIT = 10


@pytest.fixture
def redis_url(tmp_path):
    server = shutil.which("redis-server")
    assert server, "redis-server is required (make test installs the test dependencies)"
    port = free_port()
    process = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run([shutil.which("redis-cli") or "redis-cli", "-p", str(port), "ping"],
                             capture_output=True, text=True).stdout.strip() != "PONG":
            assert time.monotonic() < deadline and process.poll() is None, "redis did not start"
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}", port
    finally:
        process.terminate()
        process.wait(10)


def test_rate_limit_is_shared_by_all_workers(redis_url, tmp_path):
    url, port = redis_url
    server = GunicornServer(tmp_path / "data", workers=3, threads=2, env={
        "UPLOADSVC_RATE_LIMIT": f"{LIMIT}/minute",
        "UPLOADSVC_RATE_LIMIT_STORAGE_URI": url}).start()
    try:
        # forget what the readiness checks of start() counted
        subprocess.run(["redis-cli", "-p", str(port), "flushall"], check=True,
                       capture_output=True)
        statuses = []
        for _ in range(3 * LIMIT):  # a new connection each time: spread over the workers
            response = requests.get(f"{server.url}/api/stats",
                                    headers={"Connection": "close"}, timeout=10)
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.json()["error"] == "too_many_requests"
                assert int(response.headers["Retry-After"]) > 0
        assert statuses.count(200) == LIMIT, statuses
        assert statuses.count(429) == 2 * LIMIT
        assert len(set(server.worker_pids())) == 3
    finally:
        server.stop()
