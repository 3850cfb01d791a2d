"""The IETF draft's errors and the answers that differ between interop versions, through
Flask's test client on both databases."""
import json
import os

import pytest

from .resumable_helpers import (
    PARTIAL,
    PROBLEM,
    append,
    create,
    draft,
    offset_of,
    path_of,
    problem,
)


@pytest.fixture
def app_config():
    return {"MAX_FILE_SIZE": 1000}


def completed(client, version: int, data: bytes = b"hello") -> str:
    done = create(client, version, data, complete=True)
    assert done.status_code == 201
    return path_of(done)


@pytest.mark.parametrize(("version", "status", "kind"), [
    (6, 400, "completed-upload"), (7, 400, "completed-upload"),
    (8, 400, "inconsistent-upload-length"), (9, 400, "inconsistent-upload-length")])
def test_bytes_appended_to_a_completed_upload_are_refused(client, version, status, kind):
    path = completed(client, version)
    refused = append(client, version, path, 5, b"more", complete=True)
    assert refused.status_code == status
    assert refused.headers["Upload-Complete"] == "?0"
    problem(refused, kind)


@pytest.mark.parametrize(("version", "status"), [(6, 400), (7, 400), (8, 410), (9, 201)])
def test_an_empty_completion_of_a_completed_upload(client, version, status):
    """Interop 9 answers it as completed again (its first answer may have been lost)."""
    path = completed(client, version)
    again = append(client, version, path, 5, b"", complete=True)
    assert again.status_code == status
    assert again.headers["Upload-Complete"] == ("?1" if status == 201 else "?0")
    assert again.headers["Upload-Offset"] == "5"


@pytest.mark.parametrize(("version", "problem_json"), [(6, False), (7, True), (9, True)])
def test_inconsistent_lengths(client, version, problem_json):
    """Upload-Length against the whole body, and against a completing append's end."""
    refused = create(client, version, b"hello world", complete=True, Upload_Length="5")
    assert refused.status_code == 400
    assert (refused.mimetype == PROBLEM) == problem_json
    assert refused.get_json(force=True)["error"] == "inconsistent_upload_length"
    path = path_of(create(client, version, b"hello", Upload_Length="11"))
    short = append(client, version, path, 5, b" wo", complete=True)
    assert short.status_code == 400 and short.headers["Upload-Offset"] == "5"
    past = append(client, version, path, 5, b" world and more")
    assert past.status_code == 400
    assert offset_of(client, version, path).headers["Upload-Offset"] == "5"


def test_the_size_limit_is_413_with_upload_limit(client):
    refused = create(client, 9, Upload_Length="1001")
    assert refused.status_code == 413
    assert refused.headers["Upload-Limit"] == "max-size=1000"
    path = path_of(create(client, 9))  # no length: the limit holds as bytes arrive
    big = append(client, 9, path, 0, os.urandom(1001))
    assert big.status_code == 413 and big.headers["Upload-Limit"] == "max-size=1000"
    assert offset_of(client, 9, path).headers["Upload-Offset"] == "0"


def test_the_length_is_learnt_when_the_upload_completes(client):
    path = path_of(create(client, 8, b"abc"))
    assert "Upload-Length" not in offset_of(client, 8, path).headers
    done = append(client, 8, path, 3, b"def", complete=True)
    assert done.headers["Upload-Length"] == "6"


def test_unknown_uploads_are_404(client):
    for version in (6, 9):
        missing = "/files/" + "0" * 32
        assert offset_of(client, version, missing).status_code == 404
        assert append(client, version, missing, 0, b"x").status_code == 404
        assert client.delete(missing, headers=draft(version)).status_code == 404


def test_interop_6_offset_retrieval_takes_no_upload_headers(client):
    path = path_of(create(client, 6))
    assert client.head(path, headers=draft(6, Upload_Offset="0")).status_code == 400
    assert client.head(path, headers=draft(7, Upload_Offset="0")).status_code == 204


def test_appends_need_the_partial_upload_type_and_from_7_upload_complete(client):
    path = path_of(create(client, 7, Upload_Length="4"))
    wrong = client.patch(path, data=b"abcd", content_type="application/octet-stream",
                         headers=draft(7, Upload_Offset="0", Upload_Complete="?1"))
    assert wrong.status_code == 415
    assert append(client, 7, path, 0, b"abcd", complete=None).status_code == 400
    # Interop 6 takes an append without Upload-Complete as the last one.
    path = path_of(create(client, 6, Upload_Length="4"))
    done = append(client, 6, path, 0, b"abcd", complete=None)
    assert (done.status_code, done.headers["Upload-Complete"]) == (201, "?1")


def test_get_retrieves_the_offset_from_interop_9(client):
    path = path_of(create(client, 9, b"abc"))
    got = client.get(path, headers=draft(9))
    assert (got.status_code, got.headers["Upload-Offset"], got.data) == (204, "3", b"")
    # Before 9, GET is the finished file's, as for tus.
    assert client.get(path, headers=draft(8)).status_code == 409


def test_options_announces_the_limits(client):
    for path in ("/files/", "/files/" + "0" * 32):
        answer = client.options(path, headers=draft(9))
        assert answer.headers["Upload-Limit"] == "max-size=1000"
        assert answer.headers["Accept-Patch"] == PARTIAL
    assert client.options("/files/").headers["Upload-Limit"] == "max-size=1000"


def test_tus_resumable_keeps_a_request_tus_and_other_versions_are_412(client):
    both = client.post("/files/", headers={
        **draft(9, Upload_Complete="?0"), "Tus-Resumable": "1.0.0", "Upload-Length": "3"})
    assert both.status_code == 201 and both.headers["Tus-Resumable"] == "1.0.0"
    for version in ("5", "10", "x"):
        refused = client.post("/files/", headers=draft(0, Upload_Complete="?0") | {
            "Upload-Draft-Interop-Version": version})
        assert refused.status_code == 412
        assert "Upload-Draft-Interop-Version" in refused.get_json()["message"]


def test_creation_needs_upload_complete_and_no_offset(client):
    assert client.post("/files/", headers=draft(9)).status_code == 400
    assert create(client, 9, Upload_Offset="0").status_code == 400
    assert client.post("/files/", headers=draft(9, Upload_Complete="yes")).status_code == 400


def test_cors_lets_browsers_send_and_read_the_draft_headers(client):
    preflight = client.options("/files/", headers={
        "Origin": "http://localhost:4174", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "upload-draft-interop-version,upload-complete"})
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "upload-draft-interop-version" in allowed and "upload-complete" in allowed
    created = create(client, 6, Origin="http://localhost:4174")
    exposed = set(created.headers["Access-Control-Expose-Headers"].lower().replace(" ", "")
                  .split(","))
    assert {"location", "upload-offset", "upload-complete", "upload-limit",
            "upload-draft-interop-version"} <= exposed


def test_flask_stats_counts_uploads_by_protocol(client, runner):
    completed(client, 9)
    create(client, 6)
    client.post("/files/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "3"})
    figures = json.loads(runner.invoke(args=["stats", "--json"]).output)
    assert figures["uploadsByProtocol"] == {
        "api": {"uploading": 0, "completed": 0}, "tus": {"uploading": 1, "completed": 0},
        "ietf": {"uploading": 1, "completed": 1}}
    text = runner.invoke(args=["stats"]).output
    assert [line.split() for line in text.splitlines() if line.startswith("  ietf")] == [
        ["ietf", "1", "1"]]
