"""uploadsvc-upload against uploadsvc under real gunicorn: uploads, resume, failures."""
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from .servers import BIN, GunicornServer, ThrottledProxy, free_port

CLIENT = str(BIN / "uploadsvc-upload")
KiB = 1024
MiB = 1024 * KiB


def make_file(directory: Path, name: str, size: int) -> Path:
    path = directory / name
    path.write_bytes(os.urandom(size))
    return path


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def upload(*args, url: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([CLIENT, *map(str, args), "--url", url], capture_output=True,
                          text=True, timeout=timeout)


def status(server, path: Path) -> dict:
    response = requests.get(f"{server.url}/api/upload-status/{md5_of(path)}/{path.name}",
                            timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def stored(server, answer_line: str) -> Path:
    """The file on the server's disk named by the /uploads/... path in an output line."""
    remote = next(word for word in answer_line.split() if word.startswith("/uploads/"))
    return server.data_dir / remote.lstrip("/")


def test_uploads_several_files_and_prints_path_and_md5(live_server, tmp_path):
    files = [make_file(tmp_path, "one.bin", 3 * MiB + 17), make_file(tmp_path, "two.bin", MiB),
             make_file(tmp_path, "three.bin", 100 * KiB), make_file(tmp_path, "empty.bin", 0)]
    result = upload(*files, "--chunk-size", "512KiB", "--parallel", "4", url=live_server.url)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(files)
    for path, line in zip(files, lines, strict=True):
        assert line.startswith(f"{path}: /uploads/")
        assert f"md5 {md5_of(path)}" in line
        assert stored(live_server, line).read_bytes() == path.read_bytes()
    assert "sent 7 of 7 chunks" in lines[0]


def test_second_run_sends_nothing_for_a_known_file(live_server, tmp_path):
    path = make_file(tmp_path, "again.bin", 600 * KiB)
    assert upload(path, "--chunk-size", "256KiB", url=live_server.url).returncode == 0
    copy = tmp_path / "copy-of-again.bin"
    copy.write_bytes(path.read_bytes())
    result = upload(path, copy, "--chunk-size", "256KiB", url=live_server.url)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert "sent 0 of 3 chunks" in first and "sent 0 of 3 chunks" in second
    assert stored(live_server, second).read_bytes() == path.read_bytes()


def test_resumes_after_ctrl_c(live_server, tmp_path):
    path = make_file(tmp_path, "interrupted.bin", 4 * MiB)
    # The relay passes 1 MiB of the 4 and holds the rest: the client cannot finish before
    # the Ctrl-C, however fast or loaded the machine.
    with ThrottledProxy(live_server.port, hold_after=MiB) as proxy:
        args = [CLIENT, str(path), "--url", proxy.url, "--chunk-size", "16KiB", "--parallel", "2"]
        interrupt_once(args, os.environ, proxy, lambda: status_or_none(live_server, path) >= 10)
    before = status(live_server, path)
    assert before["status"] == "uploading"
    assert 10 <= before["uploaded"] < before["total"] == 256

    args[args.index(proxy.url)] = live_server.url
    result = subprocess.run([*args, "--progress"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    sent = int(result.stdout.split("sent ")[1].split(" of")[0])
    assert sent <= 256 - before["uploaded"]
    assert "all files: 100%" in result.stderr  # the bars, forced on without a terminal
    assert stored(live_server, result.stdout).read_bytes() == path.read_bytes()


def interrupt_once(args: list[str], env: dict, proxy: ThrottledProxy, ready,
                   timeout: float = 30) -> None:
    """Run the client through proxy (which holds what it sends past its hold_after), press
    Ctrl-C once the relay holds and ready() holds, check how it stopped, then release."""
    client = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        wait_until_held(client, proxy, ready, timeout)
        assert client.poll() is None, "the client finished while the relay held its bytes"
        client.send_signal(signal.SIGINT)
        _, err = client.communicate(timeout=20)
    finally:
        client.kill()
        client.communicate()  # and its pipes closed, however it ended
        proxy.release()  # the client is gone: its held connections end, later ones pass
    assert client.returncode == 130, err
    assert "run the same command again to resume" in err and "Traceback" not in err


def wait_until_held(client: subprocess.Popen, proxy: ThrottledProxy, ready,
                    timeout: float = 30) -> None:
    """Wait until the relay holds what client sends and ready() holds; fail with a message
    if the client exits first or that takes longer than timeout seconds."""
    deadline = time.monotonic() + timeout
    while not proxy.held.wait(0.05):  # the event; the loop only watches the client
        _check_waiting(client, deadline, "the relay held its bytes")
    while not ready():  # bytes that passed reach the server: it gets there, if slowly
        _check_waiting(client, deadline, "the server had part of the upload")
        time.sleep(0.02)


def _check_waiting(client: subprocess.Popen, deadline: float, what: str) -> None:
    if client.poll() is not None:
        pytest.fail(f"the client exited ({client.returncode}) before {what}: "
                    f"{client.stderr.read()}")
    if time.monotonic() > deadline:
        pytest.fail(f"timed out waiting until {what}")


def test_retries_until_a_starting_server_answers(tmp_path):
    server = GunicornServer(tmp_path / "data", workers=1)
    path = make_file(tmp_path, "early.bin", 300 * KiB)
    client = subprocess.Popen([CLIENT, str(path), "--url", server.url, "--retries", "8",
                               "--backoff", "0.25", "--chunk-size", "100KiB"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # the client is already knocking on a closed port
        server.start()
        out, err = client.communicate(timeout=60)
    finally:
        client.kill()
        server.stop()
    assert client.returncode == 0, err
    assert f"md5 {md5_of(path)}" in out
    assert stored(server, out).read_bytes() == path.read_bytes()


def test_rides_out_a_server_restart_mid_upload(tmp_path):
    server = GunicornServer(tmp_path / "data", workers=2).start()
    path = make_file(tmp_path, "restart.bin", 4 * MiB)
    # The relay passes 1 MiB of the 4 and holds the rest: the client is still uploading when
    # the server stops, however fast or loaded the machine.
    proxy = ThrottledProxy(server.port, hold_after=MiB)
    # 64 chunks, about 15 of them through before the relay holds (at least 10 are awaited).
    client = subprocess.Popen([CLIENT, str(path), "--url", proxy.url, "--chunk-size", "64KiB",
                               "--parallel", "2", "--retries", "10", "--backoff", "0.2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_held(client, proxy, lambda: status_or_none(server, path) >= 10)
        before = status(server, path)
        assert before["status"] == "uploading" and before["uploaded"] < before["total"]
        # The client's connections break, as in a restart; those it opens next are held by
        # the relay and do not reach the server, whose stop so waits for no chunk in flight.
        proxy.cut()
        server.stop()  # graceful; then new connections are refused
        assert client.poll() is None, client.stderr.read()  # the relay holds what it sends
        proxy.release()  # the held connections break too; the next ones find a closed port
        deadline = time.monotonic() + 30
        while not proxy.refused.wait(0.05):
            _check_waiting(client, deadline, "it tried the stopped server")
        server.start()  # same port and data directory
        out, err = client.communicate(timeout=90)
    finally:
        client.kill()
        proxy.close()
        server.stop()
    assert client.returncode == 0, err
    assert "Traceback" not in err
    assert stored(server, out).read_bytes() == path.read_bytes()


def status_or_none(server, path: Path) -> int:
    """Chunks of path on the server so far (0 before the upload exists)."""
    response = requests.get(f"{server.url}/api/upload-status/{md5_of(path)}/{path.name}",
                            timeout=5)
    return response.json()["uploaded"] if response.status_code == 200 else 0


def test_server_down_is_a_clear_failure(tmp_path):
    files = [make_file(tmp_path, "a.bin", 1000), make_file(tmp_path, "b.bin", 1000)]
    result = upload(*files, "--retries", "1", "--backoff", "0",
                    url=f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "cannot reach" in result.stderr and "Connection refused" in result.stderr
    assert "1 more file(s) not tried" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_server_that_never_answers_times_out(tmp_path):
    path = make_file(tmp_path, "silent.bin", 1000)
    with socket.socket() as silent:  # accepts connections (the kernel does) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = "http://127.0.0.1:%d" % silent.getsockname()[1]
        started = time.monotonic()
        result = upload(path, "--timeout", "1", "--retries", "1", "--backoff", "0", url=url)
    assert result.returncode == 1
    assert f"{url} did not answer within 1 s" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 15


def test_invalid_files_fail_but_the_others_upload(live_server, tmp_path):
    good = make_file(tmp_path, "good.bin", 2000)
    bad_name = make_file(tmp_path, "bad\x01name.bin", 10)  # a name the API refuses (400)
    result = upload(tmp_path / "missing.bin", tmp_path, bad_name, good, url=live_server.url)
    assert result.returncode == 1
    err = result.stderr
    assert f"{tmp_path / 'missing.bin'}: no such file" in err
    assert f"{tmp_path}: not a regular file" in err
    assert "400 invalid_input" in err and "control characters" in err
    assert "Traceback" not in err
    assert stored(live_server, result.stdout).read_bytes() == good.read_bytes()


def test_md5_mismatch_on_the_server_is_reported(live_server, tmp_path):
    path = make_file(tmp_path, "tampered.bin", 200 * KiB)
    data = path.read_bytes()
    # The server already holds a chunk 0 of this upload whose bytes are not the file's.
    fields = {"chunkIndex": "0", "md5": md5_of(path), "fileName": path.name, "totalChunks": "2"}
    response = requests.post(f"{live_server.url}/api/upload-chunk", data=fields, timeout=10,
                             files={"chunk": ("blob", bytes(100 * KiB))})
    assert response.status_code == 200
    result = upload(path, "--chunk-size", "100KiB", url=live_server.url)
    assert result.returncode == 1
    assert "422 md5_mismatch" in result.stderr and "Traceback" not in result.stderr
    assert f"curl -X DELETE {live_server.url}/api/upload/{md5_of(path)}/tampered.bin" in (
        result.stderr)
    assert status(live_server, path)["status"] == "uploading"
    assert path.read_bytes() == data
    # Leave the shared server without unfinished uploads, as other tests expect.
    assert requests.delete(f"{live_server.url}/api/upload/{md5_of(path)}/{path.name}",
                           timeout=10).status_code == 200


def test_client_imports_none_of_the_server_modules():
    """The client runs anywhere requests runs: none of the server's layers, no Flask,
    werkzeug or SQLAlchemy (only the version, which both share)."""
    code = ("import sys, uploadsvc.client.cli; "
            "print(sorted(m for m in sys.modules if m.startswith('uploadsvc.') "
            "and not m.startswith('uploadsvc.client') and m != 'uploadsvc.version' "
            "or m.split('.')[0] in ('flask', 'werkzeug', 'sqlalchemy', 'flask_sqlalchemy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
