"""uploadsvc-upload --tus against the tus endpoint (/files/) under real gunicorn."""
import json
import os
import subprocess

import requests

from .servers import ThrottledProxy
from .test_client import CLIENT, KiB, MiB, interrupt_once, make_file, md5_of, stored


def tus_env(tmp_path) -> dict:
    """The client's environment, with its resume state in the test's own directory."""
    return {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}


def stored_urls(tmp_path) -> list[str]:
    """The upload URLs the client keeps for resuming (tuspy's TinyDB JSON file)."""
    try:
        table = json.loads((tmp_path / "state" / "uploadsvc" / "tus-uploads.json").read_text())
    except (FileNotFoundError, ValueError):  # not written yet, or being written
        return []
    # tuspy records a file's key (with no URL) before the upload is created.
    return [row["url"] for row in table.get("_default", {}).values() if row.get("url")]


def offset(url: str) -> int:
    response = requests.head(url, headers={"Tus-Resumable": "1.0.0"}, timeout=5)
    assert response.status_code in (200, 204), response.status_code
    return int(response.headers["Upload-Offset"])


def test_tus_uploads_files_and_prints_path_and_md5(live_server, tmp_path):
    files = [make_file(tmp_path, "tus-one.bin", MiB + 3), make_file(tmp_path, "tus-empty.bin", 0)]
    result = subprocess.run([CLIENT, *map(str, files), "--tus", "--chunk-size", "256KiB",
                             "--url", live_server.url], env=tus_env(tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for path, line in zip(files, lines, strict=True):
        assert line.startswith(f"{path}: /uploads/")
        assert f"md5 {md5_of(path)}" in line
        assert stored(live_server, line).read_bytes() == path.read_bytes()
    assert "sent 5 of 5 chunks" in lines[0]
    assert stored_urls(tmp_path) == []  # finished uploads are forgotten


def test_tus_resumes_after_ctrl_c(live_server, tmp_path):
    path = make_file(tmp_path, "tus-interrupted.bin", 6 * MiB)
    chunk = 64 * KiB
    # The relay passes 1 MiB of the 6 and holds the rest: the client cannot finish before
    # the Ctrl-C, however fast or loaded the machine.
    with ThrottledProxy(live_server.port, hold_after=MiB) as proxy:
        args = [CLIENT, str(path), "--tus", "--chunk-size", str(chunk), "--url", proxy.url]

        def direct(url: str) -> str:  # the upload URL names the relay, which holds
            assert url.startswith(proxy.url + "/"), url
            return live_server.url + url[len(proxy.url):]

        def some_bytes_stored() -> bool:
            urls = stored_urls(tmp_path)
            return bool(urls) and offset(direct(urls[0])) >= 10 * chunk

        interrupt_once(args, tus_env(tmp_path), proxy, some_bytes_stored)
        (url,) = stored_urls(tmp_path)
        kept = offset(direct(url))
        assert 10 * chunk <= kept < path.stat().st_size

        # Released by interrupt_once: the resume goes through the relay at full speed.
        result = subprocess.run(args, env=tus_env(tmp_path), capture_output=True, text=True,
                                timeout=120)
    assert result.returncode == 0, result.stderr
    sent = int(result.stdout.split("sent ")[1].split(" of")[0])
    assert sent <= -(-(path.stat().st_size - kept) // chunk)
    assert f"md5 {md5_of(path)}" in result.stdout
    assert stored(live_server, result.stdout).read_bytes() == path.read_bytes()
