"""The IETF resumable upload draft on the tus endpoint, each served interop version's
requests through Flask's test client, on both databases and both stores."""
import hashlib
import os

import pytest
from sqlalchemy import select

from uploadsvc.core.extensions import db
from uploadsvc.core.models import IETF, Upload, UploadEvent

from .helpers import finished_bytes, leftovers
from .resumable_helpers import VERSIONS, append, create, draft, offset_of, path_of, problem

STORAGES = ["local", "s3"]


def stored_name(response) -> str:
    return response.headers["Content-Location"].removeprefix("/uploads/")


@pytest.mark.parametrize("version", VERSIONS)
def test_careful_creation_appends_and_completes(app, client, version):
    data = os.urandom(300_000)
    created = create(client, version, Upload_Length=str(len(data)),
                     Content_Disposition='attachment; filename="careful.bin"')
    assert created.status_code == 201
    assert created.headers["Upload-Complete"] == "?0"
    assert created.headers["Upload-Offset"] == "0"
    assert created.headers["Upload-Draft-Interop-Version"] == str(version)
    assert "Tus-Resumable" not in created.headers
    limit = created.headers["Upload-Limit"]
    assert limit.startswith("max-size=") and ("expires=" if version == 6 else "max-age=") in limit
    path = path_of(created)

    head = offset_of(client, version, path)
    assert head.status_code == 204
    assert (head.headers["Upload-Offset"], head.headers["Upload-Complete"]) == ("0", "?0")
    assert head.headers["Upload-Length"] == str(len(data))
    assert head.headers["Cache-Control"] == "no-store" and head.headers["Upload-Limit"]

    # All the bytes, but not said to be the end: the upload is not complete.
    first = append(client, version, path, 0, data)
    assert first.status_code == (201 if version == 6 else 204)
    assert (first.headers["Upload-Offset"], first.headers["Upload-Complete"]) == (
        str(len(data)), "?0")
    assert offset_of(client, version, path).headers["Upload-Complete"] == "?0"

    done = append(client, version, path, len(data), b"", complete=True)
    assert done.status_code == 201
    assert (done.headers["Upload-Offset"], done.headers["Upload-Complete"]) == (
        str(len(data)), "?1")
    assert finished_bytes(app, stored_name(done)) == data
    assert stored_name(done) == "careful.bin"
    after = offset_of(client, version, path)
    assert (after.status_code, after.headers["Upload-Complete"]) == (204, "?1")
    assert leftovers(app) == ([], [])
    with app.app_context():
        row = db.session.execute(select(Upload)).scalar_one()
        assert (row.protocol, row.md5) == (IETF, hashlib.md5(data).hexdigest())


@pytest.mark.parametrize("version", [6, 9])
def test_optimistic_creation_stores_the_whole_file(app, client, version):
    data = os.urandom(100_000)
    done = create(client, version, data, complete=True, Content_Type="image/png",
                  Content_Disposition="inline; filename=photo.png")
    assert done.status_code == 201
    assert done.headers["Upload-Complete"] == "?1"
    assert done.headers["Upload-Offset"] == done.headers["Upload-Length"] == str(len(data))
    assert done.headers["Location"]
    assert finished_bytes(app, stored_name(done)) == data
    served = client.get(done.headers["Content-Location"])
    assert served.data == data and served.mimetype == "image/png"


@pytest.mark.parametrize("version", [6, 9])
def test_cancellation_removes_the_upload(app, client, version):
    path = path_of(create(client, version, b"part", Upload_Length="10"))
    assert client.delete(path, headers=draft(version)).status_code == 204
    gone = offset_of(client, version, path)
    assert gone.status_code == 404
    assert leftovers(app) == ([], [])
    with app.app_context():
        kinds = db.session.execute(select(UploadEvent.kind)).scalars().all()
    assert kinds.count(UploadEvent.CREATED) == 1 and kinds.count(UploadEvent.DELETED) == 1


def test_mismatching_offset_is_a_problem_with_the_right_offset(client):
    path = path_of(create(client, 9, b"12345"))
    refused = append(client, 9, path, 3, b"abc")
    assert refused.status_code == 409
    assert (refused.headers["Upload-Offset"], refused.headers["Upload-Complete"]) == ("5", "?0")
    body = problem(refused, "mismatching-upload-offset")
    assert (body["expected-offset"], body["provided-offset"]) == (5, 3)
    assert append(client, 9, path, 5, b"abc").headers["Upload-Offset"] == "8"


def b64(algorithm: str, data: bytes) -> str:
    import base64

    name = {"md5": "md5", "sha-256": "sha256"}[algorithm]
    return f"{algorithm}=:{base64.b64encode(hashlib.new(name, data).digest()).decode()}:"


@pytest.mark.parametrize("appends", [1, 3])
def test_repr_digest_is_checked_at_completion(app, client, appends):
    """md5 and sha-256, beside the receive (one request) or over the placed file (several);
    a mismatch keeps nothing and says the upload is complete."""
    data = os.urandom(200_001)
    digest = f"{b64('md5', data)}, {b64('sha-256', data)}, unixsum=:AAA=:"
    for body, status in ((data, 201), (data[:-1] + b"x", 422)):
        path = path_of(create(client, 9, Repr_Digest=digest))
        size = -(-len(body) // appends)
        for n, start in enumerate(range(0, len(body), size)):
            last = n == appends - 1
            answer = append(client, 9, path, start, body[start:start + size], complete=last,
                            Want_Repr_Digest="sha-256=10")
        assert answer.status_code == status, answer.get_data(as_text=True)
        assert answer.headers["Upload-Complete"] == "?1"
        if status == 201:
            assert answer.headers["Repr-Digest"] == f"{b64('md5', data)}, {b64('sha-256', data)}"
            assert finished_bytes(app, stored_name(answer)) == data
        else:
            assert answer.get_json()["error"] == "repr_digest_mismatch"
            assert offset_of(client, 9, path).status_code == 404
    assert leftovers(app) == ([], [])
    with app.app_context():
        kinds = db.session.execute(select(UploadEvent.kind)).scalars().all()
    assert kinds.count(UploadEvent.VERIFICATION_FAILED) == 1
    assert kinds.count(UploadEvent.COMPLETED) == 1


def test_content_digest_mismatch_stores_none_of_the_body(app, client):
    path = path_of(create(client, 8, b"first", Content_Digest=b64("sha-256", b"first")))
    wrong = append(client, 8, path, 5, b"second", Content_Digest=b64("md5", b"other"))
    assert wrong.status_code == 400 and wrong.headers["Upload-Offset"] == "5"
    assert wrong.get_json()["error"] == "content_digest_mismatch"
    assert offset_of(client, 8, path).headers["Upload-Offset"] == "5"
    right = append(client, 8, path, 5, b"second", complete=True,
                   Content_Digest=b64("md5", b"second"), Want_Repr_Digest="md5=3")
    assert right.headers["Repr-Digest"] == b64("md5", b"firstsecond")
