"""Races through real gunicorn (4 workers x 4 threads on 127.0.0.1), on SQLite and MariaDB.

One server per database for the module; each test uses its own files, and leaves no upload
unfinished, so that what it checks on disk is its own doing."""
import hashlib
import threading
import time

import pytest
import requests

from .conftest import DATABASES
from .helpers import chunk_files, random_file
from .live import age, at_once, complete, files_in, flask_cli, post_chunk, sql, status, upload
from .servers import GunicornServer

KiB = 1024
MiB = 1024 * KiB


@pytest.fixture(scope="module", params=DATABASES)
def server(request, new_database, tmp_path_factory):
    """gunicorn on a new database, migrated by `flask db upgrade` as an operator does."""
    url = new_database(request.param, "uploadsvc_races")
    data_dir = tmp_path_factory.mktemp("races") / "data"
    server = GunicornServer(data_dir, workers=4, threads=4, database_url=url).start()
    yield server
    server.stop()


@pytest.fixture
def data_dir(server):
    return server.data_dir


@pytest.fixture
def database_url(server):
    return server.database_url


def completed_events(database_url: str, test_file) -> int:
    return sql(database_url, "SELECT COUNT(*) FROM upload_events WHERE kind = 'completed' "
               "AND md5 = :md5", md5=test_file.md5)[0][0]


def named(directory, prefix: str) -> list[str]:
    return [name for name in files_in(directory) if name.startswith(prefix)]


def test_all_chunks_of_a_file_at_once(server, data_dir):
    """32 requests in flight: every chunk of one file sent at the same moment."""
    test_file = random_file(32 * 64 * KiB - 123, 64 * KiB, "all-at-once.bin")
    assert test_file.total == 32
    responses = at_once([lambda i=i: post_chunk(server.url, test_file, i)
                         for i in range(test_file.total)])
    assert [r.status_code for r in responses] == [200] * 32, [r.text for r in responses]
    assert max(r.json()["uploaded"] for r in responses) == 32
    assert status(server.url, test_file).json()["uploaded"] == 32
    done = complete(server.url, test_file)
    assert done.status_code == 200, done.text
    assert done.json()["md5"] == test_file.md5
    assert (data_dir / "uploads" / test_file.name).read_bytes() == test_file.data


def test_same_chunk_from_several_clients(server, data_dir, database_url):
    """8 clients send chunk 1 at once: it is stored once and counted once."""
    test_file = random_file(3 * 256 * KiB, 256 * KiB, "same-chunk.bin")
    upload(server.url, test_file, [0])
    responses = at_once([lambda: post_chunk(server.url, test_file, 1)] * 8)
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    rows = sql(database_url, "SELECT chunk_index FROM chunks JOIN uploads ON uploads.id = "
               "chunks.upload_id WHERE md5 = :md5 ORDER BY chunk_index", md5=test_file.md5)
    assert rows == [(0,), (1,)]
    assert status(server.url, test_file).json()["uploaded"] == 2
    [(key,)] = sql(database_url, "SELECT `key` FROM uploads WHERE md5 = :md5", md5=test_file.md5)
    # The copy that claimed chunk 1 is written in place; copies that found it claimed or
    # recorded wait in a chunk file of their own (the same bytes). Which copy is recorded
    # is a race: the claimant may still be receiving when another's copy is recorded.
    directory = data_dir / "chunks" / key
    assert chunk_files(directory) in (["data"], ["1", "data"])
    in_place = (directory / "data").read_bytes()
    assert in_place[:256 * KiB] == test_file.chunk(0)
    assert test_file.chunk(1) in (in_place[256 * KiB:], (directory / "1").read_bytes()
                                  if (directory / "1").exists() else None)
    upload(server.url, test_file, [2])
    done = complete(server.url, test_file)
    assert done.status_code == 200 and done.json()["md5"] == test_file.md5
    assert (data_dir / "uploads" / test_file.name).read_bytes() == test_file.data


def test_complete_from_several_clients(server, data_dir, database_url):
    """8 clients call complete-upload at once: one merge; all get the same answer or 409."""
    test_file = random_file(16 * MiB, 2 * MiB, "complete-race.bin")
    upload(server.url, test_file)
    responses = at_once([lambda: complete(server.url, test_file)] * 8)
    codes = [r.status_code for r in responses]
    assert set(codes) <= {200, 409} and 200 in codes, [r.text for r in responses]
    answers = {(r.json()["md5"], r.json()["path"], r.json()["size"])
               for r in responses if r.status_code == 200}
    assert answers == {(test_file.md5, f"/uploads/{test_file.name}", len(test_file.data))}
    assert all(r.json()["error"] == "merge_in_progress" for r in responses if r.status_code == 409)
    assert completed_events(database_url, test_file) == 1
    assert named(data_dir / "uploads", "complete-race") == [test_file.name]
    assert (data_dir / "uploads" / test_file.name).read_bytes() == test_file.data
    assert files_in(data_dir / "temp") == []


def test_delete_racing_chunks_and_complete(server, data_dir, database_url):
    """DELETE while chunks and complete-upload are in flight: no 5xx, no orphaned bytes."""
    test_file = random_file(24 * 256 * KiB, 256 * KiB, "delete-race.bin")
    upload(server.url, test_file, range(12))
    url = f"{server.url}/api/upload/{test_file.md5}/{test_file.name}"
    calls = [lambda i=i: post_chunk(server.url, test_file, i) for i in range(12, 24)]
    calls += [lambda: complete(server.url, test_file)] * 2
    calls += [lambda: requests.delete(url, timeout=60)] * 3
    responses = at_once(calls)
    assert all(r.status_code < 500 for r in responses), [r.text for r in responses]
    assert {r.status_code for r in responses} <= {200, 400, 404, 409}
    # Chunks that arrived after a DELETE started a new upload; remove that one too.
    requests.delete(url, timeout=60)
    assert status(server.url, test_file).status_code == 404
    assert sql(database_url, "SELECT COUNT(*) FROM uploads WHERE md5 = :md5",
               md5=test_file.md5) == [(0,)]
    assert files_in(data_dir / "chunks") == []
    assert named(data_dir / "uploads", "delete-race") == []
    assert files_in(data_dir / "temp") == []
    assert requests.get(f"{server.url}/api/stats", timeout=10).json()["activeUploads"] == 0


def test_cleanup_while_uploads_are_active(server, data_dir, database_url):
    """`flask cleanup` runs again and again beside busy uploads and removes only the one
    really abandoned upload."""
    abandoned = random_file(2 * 64 * KiB, 64 * KiB, "abandoned.bin")
    upload(server.url, abandoned, [0])
    sql(database_url, "UPDATE uploads SET updated_at = '2000-01-01 00:00:00' WHERE md5 = :md5",
        md5=abandoned.md5)
    files = [random_file(40 * 64 * KiB, 64 * KiB, f"active-{n}.bin") for n in range(4)]
    for test_file in files:
        upload(server.url, test_file, [0])
    # Old chunk directories: only the database can tell that these uploads are alive.
    age((data_dir / "chunks").iterdir(), 7200)

    runs, stop = [], threading.Event()

    def run_cleanup():
        while not stop.is_set():
            started = time.monotonic()
            result = flask_cli(server.env, "cleanup", "--older-than", "1h")
            runs.append((started, time.monotonic(), result))

    def busy_upload(test_file):
        # Chunks keep coming (re-sent ones replace themselves) until a whole run has passed.
        deadline = time.monotonic() + 120
        sent = 0
        while (sent < test_file.total - 1 or not runs) and time.monotonic() < deadline:
            upload(server.url, test_file, [1 + sent % (test_file.total - 1)])
            sent += 1
            time.sleep(0.02)

    began = time.monotonic()
    cleaner = threading.Thread(target=run_cleanup)
    cleaner.start()
    try:
        at_once([lambda f=f: busy_upload(f) for f in files])
        ended = time.monotonic()
    finally:
        stop.set()
        cleaner.join()
    assert any(began <= start and end <= ended for start, end, _ in runs), "no overlap"
    assert all(result.returncode == 0 for *_, result in runs), [r.stderr for *_, r in runs]
    report = "".join(result.stdout for *_, result in runs)
    assert report.count("removed expired upload") == 1 and "abandoned.bin" in report
    assert "orphaned" not in report.replace("0 orphaned", "")
    for test_file in files:
        assert status(server.url, test_file).json()["uploaded"] == test_file.total
        done = complete(server.url, test_file)
        assert done.status_code == 200, done.text
        assert (data_dir / "uploads" / test_file.name).read_bytes() == test_file.data
    assert status(server.url, abandoned).status_code == 404


def test_sixteen_files_at_once(server, data_dir):
    """16 different files upload and complete at once; afterwards nothing is active."""
    files = [random_file(4 * 128 * KiB - n, 128 * KiB, f"file-{n:02}.bin") for n in range(16)]

    def upload_and_complete(test_file):
        upload(server.url, test_file)
        return complete(server.url, test_file)

    responses = at_once([lambda f=f: upload_and_complete(f) for f in files])
    assert [r.status_code for r in responses] == [200] * 16, [r.text for r in responses]
    for test_file, response in zip(files, responses, strict=True):
        assert response.json()["md5"] == test_file.md5
        stored = (data_dir / "uploads" / test_file.name).read_bytes()
        assert hashlib.md5(stored).hexdigest() == test_file.md5
    assert requests.get(f"{server.url}/api/stats", timeout=10).json()["activeUploads"] == 0
    assert files_in(data_dir / "chunks") == []
    assert files_in(data_dir / "temp") == []
