"""The upload page at /, driven for real in headless Chromium against gunicorn on 127.0.0.1."""
import hashlib
import os
import re
from pathlib import Path

import pytest
import requests

from .browser_page import drive
from .servers import PROJECT, GunicornServer

ARTIFACTS = PROJECT / "test-artifacts"
CHUNK = 256 * 1024
# Chromium's own throttling stretches a few MiB over loopback to a few seconds, so that the
# test can pause, reload or cut the connection part-way.
THROTTLE = 1024 * 1024


@pytest.fixture(scope="module")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def make_file(directory: Path, name: str, size: int) -> Path:
    path = directory / name
    path.write_bytes(os.urandom(size))
    return path


def stored_file(server, url_path: str) -> Path:
    assert url_path.startswith("/uploads/")
    return server.data_dir / "uploads" / url_path.removeprefix("/uploads/")


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_page_upload_survives_pause_and_reload(live_server, tmp_path, artifacts):
    original = make_file(tmp_path, "holiday-video.bin", 4 * 1024 * 1024)
    seen = drive("resume", live_server.url, original, CHUNK, throttle=THROTTLE,
                 screenshot=str(artifacts / "upload-page.png"),
                 uploadingShot=str(artifacts / "upload-page-uploading.png"))
    total = seen["paused"]["totalChunks"]
    assert total == 16

    # Pause: the row says so, no chunk leaves while paused, focus moves to Resume.
    assert seen["paused"]["state"] == "paused"
    assert seen["paused"]["status"].startswith("Paused at ")
    assert seen["requestsWhilePaused"] == 0
    assert seen["focused"] == "Resume"
    # Resumed (by keyboard), it moved on and showed speed and time left.
    assert seen["beforeReload"]["chunksSent"] > seen["paused"]["chunksSent"]
    assert re.fullmatch(r"[\d.]+ [KM]?B/s · \d+ (s|min \d+ s) left", seen["rateText"])

    # After the reload the page lists the unfinished upload and, once the file is picked
    # again, uses the remembered md5 and sends only the chunks the server lacks.
    assert any("holiday-video.bin" in text for text in seen["unfinishedShown"])
    after = seen["afterReload"]
    assert after["state"] == "done" and after["md5Source"] == "remembered"
    assert after["md5"] == md5_of(original)
    assert seen["afterReloadRequests"] == after["chunksSent"]
    assert after["chunksSent"] <= total - seen["beforeReload"]["chunksSent"]
    assert after["chunksSent"] > 0

    stored = stored_file(live_server, after["path"])
    assert stored.read_bytes() == original.read_bytes()

    # The same file again completes at once, without sending a byte.
    assert seen["again"]["state"] == "done" and seen["againRequests"] == 0
    assert "instantly" in seen["again"]["status"]
    assert seen["again"]["path"] == after["path"]
    # The page's Download link fetches the very bytes uploaded.
    download = requests.get(f"{live_server.url}/{seen['downloadHref']}", timeout=10)
    assert download.status_code == 200 and download.content == original.read_bytes()
    assert (artifacts / "upload-page.png").stat().st_size > 5000


def test_page_carries_on_after_lost_connection(live_server, tmp_path):
    original = make_file(tmp_path, "survey-data.bin", 3 * 1024 * 1024)
    seen = drive("offline", live_server.url, original, CHUNK, throttle=THROTTLE,
                 dropName="dropped notes.txt", dropText="dropped on the page\n")
    assert seen["offline"]["state"] == "offline"
    assert "Connection lost" in seen["offline"]["status"]
    assert seen["offline"]["error"] == "The connection to the server was lost."
    assert seen["offline"]["progress"] < 100
    done = seen["done"]
    assert done["state"] == "done" and done["md5"] == md5_of(original)
    assert stored_file(live_server, done["path"]).read_bytes() == original.read_bytes()

    dropped = seen["dropped"]
    assert dropped["state"] == "done"
    assert stored_file(live_server, dropped["path"]).read_text() == "dropped on the page\n"


def test_page_starts_over_an_upload_the_server_cannot_continue(live_server, tmp_path):
    original = make_file(tmp_path, "draft.bin", 1024 * 1024)
    data = original.read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    # Someone began this file with 3 chunks; the page cuts it into 4.
    started = requests.post(f"{live_server.url}/api/upload-chunk", files={
        "chunk": ("blob", data[:400_000])}, data={
            "chunkIndex": "0", "md5": md5, "fileName": "draft.bin", "totalChunks": "3"},
        timeout=10)
    assert started.status_code == 200, started.text

    seen = drive("conflict", live_server.url, original, CHUNK)
    assert seen["failed"]["state"] == "error"
    assert seen["alert"].startswith("This upload was started with a different totalChunks.")
    assert "starts this file over" in seen["alert"]
    done = seen["done"]
    assert done["state"] == "done" and done["totalChunks"] == 4 and done["chunksSent"] == 4
    assert stored_file(live_server, done["path"]).read_bytes() == data


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    """A server that accepts files of at most 1 MiB."""
    server = GunicornServer(tmp_path_factory.mktemp("small") / "data", workers=1, threads=2,
                            env={"MAX_FILE_SIZE": str(1024 * 1024)}).start()
    yield server
    server.stop()


def test_page_shows_server_refusal_in_plain_words(small_server, tmp_path, artifacts):
    too_big = make_file(tmp_path, "too-big.bin", 2 * 1024 * 1024)
    seen = drive("error", small_server.url, too_big, CHUNK,
                 screenshot=str(artifacts / "upload-page-error.png"))
    assert seen["failed"]["state"] == "error"
    # The API's own message, shown as it is.
    assert re.fullmatch(r"The file would be at least \d+ bytes; the limit is 1048576\.",
                        seen["alert"])
    assert list((small_server.data_dir / "uploads").iterdir()) == []
