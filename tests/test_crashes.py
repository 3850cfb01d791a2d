"""Crashes: a gunicorn worker, or the whole server, killed with SIGKILL while a chunk is being
written and while a merge runs; and a restart between chunks. The merges on SQLite and
MariaDB; the chunks and the restart on SQLite (ON_SQLITE says why).

One server per database for the module (restarted by the tests that kill it); each test
uses its own file and finishes its upload, so what it finds on disk is its own doing."""
import os
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests

from .conftest import DATABASES
from .helpers import TestFile, chunk_files, random_file
from .live import age, complete, files_in, flask_cli, sql, status, upload
from .servers import GunicornServer

MiB = 1024 * 1024
# One worker to kill and one that carries on meanwhile: every worker more only costs a
# second of CPU at each start and restart of the server.
WORKERS = 2


@pytest.fixture(scope="module", params=DATABASES)
def server(request, new_database, tmp_path_factory):
    url = new_database(request.param, "uploadsvc_crashes")
    data_dir = tmp_path_factory.mktemp("crashes") / "data"
    server = GunicornServer(data_dir, workers=WORKERS, threads=2, database_url=url).start()
    yield server
    server.stop()


# A request killed while a chunk's bytes stream has written nothing to the database: the
# bytes come before the row, and end_reads() commits whatever was written or locked before a
# body is read (on MariaDB only a transaction that has read, and holds nothing, may stay
# open). So MariaDB, a server of its own that no kill here touches, only sees connections
# close. SQLite lives in the killed processes' files (its WAL, checkpointed by the workers):
# that is where a kill or a restart could lose a recorded chunk, so these run there.
ON_SQLITE = pytest.mark.parametrize("server", ["sqlite"], indirect=True)


def key_of(server: GunicornServer, test_file: TestFile) -> str:
    [(key,)] = sql(server.database_url, "SELECT `key` FROM uploads WHERE md5 = :md5",
                   md5=test_file.md5)
    return key


def send_part_of_chunk(server: GunicornServer, test_file: TestFile, index: int,
                       fields_first: bool = True) -> socket.socket:
    """Open an upload-chunk request and send only the first half of the chunk's bytes, its
    fields before them (as the upload page sends them: written in place) or after them
    (spooled)."""
    boundary = uuid.uuid4().hex
    fields = {"chunkIndex": index, "md5": test_file.md5, "fileName": test_file.name,
              "totalChunks": test_file.total}
    text = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                   f"{value}\r\n" for name, value in fields.items())
    head = text if fields_first else ""
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="chunk"; '
             f'filename="blob"\r\nContent-Type: application/octet-stream\r\n\r\n')
    tail = "\r\n" + ("" if fields_first else text) + f"--{boundary}--\r\n"
    data = test_file.chunk(index)
    length = len(head) + len(data) + len(tail)
    request = (f"POST /api/upload-chunk HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
               f"Content-Length: {length}\r\n\r\n{head}")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(request.encode() + data[:len(data) // 2])
    return sock


def holder_of(server: GunicornServer, path: Path) -> int:
    """The worker that has path open."""
    for pid in server.worker_pids():
        try:
            if any(f.path == str(path) for f in psutil.Process(pid).open_files()):
                return pid
        except psutil.NoSuchProcess:
            continue
    raise AssertionError(f"no worker has {path} open")


def kill(server: GunicornServer, what: str, pid: int) -> None:
    """SIGKILL the worker pid, or the whole server (every process of its group)."""
    if what == "worker":
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30  # the master replaces the worker
        while pid in server.worker_pids() or len(server.worker_pids()) < WORKERS:
            assert time.monotonic() < deadline, "worker not replaced"
            time.sleep(0.05)
    else:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
        server.start(migrate=False)


def clean_up_debris(server: GunicornServer) -> str:
    """Age what is in temp/ past the expiry (24 h), run `flask cleanup`; its report."""
    age([server.data_dir / "temp" / name for name in os.listdir(server.data_dir / "temp")],
        2 * 86400)
    result = flask_cli(server.env, "cleanup")
    assert result.returncode == 0, result.stderr
    return result.stdout


def wait_for_size(path: Path, min_size: int) -> None:
    deadline = time.monotonic() + 60
    while not path.exists() or path.stat().st_size < min_size:
        assert time.monotonic() < deadline, f"{path} did not grow to {min_size} bytes"
        time.sleep(0.001)


def wait_for_no_files(directory: Path) -> None:
    """Until nothing is left under directory: a completed upload's chunks are removed after
    completion answers, by work the worker runs after its answer."""
    deadline = time.monotonic() + 60
    while files_in(directory):
        assert time.monotonic() < deadline, f"left in {directory}: {files_in(directory)}"
        time.sleep(0.05)


def nameless_holder(server: GunicornServer, min_size: int) -> int:
    """The worker holding a file open in temp/ that has no name there (a spooled part) and
    at least min_size bytes, as soon as one does."""
    temp = f"{server.data_dir / 'temp'}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for pid in server.worker_pids():
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except FileNotFoundError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith(temp) and target.endswith(" (deleted)") and \
                            os.stat(f"/proc/{pid}/fd/{fd}").st_size >= min_size:
                        return pid
                except FileNotFoundError:
                    continue
        time.sleep(0.001)
    raise AssertionError("no worker spooled a part into temp/")


@ON_SQLITE
@pytest.mark.parametrize("what", ["worker", "server"])
def test_killed_while_a_spooled_chunk_is_written(server, what):
    test_file = random_file(3 * 4 * MiB, 4 * MiB, f"chunk-crash-{what}.bin")
    upload(server.url, test_file, [0])
    sock = send_part_of_chunk(server, test_file, 1, fields_first=False)
    try:
        worker = nameless_holder(server, 1 * MiB)
        assert files_in(server.data_dir / "temp") == []  # the part has no name to leave
        kill(server, what, worker)
    finally:
        sock.close()
    # The killed process took its spool file with it: nothing is left behind.
    assert files_in(server.data_dir / "temp") == []
    # The half-sent chunk is not stored: not counted, not in the data file.
    assert status(server.url, test_file).json()["uploaded"] == 1
    check = requests.post(f"{server.url}/api/check-chunks", json=test_file.ident(), timeout=30)
    assert check.json()["uploadedChunks"] == [0]
    key = key_of(server, test_file)
    assert chunk_files(server.data_dir / "chunks" / key) == ["data"]
    assert (server.data_dir / "chunks" / key / "data").read_bytes() == test_file.chunk(0)
    # The upload resumes and completes with the right md5.
    upload(server.url, test_file, [1, 2])
    done = complete(server.url, test_file)
    assert done.status_code == 200 and done.json()["md5"] == test_file.md5, done.text
    assert (server.data_dir / "uploads" / test_file.name).read_bytes() == test_file.data
    assert ", 0 temp files" in clean_up_debris(server)  # nothing for cleanup to sweep
    assert files_in(server.data_dir / "temp") == []
    assert files_in(server.data_dir / "chunks") == []


@ON_SQLITE
@pytest.mark.parametrize("what", ["worker", "server"])
def test_killed_while_a_chunk_is_written_in_place(server, what):
    test_file = random_file(3 * 4 * MiB, 4 * MiB, f"in-place-crash-{what}.bin")
    upload(server.url, test_file, [0])
    key = key_of(server, test_file)
    data = server.data_dir / "chunks" / key / "data"
    sock = send_part_of_chunk(server, test_file, 1)
    try:
        wait_for_size(data, 4 * MiB + 1 * MiB)  # its bytes arrive at their place
        kill(server, what, holder_of(server, data))
    finally:
        sock.close()
    # The half-sent chunk is not stored: not counted, no file of its own, no temp file; the
    # bytes it left at its place are no chunk's.
    assert status(server.url, test_file).json()["uploaded"] == 1
    check = requests.post(f"{server.url}/api/check-chunks", json=test_file.ident(), timeout=30)
    assert check.json()["uploadedChunks"] == [0]
    assert chunk_files(server.data_dir / "chunks" / key) == ["data"]
    assert data.read_bytes()[:4 * MiB] == test_file.chunk(0)
    assert files_in(server.data_dir / "temp") == []
    # The upload resumes (the chunk is written in place again) and completes.
    upload(server.url, test_file, [1, 2])
    done = complete(server.url, test_file)
    assert done.status_code == 200 and done.json()["md5"] == test_file.md5, done.text
    assert (server.data_dir / "uploads" / test_file.name).read_bytes() == test_file.data
    wait_for_no_files(server.data_dir / "chunks")  # removed after the answer



@pytest.mark.parametrize("what", ["worker", "server"])
def test_killed_while_merging(server, what):
    test_file = random_file(128 * MiB, 8 * MiB, f"merge-crash-{what}.bin")
    upload(server.url, test_file)
    # Sent twice: chunk 0 waits in a file of its own, so completion puts it in place and
    # hashes the whole file, with the data file open.
    upload(server.url, test_file, [0])
    data = server.data_dir / "chunks" / key_of(server, test_file) / "data"
    wait_until_closed(server, data)  # the hashing after the last chunk's answer is over
    answers = []
    caller = threading.Thread(target=lambda: answers.append(_complete_or_error(server, test_file)))
    caller.start()
    try:
        kill(server, what, wait_until_open(server, data))
    finally:
        caller.join()
    assert isinstance(answers[0], requests.ConnectionError), answers
    # Nothing was lost: every chunk is still stored, and complete-upload now succeeds.
    progress = status(server.url, test_file).json()
    assert (progress["status"], progress["uploaded"]) == ("uploading", test_file.total)
    done = complete(server.url, test_file)
    assert done.status_code == 200 and done.json()["md5"] == test_file.md5, done.text
    assert (server.data_dir / "uploads" / test_file.name).read_bytes() == test_file.data
    assert [n for n in files_in(server.data_dir / "uploads") if "merge-crash" in n and
            what in n] == [test_file.name]
    assert sql(server.database_url, "SELECT COUNT(*) FROM upload_events "
               "WHERE kind = 'completed' AND md5 = :md5", md5=test_file.md5) == [(1,)]
    clean_up_debris(server)
    assert files_in(server.data_dir / "temp") == []
    assert files_in(server.data_dir / "chunks") == []


def wait_until_open(server: GunicornServer, path: Path) -> int:
    """The worker that opens path, as soon as one does."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            return holder_of(server, path)
        except AssertionError:
            continue
    raise AssertionError(f"no worker opened {path}")


def wait_until_closed(server: GunicornServer, path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            holder_of(server, path)
        except AssertionError:
            return
        time.sleep(0.01)
    raise AssertionError(f"a worker keeps {path} open")


def _complete_or_error(server: GunicornServer, test_file: TestFile):
    try:
        return complete(server.url, test_file)
    except requests.RequestException as exc:
        return exc


@ON_SQLITE
def test_restart_between_chunks_keeps_progress(server):
    test_file = random_file(4 * 256 * 1024, 256 * 1024, "restart.bin")
    upload(server.url, test_file, [0, 2])
    server.stop()
    server.start(migrate=False)
    check = requests.post(f"{server.url}/api/check-chunks", json=test_file.ident(), timeout=30)
    assert check.json()["uploadedChunks"] == [0, 2]
    upload(server.url, test_file, [1, 3])
    done = complete(server.url, test_file)
    assert done.status_code == 200 and done.json()["md5"] == test_file.md5, done.text
