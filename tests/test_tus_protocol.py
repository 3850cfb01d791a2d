"""The tus 1.0 endpoint through Flask's test client: core protocol and every extension."""
import hashlib
import io
import os
import sqlite3
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from uploadsvc import create_app
from uploadsvc.core.extensions import db
from uploadsvc.core.models import Upload, UploadEvent, utcnow

from .helpers import finished_bytes, leftovers, store_of, upload_keys
from .tus_helpers import TUS, checksum, create, head, metadata, patch, path_of

# Every test that uses the app runs on both backends (tests/conftest.py).
STORAGES = ["local", "s3"]
# Azure and GCS run the tests that store, join, publish or remove bytes; the rest (headers
# checked before the store is reached) adds nothing on a third and fourth store.
EVERY_STORE = pytest.mark.stores("local", "s3", "azure", "gcs")
# Requests refused before the store is reached (the protocol's headers, an unknown upload,
# routes, CORS) run the same code whatever the store: on the local disk only.
BEFORE_THE_STORE = pytest.mark.stores("local")


def assert_error(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Tus-Resumable"] == "1.0.0"
    if response.request.method != "HEAD":
        body = response.get_json()
        assert body["success"] is False and body["message"]
        if code:
            assert body["error"] == code


def upload(client, data: bytes, name: str = "tus.bin", chunk: int = 4096) -> str:
    """Create and fill an upload chunk by chunk; returns its path."""
    path = path_of(create(client, len(data), name))
    for offset in range(0, len(data), chunk):
        response = patch(client, path, offset, data[offset:offset + chunk])
        assert response.status_code == 204, response.get_data(as_text=True)
    return path


# -- core protocol --------------------------------------------------------------------------


@BEFORE_THE_STORE
def test_options_advertises_version_extensions_and_limits(app, client):
    response = client.options("/files/")
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation", "creation-with-upload", "creation-defer-length", "termination",
        "expiration", "checksum", "concatenation"}
    assert int(response.headers["Tus-Max-Size"]) == app.config["MAX_FILE_SIZE"]
    assert {"md5", "sha1", "sha256"} <= set(response.headers["Tus-Checksum-Algorithm"].split(","))


@BEFORE_THE_STORE
@pytest.mark.parametrize("version", [None, "0.2.2", "2.0.0"])
def test_missing_or_unsupported_tus_resumable_is_412(client, version):
    headers = {"Upload-Length": "10"} | ({"Tus-Resumable": version} if version else {})
    response = client.post("/files/", headers=headers)
    assert_error(response, 412, "tus_version_unsupported")
    assert response.headers["Tus-Version"] == "1.0.0"
    with client.application.app_context():
        assert db.session.execute(select(Upload)).first() is None


@EVERY_STORE
def test_create_head_patch_and_finish(app, client):
    data = os.urandom(10_000)
    created = create(client, len(data), "report.pdf")
    assert created.status_code == 201
    assert created.headers["Location"].startswith("http://localhost/files/")
    assert created.headers["Upload-Expires"].endswith("GMT")
    path = path_of(created)
    status = head(client, path)
    assert status.status_code == 200
    assert status.headers["Upload-Offset"] == "0"
    assert status.headers["Upload-Length"] == "10000"
    assert status.headers["Cache-Control"] == "no-store"
    assert status.headers["Upload-Metadata"] == metadata(filename="report.pdf")
    first = patch(client, path, 0, data[:6000])
    assert first.status_code == 204
    assert first.headers["Upload-Offset"] == "6000"
    assert first.headers["Upload-Expires"].endswith("GMT")
    assert head(client, path).headers["Upload-Offset"] == "6000"
    last = patch(client, path, 6000, data[6000:])
    assert last.status_code == 204 and last.headers["Upload-Offset"] == "10000"
    assert last.headers["Upload-MD5"] == hashlib.md5(data).hexdigest()
    assert last.headers["Upload-Path"] == "/uploads/report.pdf"
    assert finished_bytes(app, "report.pdf") == data
    assert leftovers(app) == ([], [])
    done = head(client, path)
    assert done.headers["Upload-Offset"] == "10000"
    assert done.headers["Upload-MD5"] == hashlib.md5(data).hexdigest()
    assert "Upload-Expires" not in done.headers


@EVERY_STORE
def test_patch_on_finished_upload_changes_nothing(app, client):
    path = upload(client, b"abc", "abc.txt")
    again = patch(client, path, 3, b"")
    assert again.status_code == 204 and again.headers["Upload-Offset"] == "3"
    assert_error(patch(client, path, 3, b"more"), 413)
    assert finished_bytes(app, "abc.txt") == b"abc"


@EVERY_STORE
def test_finished_upload_is_an_api_upload_for_instant_upload_and_stats(app, client):
    data = os.urandom(5000)
    upload(client, data, "same.bin")
    md5 = hashlib.md5(data).hexdigest()
    body = client.post("/api/check-chunks",
                       json={"md5": md5, "fileName": "other.bin", "totalChunks": 2}).get_json()
    assert body["completed"] is True and body["uploadedChunks"] == [0, 1]
    assert finished_bytes(app, "other.bin") == data
    stats = client.get("/api/stats").get_json()
    assert stats["activeUploads"] == 0
    with client.application.app_context():
        row = db.session.execute(select(Upload).filter_by(protocol="tus")).scalar_one()
        assert (row.status, row.md5, row.stored_name, row.size) == (
            "completed", md5, "same.bin", 5000)
        kinds = [e.kind for e in db.session.execute(
            select(UploadEvent).filter_by(upload_key=row.key)).scalars()]
    assert kinds[0] == "created" and kinds[-1] == "completed" and "chunk_stored" in kinds


def test_same_name_gets_the_api_naming_rules(app, client):
    upload(client, b"first", "dup.txt")
    second = upload(client, b"second", "dup.txt")
    assert head(client, second).headers["Upload-Path"] == "/uploads/dup (1).txt"
    assert finished_bytes(app, "dup (1).txt") == b"second"


def test_metadata_file_name_is_made_plain(app, client):
    upload(client, b"x", "../../etc/pass\x01wd")
    assert finished_bytes(app, "passwd") == b"x"


@EVERY_STORE
def test_wrong_offset_is_409_and_changes_nothing(client):
    path = path_of(create(client, 100))
    patch(client, path, 0, b"a" * 10)
    assert_error(patch(client, path, 5, b"b" * 10), 409, "offset_mismatch")
    assert_error(patch(client, path, 20, b"b" * 10), 409)
    assert head(client, path).headers["Upload-Offset"] == "10"


def test_wrong_content_type_on_patch_is_415(client):
    path = path_of(create(client, 100))
    response = client.patch(path, data=b"abc", content_type="application/octet-stream",
                            headers={**TUS, "Upload-Offset": "0"})
    assert_error(response, 415)
    assert head(client, path).headers["Upload-Offset"] == "0"


@pytest.mark.parametrize("offset", [None, "-1", "abc", "1e3"])
def test_missing_or_bad_offset_is_400(client, offset):
    path = path_of(create(client, 100))
    headers = {**TUS} | ({"Upload-Offset": offset} if offset else {})
    response = client.patch(path, data=b"abc", content_type="application/offset+octet-stream",
                            headers=headers)
    assert_error(response, 400)


@BEFORE_THE_STORE
def test_unknown_upload_is_404(client):
    assert_error(head(client, "/files/" + "0" * 32), 404)
    assert_error(patch(client, "/files/" + "0" * 32, 0, b"x"), 404, "upload_not_found")
    assert_error(patch(client, "/files/../../etc", 0, b"x"), 404)
    assert_error(client.delete("/files/not-a-key", headers=TUS), 404)


def test_api_uploads_are_not_reachable_as_tus(client):
    from .helpers import random_file, send_chunk
    send_chunk(client, random_file(100, 100), 0)
    with client.application.app_context():
        key = db.session.execute(select(Upload.key)).scalar_one()
    assert_error(head(client, f"/files/{key}"), 404)


def test_method_override(client):
    path = path_of(create(client, 6))
    response = client.post(path, data=b"abc", content_type="application/offset+octet-stream",
                           headers={**TUS, "Upload-Offset": "0",
                                    "X-HTTP-Method-Override": "PATCH"})
    assert response.status_code == 204 and response.headers["Upload-Offset"] == "3"
    status = client.post(path, headers={**TUS, "X-HTTP-Method-Override": "HEAD"})
    assert status.status_code == 200 and status.headers["Upload-Offset"] == "3"
    gone = client.post(path, headers={**TUS, "X-HTTP-Method-Override": "DELETE"})
    assert gone.status_code == 204
    assert_error(head(client, path), 404)
    assert_error(client.post(path, headers=TUS), 405)


@BEFORE_THE_STORE
def test_every_answer_says_tus_resumable(client):
    for response in (client.get("/files/", headers=TUS), client.get("/files/x/y", headers=TUS),
                     client.put("/files/" + "0" * 32, headers=TUS)):
        assert response.status_code in (404, 405)
        assert response.headers["Tus-Resumable"] == "1.0.0"
        assert response.get_json()["success"] is False


# -- creation -------------------------------------------------------------------------------


@BEFORE_THE_STORE
@pytest.mark.parametrize("headers", [
    {}, {"Upload-Length": "10", "Upload-Defer-Length": "1"}, {"Upload-Length": "-1"},
    {"Upload-Length": "ten"}, {"Upload-Defer-Length": "2"},
    {"Upload-Length": "1", "Upload-Metadata": "filename not-base64!"},
    {"Upload-Length": "1", "Upload-Metadata": "a YQ==,a YQ=="},
    {"Upload-Length": "1", "Upload-Concat": "sideways"},
])
def test_bad_creation_headers_are_400(client, headers):
    assert_error(client.post("/files/", headers={**TUS, **headers}), 400)


@BEFORE_THE_STORE
def test_creation_over_max_size_is_413(app, client):
    response = create(client, app.config["MAX_FILE_SIZE"] + 1)
    assert_error(response, 413, "file_too_large")


@EVERY_STORE
def test_zero_length_upload_is_finished_at_once(app, client):
    response = create(client, 0, "empty.txt")
    assert response.status_code == 201
    assert response.headers["Upload-MD5"] == hashlib.md5(b"").hexdigest()
    assert finished_bytes(app, "empty.txt") == b""


def test_location_behind_a_proxy(data_dir, migrated_database):
    app = make_app(data_dir, migrated_database, TRUSTED_PROXIES=1)
    response = app.test_client().post(
        "/files/", headers={**TUS, "Upload-Length": "5", "X-Forwarded-Proto": "https",
                            "X-Forwarded-Host": "uploads.example.com",
                            "X-Forwarded-Prefix": "/up"})
    assert response.headers["Location"].startswith("https://uploads.example.com/up/files/")
    with app.app_context():
        db.engine.dispose()


def test_forwarded_headers_ignored_unless_trusted(client):
    response = client.post("/files/", headers={**TUS, "Upload-Length": "5",
                                               "X-Forwarded-Host": "evil.example"})
    assert response.headers["Location"].startswith("http://localhost/files/")


def make_app(data_dir, migrated_database, **config):
    import shutil
    shutil.copy(migrated_database, data_dir / "uploadsvc.sqlite3")
    return create_app({"TESTING": True, "DATA_DIR": str(data_dir), **config})


def test_configured_base_url_and_prefix(data_dir, migrated_database):
    app = make_app(data_dir, migrated_database, TUS_PREFIX="/tus/v1/",
                   TUS_BASE_URL="https://cdn.example.com/tus/v1/")
    client = app.test_client()
    response = client.post("/tus/v1/", headers={**TUS, "Upload-Length": "2"})
    key = response.headers["Location"].rsplit("/", 1)[1]
    assert response.headers["Location"] == f"https://cdn.example.com/tus/v1/{key}"
    done = client.patch(f"/tus/v1/{key}", data=b"ok", headers={
        **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    assert done.status_code == 204 and done.headers["Upload-Offset"] == "2"
    assert client.post("/files/", headers={**TUS, "Upload-Length": "2"}).status_code == 404
    with app.app_context():
        db.engine.dispose()


@EVERY_STORE
def test_creation_with_upload(app, client):
    response = client.post("/files/", data=b"hello world",
                           content_type="application/offset+octet-stream",
                           headers={**TUS, "Upload-Length": "11",
                                    "Upload-Metadata": metadata(filename="hi.txt")})
    assert response.status_code == 201
    assert response.headers["Upload-Offset"] == "11"
    assert response.headers["Upload-MD5"] == hashlib.md5(b"hello world").hexdigest()
    assert finished_bytes(app, "hi.txt") == b"hello world"


@EVERY_STORE
def test_creation_with_partial_upload_then_patch(client):
    response = client.post("/files/", data=b"hello", content_type="application/offset+octet-stream",
                           headers={**TUS, "Upload-Length": "11"})
    assert response.headers["Upload-Offset"] == "5"
    assert patch(client, path_of(response), 5, b" world").headers["Upload-Offset"] == "11"


def test_creation_with_body_of_other_type_is_415(client):
    response = client.post("/files/", data=b"hello", content_type="text/plain",
                           headers={**TUS, "Upload-Length": "5"})
    assert_error(response, 415)


# -- creation-defer-length ------------------------------------------------------------------


@EVERY_STORE
def test_deferred_length(app, client):
    path = path_of(create(client, None, "later.bin"))
    status = head(client, path)
    assert status.headers["Upload-Defer-Length"] == "1" and "Upload-Length" not in status.headers
    assert patch(client, path, 0, b"abc").headers["Upload-Offset"] == "3"
    assert_error(patch(client, path, 3, b"def", **{"Upload-Length": "2"}), 400)
    done = patch(client, path, 3, b"def", **{"Upload-Length": "6"})
    assert done.status_code == 204 and done.headers["Upload-Offset"] == "6"
    assert head(client, path).headers["Upload-Length"] == "6"
    assert finished_bytes(app, "later.bin") == b"abcdef"


def test_deferred_length_cannot_change_once_set(client):
    path = path_of(create(client, None))
    patch(client, path, 0, b"abc", **{"Upload-Length": "10"})
    assert_error(patch(client, path, 3, b"d", **{"Upload-Length": "11"}), 400)
    assert head(client, path).headers["Upload-Length"] == "10"


# -- limits ---------------------------------------------------------------------------------


@EVERY_STORE
def test_body_past_the_length_is_413_and_stores_nothing(client):
    path = path_of(create(client, 10))
    patch(client, path, 0, b"12345")
    assert_error(patch(client, path, 5, b"6789012"), 413, "file_too_large")
    assert head(client, path).headers["Upload-Offset"] == "5"


@EVERY_STORE
def test_unannounced_body_past_the_length_is_cut_off(app, client):
    """Without Content-Length (chunked, as gunicorn passes it), the store stops at the length."""
    path = path_of(create(client, 4))
    response = client.patch(path, input_stream=io.BytesIO(b"123456"), headers={
        **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
        "Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})
    assert_error(response, 413)
    assert head(client, path).headers["Upload-Offset"] == "0"


# -- termination ----------------------------------------------------------------------------


@EVERY_STORE
def test_termination(app, client):
    path = path_of(create(client, 10))
    patch(client, path, 0, b"12345")
    assert upload_keys(app) == [path.rsplit("/", 1)[1]]
    response = client.delete(path, headers=TUS)
    assert response.status_code == 204
    assert_error(head(client, path), 404)
    assert_error(patch(client, path, 5, b"1"), 404)
    assert leftovers(app) == ([], [])


@EVERY_STORE
def test_termination_of_a_finished_upload_removes_its_file(app, client):
    path = upload(client, b"bye", "bye.txt")
    assert client.delete(path, headers=TUS).status_code == 204
    assert not store_of(app).has_file("bye.txt")


# -- expiration -----------------------------------------------------------------------------


def expire(app, path):
    with app.app_context():
        row = db.session.execute(select(Upload).filter_by(key=path.rsplit("/", 1)[1])).scalar_one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()


@EVERY_STORE
def test_expired_upload_is_410_and_cleanup_removes_it(app, client, runner):
    path = path_of(create(client, 10))
    patch(client, path, 0, b"12345")
    kept = path_of(create(client, 10))
    expire(app, path)
    assert upload_keys(app) == sorted(p.rsplit("/", 1)[1] for p in (path, kept))
    assert_error(head(client, path), 410)
    assert_error(patch(client, path, 5, b"1"), 410, "upload_expired")
    result = runner.invoke(args=["cleanup"])
    assert result.exit_code == 0 and "removed 1 expired uploads" in result.output
    assert_error(head(client, path), 410)  # still known as expired, not unknown
    assert head(client, kept).status_code == 200
    assert upload_keys(app) == [kept.rsplit("/", 1)[1]]


def test_expiry_is_configurable(data_dir, migrated_database):
    app = make_app(data_dir, migrated_database, TUS_EXPIRY="90s")
    response = create(app.test_client(), 10)
    from werkzeug.http import parse_date
    left = parse_date(response.headers["Upload-Expires"]).replace(tzinfo=None) - utcnow()
    assert timedelta(seconds=80) < left <= timedelta(seconds=90)
    with app.app_context():
        db.engine.dispose()


# -- checksum -------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256", "sha512"])
def test_checksum_match(client, algorithm):
    path = path_of(create(client, 10))
    response = patch(client, path, 0, b"0123456789",
                     **{"Upload-Checksum": checksum(algorithm, b"0123456789")})
    assert response.status_code == 204 and response.headers["Upload-Offset"] == "10"


@EVERY_STORE
def test_checksum_mismatch_is_460_and_discards_the_chunk(app, client):
    path = path_of(create(client, 10, "sum.bin"))
    patch(client, path, 0, b"01234")
    bad = patch(client, path, 5, b"56789", **{"Upload-Checksum": checksum("sha1", b"xxxxx")})
    assert_error(bad, 460, "checksum_mismatch")
    assert head(client, path).headers["Upload-Offset"] == "5"
    good = patch(client, path, 5, b"56789", **{"Upload-Checksum": checksum("sha1", b"56789")})
    assert good.headers["Upload-Offset"] == "10"
    assert finished_bytes(app, "sum.bin") == b"0123456789"


@pytest.mark.parametrize("value", ["crc32 AAAAAA==", "sha1", "sha1 !!notbase64"])
def test_unsupported_or_malformed_checksum_is_400(client, value):
    path = path_of(create(client, 10))
    assert_error(patch(client, path, 0, b"01234", **{"Upload-Checksum": value}), 400)
    assert head(client, path).headers["Upload-Offset"] == "0"


# -- concatenation --------------------------------------------------------------------------


def partial(client, data: bytes) -> str:
    path = path_of(create(client, len(data), **{"Upload-Concat": "partial"}))
    if data:
        assert patch(client, path, 0, data).status_code == 204
    return path


@EVERY_STORE
def test_concatenation(app, client):
    parts = [os.urandom(3000), os.urandom(2000), os.urandom(1)]
    paths = [partial(client, p) for p in parts]
    assert head(client, paths[0]).headers["Upload-Concat"] == "partial"
    assert not store_of(app).has_file("whole.bin")
    value = "final;" + " ".join(["http://localhost" + paths[0], *paths[1:]])
    response = client.post("/files/", headers={**TUS, "Upload-Concat": value,
                                               "Upload-Metadata": metadata(filename="whole.bin")})
    assert response.status_code == 201
    whole = b"".join(parts)
    assert finished_bytes(app, "whole.bin") == whole
    status = head(client, path_of(response))
    assert status.headers["Upload-Concat"] == value
    assert status.headers["Upload-Offset"] == status.headers["Upload-Length"] == "5001"
    assert status.headers["Upload-MD5"] == hashlib.md5(whole).hexdigest()
    assert_error(patch(client, path_of(response), 5001, b"x"), 403, "final_upload")
    assert_error(head(client, paths[0]), 404)  # parts are consumed
    assert leftovers(app) == ([], [])
    assert client.get("/api/stats").get_json()["activeUploads"] == 0


def test_final_with_unfinished_part_is_400(client):
    done = partial(client, b"abc")
    unfinished = path_of(create(client, 10, **{"Upload-Concat": "partial"}))
    response = client.post("/files/", headers={
        **TUS, "Upload-Concat": f"final;{done} {unfinished}"})
    assert_error(response, 400)
    assert head(client, done).status_code == 200  # nothing consumed


@pytest.mark.parametrize(("value", "status"), [
    ("final;", 400), ("final;/files/not-a-key", 400), ("final;/files/" + "0" * 32, 404),
    (f"final;/files/{'0' * 32} /files/{'0' * 32}", 400)])
def test_final_with_bad_or_unknown_parts(client, value, status):
    assert_error(client.post("/files/", headers={**TUS, "Upload-Concat": value}), status)


def test_final_with_length_is_400(client):
    done = partial(client, b"abc")
    response = client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{done}",
                                               "Upload-Length": "3"})
    assert_error(response, 400)


def test_final_over_max_size_is_413(data_dir, migrated_database):
    app = make_app(data_dir, migrated_database, MAX_FILE_SIZE=5)
    client = app.test_client()
    parts = [partial(client, b"abc"), partial(client, b"def")]
    response = client.post("/files/", headers={**TUS, "Upload-Concat": "final;" + " ".join(parts)})
    assert_error(response, 413)
    with app.app_context():
        db.engine.dispose()


# -- CORS -----------------------------------------------------------------------------------


@BEFORE_THE_STORE
def test_cors_preflight_allows_tus_headers(client):
    response = client.options("/files/", headers={
        "Origin": "http://localhost:5173", "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "tus-resumable,upload-offset,upload-checksum,"
                                          "content-type,upload-concat"})
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    for header in ("tus-resumable", "upload-offset", "upload-checksum", "upload-concat"):
        assert header in allowed
    assert "PATCH" in response.headers["Access-Control-Allow-Methods"]


def test_cors_exposes_tus_headers_to_configured_origins_only(client):
    response = client.post(
        "/files/", headers={**TUS, "Upload-Length": "5", "Origin": "http://localhost:4174"})
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:4174"
    exposed = response.headers["Access-Control-Expose-Headers"].lower().replace(" ", "")
    exposed = set(exposed.split(","))
    assert {"location", "upload-offset", "upload-length", "upload-metadata", "upload-expires",
            "tus-resumable", "tus-version", "tus-extension", "tus-max-size"} <= exposed
    other = client.post("/files/", headers={**TUS, "Upload-Length": "5",
                                            "Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


# -- locking --------------------------------------------------------------------------------


def test_patch_while_another_holds_the_lock_is_423(data_dir, migrated_database):
    app = make_app(data_dir, migrated_database, LOCK_WAIT_SECONDS=0.2)
    client = app.test_client()
    path = path_of(create(client, 10))
    store = app.extensions["store"]
    # Held as a running PATCH holds it:
    with app.app_context(), store.locker.hold(path.rsplit("/", 1)[1], exclusive=True):
        assert_error(patch(client, path, 0, b"12345"), 423, "upload_locked")
        assert_error(client.delete(path, headers=TUS), 423)
    assert head(client, path).headers["Upload-Offset"] == "0"
    assert patch(client, path, 0, b"12345").headers["Upload-Offset"] == "5"
    with app.app_context():
        db.engine.dispose()


class DatabaseProbingBody(io.RawIOBase):
    """A PATCH body that, while it is being read, checks that another process could take
    the locks a write takes: SQLite's write lock, or on MySQL the upload rows' locks. A body
    may take hours, and a lock held meanwhile would stall every other request (SQLite) or
    every other request on the upload (MySQL)."""

    def __init__(self, data: bytes, database_url: str) -> None:
        self.data, self.database_url, self.locked = io.BytesIO(data), database_url, []
        self.probes = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:  # the test client sizes the body
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.data.seek(offset, whence)

    def tell(self) -> int:
        return self.data.tell()

    def readinto(self, buffer) -> int:
        self.probes += 1
        if self.probe():
            self.locked.append(True)
        return self.data.readinto(buffer)

    def probe(self) -> bool:
        """Whether another connection is kept from taking those locks now."""
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite":
            connection = sqlite3.connect(url.database, timeout=0, isolation_level=None)
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("ROLLBACK")
                return False
            except sqlite3.OperationalError:
                return True
            finally:
                connection.close()
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT id FROM uploads FOR UPDATE NOWAIT").all()
                connection.rollback()
            return False
        except OperationalError:
            return True
        finally:
            engine.dispose()


def test_no_database_lock_is_held_while_a_body_streams(client):
    path = path_of(create(client, 6))
    url = client.application.config["SQLALCHEMY_DATABASE_URI"]
    body = DatabaseProbingBody(b"abcdef", url)
    with client.application.app_context():  # the probe sees a lock that is held
        db.session.execute(select(Upload).with_for_update())
        assert body.probe()
        db.session.rollback()
    response = client.patch(path, input_stream=body, headers={
        **TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 204 and response.headers["Upload-Offset"] == "6"
    assert body.probes > 0 and body.locked == []
