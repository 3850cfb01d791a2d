"""GET on a tus upload's URL: a finished upload's file (as tusd serves it), the same answer
as its Upload-Path's, on both backends; HEAD stays the tus HEAD."""
import os

import pytest

from .test_access import bearer, create_key
from .tus_helpers import TUS, create, head, metadata, patch, path_of

STORAGES = ["local", "s3"]
# Azure and GCS run the tests that read a file back from the store.
EVERY_STORE = pytest.mark.stores("local", "s3", "azure", "gcs")
SIZE = 70_000


def fetch(client, path, method="get", **kwargs):
    """A response read whole and closed (a file response holds its file open until then)."""
    response = getattr(client, method)(path, **kwargs)
    response.get_data()
    response.close()
    return response


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    if response.request.method == "HEAD":
        assert response.data == b""
        return
    body = response.get_json()
    assert body["success"] is False and body["error"] == code and body["message"]


def finished(client, data: bytes, headers=None, **meta) -> tuple[str, str]:
    """A tus upload of data in two PATCHes: its URL path and its Upload-Path."""
    headers = {**TUS, **(headers or {})}
    made = client.post("/files/", headers={**headers, "Upload-Length": str(len(data)),
                                           "Upload-Metadata": metadata(**meta)})
    assert made.status_code == 201, made.get_data(as_text=True)
    path = path_of(made)
    half = len(data) // 2
    assert patch(client, path, 0, data[:half], **headers).status_code == 204
    done = patch(client, path, half, data[half:], **headers)
    assert done.status_code == 204 and done.headers["Upload-Offset"] == str(len(data))
    return path, done.headers["Upload-Path"]


@pytest.fixture
def data() -> bytes:
    return os.urandom(SIZE)


@EVERY_STORE
def test_get_on_a_finished_upload_serves_what_its_path_serves(client, data):
    path, file_path = finished(client, data, filename="report.csv", filetype="text/csv")
    response = fetch(client, path)  # no Tus-Resumable: a browser's GET
    assert response.status_code == 200 and response.data == data
    assert response.headers["Content-Length"] == str(SIZE)
    assert response.headers["Content-Disposition"] == "attachment; filename=report.csv"
    assert response.mimetype == "text/csv"
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]
    at_path = fetch(client, file_path)
    assert at_path.data == data
    for name in ("ETag", "Content-Type", "Content-Disposition", "Content-Length"):
        assert response.headers[name] == at_path.headers[name], name
    # HEAD stays the tus HEAD: the upload's state, no file, and Tus-Resumable required.
    state = fetch(client, path, "head", headers=TUS)
    assert state.status_code == 200 and state.data == b""
    assert state.headers["Upload-Offset"] == state.headers["Upload-Length"] == str(SIZE)
    assert state.headers["Upload-Path"] == file_path
    assert "Content-Disposition" not in state.headers
    assert state.headers["Cache-Control"] == "no-store"
    assert_error(fetch(client, path, "head"), 412, "tus_version_unsupported")


@EVERY_STORE
def test_range_if_range_and_etag_on_the_upload_url(client, data):
    path, _ = finished(client, data)
    whole = fetch(client, path)
    etag = whole.headers["ETag"]
    part = fetch(client, path, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.data == data[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{SIZE}"
    tail = fetch(client, path, headers={"Range": "bytes=-10", "If-Range": etag})
    assert tail.status_code == 206 and tail.data == data[-10:]
    changed = fetch(client, path, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert changed.status_code == 200 and changed.data == data
    assert fetch(client, path, headers={"If-None-Match": etag}).status_code == 304
    outside = fetch(client, path, headers={"Range": f"bytes={SIZE}-"})
    assert_error(outside, 416, "requested_range_not_satisfiable")


def test_the_type_is_the_name_s_when_filetype_is_absent_or_no_media_type(client, data):
    for meta, expected in [({"filename": "photo.png", "filetype": "not a type"}, "image/png"),
                           ({"filename": "blob"}, "application/octet-stream"),
                           ({"filename": "été.pdf", "filetype": "Application/PDF"},
                            "application/pdf")]:
        response = fetch(client, finished(client, data[:100], **meta)[0])
        assert response.status_code == 200 and response.mimetype == expected, meta
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=ete.pdf; filename*=UTF-8''%C3%A9t%C3%A9.pdf")


def test_an_unfinished_upload_is_409_and_an_unknown_one_404(app, client, data):
    path = path_of(create(client, SIZE))
    assert patch(client, path, 0, data[:100]).status_code == 204
    assert_error(fetch(client, path), 409, "upload_unfinished")
    deferred = path_of(create(client))
    assert_error(fetch(client, deferred), 409, "upload_unfinished")
    assert head(client, path).headers["Upload-Offset"] == "100"  # nothing changed
    assert_error(fetch(client, "/files/" + "0" * 32), 404, "upload_not_found")
    assert_error(fetch(client, "/files/not-a-key"), 404, "upload_not_found")
    done, _ = finished(client, data)
    app.config["DOWNLOADS"] = False  # off, as at the file's path
    assert_error(fetch(client, done), 404, "file_not_found")
    app.config["DOWNLOADS"] = True
    assert client.delete(done, headers=TUS).status_code == 204
    assert_error(fetch(client, done), 404, "upload_not_found")


def test_keys_see_only_their_own_uploads(app, client, runner, data):
    app.config["AUTH_REQUIRED"] = True
    mine, theirs = bearer(create_key(runner, "mine")), bearer(create_key(runner, "theirs"))
    path, _ = finished(client, data, headers=mine)
    assert fetch(client, path, headers=mine).data == data
    assert_error(fetch(client, path, headers=theirs), 404, "upload_not_found")
    assert_error(fetch(client, path), 401, "unauthorized")
