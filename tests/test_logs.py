"""Logs: one line per request and per upload event, as JSON lines when asked."""
import hashlib
import json
import os
import subprocess

import requests

from .helpers import random_file, send_chunk
from .servers import BIN, PROJECT, GunicornServer


def test_json_lines_under_gunicorn(tmp_path):
    server = GunicornServer(tmp_path / "data", workers=2,
                            env={"UPLOADSVC_LOG_FORMAT": "json"}).start()
    data = os.urandom(150_000)
    md5 = hashlib.md5(data).hexdigest()
    ident = {"md5": md5, "fileName": "logged.bin", "totalChunks": 2}
    try:
        for index in range(2):
            fields = {"chunkIndex": str(index), "md5": md5, "fileName": "logged.bin",
                      "totalChunks": "2"}
            chunk = data[index * 100_000:(index + 1) * 100_000]
            assert requests.post(server.url + "/api/upload-chunk", data=fields, timeout=10,
                                 files={"chunk": ("blob", chunk)}).ok
        assert requests.post(server.url + "/api/complete-upload", json=ident, timeout=10).ok
        assert requests.delete(f"{server.url}/api/upload/{md5}/logged.bin", timeout=10).ok
        tus = {"Tus-Resumable": "1.0.0"}
        created = requests.post(server.url + "/files/", timeout=10, headers={
            **tus, "Upload-Length": "4", "Upload-Metadata": "filename dHVzLmJpbg=="})
        assert created.status_code == 201
        assert requests.patch(created.headers["Location"], data=b"tus!", timeout=10, headers={
            **tus, "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream"}).status_code == 204
    finally:
        server.stop()

    lines = [line for line in server.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line of the output is JSON
    assert all({"time", "level", "logger", "message"} <= set(record) for record in records)
    api_loggers = {f"uploadsvc.services.{name}"
                   for name in ("chunked.uploads", "chunked.chunks", "placement", "uploads")}
    tus_loggers = {"uploadsvc.services.tus.uploads", "uploadsvc.services.tus.writes"}
    events = [r for r in records if r["logger"] in api_loggers and "event" in r]
    tus_events = [r for r in records if r["logger"] in tus_loggers and "event" in r]
    assert [r["event"] for r in tus_events] == ["created", "chunk_stored"]
    assert tus_events[1]["bytes"] == 4 and tus_events[1]["file_name"] == "tus.bin"
    tus_done = events.pop()  # a finished tus upload is completed by the same service code
    assert tus_done["event"] == "completed" and tus_done["upload_id"] == tus_events[0]["upload_id"]
    assert tus_done["md5"] == hashlib.md5(b"tus!").hexdigest() and tus_done["bytes"] == 4
    assert [r["event"] for r in events] == ["created", "chunk_stored", "chunk_stored",
                                            "completed", "deleted"]
    assert {r["upload_id"] for r in events} == {events[0]["upload_id"]}
    assert all(r["md5"] == md5 and r["file_name"] == "logged.bin" for r in events)
    stored = [r for r in events if r["event"] == "chunk_stored"]
    assert sorted(r["bytes"] for r in stored) == [50_000, 100_000]
    assert all(r["duration_ms"] >= 0 for r in stored)
    completed = events[3]
    assert completed["bytes"] == len(data) and completed["path"] == "/uploads/logged.bin"
    assert completed["duration_ms"] >= 0 and completed["merge_ms"] >= 0
    access = [r for r in records if r["logger"] == "gunicorn.access"]
    requests_seen = [(r["method"], r["path"], r["status"]) for r in access]
    assert requests_seen.count(("POST", "/api/upload-chunk", 200)) == 2
    assert ("POST", "/api/complete-upload", 200) in requests_seen
    assert ("DELETE", f"/api/upload/{md5}/logged.bin", 200) in requests_seen
    assert all(isinstance(r["duration_ms"], int) for r in access)


def test_flask_commands_log_events_to_stdout_as_json(app, client, data_dir):
    test_file = random_file(1000, 1000, "stale.bin")
    assert send_chunk(client, test_file, 0).status_code == 200
    env = {**os.environ, "UPLOADSVC_DATA_DIR": str(data_dir), "UPLOADSVC_LOG_FORMAT": "json",
           "UPLOADSVC_DATABASE_URL": app.config["DATABASE_URL"]}
    result = subprocess.run([str(BIN / "flask"), "--app", "uploadsvc", "cleanup",
                             "--older-than", "0s"], cwd=PROJECT, env=env, capture_output=True,
                            text=True, timeout=60, check=True)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    expired = [r for r in records if r.get("event") == "expired"]
    assert len(expired) == 1
    assert expired[0]["md5"] == test_file.md5 and expired[0]["file_name"] == "stale.bin"
    assert expired[0]["level"] == "INFO"
    assert "removed 1 expired uploads" in result.stdout


def test_text_lines_by_default(app, client, data_dir):
    test_file = random_file(1000, 1000, "plain.bin")
    assert send_chunk(client, test_file, 0).status_code == 200
    env = {**os.environ, "UPLOADSVC_DATA_DIR": str(data_dir),
           "UPLOADSVC_DATABASE_URL": app.config["DATABASE_URL"]}
    env.pop("UPLOADSVC_LOG_FORMAT", None)
    result = subprocess.run([str(BIN / "flask"), "--app", "uploadsvc", "cleanup",
                             "--older-than", "0s"], cwd=PROJECT, env=env, capture_output=True,
                            text=True, timeout=60, check=True)
    line = next(line for line in result.stdout.splitlines() if "expired (" in line)
    assert "[INFO] uploadsvc.services.uploads: upload " in line and test_file.md5 in line
