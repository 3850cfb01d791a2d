"""A full disk: the data directory on an 8 MiB tmpfs mounted by the test (the database lives
elsewhere). Chunks and merges that do not fit get 507 and leave nothing half-written."""
import os
import subprocess

import pytest

from uploadsvc import create_app
from uploadsvc.core.extensions import db

from .helpers import ClosingClient, chunk_files, random_file, send_chunk
from .live import files_in

MiB = 1024 * 1024
# Below 500 KiB the test client builds its request body in memory, not in a temp file.
CHUNK = 256 * 1024


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs, mounted for the test and unmounted after it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root, and this test runs as a normal user")
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"this machine forbids mounting a tmpfs: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.fixture
def full_app(small_disk, database_url):
    app = create_app({"TESTING": True, "DATA_DIR": str(small_disk / "data"),
                      "DATABASE_URL": database_url})
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(full_app):
    full_app.test_client_class = ClosingClient
    return full_app.test_client()


def fill(disk, leave: int):
    """Fill the disk with a file of its own until only `leave` bytes are free; its path."""
    stat = os.statvfs(disk)
    size = stat.f_bavail * stat.f_frsize - leave
    filler = disk / "filler"
    block = b"\0" * MiB
    with open(filler, "wb") as out:
        while size > 0:
            size -= out.write(block[:min(size, MiB)])
    return filler


def assert_insufficient_storage(response):
    assert response.status_code == 507, response.text
    assert response.json["success"] is False
    assert response.json["error"] == "insufficient_storage"
    assert response.json["message"]


def assert_completes(client, data, test_file):
    done = client.post("/api/complete-upload", json=test_file.ident())
    assert done.status_code == 200 and done.json["md5"] == test_file.md5, done.json
    assert (data / "uploads" / test_file.name).read_bytes() == test_file.data


def test_a_chunk_that_does_not_fit(client, small_disk):
    data = small_disk / "data"
    test_file = random_file(3 * CHUNK, CHUNK, "full-chunk.bin")
    assert send_chunk(client, test_file, 0).status_code == 200
    filler = fill(small_disk, leave=CHUNK // 2)
    # Its fields come first, so the part streams into its place in the data file: ENOSPC
    # arises there. What it left at its place is no chunk's until the chunk is sent again.
    assert_insufficient_storage(send_chunk(client, test_file, 1))
    status = client.get(f"/api/upload-status/{test_file.md5}/{test_file.name}").json
    assert status["uploaded"] == 1
    check = client.post("/api/check-chunks", json=test_file.ident()).json
    assert check["uploadedChunks"] == [0]
    assert files_in(data / "temp") == []
    [key] = os.listdir(data / "chunks")
    assert chunk_files(data / "chunks" / key) == ["data"]
    assert (data / "chunks" / key / "data").read_bytes()[:CHUNK] == test_file.chunk(0)

    filler.unlink()
    for index in (1, 2):
        assert send_chunk(client, test_file, index).status_code == 200
    assert_completes(client, data, test_file)


def test_completing_needs_no_room_of_its_own(client, small_disk):
    """Chunks are written in place: the finished file is the data file, linked."""
    data = small_disk / "data"
    test_file = random_file(4 * CHUNK, CHUNK, "full-merge.bin")
    for index in range(test_file.total):
        assert send_chunk(client, test_file, index).status_code == 200
    fill(small_disk, leave=CHUNK // 2)
    assert_completes(client, data, test_file)


def test_a_chunk_placed_at_completion_that_does_not_fit(client, small_disk):
    data = small_disk / "data"
    test_file = random_file(4 * CHUNK, CHUNK, "full-place.bin")
    # The last chunk first: its offset is not known yet, so it waits in a file of its own,
    # and completion copies it into place, where the disk has no room for it.
    for index in [3, 0, 1, 2]:
        assert send_chunk(client, test_file, index).status_code == 200
    filler = fill(small_disk, leave=CHUNK // 2)
    assert_insufficient_storage(client.post("/api/complete-upload", json=test_file.ident()))
    assert files_in(data / "temp") == []
    assert files_in(data / "uploads") == []
    status = client.get(f"/api/upload-status/{test_file.md5}/{test_file.name}").json
    assert (status["status"], status["uploaded"]) == ("uploading", test_file.total)

    filler.unlink()
    assert_completes(client, data, test_file)
    assert files_in(data / "chunks") == []
