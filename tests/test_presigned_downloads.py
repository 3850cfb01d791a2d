"""UPLOADSVC_S3_PRESIGNED_DOWNLOADS: on an object store a download GET redirects to a
presigned URL of the real SeaweedFS (a SAS of Azurite, a V4 signed URL of the GCS
emulator), which serves the file's bytes
(Range too) under its name and type; the data directory streams as before; HEAD is answered
by the app."""
import os
from urllib.parse import quote

import pytest
import requests

from uploadsvc import create_app

from .helpers import random_file, upload_all
from .test_tus_download import fetch, finished

STORAGES = ["local", "s3", "azure", "gcs"]
SIZE = 70_000


@pytest.fixture
def app_config() -> dict:
    return {"S3_PRESIGNED_DOWNLOADS": 60}


# Where each object store's signed URLs lead, and the query field that signs them.
SIGNED = {"s3": ("s3_env", "Signature="), "azure": ("azure_env", "sig="),
          "gcs": ("gcs_env", "X-Goog-Signature=")}


def presigned(request, response, storage) -> str:
    """The URL a download GET redirected to (on an object store; the local store streams
    it)."""
    assert response.status_code == 307, response.status_code
    assert response.data == b"" and response.headers["Cache-Control"] == "no-store"
    location = response.headers["Location"]
    fixture, field = SIGNED[storage]
    endpoint = request.getfixturevalue(fixture).endpoint
    assert location.startswith(endpoint + "/") and field in location
    return location


def assert_type(got, url: str, storage: str, content_type: str) -> None:
    """The store answered with the type the URL asks for (the GCS emulator keeps the
    object's own: there the URL is checked to ask for it, as GCS then answers)."""
    if storage == "gcs":
        assert "response-content-type=" + quote(content_type, safe="") in url
    else:
        assert got.headers["Content-Type"] == content_type


def forge(url: str, storage: str) -> str:
    field = SIGNED[storage][1]
    return url.replace(field, field + "0")


def test_a_download_at_its_path_redirects_to_the_store(request, client, storage):
    f = random_file(SIZE, 30_000, "report 2026.pdf")
    path = upload_all(client, f).get_json()["path"]
    answer = fetch(client, path)
    if storage == "local":  # nothing to presign: streamed as before
        assert answer.status_code == 200 and answer.data == f.data
        return
    url = presigned(request, answer, storage)
    got = requests.get(url, timeout=10)
    assert got.status_code == 200 and got.content == f.data
    assert got.headers["Content-Disposition"] == 'attachment; filename="report 2026.pdf"'
    assert_type(got, url, storage, "application/pdf")
    part = requests.get(url, headers={"Range": "bytes=1000-1999"}, timeout=10)
    assert part.status_code == 206 and part.content == f.data[1000:2000]
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{SIZE}"
    if storage != "gcs":  # (the GCS emulator checks no signature; GCS does)
        assert requests.get(forge(url, storage), timeout=10).status_code == 403
    # HEAD has no presigned URL (one is signed for GET): the app answers it.
    state = fetch(client, path, "head")
    assert state.status_code == 200 and state.headers["Content-Length"] == str(SIZE)


def test_a_finished_tus_upload_redirects_with_its_name_and_type(request, client, storage):
    data = os.urandom(SIZE)
    path, _ = finished(client, data, filename="été.csv", filetype="text/csv")
    answer = fetch(client, path)
    if storage == "local":
        assert answer.status_code == 200 and answer.data == data
        return
    url = presigned(request, answer, storage)
    got = requests.get(url, timeout=10)
    assert got.status_code == 200 and got.content == data
    assert got.headers["Content-Disposition"] == (
        "attachment; filename=ete.csv; filename*=UTF-8''%C3%A9t%C3%A9.csv")
    assert_type(got, url, storage, "text/csv; charset=utf-8")
    # Azurite and the GCS emulator take no suffix range ("the last N bytes").
    last = "bytes=-100" if storage == "s3" else f"bytes={SIZE - 100}-"
    tail = requests.get(url, headers={"Range": last}, timeout=10)
    assert tail.status_code == 206 and tail.content == data[-100:]


@pytest.mark.parametrize("value, seconds", [(0, 0), (None, 0), ("900", 900), ("15m", 900),
                                            (604800, 604800)])
def test_the_validity_is_read_as_seconds_or_a_duration(tmp_path, value, seconds):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path),
                      "S3_PRESIGNED_DOWNLOADS": value})
    assert app.config["S3_PRESIGNED_DOWNLOADS"] == seconds


@pytest.mark.parametrize("value", [-1, "8d", "soon"])
def test_a_validity_beyond_seven_days_or_not_a_duration_is_refused(tmp_path, value):
    with pytest.raises(ValueError):
        create_app({"TESTING": True, "DATA_DIR": str(tmp_path),
                    "S3_PRESIGNED_DOWNLOADS": value})
