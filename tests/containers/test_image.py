"""The image (Dockerfile) under podman: what it holds, an upload with the command-line client
across a restart and a new container on the same volume, and SIGTERM with a chunk in flight.
"""
import json
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from ..multihost.helpers import check_chunks, new_file, send_chunk
from ..servers import BIN, free_port
from .conftest import wait_healthy

pytestmark = pytest.mark.xdist_group("containers")

KiB = 1024
CHUNK = 256 * KiB
# Short, so that a container that did not stop by itself would show; far above what a
# graceful stop with one chunk in flight takes.
GRACEFUL_TIMEOUT = 30


class Container:
    """One container of the image on a volume, published on 127.0.0.1."""

    def __init__(self, podman, image: str, volume: str, **env: str) -> None:
        self.podman = podman
        self.name = f"uploadsvc-test-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = {"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "4",
                    "GUNICORN_GRACEFUL_TIMEOUT": str(GRACEFUL_TIMEOUT), **env}
        podman("run", "-d", "--name", self.name, "-p", f"127.0.0.1:{self.port}:3000",
               "-v", f"{volume}:/data",
               *(f"--env={key}={value}" for key, value in settings.items()), image)
        wait_healthy(self.url)

    def logs(self) -> str:
        result = self.podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def remove(self) -> None:
        self.podman("rm", "--force", "--time", "10", self.name, check=False)


@pytest.fixture
def volume(podman):
    name = f"uploadsvc-test-{uuid.uuid4().hex[:8]}"
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "--force", name, check=False)


@pytest.fixture
def containers(podman, app_image, volume):
    """Start containers of the image on the test's volume; all removed after the test."""
    started = []

    def start(**env) -> Container:
        started.append(Container(podman, app_image, volume, **env))
        return started[-1]

    yield start
    for container in started:
        container.remove()


def upload(path: Path, url: str, chunk_size: int = CHUNK) -> str:
    """The command-line client's output for path, which it must have uploaded."""
    done = subprocess.run([str(BIN / "uploadsvc-upload"), str(path), "--url", url,
                           "--chunk-size", str(chunk_size), "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_image_runs_unprivileged_with_a_volume_a_healthcheck_and_no_build_tools(
        podman, app_image):
    image = podman.inspect("image", app_image)
    config = image["Config"]
    assert config["User"] == "uploadsvc"
    assert "/data" in config["Volumes"]
    assert "UPLOADSVC_DATA_DIR=/data" in config["Env"]
    assert config["StopSignal"] == "SIGTERM"
    assert "/api/health" in " ".join(image["Healthcheck"]["Test"])
    podman.timings["image size (MB)"] = round(image["Size"] / 1e6)
    inside = podman("run", "--rm", "--entrypoint", "sh", app_image, "-c",
                    "id -u; for tool in node npm gcc; do command -v $tool || echo no $tool; done;"
                    " test -f web/node_modules/hash-wasm/dist/md5.umd.min.js && echo page ok")
    assert inside.stdout.split() == ["10001", "no", "node", "no", "npm", "no", "gcc", "page", "ok"]


def test_upload_survives_restarts_and_a_new_container_on_the_volume(containers, tmp_path):
    server = containers()
    whole = new_file(3 * CHUNK + 1000, CHUNK, "whole")
    (tmp_path / whole.name).write_bytes(whole.data)
    assert f"md5 {whole.md5}" in upload(tmp_path / whole.name, server.url)

    # Half an upload, then the container restarts (SIGTERM, the same volume).
    halted = new_file(4 * CHUNK, CHUNK, "halted")
    for index in (0, 1):
        assert send_chunk(server.url, halted, index).status_code == 200
    server.podman("restart", "--time", "30", server.name, timeout=60)
    wait_healthy(server.url)
    (tmp_path / halted.name).write_bytes(halted.data)
    resumed = upload(tmp_path / halted.name, server.url)
    assert f"md5 {halted.md5}" in resumed and "sent 2 of 4 chunks" in resumed

    # A new container of the image on the volume: both files are there, byte for byte.
    server.remove()
    again = containers()
    for f in (whole, halted):
        got = requests.get(f"{again.url}/uploads/{f.name}", timeout=30)
        assert got.status_code == 200 and got.content == f.data


def test_sigterm_lets_a_chunk_in_flight_finish_and_loses_nothing(containers, podman, volume,
                                                                 tmp_path):
    server = containers()
    # Chunks of 2 MiB: the second is written in place at its offset, 1 MiB at a time, so
    # its first bytes in the upload's file show that a worker is reading it.
    size = 2 * 1024 * KiB
    f = new_file(3 * size, size, "sigterm")
    assert send_chunk(server.url, f, 0).status_code == 200
    request = requests.Request("POST", f"{server.url}/api/upload-chunk", files={
        "chunkIndex": (None, "1"), "md5": (None, f.md5), "fileName": (None, f.name),
        "totalChunks": (None, str(f.total)), "chunk": ("blob", f.chunk(1))}).prepare()
    head = (f"POST /api/upload-chunk HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: {request.headers['Content-Type']}\r\n"
            f"Content-Length: {len(request.body)}\r\n\r\n").encode()
    most = len(request.body) * 3 // 4
    mountpoint = Path(podman.inspect("volume", volume)["Mountpoint"])
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head + request.body[:most])
        until(lambda: any(path.stat().st_size > size
                          for path in mountpoint.glob("chunks/*/data")),
              "the second chunk's first bytes in the upload's file")

        stopped = {}

        def stop():
            started = time.monotonic()
            podman("stop", "--time", str(GRACEFUL_TIMEOUT + 30), server.name, timeout=120)
            stopped["after"] = time.monotonic() - started

        stopping = threading.Thread(target=stop)
        stopping.start()
        until(lambda: "Handling signal: term" in server.logs(), "SIGTERM at gunicorn")
        sock.sendall(request.body[most:])
        answer = sock.makefile("rb").read()
    stopping.join(120)
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200"), answer[:500]
    assert json.loads(body)["chunkIndex"] == 1
    podman.timings["SIGTERM: stop with a chunk in flight"] = round(stopped["after"], 1)
    assert stopped["after"] < GRACEFUL_TIMEOUT
    assert podman.inspect("container", server.name)["State"]["ExitCode"] == 0  # not killed

    again = containers()
    assert check_chunks(again.url, f).json()["uploadedChunks"] == [0, 1]
    (tmp_path / f.name).write_bytes(f.data)
    assert "sent 1 of 3 chunks" in upload(tmp_path / f.name, again.url, size)
    assert requests.get(f"{again.url}/uploads/{f.name}", timeout=30).content == f.data


def until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.1)
