"""uploadsvc-upload --protocol ietf (the IETF resumable upload draft on /files/) under real
gunicorn."""
import json
import os
import subprocess

import requests

from .servers import ThrottledProxy
from .test_client import CLIENT, KiB, MiB, interrupt_once, make_file, md5_of, stored


def client_env(tmp_path) -> dict:
    """The client's environment, with its resume state in the test's own directory."""
    return {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}


def kept_urls(tmp_path) -> list[str]:
    try:
        return list(json.loads(
            (tmp_path / "state" / "uploadsvc" / "ietf-uploads.json").read_text()).values())
    except (FileNotFoundError, ValueError):
        return []


def offset(url: str) -> int:
    answer = requests.head(url, headers={"Upload-Draft-Interop-Version": "9"}, timeout=5)
    assert answer.status_code == 204, answer.status_code
    return int(answer.headers["Upload-Offset"])


def test_the_draft_uploads_files_and_prints_path_and_md5(live_server, tmp_path):
    files = [make_file(tmp_path, "ietf-one.bin", MiB + 3), make_file(tmp_path, "ietf-empty", 0)]
    result = subprocess.run([CLIENT, *map(str, files), "--protocol", "ietf", "--chunk-size",
                             "256KiB", "--url", live_server.url], env=client_env(tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for path, line in zip(files, lines, strict=True):
        assert line.startswith(f"{path}: /uploads/")
        assert f"md5 {md5_of(path)}" in line
        assert stored(live_server, line).read_bytes() == path.read_bytes()
    assert "sent 5 of 5 chunks" in lines[0]
    assert kept_urls(tmp_path) == []


def test_the_draft_resumes_after_ctrl_c(live_server, tmp_path):
    path = make_file(tmp_path, "ietf-interrupted.bin", 6 * MiB)
    chunk = 64 * KiB
    with ThrottledProxy(live_server.port, hold_after=MiB) as proxy:
        args = [CLIENT, str(path), "--protocol", "ietf", "--chunk-size", str(chunk),
                "--url", proxy.url]

        def direct(url: str) -> str:
            return live_server.url + url[len(proxy.url):]

        def some_bytes_stored() -> bool:
            urls = kept_urls(tmp_path)
            return bool(urls) and offset(direct(urls[0])) >= 10 * chunk

        interrupt_once(args, client_env(tmp_path), proxy, some_bytes_stored)
        (url,) = kept_urls(tmp_path)
        kept = offset(direct(url))
        assert 10 * chunk <= kept < path.stat().st_size
        result = subprocess.run(args, env=client_env(tmp_path), capture_output=True, text=True,
                                timeout=120)
    assert result.returncode == 0, result.stderr
    sent = int(result.stdout.split("sent ")[1].split(" of")[0])
    assert sent <= -(-(path.stat().st_size - kept) // chunk)
    assert f"md5 {md5_of(path)}" in result.stdout
    assert stored(live_server, result.stdout).read_bytes() == path.read_bytes()
