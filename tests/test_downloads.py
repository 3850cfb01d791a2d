"""Downloads of completed files at their `path`, through Flask's test client and gunicorn."""
import os
import shutil
from urllib.parse import quote

import pytest
import requests

from uploadsvc import create_app
from uploadsvc.http import downloads

from .helpers import TestFile, random_file, send_chunk, upload_all

SIZE = 300_000


def fetch(client, path, method="get", **kwargs):
    """A response read whole and closed (a file response holds its file open until then)."""
    response = getattr(client, method)(path, **kwargs)
    response.get_data()
    response.close()
    return response


def assert_not_found(response):
    assert response.status_code == 404, response.status_code
    body = response.get_json()
    assert body["success"] is False and body["error"] in ("file_not_found", "not_found")
    assert body["message"]


@pytest.fixture
def uploaded(client):
    f = random_file(SIZE, 64_000, "report.pdf")
    done = upload_all(client, f).get_json()
    assert done["path"] == "/uploads/report.pdf"
    return f, done["path"]


def test_full_download_has_the_uploaded_bytes(client, uploaded):
    f, path = uploaded
    response = fetch(client, path)
    assert response.status_code == 200
    assert response.data == f.data
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Content-Disposition"] == "attachment; filename=report.pdf"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert response.headers["ETag"]


def test_range_request_returns_the_slice(client, uploaded):
    f, path = uploaded
    response = fetch(client, path, headers={"Range": "bytes=1000-1999"})
    assert response.status_code == 206
    assert response.data == f.data[1000:2000]
    assert response.headers["Content-Range"] == f"bytes 1000-1999/{SIZE}"
    assert response.headers["Content-Length"] == "1000"

    tail = fetch(client, path, headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.data == f.data[-100:]
    rest = fetch(client, path, headers={"Range": f"bytes={SIZE - 10}-"})
    assert rest.status_code == 206 and rest.data == f.data[-10:]


def test_resumed_download_checks_if_range(client, uploaded):
    f, path = uploaded
    etag = fetch(client, path).headers["ETag"]
    same = fetch(client, path, headers={"Range": "bytes=5000-", "If-Range": etag})
    assert same.status_code == 206 and same.data == f.data[5000:]
    changed = fetch(client, path, headers={"Range": "bytes=5000-", "If-Range": '"other"'})
    assert changed.status_code == 200 and changed.data == f.data
    assert fetch(client, path, headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize("header", ["bytes=0-9,20-29", "bytes=oops", "items=0-5", "bytes=9-2"])
def test_multi_or_malformed_range_gets_the_whole_file(client, uploaded, header):
    f, path = uploaded
    response = fetch(client, path, headers={"Range": header})
    assert response.status_code == 200 and response.data == f.data


def test_unsatisfiable_range_is_416_json(client, uploaded):
    _, path = uploaded
    for header in (f"bytes={SIZE}-", f"bytes={SIZE + 5}-{SIZE + 10}"):
        response = fetch(client, path, headers={"Range": header})
        assert response.status_code == 416, header
        assert response.get_json()["success"] is False
        assert response.headers["Content-Range"] == f"bytes */{SIZE}"


def test_head_answers_size_without_body(client, uploaded):
    _, path = uploaded
    response = fetch(client, path, "head")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(SIZE) and response.data == b""


def test_non_ascii_name_uses_rfc5987(client):
    name = "Résumé 报告 \"final\".pdf"
    f = random_file(1000, 1000, name)
    path = upload_all(client, f).get_json()["path"]
    response = fetch(client, quote(path))
    assert response.status_code == 200 and response.data == f.data
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment; ")
    # A plain ASCII fallback, and the exact name (quotes made safe) for modern browsers.
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9%20%E6%8A%A5%E5%91%8A%20_final_.pdf" in disposition
    assert 'filename="Resume  _final_.pdf"' in disposition


def test_unknown_name_is_404_json(client, uploaded):
    assert_not_found(fetch(client, "/uploads/nothing-here.pdf"))


def test_only_files_of_completed_uploads_are_served(client, data_dir, uploaded):
    # A file placed in uploads/ by other means, the database and a half-done upload's name.
    (data_dir / "uploads" / "stray.txt").write_text("not an upload")
    assert_not_found(fetch(client, "/uploads/stray.txt"))
    assert_not_found(fetch(client, "/uploads/uploadsvc.sqlite3"))
    partial = random_file(200, 100, "partial.bin")
    assert send_chunk(client, partial, 0).status_code == 200
    assert_not_found(fetch(client, "/uploads/partial.bin"))


@pytest.mark.parametrize("path", [
    "/uploads/../uploadsvc.sqlite3", "/uploads/..%2Fuploadsvc.sqlite3",
    "/uploads/%2e%2e%2fuploadsvc.sqlite3", "/uploads/..", "/uploads/%2e%2e",
    "/uploads/report.pdf/..%2F..%2Fuploadsvc.sqlite3", "/uploads/%2Fetc%2Fpasswd",
    "/uploads/..%5Cuploadsvc.sqlite3", "/uploads/report.pdf%00.txt",
])
def test_path_traversal_is_404(client, uploaded, path):
    response = fetch(client, path)
    assert response.status_code == 404
    assert b"SQLite" not in response.data and b"root:" not in response.data


def test_deleted_upload_is_no_longer_served(client, uploaded):
    f, path = uploaded
    assert client.delete(f"/api/upload/{f.md5}/{f.name}").status_code == 200
    assert_not_found(fetch(client, path))


def test_downloads_can_be_turned_off(data_dir, migrated_database):
    shutil.copy(migrated_database, data_dir / "uploadsvc.sqlite3")
    app = create_app({"TESTING": True, "DATA_DIR": str(data_dir), "DOWNLOADS": False})
    client = app.test_client()
    f = TestFile(b"secret bytes", 100, "private.txt")
    path = upload_all(client, f).get_json()["path"]
    assert (data_dir / "uploads" / "private.txt").read_bytes() == b"secret bytes"
    assert_not_found(fetch(client, path))


def test_downloads_off_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("UPLOADSVC_DOWNLOADS", "false")
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path)})
    assert app.config["DOWNLOADS"] is False


def test_gunicorn_serves_ranges(live_server):
    """Under gunicorn the file goes out through the server's file wrapper; ranges still hold."""
    f = random_file(2_000_000, 500_000, "live-download.bin")
    session = requests.Session()
    for index in range(f.total):
        response = session.post(f"{live_server.url}/api/upload-chunk", files={
            "chunk": ("blob", f.chunk(index))}, data={k: str(v) for k, v in {
                "chunkIndex": index, "md5": f.md5, "fileName": f.name,
                "totalChunks": f.total}.items()}, timeout=10)
        assert response.status_code == 200, response.text
    path = session.post(f"{live_server.url}/api/complete-upload", json=f.ident(),
                        timeout=30).json()["path"]
    url = live_server.url + quote(path)
    assert session.get(url, timeout=10).content == f.data
    part = session.get(url, headers={"Range": "bytes=1234567-1300000"}, timeout=10)
    assert part.status_code == 206 and part.content == f.data[1234567:1300001]
    gone = session.get(live_server.url + "/uploads/..%2Fuploadsvc.sqlite3", timeout=10)
    assert gone.status_code == 404 and gone.json()["success"] is False


def test_file_deleted_while_looked_up_is_404(client, uploaded, monkeypatch):
    """A DELETE between the lookup and the open (a race forced here): 404, not a 500."""
    _, path = uploaded
    real_send_file = downloads.send_file

    def delete_then_send(file_path, **kwargs):
        os.unlink(file_path)
        return real_send_file(file_path, **kwargs)

    monkeypatch.setattr(downloads, "send_file", delete_then_send)
    assert_not_found(fetch(client, path))
