"""The HTTP contract of API.md, through Flask's test client."""
import hashlib
import io
import re
import uuid

import pytest

from uploadsvc.services.chunked import completion as api_completion

from .helpers import (
    TestFile,
    finished_bytes,
    leftovers,
    random_file,
    send_chunk,
    store_of,
    upload_all,
)

# Every test that uses the app runs on both backends (tests/conftest.py).
STORAGES = ["local", "s3"]
# Azure and GCS run the tests that store, join, publish or remove bytes; the rest (input
# checked before the store is reached) adds nothing on a third and fourth store.
EVERY_STORE = pytest.mark.stores("local", "s3", "azure", "gcs")
# Input refused before the store is reached (JSON bodies, media types, paths, routes, CORS)
# runs the same code whatever the store: on the local disk only. A chunk's form is not among
# them: its bytes may go to the store before its fields are checked (chunkform).
BEFORE_THE_STORE = pytest.mark.stores("local")
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def assert_error(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["success"] is False
    assert isinstance(body["message"], str) and body["message"]
    if code:
        assert body["error"] == code
    return body


def placed_by_hand(app, name: str, data: bytes) -> None:
    """A finished file that no upload made (an operator's), through the store."""
    store = store_of(app)
    key = uuid.uuid4().hex
    store.create(key)
    store.write(key, 0, io.BytesIO(data), len(data))
    store.publish(store.seal(key, len(data)), name)
    store.delete(key)


# -- the endpoints --------------------------------------------------------------------------


@BEFORE_THE_STORE
def test_health(client):
    body = client.get("/api/health").get_json()
    assert body["status"] == "ok"
    assert ISO.fullmatch(body["timestamp"])
    assert body["version"] and body["node"].startswith("CPython")


@EVERY_STORE
def test_full_upload_out_of_order(app, client):
    f = random_file(250_000, 64_000)
    assert client.post("/api/check-chunks", json=f.ident()).get_json() == {
        "success": True, "uploadedChunks": [], "progress": 0, "instantUpload": False,
        "data": {"instantUpload": False, "uploadedChunks": [], "progress": 0}}
    for n, index in enumerate([3, 1, 0, 2], start=1):
        body = send_chunk(client, f, index).get_json()
        assert body == {"success": True, "uploaded": n, "total": 4,
                        "progress": 100 * n // 4, "chunkIndex": index}
    body = client.post("/api/check-chunks", json=f.ident()).get_json()
    assert body["uploadedChunks"] == [0, 1, 2, 3] and body["progress"] == 100
    done = client.post("/api/complete-upload", json=f.ident()).get_json()
    assert done["success"] is True
    assert done["fileName"] == "test.bin" and done["size"] == 250_000
    assert done["md5"] == f.md5 and done["path"] == "/uploads/test.bin"
    assert isinstance(done["uploadTime"], int) and done["uploadTime"] >= 0
    assert finished_bytes(app, "test.bin") == f.data
    assert leftovers(app) == ([], [])


@EVERY_STORE
def test_upload_status_while_uploading_and_after(client):
    f = random_file(300, 100)
    send_chunk(client, f, 1)
    body = client.get(f"/api/upload-status/{f.md5}/{f.name}").get_json()
    assert body["uploaded"] == 1 and body["total"] == 3 and body["percentage"] == 33
    assert body["status"] == "uploading"
    assert ISO.fullmatch(body["startTime"]) and ISO.fullmatch(body["lastUpdate"])
    upload_all(client, f)
    body = client.get(f"/api/upload-status/{f.md5}/{f.name}").get_json()
    assert (body["uploaded"], body["percentage"], body["status"]) == (3, 100, "completed")


def test_progress_is_floored(client):
    f = random_file(3, 1)
    for index in range(2):
        send_chunk(client, f, index)
    assert client.post("/api/check-chunks", json=f.ident()).get_json()["progress"] == 66  # 66.7


@EVERY_STORE
def test_delete_unfinished_upload(app, client):
    f = random_file(300, 100)
    send_chunk(client, f, 0)
    assert leftovers(app)[0] != []
    assert client.delete(f"/api/upload/{f.md5}/{f.name}").get_json() == {"success": True}
    assert leftovers(app) == ([], [])
    assert_error(client.get(f"/api/upload-status/{f.md5}/{f.name}"), 404, "upload_not_found")
    assert_error(client.delete(f"/api/upload/{f.md5}/{f.name}"), 404)


@EVERY_STORE
def test_delete_completed_upload_removes_its_file_only(app, client):
    f = random_file(1000, 500)
    upload_all(client, f)
    client.post("/api/check-chunks", json=f.ident(fileName="twin.bin"))
    assert client.delete(f"/api/upload/{f.md5}/{f.name}").status_code == 200
    assert not store_of(app).has_file(f.name)
    assert finished_bytes(app, "twin.bin") == f.data


def test_stats(client):
    f = random_file(300, 100)
    send_chunk(client, f, 0)
    body = client.get("/api/stats").get_json()
    assert body["activeUploads"] == 1
    assert set(body["totalMemoryUsage"]) == {"rss", "heapTotal", "heapUsed", "external"}
    assert body["totalMemoryUsage"]["rss"] > 0
    assert body["uptime"] >= 0 and body["nodeVersion"] and body["platform"]


# -- decided behaviour ----------------------------------------------------------------------


@EVERY_STORE
def test_zero_byte_file_is_one_empty_chunk(app, client):
    f = TestFile(b"", 1024, "empty.txt")
    assert send_chunk(client, f, 0).get_json()["progress"] == 100
    done = client.post("/api/complete-upload", json=f.ident()).get_json()
    assert done["size"] == 0 and done["md5"] == hashlib.md5(b"").hexdigest()
    assert finished_bytes(app, "empty.txt") == b""


def test_md5_is_accepted_in_either_case_and_answered_lowercase(client):
    f = random_file(100, 100)
    upper = f.md5.upper()
    assert send_chunk(client, f, 0, md5=upper).status_code == 200
    done = client.post("/api/complete-upload", json=f.ident(md5=upper)).get_json()
    assert done["md5"] == f.md5


@EVERY_STORE
def test_resending_a_stored_chunk_is_idempotent(client):
    f = random_file(300, 100)
    for _ in range(3):
        assert send_chunk(client, f, 0).get_json()["uploaded"] == 1
    assert client.post("/api/check-chunks", json=f.ident()).get_json()["uploadedChunks"] == [0]
    assert upload_all(client, f).get_json()["md5"] == f.md5


def test_same_md5_under_two_names_is_two_uploads(client):
    f = random_file(300, 100)
    send_chunk(client, f, 0)
    other = client.post("/api/check-chunks", json=f.ident(fileName="other.bin")).get_json()
    assert other["uploadedChunks"] == []


@EVERY_STORE
def test_instant_upload_of_a_known_file(app, client):
    f = random_file(5000, 1000)
    upload_all(client, f)
    body = client.post("/api/check-chunks",
                       json=f.ident(fileName="again.bin", totalChunks=7)).get_json()
    found = {"instantUpload": True, "uploadedChunks": list(range(7)), "progress": 100,
             "fileUrl": "/uploads/again.bin", "fileName": "again.bin", "fileSize": 5000}
    assert body == {"success": True, "uploadedChunks": list(range(7)), "progress": 100,
                    "instantUpload": True, "completed": True, "path": "/uploads/again.bin",
                    "fileUrl": "/uploads/again.bin", "fileName": "again.bin",
                    "fileSize": 5000, "data": found}
    assert finished_bytes(app, "again.bin") == f.data
    status = client.get(f"/api/upload-status/{f.md5}/again.bin").get_json()
    assert status["status"] == "completed"
    done = client.post("/api/complete-upload", json=f.ident(fileName="again.bin")).get_json()
    assert done["path"] == "/uploads/again.bin" and done["size"] == 5000


@EVERY_STORE
def test_instant_upload_finishes_a_partial_upload_under_the_new_name(app, client):
    f = random_file(5000, 1000)
    send_chunk(client, f, 0, fileName="late.bin")
    upload_all(client, f)
    body = client.post("/api/check-chunks", json=f.ident(fileName="late.bin")).get_json()
    assert body["completed"] is True
    assert finished_bytes(app, "late.bin") == f.data
    assert leftovers(app) == ([], [])


def test_check_chunks_of_completed_upload_reports_completed(client):
    f = random_file(300, 100)
    upload_all(client, f)
    body = client.post("/api/check-chunks", json=f.ident()).get_json()
    assert body["completed"] is True and body["path"] == "/uploads/test.bin"
    assert body["uploadedChunks"] == [0, 1, 2]


@EVERY_STORE
def test_complete_again_answers_the_same_success(client):
    f = random_file(300, 100)
    first = upload_all(client, f).get_json()
    again = client.post("/api/complete-upload", json=f.ident()).get_json()
    assert again == first


@EVERY_STORE
def test_completed_file_never_replaces_another(app, client):
    placed_by_hand(app, "test.bin", b"placed by hand")
    f = random_file(300, 100)
    first = upload_all(client, f).get_json()
    g = random_file(300, 100)
    second = upload_all(client, g).get_json()
    assert first["path"] == "/uploads/test (1).bin" and first["fileName"] == "test.bin"
    assert second["path"] == "/uploads/test (2).bin"
    assert finished_bytes(app, "test.bin") == b"placed by hand"
    assert finished_bytes(app, "test (1).bin") == f.data
    assert finished_bytes(app, "test (2).bin") == g.data


@EVERY_STORE
def test_complete_with_missing_chunks_lists_them_and_keeps_the_upload(client):
    f = random_file(500, 100)
    for index in (0, 2):
        send_chunk(client, f, index)
    body = assert_error(client.post("/api/complete-upload", json=f.ident()), 400,
                        "missing_chunks")
    assert body["missingChunks"] == [1, 3, 4]
    assert client.post("/api/check-chunks", json=f.ident()).get_json()["uploadedChunks"] == [0, 2]
    assert upload_all(client, f).status_code == 200


@EVERY_STORE
def test_md5_mismatch_is_422_and_the_upload_stays_resumable(app, client):
    f = random_file(300, 100)
    send_chunk(client, f, 0)
    send_chunk(client, f, 1, body=b"x" * 100)  # corrupted in transit
    send_chunk(client, f, 2)
    assert_error(client.post("/api/complete-upload", json=f.ident()), 422, "md5_mismatch")
    assert not store_of(app).has_file(f.name)
    status = client.get(f"/api/upload-status/{f.md5}/{f.name}").get_json()
    assert status["status"] == "uploading" and status["uploaded"] == 3
    send_chunk(client, f, 1)  # the client re-sends the bad chunk
    assert client.post("/api/complete-upload", json=f.ident()).get_json()["md5"] == f.md5


def test_complete_of_unknown_upload_is_404(client):
    f = random_file(100, 100)
    assert_error(client.post("/api/complete-upload", json=f.ident()), 404, "upload_not_found")


def test_conflicting_total_chunks_is_409(client):
    f = random_file(300, 100)
    send_chunk(client, f, 0)
    assert_error(client.post("/api/check-chunks", json=f.ident(totalChunks=4)), 409,
                 "total_chunks_conflict")
    assert_error(send_chunk(client, f, 0, totalChunks="4"), 409, "total_chunks_conflict")
    assert_error(client.post("/api/complete-upload", json=f.ident(totalChunks=4)), 409)


def test_chunks_of_different_sizes_are_refused(client):
    f = random_file(300, 100)
    send_chunk(client, f, 0)
    assert_error(send_chunk(client, f, 1, body=b"y" * 99), 409, "chunk_size_conflict")
    assert_error(send_chunk(client, f, 2, body=b"y" * 101), 409, "chunk_size_conflict")


def test_total_chunks_limit(client):
    f = random_file(10, 1)
    assert_error(client.post("/api/check-chunks", json=f.ident(totalChunks=100_001)), 400)
    assert client.post("/api/check-chunks", json=f.ident(totalChunks=100_000)).status_code == 200


def test_declared_size_over_limit_is_413_before_storing(app, client):
    app.config["MAX_FILE_SIZE"] = 1000
    f = random_file(1200, 100)
    assert_error(send_chunk(client, f, 0), 413, "file_too_large")
    assert_error(client.get(f"/api/upload-status/{f.md5}/{f.name}"), 404)
    assert leftovers(app) == ([], [])


def test_last_chunk_pushing_past_limit_is_413(app, client):
    app.config["MAX_FILE_SIZE"] = 250
    f = TestFile(b"a" * 300, 100)
    small = TestFile(b"a" * 300, 100)
    # two 100-byte chunks imply at least 201 bytes (fine); a 100-byte last chunk makes 300
    assert send_chunk(client, small, 0, totalChunks="3").status_code == 200
    assert_error(send_chunk(client, f, 2, totalChunks="3"), 413, "file_too_large")


def test_request_over_max_content_length_is_413(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    f = random_file(5000, 5000)
    assert_error(send_chunk(client, f, 0), 413)


@BEFORE_THE_STORE
def test_cors_preflight_echoes_allowed_origin_only(client):
    headers = {"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "Content-Type"}
    ok = client.options("/api/check-chunks", headers=headers)
    assert 200 <= ok.status_code < 300
    assert ok.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    evil = client.options("/api/check-chunks", headers={**headers, "Origin": "http://evil.test"})
    assert "Access-Control-Allow-Origin" not in evil.headers
    get = client.get("/api/health", headers={"Origin": "http://localhost:4174"})
    assert get.headers["Access-Control-Allow-Origin"] == "http://localhost:4174"


# -- bad input ------------------------------------------------------------------------------

GOOD = {"md5": "0" * 32, "fileName": "a.bin", "totalChunks": 2}


@BEFORE_THE_STORE
@pytest.mark.parametrize("body", [
    {"fileName": "a.bin", "totalChunks": 2},
    {"md5": "0" * 32, "totalChunks": 2},
    {"md5": "0" * 32, "fileName": "a.bin"},
    {**GOOD, "totalChunks": "2"},
    {**GOOD, "totalChunks": 2.5},
    {**GOOD, "totalChunks": True},
    {**GOOD, "totalChunks": 0},
    {**GOOD, "totalChunks": -1},
    {**GOOD, "totalChunks": None},
    {**GOOD, "md5": 123},
    {**GOOD, "md5": "g" * 32},
    {**GOOD, "md5": "0" * 31},
    {**GOOD, "md5": "0" * 32 + "\n"},
    {**GOOD, "md5": "../" + "0" * 29},
    {**GOOD, "fileName": ""},
    {**GOOD, "fileName": "."},
    {**GOOD, "fileName": ".."},
    {**GOOD, "fileName": "../etc/passwd"},
    {**GOOD, "fileName": "/etc/passwd"},
    {**GOOD, "fileName": "dir\\file"},
    {**GOOD, "fileName": "C:\\Windows\\x"},
    {**GOOD, "fileName": "a\0b"},
    {**GOOD, "fileName": "line\nbreak"},
    {**GOOD, "fileName": "tab\tname"},
    {**GOOD, "fileName": "del\x7f"},
    {**GOOD, "fileName": "c1\x85control"},
    {**GOOD, "fileName": "x" * 256},
    {**GOOD, "fileName": "é" * 128},
    {**GOOD, "fileName": "\ud800"},
    {**GOOD, "fileName": ["a"]},
])
@pytest.mark.parametrize("route", ["/api/check-chunks", "/api/complete-upload"])
def test_bad_json_fields_are_400(client, route, body):
    assert_error(client.post(route, json=body), 400, "invalid_input")


def test_names_up_to_255_bytes_are_accepted(client):
    for name in ("x" * 255, "é" * 127, "文件" * 42, "💾" * 63):
        assert client.post("/api/check-chunks", json={**GOOD, "fileName": name}).status_code == 200


@BEFORE_THE_STORE
@pytest.mark.parametrize("route", ["/api/check-chunks", "/api/complete-upload"])
def test_non_json_bodies(client, route):
    assert_error(client.post(route, data="md5=x", content_type="application/json"), 400)
    assert_error(client.post(route, data="[1, 2]", content_type="application/json"), 400)
    assert_error(client.post(route, data="", content_type="application/json"), 400)
    assert_error(client.post(route, data='{"md5": "x"}', content_type="text/plain"), 415,
                 "unsupported_media_type")
    assert_error(client.post(route, data={"md5": "x"}), 415)


@BEFORE_THE_STORE
def test_oversized_json_body_is_413(client):
    assert_error(client.post("/api/check-chunks", json={**GOOD, "pad": "x" * 100_000}), 413)


def chunk_form(**fields):
    base = {"chunkIndex": "0", "md5": "0" * 32, "fileName": "a.bin", "totalChunks": "2",
            "chunk": (io.BytesIO(b"abc"), "blob")}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize("fields", [
    {"chunkIndex": None}, {"md5": None}, {"fileName": None}, {"totalChunks": None},
    {"chunkIndex": "2"}, {"chunkIndex": "-1"}, {"chunkIndex": "1.5"}, {"chunkIndex": "one"},
    {"chunkIndex": ""}, {"chunkIndex": " 1"}, {"chunkIndex": "1e0"},
    {"totalChunks": "0"}, {"totalChunks": "x"}, {"totalChunks": "100001"},
    {"md5": "not-an-md5"}, {"fileName": "../../evil"}, {"fileName": "a/b"},
    {"fileName": "bad\x01name"}, {"chunk": None},
])
def test_bad_chunk_forms_are_400(app, client, fields):
    response = client.post("/api/upload-chunk", data=chunk_form(**fields),
                           content_type="multipart/form-data")
    assert_error(response, 400)
    assert leftovers(app) == ([], [])


def test_chunk_sent_as_text_field_is_400(client):
    assert_error(client.post("/api/upload-chunk", data=chunk_form(chunk="abc"),
                             content_type="multipart/form-data"), 400)


@BEFORE_THE_STORE
def test_chunk_not_multipart_is_415(client):
    assert_error(client.post("/api/upload-chunk", json={"chunkIndex": 0}), 415)
    assert_error(client.post("/api/upload-chunk", data=b"raw",
                             content_type="application/octet-stream"), 415)


def test_malformed_multipart_is_400(client):
    response = client.post("/api/upload-chunk", data=b"--x\r\nnot a part",
                           content_type="multipart/form-data; boundary=x")
    assert response.status_code == 400
    response = client.post("/api/upload-chunk", data=b"whatever",
                           content_type="multipart/form-data")
    assert_error(response, 400)


@BEFORE_THE_STORE
@pytest.mark.parametrize("path", [
    "/api/upload-status/nothex/a.bin", "/api/upload-status/" + "0" * 32 + "/%2e%2e",
])
def test_bad_path_identities_are_refused(client, path):
    assert client.get(path).status_code in (400, 404)
    assert client.get(path).get_json()["success"] is False


@BEFORE_THE_STORE
def test_path_with_slashes_is_not_found(client):
    assert_error(client.get("/api/upload-status/" + "0" * 32 + "/a/../../b"), 404)
    assert_error(client.delete("/api/upload/" + "0" * 32 + "/%2F"), 404)


@BEFORE_THE_STORE
def test_unknown_route_is_json_404(client):
    assert_error(client.get("/api/nothing-here"), 404, "not_found")
    assert_error(client.get("/nothing"), 404)


@BEFORE_THE_STORE
def test_wrong_method_is_405_with_allow(client):
    response = client.get("/api/complete-upload")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    assert "DELETE" in client.post(f"/api/upload/{'0' * 32}/a.bin").headers["Allow"]


@BEFORE_THE_STORE
def test_internal_errors_hide_details(app, client, monkeypatch):

    def explode(*args):
        raise RuntimeError("secret /var/lib/path and SELECT * FROM uploads")

    monkeypatch.setattr(api_completion, "check_chunks", explode)
    body = assert_error(client.post("/api/check-chunks", json=GOOD), 500, "internal_error")
    assert "secret" not in body["message"] and "SELECT" not in body["message"]


@EVERY_STORE
def test_completed_file_removed_by_hand_can_be_uploaded_again(app, client):
    f = random_file(300, 100)
    upload_all(client, f)
    store_of(app).delete_file("test.bin")
    body = client.post("/api/check-chunks", json=f.ident()).get_json()
    assert body == {"success": True, "uploadedChunks": [], "progress": 0, "instantUpload": False,
                    "data": {"instantUpload": False, "uploadedChunks": [], "progress": 0}}
    assert upload_all(client, f).get_json()["path"] == "/uploads/test.bin"
    assert finished_bytes(app, "test.bin") == f.data
